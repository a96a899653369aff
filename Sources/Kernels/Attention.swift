import CKernels

// Letters: B = batch, T = tokens, C = channels = H·Dh, H = heads, Dh = head dim.

/// The attention kernels, widest first. The fused ones need Dh % 16 == 0 (every DINOv2/DINOv1 variant: 64).
package enum AttentionKernel: String, Sendable, CaseIterable {
    /// `--precision bf16`: the AVX-512 kernel with both products on AVX512_BF16 dot products (Q, K, P, V in bf16,
    /// fp32 sums, softmax fp32; CKernels/attention_avx512bf16.c): 0.65× the fp32 AVX-512 time at T = 3601.
    case avx512_bf16
    /// Fused online softmax, hand-written AVX-512 (CKernels/attention_avx512.c): 0.8–0.9× the AVX2 time at T = 3601.
    case avx512
    /// Fused online softmax, hand-written AVX2+FMA (CKernels/attention.c).
    case avx2
    /// Two library GEMMs per query block (portable).
    case blocked

    /// Why this CPU cannot run the kernel; nil when it can.
    package var unavailableReason: String? {
        switch self {
        case .avx512_bf16: CPUTier.avx512_bf16.present ? nil : "this CPU has no AVX512_BF16"
        case .avx512: CPUTier.avx512.present ? nil : "this CPU has no AVX-512 F/DQ/BW/VL (or the OS does not save the ZMM state)"
        case .avx2: KernelFamily.avx2Supported ? nil : "this CPU has no AVX2+FMA"
        case .blocked: nil
        }
    }

    /// What a family runs for head dim `dh` on this CPU: auto takes the widest fused kernel the CPU has (at bf16 the
    /// AVX512_BF16 one where the CPU has it), avx2 the AVX2 one even on an AVX-512 CPU, portable the blocked one.
    /// SPHERECORR_ATTENTION_KERNEL (Tuning) narrows auto for experiments.
    package static func chosen(family: KernelFamily = .current, headDim dh: Int = 64, precision: Precision = .fp32) -> AttentionKernel {
        guard dh % 16 == 0, family.runsAVX2 else { return .blocked }
        guard family == .auto else { return .avx2 }
        if Tuning.attentionKernel == .blocked { return .blocked }
        var order: [AttentionKernel] = precision == .bf16 ? [.avx512_bf16, .avx512, .avx2] : [.avx512, .avx2]
        if let cap = Tuning.attentionKernel, let i = order.firstIndex(of: cap) { order = Array(order[i...]) }
        return order.first { $0.unavailableReason == nil } ?? .avx2
    }
}

/// Multi-head self-attention core: out[b, t, h·Dh + d] = Σ_s softmax_s(q·kᵀ·scale)[t, s] · v[s, d].
/// qkv: [B, T, 3C] with q | k | v blocks of C channels, head h at channels [h·Dh, (h+1)·Dh) of each block.
/// out: [B, T, C]. `precision` bf16 lets auto round the products' operands to bf16 (`AttentionKernel.avx512_bf16`);
/// `kernel` (tests and benchmarks) overrides the choice and must be available here.
package func attentionForward(
    _ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float,
    family: KernelFamily = KernelFamily.current, precision: Precision = .fp32, kernel: AttentionKernel? = nil
) {
    let kernel = kernel ?? AttentionKernel.chosen(family: family, headDim: dh, precision: precision)
    precondition(kernel.unavailableReason == nil && (kernel == .blocked || dh % 16 == 0), "attention kernel \(kernel) cannot run here")
    switch kernel {
    case .avx512_bf16:
        bf16AttentionForward(out, qkv: qkv, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale)
    case .avx512, .avx2:
        fusedAttentionForward(out, qkv: qkv, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale, wide: kernel == .avx512)
    case .blocked:
        blockedAttentionForward(out, qkv: qkv, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale)
    }
}

