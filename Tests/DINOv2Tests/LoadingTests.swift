import Foundation
import Testing
import TensorFiles
import TestSupport
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

/// Official torch.save checkpoints (tools/parity/make_pth_fixtures.py): the same parity models as the safetensors
/// fixtures, written by torch.save from the official model classes.
@Suite struct TorchCheckpointLoadingTests {
    static let pthDir = fixtureDir.deletingLastPathComponent().appendingPathComponent("pth")

    /// The .pth and the hub safetensors give the same config, bit-identical weights under the same names, and
    /// bit-identical features on the parity inputs (close to the reference's, as the safetensors route is).
    @Test(arguments: [("dinov2-plain.pth", "dinov2/plain"), ("dino_v1-p8-teacher.pth", "dino_v1/p8")])
    func torchCheckpointGivesTheSafetensorsModel(file: String, model name: String) throws {
        let fixtures = fixtureDir.deletingLastPathComponent()
        let pth = try DinoVisionTransformer.load(path: Self.pthDir.appendingPathComponent(file).path)
        let hub = try DinoVisionTransformer.load(path: fixtures.appendingPathComponent("\(name).safetensors").path)
        #expect(pth.config == hub.config)
        let hubWeights = Dictionary(uniqueKeysWithValues: hub.namedWeights().map { ($0.0, $0.1.values.map(\.bitPattern)) })
        #expect(pth.namedWeights().count == hubWeights.count)
        for (n, w) in pth.namedWeights() { #expect(w.values.map(\.bitPattern) == hubWeights[n], "\(file): \(n)") }
        let fx = try SafeTensorsFile(contentsOf: fixtures.appendingPathComponent("\(name).case0.safetensors"))
        let shape = try fx.info("input").shape
        let input = try fx.floats("input")
        func features(_ m: DinoVisionTransformer) -> [Float] {
            let out = input.withUnsafeBufferPointer { m.forward(images: $0.baseAddress!, batch: shape[0], height: shape[2], width: shape[3]) }
            return withExtendedLifetime(out) { Array(out.features.buffer) }
        }
        let got = features(pth)
        #expect(got.map(\.bitPattern) == features(hub).map(\.bitPattern), "\(file): features differ from the safetensors route")
        expectClose(UnsafeBufferPointer(start: got, count: got.count), try fx.floats(pth.config.family == .dinov2 ? "features" : "keys.1"),
                    atol: atol, rtol: rtol, "\(file) features")
        #expect(try DinoVisionTransformer.peekConfig(path: Self.pthDir.appendingPathComponent(file).path) == hub.config)
    }

    /// The wrapper is taken, the student and the projection head left, as dino's load_pretrained_weights does.
    @Test func teacherWrapperSourcesSkipStudentAndHead() throws {
        let ckpt = try TorchCheckpoint(contentsOf: Self.pthDir.appendingPathComponent("dino_v1-p8-teacher.pth"))
        #expect(ckpt.names.contains("student.module.backbone.cls_token") && ckpt.names.contains("teacher.module.head.last_layer.weight_g"))
        let sources = try CheckpointLayout.torchSources(ckpt)
        #expect(sources["cls_token"] == ["teacher.module.backbone.cls_token"])
        #expect(!sources.keys.contains { $0.hasPrefix("head.") || $0.contains("student") })
    }

    @Test func badCheckpointsAreRefusedNamingTheFile() {
        func error(_ name: String) -> String {
            do { _ = try DinoVisionTransformer.load(path: Self.pthDir.appendingPathComponent(name).path); return "loaded" } catch { return "\(error)" }
        }
        #expect(error("forbidden-global.pth").contains("forbidden-global.pth: data.pkl: refusing global 'os.system'"))
        #expect(error("truncated.pth").contains("truncated.pth"))
        #expect(error("legacy.pth").contains("legacy.pth") && error("legacy.pth").contains("legacy (pre-1.6)"))
        let notModel = error("tensors.pth")
        #expect(notModel.contains("tensors.pth") && notModel.contains("no 'cls_token' tensor"), "\(notModel)")
    }
}

/// A process whose kernels are `auto` throughout drops the fp32 linear weights once oneDNN has reordered them
/// (issue #12 memory): the features do not change, mapped, converted and concatenated weights alike.
@Suite struct ReleasedReferenceWeightsTests {
    @Test(arguments: ["dinov2/plain.safetensors", "dinov2/hf-registers", "pth/dino_v1-p8-teacher.pth", "dino_v1/hf-p16"])
    func autoFeaturesAreUnchangedWithoutTheReferenceWeights(_ file: String) throws {
        let path = fixtureDir.deletingLastPathComponent().appendingPathComponent(file).path
        let kept = try DinoVisionTransformer.load(path: path, keepsReferenceWeights: true)
        let lean = try DinoVisionTransformer.load(path: path, keepsReferenceWeights: false)
        #expect(kept.keepsReferenceWeights && !lean.keepsReferenceWeights)
        #expect(lean.blocks.allSatisfy { $0.linears.allSatisfy { !$0.hasReference } })
        #expect(!lean.patchEmbed.hasReference && kept.blocks[0].qkv.hasReference)
        let side = kept.config.patchSize * 3
        let input = (0..<(3 * side * side)).map { Float(sin(Double($0) * 0.37)) }
        func features(_ m: DinoVisionTransformer) -> [UInt32] {
            let out = input.withUnsafeBufferPointer {
                m.forward(images: $0.baseAddress!, batch: 1, height: side, width: side, options: ForwardOptions(cls: true, kernels: .auto, precision: .fp32))
            }
            return withExtendedLifetime(out) { Array(out.features.buffer).map(\.bitPattern) + Array(out.cls!.buffer).map(\.bitPattern) }
        }
        #expect(features(lean) == features(kept), "\(file)")
    }

    @Test func randomModelsReleaseToo() {
        let c = DinoConfig(embedDim: 64, depth: 2, heads: 1, ffn: .mlp, registers: 0)
        let kept = DinoVisionTransformer.random(config: c, seed: 3, keepsReferenceWeights: true)
        let lean = DinoVisionTransformer.random(config: c, seed: 3, keepsReferenceWeights: false)
        #expect(!lean.blocks[1].ffn.fc2.hasReference)
        let input = [Float](repeating: 0.25, count: 3 * 28 * 28)
        let a = input.withUnsafeBufferPointer { kept.forward(images: $0.baseAddress!, batch: 1, height: 28, width: 28, options: ForwardOptions(kernels: .auto)) }
        let b = input.withUnsafeBufferPointer { lean.forward(images: $0.baseAddress!, batch: 1, height: 28, width: 28, options: ForwardOptions(kernels: .auto)) }
        #expect(withExtendedLifetime((a, b)) { Array(a.features.buffer) == Array(b.features.buffer) })
    }
}
