import CKernels

// Letters: B = batch, T = tokens, C = channels = H·Dh, H = heads, Dh = head dim.

/// Multi-head self-attention core: out[b, t, h·Dh + d] = Σ_s softmax_s(q·kᵀ·scale)[t, s] · v[s, d].
/// qkv: [B, T, 3C] with q | k | v blocks of C channels, head h at channels [h·Dh, (h+1)·Dh) of each block.
/// out: [B, T, C]. The fused AVX2 kernel (online softmax, CKernels/attention.c) when the CPU has it and
/// Dh is a multiple of 16 (every DINOv2 variant: 64); the blocked two-GEMM kernel otherwise.
package func attentionForward(
    _ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float,
    family: KernelFamily = KernelFamily.current
) {
    if family.runsAVX2 && dh % 16 == 0 {
        fusedAttentionForward(out, qkv: qkv, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale)
    } else {
        blockedAttentionForward(out, qkv: qkv, batch: batch, tokens: t, heads: heads, headDim: dh, scale: scale)
    }
}

/// Packs K and V once per call (head-major, Kᵀ in 16-key panels), then runs (batch, head, query block)
/// tasks over the workers. Requires AVX2+FMA and Dh % 16 == 0.
package func fusedAttentionForward(
    _ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
    batch: Int, tokens t: Int, heads: Int, headDim dh: Int, scale: Float
) {
    precondition(batch > 0 && t > 0 && heads > 0 && dh > 0 && dh % 16 == 0)
    let packed = ck_attention_packed_count(batch, t, heads, dh)
    let kp = FloatStorage(count: packed, zeroed: false), vp = FloatStorage(count: packed, zeroed: false)
    let ks = Shared(kp.pointer), vs = Shared(vp.pointer), qs = Shared(qkv), os = Shared(out)
    Parallel.forRanges(batch * heads) { r in
        ck_attention_pack(ks.base, vs.base, qs.base, batch, t, heads, dh, r.lowerBound, r.upperBound)
    }
    let qBlocks = (t + ck_attention_query_block() - 1) / ck_attention_query_block()
    Parallel.forRanges(batch * heads * qBlocks) { r in
        ck_attention_tasks(os.base, qs.base, ks.base, vs.base, batch, t, heads, dh, scale, r.lowerBound, r.upperBound)
    }
    withExtendedLifetime((kp, vp)) {}
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
