import Foundation
import Kernels
import TensorFiles
import Transformer

/// A sphere bundle: one safetensors file with the reference checkpoint's tensor names (METHOD §3.6) and
/// `__metadata__` `format` = `spherecorr-bundle`, `version` = `1` (docs/CONTRACTS.md).
package struct SphereBundle: Sendable {
    package static let format = "spherecorr-bundle"
    package static let version = "1"

    package var mapper: SphereMapper
    package var prototypes: Prototypes
    /// `sphere.weight` [1024, 3]: unused by the method, kept so a reference checkpoint round-trips.
    package var unusedSphere: Parameter?
    package var metadata: [String: String]
    /// File the bundle was read from, if any.
    package var path: String?

    /// Backbone width D the bundle was trained for.
    package var backboneDim: Int { mapper.inputDim }
    package var categories: [String] {
        metadata["categories"].map { $0.split(separator: ",").map(String.init) } ?? []
    }

    package enum LoadError: Error, CustomStringConvertible, Equatable {
        case invalid(file: String, detail: String)
        package var description: String {
            switch self { case let .invalid(f, d): "\(f): \(d)" }
        }
    }

    /// Reads and validates a bundle: metadata, every name and shape, shared prototype blocks, finite values.
    package static func load(path: String) throws -> SphereBundle {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw LoadError.invalid(file: path, detail: "\(error)".replacingOccurrences(of: "\(path): ", with: ""))
        }
        return try load(file: file)
    }

    package static func load(file: SafeTensorsFile) throws -> SphereBundle {
        let path = file.path
        func fail(_ s: String) -> LoadError { .invalid(file: path, detail: s) }
        guard file.metadata["format"] == format else {
            throw fail("__metadata__ 'format' is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"), expected '\(format)'")
        }
        guard file.metadata["version"] == version else {
            throw fail("__metadata__ 'version' is \(file.metadata["version"].map { "'\($0)'" } ?? "missing"), expected '\(version)'")
        }
        guard let first = file.tensors["sphere_mapper.0.weight"], first.shape.count == 2 else {
            throw fail("missing tensor 'sphere_mapper.0.weight' ([D/2, D])")
        }
        let d = first.shape[1], h = first.shape[0]
        guard h * 2 == d, h >= 1 else { throw fail("tensor 'sphere_mapper.0.weight' has shape \(first.shape), expected [D/2, D]") }
        guard let k = file.tensors["prototypes.blocks.0.attn.k.weight"], k.shape.count == 2, k.shape[1] > 0 else {
            throw fail("missing tensor 'prototypes.blocks.0.attn.k.weight' ([D, categories])")
        }
        let nc = k.shape[1]
        if let declared = file.metadata["backbone_embed_dim"], Int(declared) != d {
            throw fail("__metadata__ backbone_embed_dim is \(declared) but the tensors are for width \(d)")
        }
        var used = Set<String>()
        func take(_ name: String, _ shape: [Int]) throws -> Parameter {
            guard let info = file.tensors[name] else { throw fail("missing tensor '\(name)' (expected shape \(shape))") }
            guard info.shape == shape else { throw fail("tensor '\(name)' has shape \(info.shape), expected \(shape)") }
            let v = try file.floats(name)
            if let i = v.firstIndex(where: { !$0.isFinite }) { throw fail("tensor '\(name)' has a non-finite value at index \(i)") }
            used.insert(name)
            return Parameter(v, shape: shape)
        }
        var bundle = try assembled(backboneDim: d, categories: nc) { f in
            let p = try take(f.name, f.shape)
            // The reference saves the shared block twice (state_dict does not de-duplicate): both must be present and equal.
            if let twin = f.twin, try take(twin, f.shape).values != p.values {
                throw fail("'\(f.name)' differs from its twin '\(twin)'; the reference shares one CABlock (METHOD §3.3)")
            }
            return p
        }
        bundle.unusedSphere = file.tensors["sphere.weight"] != nil ? try take("sphere.weight", file.tensors["sphere.weight"]!.shape) : nil
        let unexpected = Set(file.names).subtracting(used)
        if !unexpected.isEmpty { throw fail("unexpected tensors \(unexpected.sorted().prefix(8).map { "'\($0)'" }.joined(separator: ", "))") }
        if let cats = file.metadata["categories"], cats.split(separator: ",").count != nc {
            throw fail("__metadata__ categories lists \(cats.split(separator: ",").count) names but the prototypes condition on \(nc)")
        }
        bundle.metadata = file.metadata
        bundle.path = path
        return bundle
    }

    /// Every tensor under its reference name (prototype block written as blocks.0 and blocks.1, as the reference saves it).
    package func namedTensors() -> [(String, Parameter)] {
        var out: [(String, Parameter)] = []
        if let s = unusedSphere { out.append(("sphere.weight", s)) }
        let all = Self.fields(backboneDim: backboneDim, categories: prototypes.categories)
        out += all.map { ($0.name, self[keyPath: $0.path]) }
        out += all.compactMap { f in f.twin.map { ($0, self[keyPath: f.path]) } }
        return out
    }

    /// Publishes the bundle atomically (temp file in the same directory, fsync, rename).
    package func write(to url: URL) throws {
        var w = SafeTensorsWriter(metadata: metadata.merging(["format": Self.format, "version": Self.version,
                                                              "backbone_embed_dim": String(backboneDim)]) { _, new in new })
        for (name, p) in namedTensors() { w.add(name, shape: p.shape, floats: p.values) }
        try w.write(to: url)
    }
}

