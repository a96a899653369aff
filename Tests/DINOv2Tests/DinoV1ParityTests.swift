import Foundation
import Testing
import Kernels
import TensorFiles
import TestSupport
@testable import DINOv2

/// Fixtures written by tools/parity/make_dino_v1_fixtures.py from facebookresearch/dino's VisionTransformer, with the
/// descriptors taken by the paper code's ViTExtractor (stride patch, facet 'key').
let dinoV1FixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/dino_v1")

struct V1Case: CustomTestStringConvertible, Sendable {
    var model: String
    var index: Int
    var testDescription: String { "\(model).case\(index)" }
}

/// p8: stride 8 (two shapes), stride 4 (three, one of them the square 28×28 grid that skips interpolation);
/// p16: stride 16, the 224×224 input of the pretraining grid, stride 8.
let v1Cases: [V1Case] = (0..<5).map { V1Case(model: "p8", index: $0) } + (0..<3).map { V1Case(model: "p16", index: $0) }

@Suite struct DinoV1ParityTests {
    init() { Threading.configure(workers: 2) }

    @Test(arguments: v1Cases)
    func everyIntermediateMatchesTheReference(_ c: V1Case) throws { try check(c, kernels: .portable) }

    @Test(.enabled(if: KernelFamily.avx2Supported, "this CPU has no AVX2+FMA: the hand-written kernels are not run"), arguments: v1Cases)
    func avx2EveryIntermediateMatchesTheReference(_ c: V1Case) throws { try check(c, kernels: .avx2) }

    /// The default: oneDNN's matmul on reordered weights (the plain residual epilogue without LayerScale included).
    @Test(arguments: v1Cases)
    func autoEveryIntermediateMatchesTheReference(_ c: V1Case) throws { try check(c, kernels: .auto) }

    private func fixture(_ c: V1Case) throws -> (SafeTensorsFile, stride: Int) {
        let fx = try SafeTensorsFile(contentsOf: dinoV1FixtureDir.appendingPathComponent("\(c.model).case\(c.index).safetensors"))
        return (fx, Int(fx.metadata["stride"] ?? "") ?? 0)
    }

    private func check(_ c: V1Case, kernels: KernelFamily) throws {
        let (fx, stride) = try fixture(c)
        let model = try DinoVisionTransformer.load(path: dinoV1FixtureDir.appendingPathComponent("\(c.model).safetensors").path, stride: stride)
        #expect(model.config.family == .dinov1 && model.config.patchStride == stride && model.config.keyBlock == 1)
        let shape = try fx.info("input").shape  // [B, 3, H, W]
        let input = try fx.floats("input")
        let (b, h, w) = (shape[0], shape[2], shape[3])
        let (gh, gw) = (model.config.gridSide(h), model.config.gridSide(w))
        let pos = model.interpolatedPositions(gridHeight: gh, gridWidth: gw)
        expectClose(UnsafeBufferPointer(pos.buffer), try fx.floats("pos_embed"), atol: 1e-6, rtol: 1e-5, "\(c) \(kernels) pos_embed")
        var blocks: [Int: [Float]] = [:]
        let out = input.withUnsafeBufferPointer {
            model.forward(images: $0.baseAddress!, batch: b, height: h, width: w,
                          options: ForwardOptions(cls: true, normed: true, kernels: kernels)) { i, x in blocks[i] = Array(x) }
        }
        for i in 0..<model.config.depth where fx.tensors["block.\(i)"] != nil {
            expectClose(blocks[i]!, try fx.floats("block.\(i)"), atol: atol, rtol: rtol, "\(c) \(kernels) block.\(i)")
        }
        #expect(out.gridHeight == gh && out.gridWidth == gw)
        expectClose(UnsafeBufferPointer(out.features.buffer), try fx.floats("keys.1"), atol: atol, rtol: rtol, "\(c) \(kernels) features = keys.1")
        expectClose(UnsafeBufferPointer(out.cls!.buffer), try fx.floats("cls"), atol: atol, rtol: rtol, "\(c) \(kernels) cls")
        if fx.tensors["x_norm"] != nil {
            expectClose(UnsafeBufferPointer(out.normed!.buffer), try fx.floats("x_norm"), atol: atol, rtol: rtol, "\(c) \(kernels) x_norm")
        }
    }

