// Vectorised exp and erf over SIMD8<Float>, and the activations built from them.
// exp: Cephes-style range reduction + degree-6 polynomial (≈1 ulp). erf: Abramowitz–Stegun 7.1.26
// (|error| < 1.5e-7), the same approximation PyTorch's vectorised CPU erf uses for exact GELU.

import CKernels
#if canImport(Glibc)
import Glibc
#endif

package typealias F8 = SIMD8<Float>

@inline(__always)
package func exp8(_ x0: F8) -> F8 {
    // exp(x) = 2^n · exp(r), n = round(x·log2 e), r = x − n·ln2 (ln2 split in two for precision)
    // Clamp with comparisons: SIMD's generic clamped()/pointwiseMin are not specialised and cost a call per use.
    let lo = F8(repeating: -87.3), hi = F8(repeating: 88.37)
    let x = x0.replacing(with: lo, where: x0 .< lo).replacing(with: hi, where: x0 .> hi)
    let magic = F8(repeating: 12_582_912)  // 1.5·2^23: adding it rounds to an integer in the low bits
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    var r = x - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    var p = F8(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    p = p * r * r + r + 1
    let nBits = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000  // integer n from the low mantissa bits
    let scale = unsafeBitCast((nBits &+ 127) &<< 23, to: F8.self)
    return p * scale
}

@inline(__always)
package func erf8(_ x: F8) -> F8 {
    let ax = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (ax * 0.327_591_1 + 1)
    var poly = F8(repeating: 1.061_405_429)
    poly = poly * t - 1.453_152_027
    poly = poly * t + 1.421_413_741
    poly = poly * t - 0.284_496_736
    poly = poly * t + 0.254_829_592
    poly = poly * t
    let y = F8(repeating: 1) - poly * exp8(-(ax * ax))
    return y.replacing(with: -y, where: x .< 0)
}

/// Exact-erf GELU in place: x ← 0.5·x·(1 + erf(x/√2)).   x: [n]
package func geluInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int, family: KernelFamily = KernelFamily.current) {
    if family.runsAVX2 { ck_gelu_inplace(x, n); return }
    let raw = UnsafeMutableRawPointer(x)
    var i = 0
    while i + 8 <= n {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: F8.self)
        raw.storeBytes(of: v * 0.5 * (1 + erf8(v * 0.707_106_781_186_547_5)), toByteOffset: i * 4, as: F8.self)
        i += 8
    }
    if i < n {
        var tail = F8(repeating: 0)
        for j in i..<n { tail[j - i] = x[j] }
        let g = tail * 0.5 * (1 + erf8(tail * 0.707_106_781_186_547_5))
        for j in i..<n { x[j] = g[j - i] }
    }
}

/// Scalar exact GELU with libm's erf, the oracle for tests.
package func geluReference(_ x: Float) -> Float { 0.5 * x * (1 + Float(erf(Double(x) / 2.0.squareRoot()))) }

/// SwiGLU gate: out[r, j] = silu(u[r, j]) · u[r, h + j] for u: [rows, 2h], out: [rows, h].
package func swigluForward(_ out: UnsafeMutablePointer<Float>, _ u: UnsafePointer<Float>, rows: Int, hidden h: Int) {
    for r in 0..<rows {
        let src = u + r * 2 * h, dst = out + r * h
        for j in 0..<h {
            let a = src[j]
            dst[j] = a / (1 + expf(-a)) * src[h + j]
        }
    }
}

/// Backward of exact GELU: d[j] ← d[j] · gelu'(x[j]), gelu'(x) = Φ(x) + x·φ(x) = 0.5·(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π).
/// x is the pre-activation the forward received.   d, x: [n]
package func geluBackwardInPlace(_ d: UnsafeMutablePointer<Float>, preActivation x: UnsafePointer<Float>, count n: Int) {
    let ds = Shared(d), xs = Shared(x)
    Parallel.forRanges(n, minChunk: 1 << 14) { r in
        let draw = UnsafeMutableRawPointer(ds.base), xraw = UnsafeRawPointer(xs.base)
        var i = r.lowerBound
        while i + 8 <= r.upperBound {
            let v = xraw.loadUnaligned(fromByteOffset: i * 4, as: F8.self)
            let g = geluDerivative8(v)
            draw.storeBytes(of: draw.loadUnaligned(fromByteOffset: i * 4, as: F8.self) * g, toByteOffset: i * 4, as: F8.self)
            i += 8
        }
        if i < r.upperBound {
            var t = F8(repeating: 0)
            for j in i..<r.upperBound { t[j - i] = xs.base[j] }
            let g = geluDerivative8(t)
            for j in i..<r.upperBound { ds.base[j] *= g[j - i] }
        }
    }
}

@inline(__always)
func geluDerivative8(_ v: F8) -> F8 {
    let cdf = 0.5 * (1 + erf8(v * 0.707_106_781_186_547_5))
    let pdf = exp8(-0.5 * v * v) * 0.398_942_280_401_432_7
    return cdf + v * pdf
}

/// Out-of-place exact GELU (the forward of `geluInPlace` into another buffer, keeping the pre-activation for
/// the backward).   out, x: [n]
package func geluForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    let os = Shared(out), xs = Shared(x)
    Parallel.forRanges(n, minChunk: 1 << 14) { r in
        (os.base + r.lowerBound).update(from: xs.base + r.lowerBound, count: r.count)
        geluInPlace(os.base + r.lowerBound, count: r.count)
    }
}
