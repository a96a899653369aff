import Foundation
import Testing
import Kernels
import TensorFiles
import TestSupport
@testable import DINOv2

/// Fixtures written by tools/parity/make_dinov2_fixtures.py from facebookresearch/dinov2 itself.
let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/dinov2")

struct Case: CustomTestStringConvertible, Sendable {
    var model: String
    var index: Int
    var testDescription: String { "\(model).case\(index)" }
}

let cases: [Case] = [
    Case(model: "plain", index: 0), Case(model: "plain", index: 1), Case(model: "plain", index: 2), Case(model: "plain", index: 3),
    Case(model: "registers", index: 0), Case(model: "registers", index: 1),
    Case(model: "swiglu", index: 0), Case(model: "swiglu", index: 1),
]

let atol = 2e-5, rtol = 2e-4

@Suite struct DinoParityTests {
    init() { Threading.configure(workers: 2) }

    /// The portable library path, and the hand-written AVX2 kernels where the CPU has them (skipped, saying why, elsewhere).
    @Test(arguments: cases)
    func everyIntermediateMatchesTheReference(_ c: Case) throws { try check(c, kernels: .portable) }

    @Test(.enabled(if: KernelFamily.avx2Supported, "this CPU has no AVX2+FMA: the hand-written kernels are not run"), arguments: cases)
    func avx2EveryIntermediateMatchesTheReference(_ c: Case) throws { try check(c, kernels: .avx2) }

    /// The default: oneDNN's matmul on reordered weights, at whatever ISA it picks (ONEDNN_MAX_CPU_ISA=AVX2 in
    /// scripts/test's second run forces the AVX2 kernels on an AVX-512 machine), and the widest attention kernel
    /// (AVX-512 where the CPU has it; the avx2 test above forces the AVX2 one).
    @Test(arguments: cases)
    func autoEveryIntermediateMatchesTheReference(_ c: Case) throws { try check(c, kernels: .auto) }

    /// Says which tier the auto parity runs (here and in DinoV1ParityTests) covered: skipped, with the reason, where
    /// the CPU has no AVX-512 (or SPHERECORR_ATTENTION_KERNEL narrows auto).
    @Test(.enabled(if: AttentionKernel.avx512.unavailableReason == nil && Tuning.attentionKernel == nil,
                   "auto parity did not run the AVX-512 attention: \(AttentionKernel.avx512.unavailableReason ?? "SPHERECORR_ATTENTION_KERNEL is set")"))
    func autoRunsTheAVX512Attention() { #expect(AttentionKernel.chosen(family: .auto) == .avx512) }

    /// bf16 against the reference's fp32 features: per-token cosine, mean ≥ 0.999 and min ≥ 0.99 (README quotes them).
    @Test(.enabled(if: Precision.bf16Unavailable == nil, "bf16 not run: \(Precision.bf16Unavailable ?? "")"), arguments: cases)
    func bf16FeaturesAgreeWithTheReference(_ c: Case) throws {
        let model = try DinoVisionTransformer.load(path: fixtureDir.appendingPathComponent("\(c.model).safetensors").path)
        let fx = try SafeTensorsFile(contentsOf: fixtureDir.appendingPathComponent("\(c.model).case\(c.index).safetensors"))
        let shape = try fx.info("input").shape
        let input = try fx.floats("input"), want = try fx.floats("features")
        let out = input.withUnsafeBufferPointer {
            model.forward(images: $0.baseAddress!, batch: shape[0], height: shape[2], width: shape[3],
                          options: ForwardOptions(kernels: .auto, precision: .bf16))
        }
        let a = want.withUnsafeBufferPointer { PrecisionAgreement(out.features.pointer, $0.baseAddress!, tokens: out.batch * out.patches, dim: out.dim) }
        print("bf16 vs reference fp32, \(c): per-token cosine mean \(a.meanCosine), min \(a.minCosine) over \(a.tokens) tokens")
        #expect(a.meanCosine >= 0.999 && a.minCosine >= 0.99, "\(c): mean \(a.meanCosine), min \(a.minCosine)")
    }

    private func check(_ c: Case, kernels: KernelFamily) throws {
        let model = try DinoVisionTransformer.load(path: fixtureDir.appendingPathComponent("\(c.model).safetensors").path)
        let fx = try SafeTensorsFile(contentsOf: fixtureDir.appendingPathComponent("\(c.model).case\(c.index).safetensors"))
        let shape = try fx.info("input").shape  // [B, 3, H, W]
        let input = try fx.floats("input")
        let (b, h, w) = (shape[0], shape[2], shape[3])
        let ps = model.config.patchSize
        if fx.tensors["pos_embed"] != nil {
            let pos = model.interpolatedPositions(gridHeight: h / ps, gridWidth: w / ps)
            expectClose(UnsafeBufferPointer(pos.buffer), try fx.floats("pos_embed"), atol: 1e-6, rtol: 1e-5, "\(c) \(kernels) pos_embed")
        }
        var blocks: [Int: [Float]] = [:]
        let out = input.withUnsafeBufferPointer {
            model.forward(images: $0.baseAddress!, batch: b, height: h, width: w,
                          options: ForwardOptions(cls: true, normed: true, kernels: kernels)) { i, x in
                blocks[i] = Array(x)
            }
        }
        for i in 0..<model.config.depth where fx.tensors["block.\(i)"] != nil {
            expectClose(blocks[i]!, try fx.floats("block.\(i)"), atol: atol, rtol: rtol, "\(c) \(kernels) block.\(i)")
        }
        expectClose(UnsafeBufferPointer(out.features.buffer), try fx.floats("features"), atol: atol, rtol: rtol, "\(c) \(kernels) features")
        expectClose(UnsafeBufferPointer(out.cls!.buffer), try fx.floats("cls"), atol: atol, rtol: rtol, "\(c) \(kernels) cls")
        if fx.tensors["x_norm"] != nil {
            expectClose(UnsafeBufferPointer(out.normed!.buffer), try fx.floats("x_norm"), atol: atol, rtol: rtol, "\(c) \(kernels) x_norm")
        }
        #expect(out.gridHeight == h / ps && out.gridWidth == w / ps)
    }

    /// The Hugging Face directories (written by transformers' save_pretrained) load into the same model.
    @Test(arguments: [("hf-plain", "plain"), ("hf-registers", "registers"), ("hf-swiglu", "swiglu"), ("hf-prefixed", "plain")])
    func huggingFaceLayoutGivesTheReferenceFeatures(dir: String, model name: String) throws {
        let model = try DinoVisionTransformer.load(path: fixtureDir.appendingPathComponent(dir).path)
        #expect(model.config == (try DinoVisionTransformer.load(path: fixtureDir.appendingPathComponent("\(name).safetensors").path)).config)
        let fx = try SafeTensorsFile(contentsOf: fixtureDir.appendingPathComponent("\(name).case0.safetensors"))
        let shape = try fx.info("input").shape
        let input = try fx.floats("input")
        let out = input.withUnsafeBufferPointer {
            model.forward(images: $0.baseAddress!, batch: shape[0], height: shape[2], width: shape[3])
        }
        expectClose(UnsafeBufferPointer(out.features.buffer), try fx.floats("features"), atol: atol, rtol: rtol, "\(dir) features")
    }
}
