// Pillow's LANCZOS resize of 8-bit RGB, bit-exact (METHOD §2.4, hazard H2).
//
// Re-derived from the behaviour of Pillow's src/libImaging/Resample.c (precompute_coeffs,
// normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc, ImagingResampleInner):
//   * per axis: scale = in/out, filterscale = max(scale, 1), support = 3·filterscale;
//     for output o: center = (o + 0.5)·scale, xmin = max(trunc(center − support + 0.5), 0),
//     xmax = min(trunc(center + support + 0.5), in); w_k = lanczos((k + xmin − center + 0.5)·(1/filterscale)),
//     normalised by their sum, all in Double;
//   * weights to 22-bit fixed point, rounded half away from zero and truncated;
//   * acc = 2²¹ + Σ pixel·w in Int32; output clamp(acc >> 22, 0, 255);
//   * horizontal pass first, only over the source rows the vertical pass reads, rounded to
//     uint8; then the vertical pass; an axis whose size is unchanged is skipped. (Pillow 13
//     changed the order for strong height reductions: see `LanczosPassOrder`.)
//
// Shapes: images are [H, W, 3] uint8, interleaved.

import Foundation

/// Fixed-point filter taps for one axis: output `o` reads `count[o]` source samples starting at
/// `start[o]`, weighted by `weights[o·taps ..< o·taps + count[o]]`.
struct PillowTaps {
    var taps: Int        // ksize: maximum taps per output
    var start: [Int]     // [out]
    var count: [Int]     // [out]
    var weights: [Int32] // [out, taps], 22-bit fixed point, zero-padded
}

private let precisionBits: Int32 = 22  // 32 − 8 − 2

@inline(__always)
private func sinc(_ x: Double) -> Double {
    if x == 0 { return 1 }
    let y = x * Double.pi
    return sin(y) / y
}

/// Truncated sinc, support 3.
@inline(__always)
private func lanczos3(_ x: Double) -> Double {
    if -3.0 <= x && x < 3.0 { return sinc(x) * sinc(x / 3) }
    return 0
}

func pillowLanczosTaps(inSize: Int, outSize: Int) -> PillowTaps {
    precondition(inSize > 0 && outSize > 0)
    let scale = Double(inSize) / Double(outSize)  // box = (0, in): (double)(in1 − in0) / outSize
    let filterscale = max(scale, 1.0)
    let support = 3.0 * filterscale
    let taps = Int(support.rounded(.up)) * 2 + 1
    var start = [Int](repeating: 0, count: outSize)
    var count = [Int](repeating: 0, count: outSize)
    var weights = [Int32](repeating: 0, count: outSize * taps)
    var k = [Double](repeating: 0, count: taps)
    let ss = 1.0 / filterscale
    for o in 0..<outSize {
        let center = (Double(o) + 0.5) * scale
        let xmin = max(Int(center - support + 0.5), 0)
        let xmax = min(Int(center + support + 0.5), inSize) - xmin
        var sum = 0.0
        for x in 0..<xmax {
            let w = lanczos3((Double(x + xmin) - center + 0.5) * ss)
            k[x] = w
            sum += w
        }
        for x in 0..<xmax {
            let w = sum != 0 ? k[x] / sum : k[x]
            let fixed = w * Double(1 << precisionBits)
            weights[o * taps + x] = Int32(w < 0 ? -0.5 + fixed : 0.5 + fixed)  // (int) truncates
        }
        start[o] = xmin
        count[o] = xmax
    }
    return PillowTaps(taps: taps, start: start, count: count, weights: weights)
}

@inline(__always)
private func clip8(_ acc: Int32) -> UInt8 {
    UInt8(clamping: acc >> precisionBits)
}

/// Horizontal pass over `rows` rows. out: [rows, outW, 3]; input: [rows, inW, 3].
private func lanczosHorizontal(_ out: UnsafeMutablePointer<UInt8>, _ input: UnsafePointer<UInt8>,
                               rows: Int, inWidth: Int, outWidth: Int, taps t: PillowTaps) {
    t.weights.withUnsafeBufferPointer { kk in
        t.start.withUnsafeBufferPointer { start in
            t.count.withUnsafeBufferPointer { count in
                for y in 0..<rows {
                    let src = input + y * inWidth * 3
                    let dst = out + y * outWidth * 3
                    for o in 0..<outWidth {
                        let k = kk.baseAddress! + o * t.taps
                        var s0: Int32 = 1 << (precisionBits - 1), s1 = s0, s2 = s0
                        var p = src + start[o] * 3
                        for x in 0..<count[o] {
                            let w = k[x]
                            s0 &+= Int32(p[0]) &* w
                            s1 &+= Int32(p[1]) &* w
                            s2 &+= Int32(p[2]) &* w
                            p += 3
                        }
                        dst[3 * o] = clip8(s0)
                        dst[3 * o + 1] = clip8(s1)
                        dst[3 * o + 2] = clip8(s2)
                    }
                }
            }
        }
    }
}

