import Foundation
import TensorFiles

extension DinoVisionTransformer {
    /// Loads a backbone from a Hugging Face directory (`config.json` + `model.safetensors`) or a single
    /// file with torch-hub names, safetensors or an official torch.save `.pth` checkpoint (variant from `variant`,
    /// or inferred from shapes). The family
    /// (DINOv2 or DINOv1) comes from the files: `model_type`, or LayerScale/mask-token tensors (METHOD §1.5).
    /// `stride`: a DINOv1 patch-embedding stride below the patch size (the reference's ViTExtractor option).
    /// `keepsReferenceWeights` false: the fp32 linear weights are dropped after oneDNN's reorders (auto kernels only).
    package static func load(path: String, variant: DinoConfig.Variant? = nil, stride: Int? = nil,
                             keepsReferenceWeights: Bool = keepsReferenceWeightsByDefault) throws -> DinoVisionTransformer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw WeightError.config(file: path, detail: "no such file or directory")
        }
        if isDir.boolValue { return try loadHuggingFace(directory: path, variant: variant, stride: stride, keepsReferenceWeights: keepsReferenceWeights) }
        let (file, sources) = try openHubFile(path)
        let config = try withStride(try inferHubConfig(file, sources, variant: variant), stride, file: path)
        return try DinoVisionTransformer(config: config, reader: WeightReader(file: file, sources: sources), source: path,
                                         keepsReferenceWeights: keepsReferenceWeights)
    }

    /// The backbone's configuration without reading its weights (the HF config.json, or a hub file's header): lets
    /// a server check its flags against the patch grid before it loads.
    package static func peekConfig(path: String, variant: DinoConfig.Variant? = nil, stride: Int? = nil) throws -> DinoConfig {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw WeightError.config(file: path, detail: "no such file or directory")
        }
        if isDir.boolValue { return try huggingFaceConfig(directory: path, variant: variant, stride: stride) }
        let (file, sources) = try openHubFile(path)
        return try withStride(try inferHubConfig(file, sources, variant: variant), stride, file: path)
    }

    /// A single weights file by its content: a ZIP archive is a torch.save checkpoint (so is a legacy pickle, which
    /// TorchCheckpoint refuses with a clear message), anything else safetensors. Returns hub name → file key.
    static func openHubFile(_ path: String) throws -> (any TensorArchive, [String: [String]]) {
        var magic = [UInt8](repeating: 0, count: 4)
        if let h = FileHandle(forReadingAtPath: path) {
            let d = h.readData(ofLength: 4)
            try? h.close()
            magic = Array(d) + [UInt8](repeating: 0, count: 4 - d.count)
        }
        if magic == [0x50, 0x4B, 0x03, 0x04] || magic[0] == 0x80 {
            let file = try TorchCheckpoint(contentsOf: URL(fileURLWithPath: path))
            return (file, try CheckpointLayout.torchSources(file))
        }
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
        return (file, CheckpointLayout.hubSources(file))
    }

    static func withStride(_ c: DinoConfig, _ stride: Int?, file: String) throws -> DinoConfig {
        guard let stride else { return c }
        if let why = c.invalidStrideReason(stride) { throw WeightError.config(file: file, detail: "\(c.displayName): \(why)") }
        var out = c
        out.patchStride = stride
        return out
    }

    static func loadHuggingFace(directory: String, variant: DinoConfig.Variant?, stride: Int?, keepsReferenceWeights: Bool) throws -> DinoVisionTransformer {
        let config = try huggingFaceConfig(directory: directory, variant: variant, stride: stride)
        let weightsPath = directory + "/model.safetensors"
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            throw WeightError.config(file: weightsPath, detail: "missing (only safetensors weights are read; convert pytorch_model.bin first)")
        }
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: weightsPath))
        return try DinoVisionTransformer(config: config, reader: WeightReader(file: file, sources: try CheckpointLayout.hfSources(file)),
                                         source: directory, keepsReferenceWeights: keepsReferenceWeights)
    }

    static func huggingFaceConfig(directory: String, variant: DinoConfig.Variant?, stride: Int?) throws -> DinoConfig {
        let configPath = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw WeightError.config(file: configPath, detail: "missing (a Hugging Face directory holds config.json and model.safetensors)")
        }
        let hf: HFConfig
        do { hf = try JSONDecoder().decode(HFConfig.self, from: data) } catch {
            throw WeightError.config(file: configPath, detail: "not a DINOv2 or DINOv1 (ViT) config: \(error)")
        }
        if let t = hf.modelType, !["dinov2", "dinov2_with_registers", "vit"].contains(t) {
            throw WeightError.config(file: configPath, detail: "model_type '\(t)' is not dinov2, dinov2_with_registers or vit (DINOv1)")
        }
        guard hf.hiddenSize > 0, hf.numAttentionHeads > 0, hf.hiddenSize % hf.numAttentionHeads == 0 else {
            throw WeightError.config(file: configPath, detail: "hidden_size \(hf.hiddenSize) is not divisible by num_attention_heads \(hf.numAttentionHeads)")
        }
        var config: DinoConfig
        if hf.modelType == "vit" {
            // facebook/dino-vit{s,b}{8,16}: ViTModel with a GELU MLP of 4·D and q/k/v biases (METHOD §1.5).
            let p = hf.patchSize ?? 16, image = hf.imageSize ?? 224
            guard [8, 16].contains(p) else { throw WeightError.config(file: configPath, detail: "patch_size \(p) is not 8 or 16 (DINOv1)") }
            guard image % p == 0 else { throw WeightError.config(file: configPath, detail: "image_size \(image) is not a multiple of patch_size \(p)") }
            if let f = hf.intermediateSize, f != 4 * hf.hiddenSize {
                throw WeightError.config(file: configPath, detail: "intermediate_size \(f) is not 4 × hidden_size \(hf.hiddenSize)")
            }
            if hf.qkvBias == false { throw WeightError.config(file: configPath, detail: "qkv_bias false: DINOv1 has query/key/value biases") }
            if let act = hf.hiddenAct, act != "gelu" { throw WeightError.config(file: configPath, detail: "hidden_act '\(act)' is not gelu (exact)") }
            config = .dinoV1(embedDim: hf.hiddenSize, depth: hf.numHiddenLayers, heads: hf.numAttentionHeads, patchSize: p)
            config.posGrid = image / p
        } else {
            guard hf.patchSize ?? 14 == 14 else { throw WeightError.config(file: configPath, detail: "patch_size \(hf.patchSize!) is not 14") }
            if let ratio = hf.mlpRatio, ratio != 4 { throw WeightError.config(file: configPath, detail: "mlp_ratio \(ratio) is not 4") }
            let registers = hf.modelType == "dinov2_with_registers" ? (hf.numRegisterTokens ?? 4) : 0
            config = DinoConfig(embedDim: hf.hiddenSize, depth: hf.numHiddenLayers, heads: hf.numAttentionHeads,
                                ffn: hf.useSwigluFfn == true ? .swiglu : .mlp, registers: registers)
        }
        if let eps = hf.layerNormEps { config.layerNormEps = Float(eps) }
        config = try withStride(config, stride, file: configPath)
        if let v = variant, config.variant != v {
            throw WeightError.config(file: configPath, detail: "describes \(config.displayName), not the requested variant '\(v.rawValue)'")
        }
        return config
    }

    /// Variant of a torch-hub-named file from its shapes (D from cls_token, depth from block indices); DINOv1
    /// (facebookresearch/dino) when it has neither LayerScale gammas nor a mask token, p from the patch conv.
    static func inferHubConfig(_ file: any TensorArchive, _ sources: [String: [String]], variant: DinoConfig.Variant?) throws -> DinoConfig {
        // Shapes by hub name (the file's keys may carry a wrapper and prefixes).
        let shapes = sources.compactMapValues { keys in keys.count == 1 ? file.shape(of: keys[0]) : nil }
        let names = shapes.keys
        guard let cls = shapes["cls_token"] else {
            let hint = names.contains(where: { $0.contains("embeddings.") }) ? " (this looks like Hugging Face names: pass the directory with config.json)" : ""
            throw WeightError.config(file: file.path, detail: "no 'cls_token' tensor: not a torch-hub DINOv2 or DINOv1 checkpoint\(hint)")
        }
        let d = cls.last ?? 0
        let depth = names.compactMap { n -> Int? in
            let p = n.split(separator: ".")
            return p.count > 2 && p[0] == "blocks" ? Int(p[1]) : nil
        }.max().map { $0 + 1 } ?? 0
        let swiglu = shapes["blocks.0.mlp.w12.weight"] != nil
        let registers = shapes["register_tokens"]?.dropLast().last ?? 0
        guard d > 0, d % 64 == 0, depth > 0 else {
            throw WeightError.config(file: file.path, detail: "cannot infer the variant: embed dim \(d), depth \(depth)")
        }
        let v1 = shapes["blocks.0.ls1.gamma"] == nil && shapes["mask_token"] == nil
        var config: DinoConfig
        if v1 {
            let p = shapes["patch_embed.proj.weight"]?.last ?? 0
            let positions = (shapes["pos_embed"]?.dropLast().last ?? 1) - 1
            let m = Int(Double(positions).squareRoot().rounded())
            guard [8, 16].contains(p), m > 0, m * m == positions else {
                throw WeightError.config(file: file.path, detail: "DINOv1 checkpoint (no LayerScale, no mask_token) with patch size \(p) and \(positions) position embeddings: expected patch 8 or 16 and a square grid")
            }
            config = .dinoV1(embedDim: d, depth: depth, heads: d / 64, patchSize: p)
            config.posGrid = m
        } else {
            config = DinoConfig(embedDim: d, depth: depth, heads: d / 64, ffn: swiglu ? .swiglu : .mlp, registers: registers)
        }
        if let v = variant, config.variant != v {
            throw WeightError.config(file: file.path, detail: "holds \(config.displayName) (D=\(d), depth \(depth)), not the requested variant '\(v.rawValue)'")
        }
        return config
    }
}
