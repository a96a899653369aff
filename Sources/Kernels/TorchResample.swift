// PyTorch's float resamplers on planar tensors (METHOD §1.3, §2.4; hazards H6, H8, H9).
//
// Re-derived from the behaviour of aten/src/ATen/native/cpu/UpSampleKernel.cpp and UpSample.h
// (CPU, float32, align_corners=False), keeping their float/double mixing so results agree to
// float rounding. PyTorch's CPU build contracts multiply-adds into FMAs; the contraction pattern
// of its weight formulas was matched bit for bit (weights are identical) and accumulations are
// fused too. The remaining differences come from accumulation order details: about 90 % (AA)
// and 75 % (non-AA) of outputs are bit-identical, max |diff| ≤ 5e-7 on the fixtures; tests use
// atol 1e-5 + rtol 1e-5:
//   * `bicubicAAResize`   F.interpolate(mode='bicubic', antialias=True, size=...)
//   * `bicubicResize`     F.interpolate(mode='bicubic', antialias=False, [scale_factor=...])
//   * `nearestResize`     F.interpolate(mode='nearest', ...)
//
// Shapes: input [C, inH, inW], output [C, outH, outW], float32, row-major planar (NCHW with
// N = 1). Nothing is clamped: values may leave the input range (ringing).

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Antialiased bicubic (a = −0.5, PIL-style support)

/// Keys cubic convolution for |x| < 1 (UpSample.h cubic_convolution1) as PyTorch's CPU build
/// evaluates it inside the antialiasing filter: ((a+2)·x − (a+3))·x·x + 1, both multiply-adds
/// fused (matched bit for bit against its weights).
@inline(__always)
private func cubic1FMA(_ x: Float, _ a: Float) -> Float {
    let p = (-(a + 3)).addingProduct(a + 2, x)
    return Float(1).addingProduct(p * x, x)
}

/// Keys cubic convolution for 1 ≤ |x| < 2 (cubic_convolution2), all multiply-adds fused:
/// ((a·x − 5a)·x + 8a)·x − 4a.
@inline(__always)
private func cubic2FMA(_ x: Float, _ a: Float) -> Float {
    let p = (-5 * a).addingProduct(a, x)
    let q = (8 * a).addingProduct(p, x)
    return (-4 * a).addingProduct(q, x)
}

/// Filter taps for one axis of a separable resize: output `o` reads `count[o]` source samples
/// from `start[o]` with weights `weights[o·taps ..< o·taps + count[o]]`.
struct FloatTaps {
    var taps: Int
    var start: [Int]     // [out]
    var count: [Int]     // [out]
    var weights: [Float] // [out, taps]
}

/// `_compute_index_ranges_weights` with antialias=True for the bicubic filter, scalar_t = float.
func torchAABicubicTaps(inSize: Int, outSize: Int) -> FloatTaps {
    precondition(inSize > 0 && outSize > 0)
    let a: Float = -0.5
    let scale = Float(inSize) / Float(outSize)                     // area_pixel_compute_scale<float>
    let support = scale >= 1 ? Float(2.0 * Double(scale)) : 2.0   // (interp_size·0.5)·scale
    let taps = Int(support.rounded(.up)) * 2 + 1
    let invscale: Float = scale >= 1 ? Float(1.0 / Double(scale)) : 1
    var start = [Int](repeating: 0, count: outSize)
    var count = [Int](repeating: 0, count: outSize)
    var weights = [Float](repeating: 0, count: outSize * taps)
    for o in 0..<outSize {
        let center = Float(Double(scale) * (Double(o) + 0.5))
        let xmin = max(Int(Double(center - support) + 0.5), 0)
        let xsize = min(max(min(Int(Double(center + support) + 0.5), inSize) - xmin, 0), taps)
        var total: Float = 0
        for j in 0..<xsize {
            let arg = Float((Double(Float(j + xmin) - center) + 0.5) * Double(invscale))
            let x = abs(arg)
            let w: Float = x < 1 ? cubic1FMA(x, a) : (x < 2 ? cubic2FMA(x, a) : 0)
            weights[o * taps + j] = w
            total += w
        }
        if total != 0 {
            for j in 0..<xsize { weights[o * taps + j] /= total }
        }
        start[o] = xmin
        count[o] = xsize
    }
    return FloatTaps(taps: taps, start: start, count: count, weights: weights)
}

