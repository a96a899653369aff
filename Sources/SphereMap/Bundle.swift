import Foundation
import Kernels
import TensorFiles

/// A sphere bundle: one safetensors file with the reference checkpoint's tensor names (METHOD §3.6) and
/// `__metadata__` `format` = `spherecorr-bundle`, `version` = `1` (docs/CONTRACTS.md).
package struct SphereBundle: Sendable {
    package static let format = "spherecorr-bundle"
    package static let version = "1"

    package var mapper: SphereMapper
    package var prototypes: Prototypes
    /// `sphere.weight` [1024, 3]: unused by the method, kept so a reference checkpoint round-trips.
    package var unusedSphere: Param?
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
        func take(_ name: String, _ shape: [Int]) throws -> Param {
            guard let info = file.tensors[name] else { throw fail("missing tensor '\(name)' (expected shape \(shape))") }
            guard info.shape == shape else { throw fail("tensor '\(name)' has shape \(info.shape), expected \(shape)") }
            let v = try file.floats(name)
            if let i = v.firstIndex(where: { !$0.isFinite }) { throw fail("tensor '\(name)' has a non-finite value at index \(i)") }
            used.insert(name)
            return Param(v, shape: shape)
        }
        let sm = "sphere_mapper"
        let block = MapperBlock(
            norm1Weight: try take("\(sm).2.norm1.weight", [h]), norm1Bias: try take("\(sm).2.norm1.bias", [h]),
            qkvWeight: try take("\(sm).2.attn.qkv.weight", [3 * h]+[h]),
            projWeight: try take("\(sm).2.attn.proj.weight", [h, h]), projBias: try take("\(sm).2.attn.proj.bias", [h]),
            norm2Weight: try take("\(sm).2.norm2.weight", [h]), norm2Bias: try take("\(sm).2.norm2.bias", [h]),
            fc1Weight: try take("\(sm).2.mlp.fc1.weight", [4 * h, h]), fc1Bias: try take("\(sm).2.mlp.fc1.bias", [4 * h]),
            fc2Weight: try take("\(sm).2.mlp.fc2.weight", [h, 4 * h]), fc2Bias: try take("\(sm).2.mlp.fc2.bias", [h]))
        let mapper = SphereMapper(inWeight: try take("\(sm).0.weight", [h, d]), inBias: try take("\(sm).0.bias", [h]), block: block,
                                  outWeight: try take("\(sm).3.weight", [3, h]), outBias: try take("\(sm).3.bias", [3]))
        func caBlock(_ i: Int) throws -> CABlock {
            let p = "prototypes.blocks.\(i)"
            return CABlock(
                norm1Weight: try take("\(p).norm1.weight", [d]), norm1Bias: try take("\(p).norm1.bias", [d]),
                qWeight: try take("\(p).attn.q.weight", [d, d]), kWeight: try take("\(p).attn.k.weight", [d, nc]),
                vWeight: try take("\(p).attn.v.weight", [d, nc]),
                projWeight: try take("\(p).attn.proj.weight", [d, d]), projBias: try take("\(p).attn.proj.bias", [d]),
                norm2Weight: try take("\(p).norm2.weight", [d]), norm2Bias: try take("\(p).norm2.bias", [d]),
                fc1Weight: try take("\(p).mlp.fc1.weight", [4 * d, d]), fc1Bias: try take("\(p).mlp.fc1.bias", [4 * d]),
                fc2Weight: try take("\(p).mlp.fc2.weight", [d, 4 * d]), fc2Bias: try take("\(p).mlp.fc2.bias", [d]))
        }
        let b0 = try caBlock(0)
        // The reference saves the shared block twice (state_dict does not de-duplicate): both must be present and equal.
        let b1 = try caBlock(1)
        for ((name, a), (_, b)) in zip(b0.namedParams(prefix: "prototypes.blocks.0"), b1.namedParams(prefix: "prototypes.blocks.1"))
        where a.values != b.values {
            throw fail("'\(name)' differs from its 'prototypes.blocks.1' twin; the reference shares one CABlock (METHOD §3.3)")
        }
        let protos = Prototypes(projWeight: try take("prototypes.proj.weight", [d, 3]), projBias: try take("prototypes.proj.bias", [d]), block: b0)
        let sphere = file.tensors["sphere.weight"] != nil ? try take("sphere.weight", file.tensors["sphere.weight"]!.shape) : nil
        let unexpected = Set(file.names).subtracting(used)
        if !unexpected.isEmpty { throw fail("unexpected tensors \(unexpected.sorted().prefix(8).map { "'\($0)'" }.joined(separator: ", "))") }
        if let cats = file.metadata["categories"], cats.split(separator: ",").count != nc {
            throw fail("__metadata__ categories lists \(cats.split(separator: ",").count) names but the prototypes condition on \(nc)")
        }
        return SphereBundle(mapper: mapper, prototypes: protos, unusedSphere: sphere, metadata: file.metadata, path: path)
    }

    /// Every tensor under its reference name (prototype block written as blocks.0 and blocks.1, as the reference saves it).
    package func namedTensors() -> [(String, Param)] {
        let sm = "sphere_mapper", b = mapper.block
        var out: [(String, Param)] = []
        if let s = unusedSphere { out.append(("sphere.weight", s)) }
        out += [("\(sm).0.weight", mapper.inWeight), ("\(sm).0.bias", mapper.inBias),
                ("\(sm).2.norm1.weight", b.norm1Weight), ("\(sm).2.norm1.bias", b.norm1Bias),
                ("\(sm).2.attn.qkv.weight", b.qkvWeight), ("\(sm).2.attn.proj.weight", b.projWeight), ("\(sm).2.attn.proj.bias", b.projBias),
                ("\(sm).2.norm2.weight", b.norm2Weight), ("\(sm).2.norm2.bias", b.norm2Bias),
                ("\(sm).2.mlp.fc1.weight", b.fc1Weight), ("\(sm).2.mlp.fc1.bias", b.fc1Bias),
                ("\(sm).2.mlp.fc2.weight", b.fc2Weight), ("\(sm).2.mlp.fc2.bias", b.fc2Bias),
                ("\(sm).3.weight", mapper.outWeight), ("\(sm).3.bias", mapper.outBias),
                ("prototypes.proj.weight", prototypes.projWeight), ("prototypes.proj.bias", prototypes.projBias)]
        out += prototypes.block.namedParams(prefix: "prototypes.blocks.0") + prototypes.block.namedParams(prefix: "prototypes.blocks.1")
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

extension CABlock {
    func namedParams(prefix p: String) -> [(String, Param)] {
        [("\(p).norm1.weight", norm1Weight), ("\(p).norm1.bias", norm1Bias), ("\(p).attn.q.weight", qWeight),
         ("\(p).attn.k.weight", kWeight), ("\(p).attn.v.weight", vWeight), ("\(p).attn.proj.weight", projWeight),
         ("\(p).attn.proj.bias", projBias), ("\(p).norm2.weight", norm2Weight), ("\(p).norm2.bias", norm2Bias),
         ("\(p).mlp.fc1.weight", fc1Weight), ("\(p).mlp.fc1.bias", fc1Bias), ("\(p).mlp.fc2.weight", fc2Weight),
         ("\(p).mlp.fc2.bias", fc2Bias)]
    }
}