    /// The reference takes the keys of any block (`layer`): block 0's keys match when it is the feature block, and
    /// without cls/normed/onBlock the forward stops there with the same features.
    @Test(arguments: [V1Case(model: "p8", index: 0), V1Case(model: "p16", index: 2)])
    func keysOfAnEarlierBlockAndTheEarlyStop(_ c: V1Case) throws {
        let (fx, stride) = try fixture(c)
        let loaded = try DinoVisionTransformer.load(path: dinoV1FixtureDir.appendingPathComponent("\(c.model).safetensors").path, stride: stride)
        var config = loaded.config
        config.keyBlock = 0
        let model = DinoVisionTransformer(sharing: loaded, config: config)
        let shape = try fx.info("input").shape
        let input = try fx.floats("input")
        let out = input.withUnsafeBufferPointer { model.forward(images: $0.baseAddress!, batch: shape[0], height: shape[2], width: shape[3]) }
        expectClose(UnsafeBufferPointer(out.features.buffer), try fx.floats("keys.0"), atol: atol, rtol: rtol, "\(c) keys.0")
    }

    /// transformers' ViTModel directories (with and without the pooler, and `vit.`-prefixed) hold the same weights as
    /// the torch-hub files and give the reference features.
    @Test(arguments: [("hf-p8", "p8"), ("hf-p16", "p16"), ("hf-prefixed", "p8")])
    func huggingFaceLayoutGivesTheReferenceFeatures(dir: String, model name: String) throws {
        let hub = try DinoVisionTransformer.load(path: dinoV1FixtureDir.appendingPathComponent("\(name).safetensors").path)
        let hf = try DinoVisionTransformer.load(path: dinoV1FixtureDir.appendingPathComponent(dir).path)
        #expect(hf.config == hub.config)
        let hubWeights = Dictionary(uniqueKeysWithValues: hub.namedWeights().map { ($0.0, $0.1.values) })
        for (n, w) in hf.namedWeights() { #expect(w.values == hubWeights[n], "\(dir): \(n) differs from the torch-hub file") }
        #expect(hubWeights.count == hf.namedWeights().count)
        let fx = try SafeTensorsFile(contentsOf: dinoV1FixtureDir.appendingPathComponent("\(name).case0.safetensors"))
        let shape = try fx.info("input").shape
        let input = try fx.floats("input")
        let out = input.withUnsafeBufferPointer { hf.forward(images: $0.baseAddress!, batch: shape[0], height: shape[2], width: shape[3]) }
        expectClose(UnsafeBufferPointer(out.features.buffer), try fx.floats("keys.1"), atol: atol, rtol: rtol, "\(dir) features")
    }

    @Test func familyAndNamesFollowTheFiles() throws {
        let p8 = try DinoVisionTransformer.load(path: dinoV1FixtureDir.appendingPathComponent("p8.safetensors").path)
        #expect(p8.config.patchSize == 8 && p8.config.posGrid == 28 && p8.config.displayName == "dino-custom(D=128,L=2,p=8)")
        #expect(p8.config.variant == nil && !p8.config.layerScale)
        let strided = try DinoVisionTransformer.load(path: dinoV1FixtureDir.appendingPathComponent("hf-p16").path, stride: 8)
        #expect(strided.config.patchStride == 8 && strided.config.displayName.hasSuffix("-stride8"))
        #expect(DinoConfig.dinoV1(embedDim: 384, depth: 12, heads: 6, patchSize: 8, stride: 4).displayName == "dino-vits8-stride4")
        #expect(DinoConfig.dinoV1(embedDim: 768, depth: 12, heads: 12, patchSize: 16).keyBlock == 9)
        let v2 = try DinoVisionTransformer.load(path: fixtureDir.appendingPathComponent("plain.safetensors").path)
        #expect(v2.config.family == .dinov2 && v2.config.keyBlock == nil)
    }

    @Test func badStridesAreRefusedNamingTheRule() {
        func error(_ path: String, stride: Int) -> String {
            do { _ = try DinoVisionTransformer.load(path: path, stride: stride); return "loaded" } catch { return "\(error)" }
        }
        let e1 = error(dinoV1FixtureDir.appendingPathComponent("p8.safetensors").path, stride: 3)
        #expect(e1.contains("must divide the patch size 8") && e1.contains("got 3"), "\(e1)")
        let e2 = error(fixtureDir.appendingPathComponent("plain.safetensors").path, stride: 7)
        #expect(e2.contains("DINOv1 option"), "\(e2)")
        let c = DinoConfig.dinoV1(embedDim: 384, depth: 12, heads: 6, patchSize: 8, stride: 4)
        #expect(c.invalidSideReason(224) == nil && c.gridSide(224) == 55)
        #expect(c.invalidSideReason(226)?.contains("8 + 4·k") == true)
    }
}