/// Packs K and V once per call (head-major, Kᵀ in 16-key panels), then runs (batch, head, query block)
/// tasks over the workers. Requires AVX2+FMA (AVX-512 when `wide`) and Dh % 16 == 0.
package func fusedAttentionForward(
    _ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float, wide: Bool = false
) {
    precondition(batch > 0 && t > 0 && heads > 0 && dh > 0 && dh % 16 == 0)
    let packed = ck_attention_packed_count(batch, t, heads, dh)
    let kp = FloatStorage(count: packed, zeroed: false), vp = FloatStorage(count: packed, zeroed: false)
    let ks = Shared(kp.pointer), vs = Shared(vp.pointer), qs = Shared(qkv), os = Shared(out)
    Parallel.forRanges(batch * heads) { r in
        ck_attention_pack(ks.base, vs.base, qs.base, batch, t, heads, dh, r.lowerBound, r.upperBound)
    }
    let qBlocks = (t + ck_attention_query_block() - 1) / ck_attention_query_block()
    let tasks = wide ? ck_attention_tasks_avx512 : ck_attention_tasks
    Parallel.forRanges(batch * heads * qBlocks) { r in
        tasks(os.base, qs.base, ks.base, vs.base, batch, t, heads, dh, scale, r.lowerBound, r.upperBound)
    }
    withExtendedLifetime((kp, vp)) {}
}

/// fusedAttentionForward with K and V packed in bf16 pairs and both products on AVX512_BF16 dot products.
/// Requires AVX512_BF16 and Dh % 16 == 0.
package func bf16AttentionForward(
    _ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float
) {
    precondition(batch > 0 && t > 0 && heads > 0 && dh > 0 && dh % 16 == 0)
    let packed = ck_attention_packed_count(batch, t, heads, dh)
    let kp = UnsafeMutablePointer<UInt16>.allocate(capacity: packed), vp = UnsafeMutablePointer<UInt16>.allocate(capacity: packed)
    defer { kp.deallocate(); vp.deallocate() }
    let ks = Shared(kp), vs = Shared(vp), qs = Shared(qkv), os = Shared(out)
    Parallel.forRanges(batch * heads) { r in
        ck_attention_pack_bf16(ks.base, vs.base, qs.base, batch, t, heads, dh, r.lowerBound, r.upperBound)
    }
    let qBlocks = (t + ck_attention_query_block() - 1) / ck_attention_query_block()
    Parallel.forRanges(batch * heads * qBlocks) { r in
        ck_attention_tasks_avx512_bf16(os.base, qs.base, ks.base, vs.base, batch, t, heads, dh, scale, r.lowerBound, r.upperBound)
    }
}

/// The portable kernel, same contract. Queries are processed in blocks so the score matrix is never
/// materialised whole (T = 3601 at 840² would be 52 MB per head); two library GEMMs per block.
package func blockedAttentionForward(
    _ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float
) {
    let c = heads * dh
    precondition(batch > 0 && t > 0 && heads > 0 && dh > 0)
    let queryBlock = Tuning.attentionQueryBlock
    let qBlocks = (t + queryBlock - 1) / queryBlock
    let tasks = batch * heads * qBlocks
    let qs = Shared(qkv), os = Shared(out)
    let backend = GEMM.backend
    Parallel.forRanges(tasks) { range in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: queryBlock * t)
        var sums = [Float](repeating: 0, count: queryBlock)
        defer { scores.deallocate() }
        for task in range {
            let qb = task % qBlocks, h = (task / qBlocks) % heads, b = task / (qBlocks * heads)
            let q0 = qb * queryBlock, nq = min(queryBlock, t - q0)
            let base = qs.base + b * t * 3 * c
            let q = base + q0 * 3 * c + h * dh
            let k = base + c + h * dh
            let v = base + 2 * c + h * dh
            // S[nq, T] = scale · Q[nq, Dh] · K[T, Dh]ᵀ
            GEMM.sgemm(m: nq, n: t, k: dh, a: q, lda: 3 * c, b: k, ldb: 3 * c, bTransposed: true,
                       c: scores, ldc: t, alpha: scale, backend: backend)
            // P = exp(S − rowmax); the 1/Σ of the softmax is applied to O's rows below.
            for r in 0..<nq { sums[r] = expShiftedInPlace(scores + r * t, count: t) }
            // O[nq, Dh] = P[nq, T] · V[T, Dh] / Σ
            let o = os.base + (b * t + q0) * c + h * dh
            GEMM.sgemm(m: nq, n: dh, k: t, a: scores, lda: t, b: v, ldb: 3 * c, bTransposed: false,
                       c: o, ldc: c, backend: backend)
            for r in 0..<nq {
                let inv = 1 / sums[r], row = o + r * c
                for d in 0..<dh { row[d] *= inv }
            }
        }
    }
}