/// One separable pass along the last axis. out: [rows, outW]; input: [rows, inW].
private func resampleRows(_ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, rows: Int, inWidth: Int, outWidth: Int,
                          taps t: FloatTaps) {
    t.weights.withUnsafeBufferPointer { kk in
        t.start.withUnsafeBufferPointer { start in
            t.count.withUnsafeBufferPointer { count in
                for r in 0..<rows {
                    let src = input + r * inWidth, dst = out + r * outWidth
                    for o in 0..<outWidth {
                        let k = kk.baseAddress! + o * t.taps
                        let s = src + start[o]
                        var acc = s[0] * k[0]
                        for j in 1..<max(count[o], 1) { acc = acc.addingProduct(s[j], k[j]) }
                        dst[o] = acc
                    }
                }
            }
        }
    }
}

/// One separable pass along the middle axis (rows). out: [C, outH, W]; input: [C, inH, W].
/// Vectorised over W; each output sample still accumulates its taps in order 0, 1, 2, …
private func resampleColumns(_ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, channels: Int, inHeight: Int,
                             outHeight: Int, width: Int, taps t: FloatTaps) {
    t.weights.withUnsafeBufferPointer { kk in
        for c in 0..<channels {
            let srcPlane = input + c * inHeight * width, dstPlane = out + c * outHeight * width
            for o in 0..<outHeight {
                let k = kk.baseAddress! + o * t.taps
                let first = t.start[o], n = max(t.count[o], 1)
                let dst = dstPlane + o * width
                var x = 0
                while x + 8 <= width {
                    var acc = UnsafeRawPointer(srcPlane + first * width + x).loadUnaligned(as: SIMD8<Float>.self) * k[0]
                    for j in 1..<n {
                        acc = acc.addingProduct(UnsafeRawPointer(srcPlane + (first + j) * width + x).loadUnaligned(as: SIMD8<Float>.self), k[j])
                    }
                    UnsafeMutableRawPointer(dst + x).storeBytes(of: acc, as: SIMD8<Float>.self)
                    x += 8
                }
                while x < width {
                    var acc = srcPlane[first * width + x] * k[0]
                    for j in 1..<n { acc = acc.addingProduct(srcPlane[(first + j) * width + x], k[j]) }
                    dst[x] = acc
                    x += 1
                }
            }
        }
    }
}

/// `F.interpolate(x, size=(outHeight, outWidth), mode='bicubic', antialias=True,
/// align_corners=False)` for one image. out: [C, outHeight, outWidth]; input: [C, inHeight, inWidth].
/// Width pass first, then height (as PyTorch); an axis whose size is unchanged is skipped.
package func bicubicAAResize(_ out: UnsafeMutableBufferPointer<Float>, _ input: UnsafeBufferPointer<Float>,
                             channels: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int) {
    precondition(channels > 0 && inHeight > 0 && inWidth > 0 && outHeight > 0 && outWidth > 0, "empty tensor")
    precondition(input.count == channels * inHeight * inWidth && out.count == channels * outHeight * outWidth, "buffer sizes")
    let needW = outWidth != inWidth, needH = outHeight != inHeight
    switch (needW, needH) {
    case (false, false):
        out.baseAddress!.update(from: input.baseAddress!, count: input.count)
    case (true, false):
        resampleRows(out.baseAddress!, input.baseAddress!, rows: channels * inHeight, inWidth: inWidth, outWidth: outWidth,
                     taps: torchAABicubicTaps(inSize: inWidth, outSize: outWidth))
    case (false, true):
        resampleColumns(out.baseAddress!, input.baseAddress!, channels: channels, inHeight: inHeight, outHeight: outHeight,
                        width: inWidth, taps: torchAABicubicTaps(inSize: inHeight, outSize: outHeight))
    case (true, true):
        // [C, inHeight, outWidth]
        let temp = UnsafeMutablePointer<Float>.allocate(capacity: channels * inHeight * outWidth)
        defer { temp.deallocate() }
        resampleRows(temp, input.baseAddress!, rows: channels * inHeight, inWidth: inWidth, outWidth: outWidth,
                     taps: torchAABicubicTaps(inSize: inWidth, outSize: outWidth))
        resampleColumns(out.baseAddress!, temp, channels: channels, inHeight: inHeight, outHeight: outHeight,
                        width: outWidth, taps: torchAABicubicTaps(inSize: inHeight, outSize: outHeight))
    }
}

/// `bicubicAAResize` over arrays: returns [C, outHeight, outWidth].
package func bicubicAAResize(_ input: [Float], channels: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int) -> [Float] {
    var out = [Float](repeating: 0, count: channels * outHeight * outWidth)
    out.withUnsafeMutableBufferPointer { o in
        input.withUnsafeBufferPointer { i in
            bicubicAAResize(o, i, channels: channels, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth)
        }
    }
    return out
}

// MARK: - Non-antialiased bicubic (A = −0.75, scale-factor mapping)

/// PyTorch's `compute_scales_value`: 1/scale_factor (computed in Double, stored as Float) when a
/// positive factor is given, else in/out in Float.
@inline(__always)
private func torchScale(inSize: Int, outSize: Int, scaleFactor: Double?) -> Float {
    if let s = scaleFactor, s > 0 { return Float(1.0 / s) }
    return Float(inSize) / Float(outSize)
}

