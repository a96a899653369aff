import Foundation
import Kernels
import TensorFiles
#if canImport(Glibc)
import Glibc
#endif

package enum WeightError: Error, CustomStringConvertible {
    case missing(file: String, key: String, expectedShape: [Int])
    case shape(file: String, key: String, expected: [Int], found: [Int])
    case unexpected(file: String, keys: [String])
    case config(file: String, detail: String)

    package var description: String {
        switch self {
        case let .missing(f, k, s): "\(f): missing tensor '\(k)' (expected shape \(s))"
        case let .shape(f, k, e, s): "\(f): tensor '\(k)' has shape \(s), expected \(e)"
        case let .unexpected(f, ks):
            "\(f): unexpected tensor\(ks.count == 1 ? "" : "s") \(ks.prefix(8).map { "'\($0)'" }.joined(separator: ", "))\(ks.count > 8 ? " and \(ks.count - 8) more" : "")"
        case let .config(f, d): "\(f): \(d)"
        }
    }
}

/// Hands out tensors by their torch-hub names (the internal names), whatever the file layout, checking
/// shapes, and remembers what was taken so that unused tensors are reported (silently unused weights are
/// how wrong mappings ship).
package final class WeightReader {
    let file: (any TensorArchive)?
    /// hub name → file keys to concatenate along the first axis (one key except HF's q/k/v).
    private var sources: [String: [String]]
    private var taken: Set<String> = []
    /// In-memory weights (random models): asked for every name instead of a file.
    private let generator: ((String, [Int]) -> Parameter)?
    /// Every tensor handed out, under its torch-hub name and checkpoint shape, in the order asked for: the model's
    /// names for writing are the ones it loaded with, not a second list.
    private(set) var handedOut: [(String, Parameter)] = []
    /// Names handed out as views of the mapped file (not owned memory).
    private var mapped: Set<String> = []

    /// `sources` maps internal names to file keys; keys of the file not reachable from it are "unexpected".
    init(file: any TensorArchive, sources: [String: [String]]) {
        self.file = file; self.sources = sources; self.generator = nil
    }

    init(generator: @escaping (String, [Int]) -> Parameter) {
        self.file = nil; self.sources = [:]; self.generator = generator
    }

    package func has(_ name: String) -> Bool { sources[name] != nil }

    /// The file key(s) behind an internal name, for messages.
    private func keyText(_ name: String) -> String { sources[name]?.joined(separator: " + ") ?? name }

    package func take(_ name: String, shape: [Int]) throws -> Parameter {
        let p = try read(name, shape: shape)
        handedOut.append((name, p))
        return p
    }

    private func read(_ name: String, shape: [Int]) throws -> Parameter {
        if let generator { return generator(name, shape) }
        guard let file, let keys = sources[name] else { throw WeightError.missing(file: file?.path ?? "", key: name, expectedShape: shape) }
        taken.insert(name)
        if keys.count == 1 {
            let found = try shapeOf(keys[0], in: file)
            guard found.reduce(1, *) == shape.reduce(1, *), squeezeEqual(found, shape) else {
                throw WeightError.shape(file: file.path, key: keys[0], expected: shape, found: found)
            }
            if let view = try file.float32View(keys[0]) {
                mapped.insert(name)
                return Parameter(pointer: view.baseAddress!, shape: shape, owner: file)
            }
            return ownedParameter(try file.floats(keys[0]), shape: shape)
        }
        // Concatenation along axis 0 (HF query | key | value → hub qkv).
        var values: [Float] = []
        let part = shape[0] / keys.count
        for k in keys {
            let found = try shapeOf(k, in: file)
            let expected = [part] + shape.dropFirst()
            guard squeezeEqual(found, expected) else {
                throw WeightError.shape(file: file.path, key: k, expected: expected, found: found)
            }
            values += try file.floats(k)
        }
        return ownedParameter(values, shape: shape)
    }

    /// Forgets the tensors the model released, identified by the parameters it was handed (so the checkpoint names
    /// stay written once, where they are taken): owned memory is freed when the last reference goes, and the whole
    /// pages of mapped ones are dropped from this process (MADV_DONTNEED on a private read-only mapping: a later read
    /// would fault them in from the file again, so nothing can go stale).
    func release(_ released: [Parameter]) {
        let pointers = Set(released.map(\.pointer))
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for (name, p) in handedOut where pointers.contains(p.pointer) && mapped.contains(name) {
            let start = (Int(bitPattern: p.pointer) + page - 1) / page * page
            let end = (Int(bitPattern: p.pointer) + 4 * p.count) / page * page
            if end > start { madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
        }
        handedOut.removeAll { pointers.contains($0.1.pointer) }
    }

    private func shapeOf(_ key: String, in file: any TensorArchive) throws -> [Int] {
        guard let s = file.shape(of: key) else { throw TensorFileError.missingTensor(file: file.path, name: key) }
        return s
    }

    /// Fails when the file holds tensors the model never asked for.
    package func finish() throws {
        let left = Set(sources.keys).subtracting(taken)
        if let file, !left.isEmpty {
            throw WeightError.unexpected(file: file.path, keys: left.flatMap { sources[$0]! }.sorted())
        }
    }

    /// Shapes equal up to leading singleton axes ([1, D] vs [D] for cls tokens saved either way).
    private func squeezeEqual(_ a: [Int], _ b: [Int]) -> Bool {
        Array(a.drop(while: { $0 == 1 })) == Array(b.drop(while: { $0 == 1 })) && a.reduce(1, *) == b.reduce(1, *)
    }
}

/// Weights the reader builds (converted, concatenated, random) live outside BufferPool, whose blocks outlive their
/// storage: a model that releases its fp32 matrices gives their memory back to the system (whole pages, mmap).
final class WeightMemory {
    let pointer: UnsafeMutablePointer<Float>
    private let bytes: Int
    init(count: Int) {
        bytes = (max(count, 1) * 4 + 4095) / 4096 * 4096
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        precondition(p != MAP_FAILED, "mmap of \(bytes) bytes for weights failed: \(String(cString: strerror(errno)))")
        pointer = p!.bindMemory(to: Float.self, capacity: max(count, 1))
    }
    deinit { munmap(pointer, bytes) }
}

func ownedParameter(_ values: [Float], shape: [Int]) -> Parameter {
    let m = WeightMemory(count: values.count)
    values.withUnsafeBufferPointer { m.pointer.update(from: $0.baseAddress!, count: values.count) }
    return Parameter(pointer: m.pointer, shape: shape, owner: m)
}

// MARK: - Layouts

enum CheckpointLayout {
    /// torch-hub names are the internal names.
    static func hubSources(_ file: SafeTensorsFile) -> [String: [String]] {
        Dictionary(uniqueKeysWithValues: file.names.map { ($0, [$0]) })
    }

    /// A torch.save checkpoint: the official hub files are a flat state_dict with hub names; training checkpoints
    /// nest it under 'teacher' (DINOv1's full checkpoints; also 'model', 'state_dict') with `module.` (DDP) and
    /// `backbone.` (multi-crop wrapper) prefixes. As facebookresearch/dino's `load_pretrained_weights`: take the
    /// wrapper, strip the prefixes, and ignore the projection head it leaves to `strict=False` (`head.*`).
    static func torchSources(_ file: TorchCheckpoint) throws -> [String: [String]] {
        let names = file.names
        let wrapper = ["teacher", "model", "state_dict"].first { w in names.contains { $0.hasPrefix(w + ".") } }
        var out: [String: [String]] = [:]
        for key in names {
            var k = key
            if let w = wrapper {
                guard k.hasPrefix(w + ".") else { continue }  // the student, optimizer state, …: not the weights
                k.removeFirst(w.count + 1)
            }
            while let p = ["module.", "backbone."].first(where: { k.hasPrefix($0) }) { k.removeFirst(p.count) }
            if wrapper != nil, k.hasPrefix("head.") { continue }
            if let other = out[k] {
                throw WeightError.config(file: file.path, detail: "'\(other[0])' and '\(key)' both name '\(k)'")
            }
            out[k] = [key]
        }
        return out
    }

    /// Hugging Face Dinov2Model / Dinov2WithRegistersModel / ViTModel (DINOv1) names → hub names (METHOD §1.4, §1.5),
    /// optional task-head prefix. ViT's pooler (dense + tanh on CLS) is a head the features never use: skipped.
    static func hfSources(_ file: SafeTensorsFile) throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        var unknown: [String] = []
        var qkv: [String: [String: String]] = [:]  // "blocks.i.attn.qkv.weight" → {query|key|value: file key}
        for key in file.names {
            // Task-head models prefix the backbone: `dinov2.`, `dinov2_with_registers.` or `vit.`.
            let prefix = ["dinov2.", "dinov2_with_registers.", "vit."].first { key.hasPrefix($0) }
            let k = prefix.map { String(key.dropFirst($0.count)) } ?? key
            if k.hasPrefix("pooler.") { continue }
            let fixed: [String: String] = [
                "embeddings.cls_token": "cls_token", "embeddings.mask_token": "mask_token",
                "embeddings.position_embeddings": "pos_embed", "embeddings.register_tokens": "register_tokens",
                "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
                "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
                "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
            ]
            if let hub = fixed[k] { out[hub] = [key]; continue }
            let parts = k.split(separator: ".").map(String.init)
            guard parts.count >= 4, parts[0] == "encoder", parts[1] == "layer", let i = Int(parts[2]) else {
                unknown.append(key); continue
            }
            let rest = parts[3...].joined(separator: ".")
            let block = "blocks.\(i)."
            let simple: [String: String] = [
                "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
                "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
                "attention.output.dense.weight": "attn.proj.weight", "attention.output.dense.bias": "attn.proj.bias",
                "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
                "mlp.fc1.weight": "mlp.fc1.weight", "mlp.fc1.bias": "mlp.fc1.bias",
                "mlp.fc2.weight": "mlp.fc2.weight", "mlp.fc2.bias": "mlp.fc2.bias",
                "mlp.weights_in.weight": "mlp.w12.weight", "mlp.weights_in.bias": "mlp.w12.bias",
                "mlp.weights_out.weight": "mlp.w3.weight", "mlp.weights_out.bias": "mlp.w3.bias",
                // ViTModel (DINOv1)
                "layernorm_before.weight": "norm1.weight", "layernorm_before.bias": "norm1.bias",
                "layernorm_after.weight": "norm2.weight", "layernorm_after.bias": "norm2.bias",
                "intermediate.dense.weight": "mlp.fc1.weight", "intermediate.dense.bias": "mlp.fc1.bias",
                "output.dense.weight": "mlp.fc2.weight", "output.dense.bias": "mlp.fc2.bias",
            ]
            if let hub = simple[rest] { out[block + hub] = [key]; continue }
            let qkvParts = rest.split(separator: ".")
            if qkvParts.count == 4, qkvParts[0] == "attention", qkvParts[1] == "attention",
               ["query", "key", "value"].contains(qkvParts[2]), ["weight", "bias"].contains(qkvParts[3]) {
                qkv[block + "attn.qkv.\(qkvParts[3])", default: [:]][String(qkvParts[2])] = key
                continue
            }
            unknown.append(key)
        }
        for (hub, parts) in qkv {
            guard let q = parts["query"], let k = parts["key"], let v = parts["value"] else {
                throw WeightError.config(file: file.path, detail: "incomplete query/key/value for \(hub): found \(parts.values.sorted())")
            }
            out[hub] = [q, k, v]
        }
        if !unknown.isEmpty { throw WeightError.unexpected(file: file.path, keys: unknown) }
        return out
    }
}
