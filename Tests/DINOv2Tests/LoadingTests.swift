import Foundation
import Testing
import TensorFiles
@testable import DINOv2

/// A checkpoint that does not fit the model is refused with the key and both shapes named.
@Suite struct LoadingTests {
    func rewritten(_ edit: (inout [(String, [Int], [Float])]) -> Void) throws -> String {
        let src = try SafeTensorsFile(contentsOf: fixtureDir.appendingPathComponent("plain.safetensors"))
        var tensors = try src.names.map { ($0, try src.info($0).shape, try src.floats($0)) }
        edit(&tensors)
        var w = SafeTensorsWriter(metadata: src.metadata)
        for (n, s, v) in tensors { w.add(n, shape: s, floats: v) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dino-\(UUID()).safetensors")
        try w.write(to: url)
        return url.path
    }

    /// The load error for `path`; a rewritten file is removed afterwards.
    func loadError(_ path: String, variant: DinoConfig.Variant? = nil, remove: Bool = true) -> String {
        defer { if remove { try? FileManager.default.removeItem(atPath: path) } }
        do { _ = try DinoVisionTransformer.load(path: path, variant: variant); return "loaded" } catch { return "\(error)" }
    }

    @Test func missingTensorIsNamedWithItsShape() throws {
        let e = loadError(try rewritten { $0.removeAll { $0.0 == "blocks.1.mlp.fc2.bias" } })
        #expect(e.contains("missing tensor 'blocks.1.mlp.fc2.bias'") && e.contains("[128]"), "\(e)")
    }

    @Test func wrongShapeNamesKeyAndBothShapes() throws {
        let e = loadError(try rewritten { t in
            let i = t.firstIndex { $0.0 == "blocks.0.attn.proj.weight" }!
            t[i].1 = [64, 256]
        })
        #expect(e.contains("'blocks.0.attn.proj.weight'") && e.contains("[64, 256]") && e.contains("[128, 128]"), "\(e)")
    }

    @Test func unexpectedTensorIsNamed() throws {
        let e = loadError(try rewritten { $0.append(("head.weight", [2], [0, 1])) })
        #expect(e.contains("unexpected tensor") && e.contains("'head.weight'"), "\(e)")
    }

    @Test func variantMismatchIsNamed() throws {
        let e = loadError(try rewritten { _ in }, variant: .base)
        #expect(e.contains("not the requested variant 'base'"), "\(e)")
    }

    @Test func huggingFaceDirectoryWithoutWeightsOrConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var e = loadError(dir.path, remove: false)
        #expect(e.contains("config.json"), "\(e)")
        try FileManager.default.copyItem(at: fixtureDir.appendingPathComponent("hf-plain/config.json"), to: dir.appendingPathComponent("config.json"))
        e = loadError(dir.path, remove: false)
        #expect(e.contains("model.safetensors"), "\(e)")
    }

    @Test func configAndInferenceAgreeOnTheReleasedVariants() {
        for v in DinoConfig.Variant.allCases {
            let c = DinoConfig.variant(v, registers: false)
            #expect(c.variant == v && c.headDim == 64)
        }
        #expect(DinoConfig.variant(.giant, registers: false).ffnHidden == 4096)  // SwiGLU rounding (METHOD §1.1)
        #expect(DinoConfig.variant(.base, registers: true).interpolateAntialias)
    }
}