/// Vertical pass. out: [outH, W, 3]; input: [rows, W, 3] where tap `start` indexes input rows.
private func lanczosVertical(_ out: UnsafeMutablePointer<UInt8>, _ input: UnsafePointer<UInt8>,
                             width: Int, outHeight: Int, rowShift: Int, taps t: PillowTaps) {
    let n = width * 3  // elements per row; every element is an independent channel sample
    let half = SIMD8<Int32>(repeating: 1 << (precisionBits - 1))
    t.weights.withUnsafeBufferPointer { kk in
        for o in 0..<outHeight {
            let k = kk.baseAddress! + o * t.taps
            let first = t.start[o] - rowShift, rows = t.count[o]
            let dst = out + o * n
            var e = 0
            while e + 8 <= n {
                var acc = half
                for y in 0..<rows {
                    let v = UnsafeRawPointer(input + (first + y) * n + e).loadUnaligned(as: SIMD8<UInt8>.self)
                    acc &+= SIMD8<Int32>(truncatingIfNeeded: v) &* k[y]
                }
                let shifted = (acc &>> precisionBits).clamped(lowerBound: .zero, upperBound: SIMD8(repeating: 255))
                UnsafeMutableRawPointer(dst + e).storeBytes(of: SIMD8<UInt8>(truncatingIfNeeded: shifted), as: SIMD8<UInt8>.self)
                e += 8
            }
            while e < n {
                var acc: Int32 = 1 << (precisionBits - 1)
                for y in 0..<rows { acc &+= Int32(input[(first + y) * n + e]) &* k[y] }
                dst[e] = clip8(acc)
                e += 1
            }
        }
    }
}

/// Which Pillow generation's pass order to reproduce. The passes round to uint8 in between, so
/// the order changes pixels (by up to ±1–2 LSB, more at hard edges).
package enum LanczosPassOrder: Sendable, Equatable {
    /// Pillow ≤ 12: always the horizontal pass first (METHOD §2.4; the reference environment of
    /// 2023, PyTorch 2.0.1, predates Pillow 13). The default.
    case horizontalFirst
    /// Pillow ≥ 13 (ImagingResampleInner): the vertical pass first when the height shrinks by
    /// more than twice as many pixels as the width, `inH − outH > max(0, 2·(inW − outW))`.
    case pillow13

    func verticalFirst(inWidth: Int, inHeight: Int, outWidth: Int, outHeight: Int) -> Bool {
        switch self {
        case .horizontalFirst: false
        case .pillow13: inHeight - outHeight > 0 && inHeight - outHeight > 2 * (inWidth - outWidth)
        }
    }
}

/// Pillow `Image.resize((outWidth, outHeight), Image.Resampling.LANCZOS)` on an RGB image.
/// out: [outHeight, outWidth, 3]; input: [inHeight, inWidth, 3].
package func lanczosResizeRGB8(_ out: UnsafeMutableBufferPointer<UInt8>, _ input: UnsafeBufferPointer<UInt8>,
                               inWidth: Int, inHeight: Int, outWidth: Int, outHeight: Int,
                               order: LanczosPassOrder = .horizontalFirst) {
    precondition(inWidth > 0 && inHeight > 0 && outWidth > 0 && outHeight > 0, "empty image")
    precondition(input.count == inWidth * inHeight * 3 && out.count == outWidth * outHeight * 3, "buffer sizes")
    let needHorizontal = outWidth != inWidth, needVertical = outHeight != inHeight
    switch (needHorizontal, needVertical) {
    case (false, false):
        out.baseAddress!.update(from: input.baseAddress!, count: input.count)
    case (false, true):
        lanczosVertical(out.baseAddress!, input.baseAddress!, width: inWidth, outHeight: outHeight, rowShift: 0,
                        taps: pillowLanczosTaps(inSize: inHeight, outSize: outHeight))
    case (true, false):
        lanczosHorizontal(out.baseAddress!, input.baseAddress!, rows: inHeight, inWidth: inWidth, outWidth: outWidth,
                          taps: pillowLanczosTaps(inSize: inWidth, outSize: outWidth))
    case (true, true):
        let horizontal = pillowLanczosTaps(inSize: inWidth, outSize: outWidth)
        let vertical = pillowLanczosTaps(inSize: inHeight, outSize: outHeight)
        if order.verticalFirst(inWidth: inWidth, inHeight: inHeight, outWidth: outWidth, outHeight: outHeight) {
            // [outHeight, inWidth, 3]: vertically resampled, rounded to uint8.
            let temp = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: outHeight * inWidth * 3)
            defer { temp.deallocate() }
            lanczosVertical(temp.baseAddress!, input.baseAddress!, width: inWidth, outHeight: outHeight, rowShift: 0, taps: vertical)
            lanczosHorizontal(out.baseAddress!, UnsafePointer(temp.baseAddress!), rows: outHeight, inWidth: inWidth,
                              outWidth: outWidth, taps: horizontal)
        } else {
            // Horizontal pass only over the source rows the vertical pass reads: [firstRow, lastRow).
            let firstRow = vertical.start[0]
            let lastRow = vertical.start[outHeight - 1] + vertical.count[outHeight - 1]
            // [lastRow − firstRow, outWidth, 3]: horizontally resampled, rounded to uint8.
            let temp = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: (lastRow - firstRow) * outWidth * 3)
            defer { temp.deallocate() }
            lanczosHorizontal(temp.baseAddress!, input.baseAddress! + firstRow * inWidth * 3,
                              rows: lastRow - firstRow, inWidth: inWidth, outWidth: outWidth, taps: horizontal)
            lanczosVertical(out.baseAddress!, UnsafePointer(temp.baseAddress!), width: outWidth, outHeight: outHeight,
                            rowShift: firstRow, taps: vertical)
        }
    }
}

/// `lanczosResizeRGB8` on an `RGBImage`.
package func lanczosResize(_ image: RGBImage, width: Int, height: Int, order: LanczosPassOrder = .horizontalFirst) -> RGBImage {
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    pixels.withUnsafeMutableBufferPointer { out in
        image.pixels.withUnsafeBufferPointer { input in
            lanczosResizeRGB8(out, input, inWidth: image.width, inHeight: image.height, outWidth: width, outHeight: height,
                              order: order)
        }
    }
    return RGBImage(width: width, height: height, pixels: pixels)
}
