// Letters: B = batch, T = tokens, C = channels = H·Dh, H = heads, Dh = head dim.

/// Multi-head self-attention core: out[b, t, h·Dh + d] = Σ_s softmax_s(q·kᵀ·scale)[t, s] · v[s, d].
/// qkv: [B, T, 3C] with q | k | v blocks of C channels, head h at channels [h·Dh, (h+1)·Dh) of each block.
/// out: [B, T, C]. Queries are processed in blocks so the score matrix is never materialised whole
/// (T = 3601 at 840² would be 52 MB per head); (batch, head, query block) tasks are spread over the workers.
package func attentionForward(
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
