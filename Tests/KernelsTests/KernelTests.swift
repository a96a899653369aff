import Foundation
import Runtime
import Testing
@testable import Kernels

/// Kernels against naive implementations written the obvious way, in Double.
private func randomArray(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed
    return (0..<n).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}

private let linearShapes = [(37, 29, 41), (13, 300, 160), (100, 600, 136), (6, 16, 16), (1, 5, 3)]
private let attentionShapes = [(1, 8), (63, 8), (65, 8), (130, 8), (1, 16), (5, 16), (17, 64), (97, 16), (128, 64), (129, 64),
                               (257, 64), (300, 32)]
/// The hand-written AVX2 cases skip, saying why, where the CPU cannot run them (they would silently fall back to the
/// portable path and re-test it).
private let avx2Only = Testing.ConditionTrait.enabled(if: KernelFamily.avx2Supported, "this CPU has no AVX2+FMA: the hand-written kernels are not run")
private let avx512Only = Testing.ConditionTrait.enabled(if: AttentionKernel.avx512.unavailableReason == nil,
                                                        "\(AttentionKernel.avx512.unavailableReason ?? ""): the AVX-512 kernels are not run")

@Suite struct KernelTests {
    init() { Threading.configure(workers: 2) }

    /// Both families (and both GEMM libraries of the portable one) against the naive product, on shapes
    /// that split rows (few panels), columns (many panels), partial 6-row and 16-column tiles and K blocks.
    @Test(arguments: [(GEMMBackend.onednn, KernelFamily.portable), (.openblas, .portable)], linearShapes)
    func linearEpiloguesMatchNaive(_ config: (GEMMBackend, KernelFamily), shape: (Int, Int, Int)) {
        linearCase(config, shape: shape)
    }

    /// auto: oneDNN's matmul primitive on the weights as given ([O, I] viewed as `ba`), every epilogue a post-op.
    @Test(arguments: linearShapes)
    func autoLinearEpiloguesMatchNaive(shape: (Int, Int, Int)) { linearCase((.onednn, .auto), shape: shape) }

    @Test(avx2Only, arguments: linearShapes)
    func avx2LinearEpiloguesMatchNaive(shape: (Int, Int, Int)) { linearCase((.onednn, .avx2), shape: shape) }

    private func linearCase(_ config: (GEMMBackend, KernelFamily), shape: (Int, Int, Int)) {
        // The backend is passed, never set globally: other suites run GEMMs concurrently in this process.
        let (backend, family) = config
        let (r, i, o) = shape
        let x = randomArray(r * i, seed: 1), w = randomArray(o * i, seed: 2), b = randomArray(o, seed: 3)
        let gamma = randomArray(o, seed: 4), res = randomArray(r * o, seed: 5)
        var naive = [Double](repeating: 0, count: r * o)
        for rr in 0..<r { for oo in 0..<o {
            var s = Double(b[oo])
            for k in 0..<i { s += Double(x[rr * i + k]) * Double(w[oo * i + k]) }
            naive[rr * o + oo] = s
        } }
        var out = [Float](repeating: 0, count: r * o)
        linearForward(&out, x, weight: w, bias: b, rows: r, inFeatures: i, outFeatures: o, family: family, backend: backend)
        #expect(zip(out, naive).allSatisfy { abs(Double($0) - $1) < 1e-5 + 1e-4 * abs($1) })

        linearForward(&out, x, weight: w, bias: b, rows: r, inFeatures: i, outFeatures: o, epilogue: .biasGELU, family: family, backend: backend)
        let gelu = naive.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
        #expect(zip(out, gelu).allSatisfy { abs(Double($0) - $1) < 1e-5 + 1e-4 * abs($1) })

        var acc = res
        gamma.withUnsafeBufferPointer { g in
            linearForward(&acc, x, weight: w, bias: b, rows: r, inFeatures: i, outFeatures: o, epilogue: .biasScaleAddInto(gamma: g.baseAddress!),
                          family: family, backend: backend)
        }
        let scaled = (0..<(r * o)).map { Double(res[$0]) + Double(gamma[$0 % o]) * naive[$0] }
        #expect(zip(acc, scaled).allSatisfy { abs(Double($0) - $1) < 1e-5 + 1e-4 * abs($1) })

        var plain = res
        linearForward(&plain, x, weight: w, bias: b, rows: r, inFeatures: i, outFeatures: o, epilogue: .biasAddInto, family: family, backend: backend)
        let added = (0..<(r * o)).map { Double(res[$0]) + naive[$0] }
        #expect(zip(plain, added).allSatisfy { abs(Double($0) - $1) < 1e-5 + 1e-4 * abs($1) })
    }

