import Foundation
import Runtime
import Testing
@testable import Kernels

// oneDNN's matmul on the reordered weights (the backbone's path) against the naive product, on every ISA tier this
// CPU has: the tier oneDNN picks by itself here, and the lower ones by running the suite again with
// ONEDNN_MAX_CPU_ISA=AVX2 (scripts/test; oneDNN reads it once per process). A tier the CPU lacks is skipped, saying so.

private func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed
    return (0..<n).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}

/// What ONEDNN_MAX_CPU_ISA asks for in this process (lower-cased), nil when unset.
private let forcedISA = ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"]?.lowercased()
private let bf16Reason = Precision.bf16Unavailable ?? ""

@Suite struct MatmulTests {
    init() { Threading.configure(workers: 2) }

    private static let shapes = [(37, 29, 41), (13, 300, 160), (100, 600, 136), (1, 5, 3), (257, 384, 1152)]

    /// Naive Double product; `round` emulates bf16 operands (fp32 accumulation is then the only error left).
    private func naive(_ x: [Float], _ w: [Float], _ b: [Float], r: Int, i: Int, o: Int, round: Bool) -> [Double] {
        func q(_ v: Float) -> Double { Double(round ? bf16Rounded(v) : v) }
        let xq = x.map(q), wq = w.map(q)
        var out = [Double](repeating: 0, count: r * o)
        for rr in 0..<r { for oo in 0..<o {
            var s = Double(b[oo])
            for k in 0..<i { s += xq[rr * i + k] * wq[oo * i + k] }
            out[rr * o + oo] = s
        } }
        return out
    }

    private func check(shape: (Int, Int, Int), precision: Precision, atol: Double, rtol: Double) {
        let (r, i, o) = shape
        let x = values(r * i, seed: 1), w = values(o * i, seed: 2), b = values(o, seed: 3)
        let gamma = values(o, seed: 4), res = values(r * o, seed: 5)
        let weights = w.withUnsafeBufferPointer { MatmulWeights(weight: $0.baseAddress!, inFeatures: i, outFeatures: o, owner: nil) }
        let ref = naive(x, w, b, r: r, i: i, o: o, round: precision == .bf16)
        func close(_ got: [Float], _ want: [Double], _ what: String) {
            let worst = zip(got, want).map { abs(Double($0) - $1) - rtol * abs($1) }.max() ?? 0
            #expect(worst < atol, "\(precision) \(shape) \(what): worst excess error \(worst)")
        }
        w.withUnsafeBufferPointer { _ in
            b.withUnsafeBufferPointer { bp in
                gamma.withUnsafeBufferPointer { gp in
                    var out = [Float](repeating: 0, count: r * o)
                    Matmul.linear(&out, x, weights: weights, bias: bp.baseAddress!, rows: r, precision: precision)
                    close(out, ref, "bias")
                    Matmul.linear(&out, x, weights: weights, bias: bp.baseAddress!, rows: r, epilogue: .biasGELU, precision: precision)
                    close(out, ref.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, "bias+gelu")
                    var acc = res
                    Matmul.linear(&acc, x, weights: weights, bias: bp.baseAddress!, rows: r, epilogue: .biasScaleAddInto(gamma: gp.baseAddress!),
                                  precision: precision)
                    close(acc, (0..<(r * o)).map { Double(res[$0]) + Double(gamma[$0 % o]) * ref[$0] }, "bias·gamma+residual")
                    acc = res
                    Matmul.linear(&acc, x, weights: weights, bias: bp.baseAddress!, rows: r, epilogue: .biasAddInto, precision: precision)
                    close(acc, (0..<(r * o)).map { Double(res[$0]) + ref[$0] }, "bias+residual")
                    Matmul.linear(&out, x, weights: weights, bias: nil, rows: r, precision: precision)
                    close(out, (0..<(r * o)).map { ref[$0] - Double(b[$0 % o]) }, "no bias")
                }
            }
        }
        withExtendedLifetime(w) {}
    }

    @Test(arguments: shapes)
    func fp32ReorderedWeightsMatchNaive(shape: (Int, Int, Int)) {
        check(shape: shape, precision: .fp32, atol: 3e-5, rtol: 1e-4)  // sums of up to 600 products of magnitude ≤ 1
    }

    /// bf16 operands, fp32 accumulation: against the naive product of the same bf16-rounded operands.
    @Test(.enabled(if: Precision.bf16Unavailable == nil, "bf16 not run: \(bf16Reason)"), arguments: shapes)
    func bf16MatchesNaiveOnRoundedOperands(shape: (Int, Int, Int)) {
        check(shape: shape, precision: .bf16, atol: 1e-4, rtol: 1e-3)
    }

    /// The kernel oneDNN picked is the best tier this process allows: the forced one under ONEDNN_MAX_CPU_ISA,
    /// else AVX-512 where the CPU has it (AVX2 otherwise).
    @Test func theChosenKernelIsTheExpectedTier() {
        let impl = Matmul.implementation(inFeatures: 384, outFeatures: 1536)
        print("oneDNN ISA \(OneDNN.effectiveISA), fp32 matmul kernel \(impl)\(forcedISA.map { " (ONEDNN_MAX_CPU_ISA=\($0))" } ?? "")")
        if let forced = forcedISA {
            #expect(OneDNN.effectiveISA == forced || OneDNN.effectiveISA.hasPrefix(forced), "forced \(forced), runs \(OneDNN.effectiveISA)")
            #expect(impl.contains(forced == "avx2" ? "avx2" : forced), "forced \(forced), kernel \(impl)")
        } else if CPUTier.avx512.present {
            #expect(impl.contains("avx512"), "AVX-512 CPU, kernel \(impl)")
        } else if CPUTier.avx2.present {
            #expect(impl.contains("avx2"), "AVX2 CPU, kernel \(impl)")
        }
    }

    @Test(.enabled(if: Precision.bf16Unavailable == nil, "bf16 not run: \(bf16Reason)"))
    func bf16RunsOnTheBF16Unit() {
        let impl = Matmul.implementation(inFeatures: 384, outFeatures: 1536, precision: .bf16)
        print("bf16 matmul kernel \(impl) (\(Precision.bf16Hardware ?? "-"))")
        #expect(impl.contains(CPUTier.amx.present ? "amx" : "bf16"), "kernel \(impl)")
    }

    /// AMX is a tier of its own (tiles, not vectors): run where present, reported skipped elsewhere.
    @Test(.enabled(if: CPUTier.amx.present && forcedISA == nil, "this CPU has no AMX (AMX-TILE + AMX-BF16): the avx512_core_amx kernels are not run"))
    func amxBF16MatchesNaive() {
        #expect(Matmul.implementation(inFeatures: 384, outFeatures: 1536, precision: .bf16).contains("amx"))
        check(shape: (257, 384, 1152), precision: .bf16, atol: 1e-4, rtol: 1e-3)
    }

    @Test func bf16IsRefusedWithTheMissingISANamed() {
        if let why = Precision.bf16.unavailableReason {
            #expect(why.contains("AVX512_BF16") || why.contains("ONEDNN_MAX_CPU_ISA"), "\(why)")
        } else {
            #expect(CPUTier.avx512_bf16.present || CPUTier.amx.present)
        }
        #expect(Precision.fp32.unavailableReason == nil)
        #expect(Threading.incompatibility(kernels: .avx2, precision: .bf16) != nil)
        #expect(Threading.incompatibility(kernels: .auto, precision: .bf16) == nil)
        #expect(Threading.incompatibility(kernels: nil, precision: .bf16) == nil)
    }
}