/// Backward of `attentionForward`. The probabilities are recomputed per block of queries (never stored whole: at
/// B = 64, N = 1024, 6 heads they would be 1.6 GB); with P = softmax(scale·Q·Kᵀ), O = P·V, Dᵢ = Σ_d dOᵢ·Oᵢ:
///   dV = Pᵀ·dO,   dS = P ⊙ (dO·Vᵀ − D),   dQ = scale·dS·K,   dK = scale·dSᵀ·Q.
/// One task per (image, head), so each task owns its rows and columns of dqkv (written, not accumulated).
///   qkv, dqkv: [B, T, 3C] (q | k | v); out, dOut: [B, T, C]
package func attentionBackward(
    dqkv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, qkv: UnsafePointer<Float>, out: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float
) {
    let c = heads * dh
    precondition(batch > 0 && t > 0 && heads > 0 && dh > 0)
    // Larger blocks than the forward's: the five GEMMs per block then have 256 rows (P and dS: 2 × 1 MB at T = 1024).
    let queryBlock = min(t, 256)
    let qs = Shared(qkv), dqs = Shared(dqkv), dos = Shared(dOut), os = Shared(out)
    let backend = GEMM.backend
    Parallel.forRanges(batch * heads) { range in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: queryBlock * t)
        let ds = UnsafeMutablePointer<Float>.allocate(capacity: queryBlock * t)
        defer { p.deallocate(); ds.deallocate() }
        for task in range {
            let h = task % heads, b = task / heads
            let base = qs.base + b * t * 3 * c, dbase = dqs.base + b * t * 3 * c
            let k = base + c + h * dh, v = base + 2 * c + h * dh
            let dk = dbase + c + h * dh, dv = dbase + 2 * c + h * dh
            for s in 0..<t {
                (dk + s * 3 * c).update(repeating: 0, count: dh)
                (dv + s * 3 * c).update(repeating: 0, count: dh)
            }
            var q0 = 0
            while q0 < t {
                let nq = min(queryBlock, t - q0)
                let q = base + q0 * 3 * c + h * dh, dq = dbase + q0 * 3 * c + h * dh
                let o = os.base + (b * t + q0) * c + h * dh, dout = dos.base + (b * t + q0) * c + h * dh
                // P[nq, T] = softmax(scale · Q·Kᵀ)
                GEMM.sgemm(m: nq, n: t, k: dh, a: q, lda: 3 * c, b: k, ldb: 3 * c, bTransposed: true, c: p, ldc: t, alpha: scale, backend: backend)
                for r in 0..<nq { softmaxInPlace(p + r * t, count: t) }
                // dP[nq, T] = dO·Vᵀ, then dS = P ⊙ (dP − D)
                GEMM.sgemm(m: nq, n: t, k: dh, a: dout, lda: c, b: v, ldb: 3 * c, bTransposed: true, c: ds, ldc: t, backend: backend)
                for r in 0..<nq {
                    var d: Float = 0
                    for j in 0..<dh { d += dout[r * c + j] * o[r * c + j] }
                    let pr = p + r * t, dr = ds + r * t
                    for j in 0..<t { dr[j] = pr[j] * (dr[j] - d) }
                }
                // dQ[nq, Dh] = scale · dS·K
                GEMM.sgemm(m: nq, n: dh, k: t, a: ds, lda: t, b: k, ldb: 3 * c, bTransposed: false, c: dq, ldc: 3 * c, alpha: scale, backend: backend)
                // dK[T, Dh] += scale · dSᵀ·Q;  dV[T, Dh] += Pᵀ·dO
                GEMM.sgemm(m: t, n: dh, k: nq, a: ds, lda: t, b: q, ldb: 3 * c, bTransposed: false, c: dk, ldc: 3 * c,
                           alpha: scale, beta: 1, aTransposed: true, backend: backend)
                GEMM.sgemm(m: t, n: dh, k: nq, a: p, lda: t, b: dout, ldb: c, bTransposed: false, c: dv, ldc: 3 * c,
                           beta: 1, aTransposed: true, backend: backend)
                q0 += nq
            }
        }
    }
}