    @Test func vectorExpAndErfAreAccurate() {
        var worstExp = 0.0, worstErf = 0.0
        var x: Float = -87
        while x < 88 {
            var v = F8(repeating: 0)
            for j in 0..<8 { v[j] = x + Float(j) * 0.0013 }
            let e = exp8(v), f = erf8(v * 0.05)
            for j in 0..<8 {
                let ref = Foundation.exp(Double(v[j]))
                worstExp = max(worstExp, abs(Double(e[j]) - ref) / ref)
                worstErf = max(worstErf, abs(Double(f[j]) - Foundation.erf(Double(v[j] * 0.05))))
            }
            x += 0.0917
        }
        #expect(worstExp < 3e-7, "exp relative error \(worstExp)")
        // A&S 7.1.26 is 1.5e-7 in exact arithmetic; float evaluation adds a few ulps.
        #expect(worstErf < 6e-7, "erf absolute error \(worstErf)")
        #expect(exp8(F8(repeating: -1000))[0] < 1e-37)
        #expect(erf8(F8(repeating: 10))[0] == 1 && erf8(F8(repeating: -10))[0] == -1)
    }

    @Test func geluHandlesTails() { geluCase(.portable) }
    @Test(avx2Only) func avx2GeluHandlesTails() { geluCase(.avx2) }

    private func geluCase(_ family: KernelFamily) {
        for n in [1, 7, 8, 19, 1000] {
            var v = randomArray(n, seed: 7, scale: 6)
            let ref = v.map { geluReference($0) }
            geluInPlace(&v, count: v.count, family: family)
            #expect(zip(v, ref).allSatisfy { abs($0 - $1) < 1e-6 + 1e-5 * abs($1) }, "\(family) n=\(n)")
        }
    }

    @Test func layerNormMatchesNaive() {
        let (r, c) = (5, 77)
        let x = randomArray(r * c, seed: 8, scale: 3).map { $0 + 10 }  // offset: exposes one-pass variance
        let w = randomArray(c, seed: 9), b = randomArray(c, seed: 10)
        var out = [Float](repeating: 0, count: r * c)
        layerNormForward(&out, x, weight: w, bias: b, rows: r, cols: c, eps: 1e-6)
        for rr in 0..<r {
            let row = x[(rr * c)..<((rr + 1) * c)].map(Double.init)
            let mean = row.reduce(0, +) / Double(c)
            let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
            for j in 0..<c {
                let ref = (row[j] - mean) / (v + 1e-6).squareRoot() * Double(w[j]) + Double(b[j])
                #expect(abs(Double(out[rr * c + j]) - ref) < 1e-5)
            }
        }
    }

