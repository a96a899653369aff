// Letters: R = rows (tokens), C = channels.

/// y[r,:] = (x[r,:] − mean) / sqrt(var + eps) · weight + bias, biased variance, per row.
/// Two passes (mean, then centred second moment) in SIMD float with four accumulators: as accurate as
/// PyTorch's float Welford for C ≤ a few thousand, and it keeps LayerNorm off the profile.
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
            let mean = sum(row, c) / Float(c)
            let rstd = 1 / (centredSquares(row, c, mean) / Float(c) + eps).squareRoot()
            let raw = UnsafeRawPointer(row), wraw = UnsafeRawPointer(ws.base), braw = UnsafeRawPointer(bs.base)
            let draw = UnsafeMutableRawPointer(dst)
            let mv = F8(repeating: mean), rv = F8(repeating: rstd)
            var j = 0
            while j + 8 <= c {
                let v = (raw.loadUnaligned(fromByteOffset: j * 4, as: F8.self) - mv) * rv
                let y = v * wraw.loadUnaligned(fromByteOffset: j * 4, as: F8.self) + braw.loadUnaligned(fromByteOffset: j * 4, as: F8.self)
                draw.storeBytes(of: y, toByteOffset: j * 4, as: F8.self)
                j += 8
            }
            while j < c { dst[j] = (row[j] - mean) * rstd * ws.base[j] + bs.base[j]; j += 1 }
        }
    }
}

@inline(__always)
private func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    let raw = UnsafeRawPointer(p)
    var a0 = F8(repeating: 0), a1 = F8(repeating: 0), a2 = F8(repeating: 0), a3 = F8(repeating: 0)
    var i = 0
    while i + 32 <= n {
        a0 += raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self)
        a1 += raw.loadUnaligned(fromByteOffset: i * 4 + 32, as: F8.self)
        a2 += raw.loadUnaligned(fromByteOffset: i * 4 + 64, as: F8.self)
        a3 += raw.loadUnaligned(fromByteOffset: i * 4 + 96, as: F8.self)
        i += 32
    }
    while i + 8 <= n { a0 += raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self); i += 8 }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

@inline(__always)
private func centredSquares(_ p: UnsafePointer<Float>, _ n: Int, _ mean: Float) -> Float {
    let raw = UnsafeRawPointer(p)
    let m = F8(repeating: mean)
    var a0 = F8(repeating: 0), a1 = F8(repeating: 0)
    var i = 0
    while i + 16 <= n {
        let d0 = raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self) - m
        let d1 = raw.loadUnaligned(fromByteOffset: i * 4 + 32, as: F8.self) - m
        a0 += d0 * d0; a1 += d1 * d1
        i += 16
    }
    while i + 8 <= n { let d = raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self) - m; a0 += d * d; i += 8 }
    var s = (a0 + a1).sum()
    while i < n { let d = p[i] - mean; s += d * d; i += 1 }
    return s
}

/// Backward of `layerNormForward`. x is the forward's input; mean and rstd are recomputed with the forward's
/// own reductions. With x̂ = (x − μ)·rstd and g = dy ⊙ weight:
///   dx += rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   dWeight += Σ_r dy ⊙ x̂,   dBias += Σ_r dy.
/// dx accumulates (a residual stream's gradient is already there). Rows split over the workers for dx; columns
/// for dWeight/dBias, each summed over rows in order (deterministic for any worker count).
///   dx, dy, x: [R, C]; weight, dWeight, dBias: [C]
package func layerNormBackward(
    dx: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>,
    dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    rows: Int, cols c: Int, eps: Float
) {
    precondition(rows >= 0 && c > 0)
    if rows == 0 { return }
    let stats = UnsafeMutablePointer<Float>.allocate(capacity: 2 * rows)  // mean, rstd per row
    defer { stats.deallocate() }
    let xs = Shared(x), dys = Shared(dy), dxs = Shared(dx), ws = Shared(weight), ss = Shared(stats)
    Parallel.forRanges(rows, minChunk: 64) { range in
        for r in range {
            let row = UnsafePointer(xs.base + r * c), g = dys.base + r * c, out = dxs.base + r * c
            let mean = sum(row, c) / Float(c)
            let rstd = 1 / (centredSquares(row, c, mean) / Float(c) + eps).squareRoot()
            ss.base[2 * r] = mean; ss.base[2 * r + 1] = rstd
            var a: Float = 0, b: Float = 0
            for j in 0..<c {
                let gj = g[j] * ws.base[j]
                a += gj; b += gj * (row[j] - mean) * rstd
            }
            a /= Float(c); b /= Float(c)
            for j in 0..<c {
                let xh = (row[j] - mean) * rstd
                out[j] += rstd * (g[j] * ws.base[j] - a - xh * b)
            }
        }
    }
    let dws = Shared(dWeight), dbs = Shared(dBias)
    Parallel.forRanges(c, minChunk: 64) { range in
        for r in 0..<rows {
            let row = xs.base + r * c, g = dys.base + r * c
            let mean = ss.base[2 * r], rstd = ss.base[2 * r + 1]
            for j in range {
                dws.base[j] += g[j] * (row[j] - mean) * rstd
                dbs.base[j] += g[j]
            }
        }
    }
}
