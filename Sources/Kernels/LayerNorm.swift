// Letters: R = rows (tokens), C = channels.

/// y[r,:] = (x[r,:] − mean) / sqrt(var + eps) · weight + bias, biased variance, per row.
/// out and x may alias.   x, out: [R, C]; weight, bias: [C]
package func layerNormForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    rows: Int, cols c: Int, eps: Float
) {
    precondition(rows >= 0 && c > 0)
    let xs = Shared(x), os = Shared(out), ws = Shared(weight), bs = Shared(bias)
    Parallel.forRanges(rows, minChunk: 64) { range in
        for r in range {
            let row = UnsafePointer(xs.base + r * c), dst = os.base + r * c
            // Two passes with doubles: mean, then centred second moment.
            var sum = 0.0
            for j in 0..<c { sum += Double(row[j]) }
            let mean = sum / Double(c)
            var sq = 0.0
            for j in 0..<c { let d = Double(row[j]) - mean; sq += d * d }
            let rstd = Float(1 / (sq / Double(c) + Double(eps)).squareRoot())
            let m = Float(mean)
            for j in 0..<c { dst[j] = (row[j] - m) * rstd * ws.base[j] + bs.base[j] }
        }
    }
}
