/// Numerically stable softmax of each row in place (max subtracted, fp32).   x: [rows, n]
package func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, cols n: Int) {
    for r in 0..<rows { softmaxInPlace(x + r * n, count: n) }
}

@inline(__always)
package func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count n: Int) {
    let inv = 1 / expShiftedInPlace(row, count: n)
    let raw = UnsafeMutableRawPointer(row)
    let iv = F8(repeating: inv)
    var i = 0
    while i + 8 <= n { raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self) * iv, toByteOffset: i * 4, as: F8.self); i += 8 }
    while i < n { row[i] *= inv; i += 1 }
}

/// row ← exp(row − max(row)); returns Σ row. Softmax without its final division, which attention applies to
/// the much shorter output row instead (saves a pass over the T-long score row).
@inline(__always)
package func expShiftedInPlace(_ row: UnsafeMutablePointer<Float>, count n: Int) -> Float {
    let raw = UnsafeMutableRawPointer(row)
    var i = 0
    var mx = F8(repeating: -.infinity)
    while i + 8 <= n {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self)
        mx = mx.replacing(with: v, where: v .> mx)
        i += 8
    }
    var m = mx.max()
    while i < n { m = max(m, row[i]); i += 1 }
    let mv = F8(repeating: m)
    var acc0 = F8(repeating: 0), acc1 = F8(repeating: 0)
    i = 0
    while i + 16 <= n {
        let a = exp8(raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self) - mv)
        let b = exp8(raw.loadUnaligned(fromByteOffset: i * 4 + 32, as: F8.self) - mv)
        raw.storeBytes(of: a, toByteOffset: i * 4, as: F8.self)
        raw.storeBytes(of: b, toByteOffset: i * 4 + 32, as: F8.self)
        acc0 += a; acc1 += b
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n {
        var t = F8(repeating: -.infinity); t[0] = row[i] - m
        let e = exp8(t)[0]
        row[i] = e; s += e; i += 1
    }
    return s
}