/// Keys cubic for the non-antialiased kernel as PyTorch's CPU build evaluates it (found by
/// matching its weights bit for bit): ((a+2)·x − (a+3)) fused, then ·x·x + 1 unfused.
@inline(__always)
private func cubic1Upsample(_ x: Float, _ a: Float) -> Float {
    let p = (-(a + 3)).addingProduct(a + 2, x)
    return p * x * x + 1
}

/// ((a·x − 5a)·x + 8a) with both steps fused, then ·x − 4a unfused.
@inline(__always)
private func cubic2Upsample(_ x: Float, _ a: Float) -> Float {
    let p = (-5 * a).addingProduct(a, x)
    let q = (8 * a).addingProduct(p, x)
    return q * x - 4 * a
}

/// `HelperInterpCubic::compute_indices_weights` for one axis: four taps per output with
/// border-replicated (clamped) indices. Taps: [out, 4] of (index, weight).
func torchBicubicTaps(inSize: Int, outSize: Int, scaleFactor: Double?) -> (index: [Int], weight: [Float]) {
    precondition(inSize > 0 && outSize > 0)
    let a: Float = -0.75
    let scale = torchScale(inSize: inSize, outSize: outSize, scaleFactor: scaleFactor)
    var index = [Int](repeating: 0, count: outSize * 4)
    var weight = [Float](repeating: 0, count: outSize * 4)
    for o in 0..<outSize {
        // area_pixel_compute_source_index(cubic=true): scale·(o + 0.5) − 0.5 rounded once (a fused
        // multiply-add; the float product is exact in Double), no clamping of u.
        let u = Float(Double(scale) * (Double(o) + 0.5) - 0.5)
        // guard_index_and_lambda: floor (u can be about −0.19), then t in [0, 1].
        let i0 = min(Int(floorf(u)), inSize - 1)
        let t = min(max(u - Float(i0), 0), 1)
        let x2 = 1 - t
        weight[4 * o] = cubic2Upsample(t + 1, a)
        weight[4 * o + 1] = cubic1Upsample(t, a)
        weight[4 * o + 2] = cubic1Upsample(x2, a)
        weight[4 * o + 3] = cubic2Upsample(x2 + 1, a)
        for j in 0..<4 { index[4 * o + j] = max(min(i0 + j - 1, inSize - 1), 0) }
    }
    return (index, weight)
}

/// `F.interpolate(x, size=(outHeight, outWidth), mode='bicubic', align_corners=False,
/// antialias=False)`, or with `scale_factor=(scaleH, scaleW)` when those are given (the source
/// grid then uses 1/scale, not in/out: the DINOv2 positional-embedding rule, METHOD §1.3).
/// out: [C, outHeight, outWidth]; input: [C, inHeight, inWidth].
///
/// PyTorch evaluates out[y, x] = Σᵢ wyᵢ · (Σⱼ wxⱼ · in[yᵢ, xⱼ]), taps in order; the inner sums
/// depend only on (source row, output column), so they are computed once per source row.
package func bicubicResize(_ out: UnsafeMutableBufferPointer<Float>, _ input: UnsafeBufferPointer<Float>,
                           channels: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int,
                           scaleH: Double? = nil, scaleW: Double? = nil) {
    precondition(channels > 0 && inHeight > 0 && inWidth > 0 && outHeight > 0 && outWidth > 0, "empty tensor")
    precondition(input.count == channels * inHeight * inWidth && out.count == channels * outHeight * outWidth, "buffer sizes")
    let (xi, xw) = torchBicubicTaps(inSize: inWidth, outSize: outWidth, scaleFactor: scaleW)
    let (yi, yw) = torchBicubicTaps(inSize: inHeight, outSize: outHeight, scaleFactor: scaleH)
    // [inHeight, outWidth]: the inner (width) sums of one channel.
    let rowSums = UnsafeMutablePointer<Float>.allocate(capacity: inHeight * outWidth)
    defer { rowSums.deallocate() }
    xi.withUnsafeBufferPointer { xi in
        xw.withUnsafeBufferPointer { xw in
            for c in 0..<channels {
                let plane = input.baseAddress! + c * inHeight * inWidth
                for y in 0..<inHeight {
                    let src = plane + y * inWidth, dst = rowSums + y * outWidth
                    for o in 0..<outWidth {
                        var acc = src[xi[4 * o]] * xw[4 * o]
                        acc = acc.addingProduct(src[xi[4 * o + 1]], xw[4 * o + 1])
                        acc = acc.addingProduct(src[xi[4 * o + 2]], xw[4 * o + 2])
                        acc = acc.addingProduct(src[xi[4 * o + 3]], xw[4 * o + 3])
                        dst[o] = acc
                    }
                }
                let dstPlane = out.baseAddress! + c * outHeight * outWidth
                for o in 0..<outHeight {
                    let r0 = rowSums + yi[4 * o] * outWidth, r1 = rowSums + yi[4 * o + 1] * outWidth
                    let r2 = rowSums + yi[4 * o + 2] * outWidth, r3 = rowSums + yi[4 * o + 3] * outWidth
                    let w0 = yw[4 * o], w1 = yw[4 * o + 1], w2 = yw[4 * o + 2], w3 = yw[4 * o + 3]
                    let dst = dstPlane + o * outWidth
                    var x = 0
                    while x + 8 <= outWidth {
                        @inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
                            UnsafeRawPointer(p + x).loadUnaligned(as: SIMD8<Float>.self)
                        }
                        var acc = load(r0) * w0
                        acc = acc.addingProduct(load(r1), w1)
                        acc = acc.addingProduct(load(r2), w2)
                        acc = acc.addingProduct(load(r3), w3)
                        UnsafeMutableRawPointer(dst + x).storeBytes(of: acc, as: SIMD8<Float>.self)
                        x += 8
                    }
                    while x < outWidth {
                        var acc = r0[x] * w0
                        acc = acc.addingProduct(r1[x], w1)
                        acc = acc.addingProduct(r2[x], w2)
                        acc = acc.addingProduct(r3[x], w3)
                        dst[x] = acc
                        x += 1
                    }
                }
            }
        }
    }
}

