import Foundation
import TensorFiles

extension DinoVisionTransformer {
    /// Loads a backbone from a Hugging Face directory (`config.json` + `model.safetensors`) or a single
    /// safetensors file with torch-hub names (variant from `variant`, or inferred from shapes).
    package static func load(path: String, variant: DinoConfig.Variant? = nil) throws -> DinoVisionTransformer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw WeightError.config(file: path, detail: "no such file or directory")
        }
        if isDir.boolValue { return try loadHuggingFace(directory: path, variant: variant) }
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
        let config = try inferHubConfig(file, variant: variant)
        return try DinoVisionTransformer(config: config,
                                         reader: WeightReader(file: file, sources: CheckpointLayout.hubSources(file)),
                                         source: path)
    }

    static func loadHuggingFace(directory: String, variant: DinoConfig.Variant?) throws -> DinoVisionTransformer {
        let configPath = directory + "/config.json"
        let weightsPath = directory + "/model.safetensors"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw WeightError.config(file: configPath, detail: "missing (a Hugging Face directory holds config.json and model.safetensors)")
        }
        let hf: HFConfig
        do { hf = try JSONDecoder().decode(HFConfig.self, from: data) } catch {
            throw WeightError.config(file: configPath, detail: "not a DINOv2 config: \(error)")
        }
        if let t = hf.modelType, !["dinov2", "dinov2_with_registers"].contains(t) {
            throw WeightError.config(file: configPath, detail: "model_type '\(t)' is not dinov2 or dinov2_with_registers")
        }
        guard hf.patchSize ?? 14 == 14 else { throw WeightError.config(file: configPath, detail: "patch_size \(hf.patchSize!) is not 14") }
        guard hf.hiddenSize > 0, hf.numAttentionHeads > 0, hf.hiddenSize % hf.numAttentionHeads == 0 else {
            throw WeightError.config(file: configPath, detail: "hidden_size \(hf.hiddenSize) is not divisible by num_attention_heads \(hf.numAttentionHeads)")
        }
        if let ratio = hf.mlpRatio, ratio != 4 { throw WeightError.config(file: configPath, detail: "mlp_ratio \(ratio) is not 4") }
        let registers = hf.modelType == "dinov2_with_registers" ? (hf.numRegisterTokens ?? 4) : 0
        var config = DinoConfig(embedDim: hf.hiddenSize, depth: hf.numHiddenLayers, heads: hf.numAttentionHeads,
                                ffn: hf.useSwigluFfn == true ? .swiglu : .mlp, registers: registers)
        if let eps = hf.layerNormEps { config.layerNormEps = Float(eps) }
        if let v = variant, config.variant != v {
            throw WeightError.config(file: configPath, detail: "describes \(config.displayName), not the requested variant '\(v.rawValue)'")
        }
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            throw WeightError.config(file: weightsPath, detail: "missing (only safetensors weights are read; convert pytorch_model.bin first)")
        }
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: weightsPath))
        return try DinoVisionTransformer(config: config, reader: WeightReader(file: file, sources: try CheckpointLayout.hfSources(file)),
                                         source: directory)
    }

    /// Variant of a torch-hub-named file from its shapes (D from cls_token, depth from block indices).
    static func inferHubConfig(_ file: SafeTensorsFile, variant: DinoConfig.Variant?) throws -> DinoConfig {
        guard let cls = file.tensors["cls_token"] else {
            let hint = file.names.contains(where: { $0.contains("embeddings.") }) ? " (this looks like Hugging Face names: pass the directory with config.json)" : ""
            throw WeightError.config(file: file.path, detail: "no 'cls_token' tensor: not a torch-hub DINOv2 checkpoint\(hint)")
        }
        let d = cls.shape.last ?? 0
        let depth = file.names.compactMap { n -> Int? in
            let p = n.split(separator: ".")
            return p.count > 2 && p[0] == "blocks" ? Int(p[1]) : nil
        }.max().map { $0 + 1 } ?? 0
        let swiglu = file.tensors["blocks.0.mlp.w12.weight"] != nil
        let registers = file.tensors["register_tokens"]?.shape.dropLast().last ?? 0
        guard d > 0, d % 64 == 0, depth > 0 else {
            throw WeightError.config(file: file.path, detail: "cannot infer the variant: embed dim \(d), depth \(depth)")
        }
        let config = DinoConfig(embedDim: d, depth: depth, heads: d / 64, ffn: swiglu ? .swiglu : .mlp, registers: registers)
        if let v = variant, config.variant != v {
            throw WeightError.config(file: file.path, detail: "holds \(config.displayName) (D=\(d), depth \(depth)), not the requested variant '\(v.rawValue)'")
        }
        return config
    }
}