extension SphereBundle {
    /// One tensor of a bundle: its reference name (METHOD §3.6), its shape, where it lives, and for the shared
    /// prototype block the name of the copy the reference also saves.
    package struct Field {
        package let name: String
        package let shape: [Int]
        let path: WritableKeyPath<SphereBundle, Parameter>
        var twin: String? = nil
    }

    /// Every tensor of a bundle for backbone width D and C categories, written once: loading, saving and the
    /// trainer's parameter set all walk this list (`sphere.weight`, unused by the method, is handled beside it).
    static func fields(backboneDim d: Int, categories nc: Int) -> [Field] {
        let h = d / 2, sm = "sphere_mapper"
        let b: WritableKeyPath<SphereBundle, BlockWeights> = \.mapper.block
        var out: [Field] = [
            Field(name: "\(sm).0.weight", shape: [h, d], path: \.mapper.inWeight),
            Field(name: "\(sm).0.bias", shape: [h], path: \.mapper.inBias),
            Field(name: "\(sm).2.norm1.weight", shape: [h], path: b.appending(path: \.norm1.weight)),
            Field(name: "\(sm).2.norm1.bias", shape: [h], path: b.appending(path: \.norm1.bias)),
            Field(name: "\(sm).2.attn.qkv.weight", shape: [3 * h, h], path: b.appending(path: \.qkv.weight)),
            Field(name: "\(sm).2.attn.proj.weight", shape: [h, h], path: b.appending(path: \.proj.weight)),
            Field(name: "\(sm).2.attn.proj.bias", shape: [h], path: b.appending(path: \.proj.bias!)),
            Field(name: "\(sm).2.norm2.weight", shape: [h], path: b.appending(path: \.norm2.weight)),
            Field(name: "\(sm).2.norm2.bias", shape: [h], path: b.appending(path: \.norm2.bias)),
            Field(name: "\(sm).2.mlp.fc1.weight", shape: [4 * h, h], path: b.appending(path: \.ffn.fc1.weight)),
            Field(name: "\(sm).2.mlp.fc1.bias", shape: [4 * h], path: b.appending(path: \.ffn.fc1.bias!)),
            Field(name: "\(sm).2.mlp.fc2.weight", shape: [h, 4 * h], path: b.appending(path: \.ffn.fc2.weight)),
            Field(name: "\(sm).2.mlp.fc2.bias", shape: [h], path: b.appending(path: \.ffn.fc2.bias!)),
            Field(name: "\(sm).3.weight", shape: [3, h], path: \.mapper.outWeight),
            Field(name: "\(sm).3.bias", shape: [3], path: \.mapper.outBias),
            Field(name: "prototypes.proj.weight", shape: [d, 3], path: \.prototypes.projWeight),
            Field(name: "prototypes.proj.bias", shape: [d], path: \.prototypes.projBias),
        ]
        let ca: WritableKeyPath<SphereBundle, CABlock> = \.prototypes.block
        let block: [(String, [Int], WritableKeyPath<CABlock, Parameter>)] = [
            ("norm1.weight", [d], \.norm1.weight), ("norm1.bias", [d], \.norm1.bias),
            ("attn.q.weight", [d, d], \.qWeight), ("attn.k.weight", [d, nc], \.kWeight), ("attn.v.weight", [d, nc], \.vWeight),
            ("attn.proj.weight", [d, d], \.proj.weight), ("attn.proj.bias", [d], \.proj.bias!),
            ("norm2.weight", [d], \.norm2.weight), ("norm2.bias", [d], \.norm2.bias),
            ("mlp.fc1.weight", [4 * d, d], \.mlp.fc1.weight), ("mlp.fc1.bias", [4 * d], \.mlp.fc1.bias!),
            ("mlp.fc2.weight", [d, 4 * d], \.mlp.fc2.weight), ("mlp.fc2.bias", [d], \.mlp.fc2.bias!),
        ]
        out += block.map { name, shape, path in
            Field(name: "prototypes.blocks.0.\(name)", shape: shape, path: ca.appending(path: path), twin: "prototypes.blocks.1.\(name)")
        }
        return out
    }

    /// A bundle whose every field is `tensor(field)`: loading, and the trainer's view of its parameter set.
    package static func assembled(backboneDim d: Int, categories nc: Int, tensor: (Field) throws -> Parameter) rethrows -> SphereBundle {
        var bundle = placeholder
        for f in fields(backboneDim: d, categories: nc) { bundle[keyPath: f.path] = try tensor(f) }
        return bundle
    }

    /// A bundle with empty tensors, to be filled field by field.
    static var placeholder: SphereBundle {
        let e = Parameter([], shape: [0])
        let norm = LayerNormWeights(weight: e, bias: e), linear = LinearWeights(weight: e, bias: e)
        let mapperBlock = BlockWeights(norm1: norm, qkv: LinearWeights(weight: e, bias: nil), proj: linear, norm2: norm,
                                       ffn: FeedForwardWeights(.mlp, fc1: linear, fc2: linear))
        let caBlock = CABlock(norm1: norm, qWeight: e, kWeight: e, vWeight: e, proj: linear, norm2: norm,
                              mlp: FeedForwardWeights(.mlp, fc1: linear, fc2: linear))
        return SphereBundle(mapper: SphereMapper(inWeight: e, inBias: e, block: mapperBlock, outWeight: e, outBias: e),
                            prototypes: Prototypes(projWeight: e, projBias: e, block: caBlock), unusedSphere: nil, metadata: [:], path: nil)
    }
}