/// `bicubicResize` over arrays: returns [C, outHeight, outWidth].
package func bicubicResize(_ input: [Float], channels: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int,
                           scaleH: Double? = nil, scaleW: Double? = nil) -> [Float] {
    var out = [Float](repeating: 0, count: channels * outHeight * outWidth)
    out.withUnsafeMutableBufferPointer { o in
        input.withUnsafeBufferPointer { i in
            bicubicResize(o, i, channels: channels, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth,
                          scaleH: scaleH, scaleW: scaleW)
        }
    }
    return out
}

// MARK: - Nearest

/// PyTorch `nearest_idx`: identity when sizes match, i >> 1 for exact 2× upsampling, else
/// min(floor(i · scale), in − 1) with scale in Float (in/out, or 1/scale_factor).
func torchNearestIndices(inSize: Int, outSize: Int, scaleFactor: Double? = nil) -> [Int] {
    precondition(inSize > 0 && outSize > 0)
    if outSize == inSize { return Array(0..<outSize) }
    if outSize == 2 * inSize { return (0..<outSize).map { $0 >> 1 } }
    let scale = torchScale(inSize: inSize, outSize: outSize, scaleFactor: scaleFactor)
    return (0..<outSize).map { min(Int(floorf(Float($0) * scale)), inSize - 1) }
}

/// `F.interpolate(x, size=(outHeight, outWidth), mode='nearest')`.
/// out: [C, outHeight, outWidth]; input: [C, inHeight, inWidth]. For 448 → 32 and 840 → 60 this
/// picks the top-left pixel (14·r, 14·c) of each patch (hazard H8).
package func nearestResize(_ out: UnsafeMutableBufferPointer<Float>, _ input: UnsafeBufferPointer<Float>,
                           channels: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int,
                           scaleH: Double? = nil, scaleW: Double? = nil) {
    precondition(input.count == channels * inHeight * inWidth && out.count == channels * outHeight * outWidth, "buffer sizes")
    let ys = torchNearestIndices(inSize: inHeight, outSize: outHeight, scaleFactor: scaleH)
    let xs = torchNearestIndices(inSize: inWidth, outSize: outWidth, scaleFactor: scaleW)
    for c in 0..<channels {
        let src = input.baseAddress! + c * inHeight * inWidth, dst = out.baseAddress! + c * outHeight * outWidth
        for o in 0..<outHeight {
            let row = src + ys[o] * inWidth
            for x in 0..<outWidth { dst[o * outWidth + x] = row[xs[x]] }
        }
    }
}

/// `nearestResize` over arrays: returns [C, outHeight, outWidth].
package func nearestResize(_ input: [Float], channels: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int,
                           scaleH: Double? = nil, scaleW: Double? = nil) -> [Float] {
    var out = [Float](repeating: 0, count: channels * outHeight * outWidth)
    out.withUnsafeMutableBufferPointer { o in
        input.withUnsafeBufferPointer { i in
            nearestResize(o, i, channels: channels, inHeight: inHeight, inWidth: inWidth, outHeight: outHeight, outWidth: outWidth,
                          scaleH: scaleH, scaleW: scaleW)
        }
    }
    return out
}