    @Test func softmaxRowsSumToOneAndMatch() {
        for n in [1, 7, 8, 16, 23, 100] {
            var x = randomArray(3 * n, seed: UInt64(n), scale: 30)
            let orig = x
            softmaxRowsInPlace(&x, rows: 3, cols: n)
            for r in 0..<3 {
                let row = orig[(r * n)..<((r + 1) * n)].map(Double.init)
                let m = row.max()!
                let s = row.map { Foundation.exp($0 - m) }.reduce(0, +)
                for j in 0..<n { #expect(abs(Double(x[r * n + j]) - Foundation.exp(row[j] - m) / s) < 1e-6) }
            }
        }
    }

    /// Both kernel families against the naive formula: token counts around the 16-key panels, the 64- and
    /// 96-query blocks and the 256-key blocks, head dims 16 and 64 (fused) and 8 (portable only).
    @Test(arguments: attentionShapes)
    func attentionMatchesNaive(tokens t: Int, headDim dh: Int) { attentionCase(tokens: t, headDim: dh, family: .portable) }

    @Test(avx2Only, arguments: attentionShapes)
    func avx2AttentionMatchesNaive(tokens t: Int, headDim dh: Int) { attentionCase(tokens: t, headDim: dh, family: .avx2) }

    /// The AVX-512 kernel, forced: also Dh = 16 and 48 (a lone 16-column panel) and T around the 32-key pairs.
    @Test(avx512Only, arguments: attentionShapes.filter { $0.1 % 16 == 0 } + [(33, 48), (47, 16)])
    func avx512AttentionMatchesNaive(tokens t: Int, headDim dh: Int) { attentionCase(tokens: t, headDim: dh, family: .auto, kernel: .avx512) }

    /// The bf16 kernel against the naive formula on the bf16-rounded Q·scale, K and V (exactly what it multiplies). It
    /// also rounds each probability to bf16 (relative error ≤ 2⁻⁹, summed in fp32 unrounded), so the bound is
    /// 2⁻⁸·Σ_s p_s·|v_s[d]| (twice that) + 1e-5.
    @Test(.enabled(if: AttentionKernel.avx512_bf16.unavailableReason == nil,
                   "\(AttentionKernel.avx512_bf16.unavailableReason ?? ""): the AVX512_BF16 attention is not run"),
          arguments: attentionShapes.filter { $0.1 % 16 == 0 } + [(33, 48), (47, 16)])
    func bf16AttentionMatchesNaive(tokens t: Int, headDim dh: Int) {
        let (b, h) = (2, 3)
        let c = h * dh
        let qkv = randomArray(b * t * 3 * c, seed: UInt64(t * 100 + dh), scale: 2)
        var out = [Float](repeating: 0, count: b * t * c)
        attentionForward(&out, qkv: qkv, batch: b, tokens: t, heads: h, headDim: dh, scale: 0.3, family: .auto, kernel: .avx512_bf16)
        let r = qkv.map(bf16Rounded)
        for bi in 0..<b { for hi in 0..<h { for q in 0..<t {
            let qv = { (d: Int) in Double(bf16Rounded(qkv[(bi * t + q) * 3 * c + hi * dh + d] * 0.3)) }
            var p = (0..<t).map { s in (0..<dh).reduce(0.0) { $0 + qv($1) * Double(r[(bi * t + s) * 3 * c + c + hi * dh + $1]) } }
            let m = p.max()!
            p = p.map { Foundation.exp($0 - m) }
            let z = p.reduce(0, +)
            for d in 0..<dh {
                let v = { (s: Int) in Double(r[(bi * t + s) * 3 * c + 2 * c + hi * dh + d]) }
                let ref = (0..<t).reduce(0.0) { $0 + p[$1] / z * v($1) }
                let bound = (0..<t).reduce(0.0) { $0 + p[$1] / z * abs(v($1)) } / 256 + 1e-5
                #expect(abs(Double(out[(bi * t + q) * c + hi * dh + d]) - ref) < bound, "bf16 t=\(t) dh=\(dh)")
            }
        } } }
    }

    /// What each family runs: avx2 keeps the AVX2 kernel on an AVX-512 CPU; auto takes the widest; portable the blocked one.
    @Test func attentionDispatch() {
        #expect(AttentionKernel.chosen(family: .portable) == .blocked)
        #expect(AttentionKernel.chosen(family: .auto, headDim: 8) == .blocked)
        if KernelFamily.avx2Supported {
            #expect(AttentionKernel.chosen(family: .avx2) == .avx2)
            if Tuning.attentionKernel == nil {
                let fp32: AttentionKernel = CPUTier.avx512.present ? .avx512 : .avx2
                #expect(AttentionKernel.chosen(family: .auto) == fp32)
                #expect(AttentionKernel.chosen(family: .auto, precision: .bf16) == (CPUTier.avx512_bf16.present ? .avx512_bf16 : fp32))
                #expect(AttentionKernel.chosen(family: .avx2, precision: .bf16) == .avx2)
            }
        }
    }

    private func attentionCase(tokens t: Int, headDim dh: Int, family: KernelFamily, kernel: AttentionKernel? = nil) {
        let (b, h) = (2, 3)
        let c = h * dh
        // Scaled so that softmax rows are peaked (the running max changes between key blocks).
        let qkv = randomArray(b * t * 3 * c, seed: UInt64(t * 100 + dh), scale: 2)
        var out = [Float](repeating: 0, count: b * t * c)
        attentionForward(&out, qkv: qkv, batch: b, tokens: t, heads: h, headDim: dh, scale: 0.3, family: family, kernel: kernel)
        for bi in 0..<b { for hi in 0..<h { for q in 0..<t {
            let qv = { (d: Int) in Double(qkv[(bi * t + q) * 3 * c + hi * dh + d]) }
            var scores = (0..<t).map { s in (0..<dh).reduce(0.0) { $0 + qv($1) * Double(qkv[(bi * t + s) * 3 * c + c + hi * dh + $1]) } * 0.3 }
            let m = scores.max()!
            scores = scores.map { Foundation.exp($0 - m) }
            let z = scores.reduce(0, +)
            for d in 0..<dh {
                let ref = (0..<t).reduce(0.0) { $0 + scores[$1] / z * Double(qkv[(bi * t + $1) * 3 * c + 2 * c + hi * dh + d]) }
                #expect(abs(Double(out[(bi * t + q) * c + hi * dh + d]) - ref) < 1e-5 + 1e-5 * abs(ref), "\(kernel ?? AttentionKernel.chosen(family: family, headDim: dh)) t=\(t) dh=\(dh)")
            }
        } } }
    }

    @Test func blasCoreSuggestion() {
        #expect(BLASCore.suggestedCore(detected: "Prescott", flags: ["avx2", "fma", "avx"]) == "Haswell")
        #expect(BLASCore.suggestedCore(detected: "Prescott", flags: ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"]) == "SkylakeX")
        #expect(BLASCore.suggestedCore(detected: "Zen", flags: ["avx2", "fma"]) == nil)
        #expect(BLASCore.suggestedCore(detected: "Haswell", flags: ["avx2", "fma"]) == nil)
        #expect(BLASCore.suggestedCore(detected: "Prescott", flags: ["sse2"]) == nil)
    }
}
