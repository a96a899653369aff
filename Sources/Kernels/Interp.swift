// PyTorch-exact bicubic resampling on channel-last float data [H, W, C] (planar data: C = 1 per plane).
// Both forms are separable; the width axis is interpolated first, as PyTorch does.

/// Taps and weights of one axis: output o reads input indices index[o·taps + j] with weight[o·taps + j].
package struct AxisWeights {
    package var taps: Int
    package var index: [Int]
    package var weight: [Float]
}

/// Keys cubic convolution weights for fractional offset t with parameter a (PyTorch's get_cubic_upsample_coefficients).
@inline(__always)
private func cubicCoefficients(_ t: Float, a: Float) -> (Float, Float, Float, Float) {
    func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }           // |x| ≤ 1
    func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }       // 1 < |x| < 2
    let x1 = t
    let x2 = 1 - t
    return (far(x1 + 1), near(x1), near(x2), far(x2 + 1))
}

/// upsample_bicubic2d, align_corners = false, antialias = false, A = −0.75.
/// When `scaleFactor` is given (F.interpolate(scale_factor=…)), the source coordinate uses 1/scaleFactor
/// rounded to float, not in/out — this is what makes DINOv2's +0.1 offset matter (SPEC §1.3, H9).
package func bicubicAxisWeights(inSize: Int, outSize: Int, scaleFactor: Double?) -> AxisWeights {
    let scale: Float = if let s = scaleFactor, s > 0 { Float(1.0 / s) } else { Float(inSize) / Float(outSize) }
    var index = [Int](), weight = [Float]()
    for o in 0..<outSize {
        // PyTorch evaluates `scale * (dst_index + 0.5) - 0.5` in double (int + 0.5 promotes) and stores a float.
        let real = Float(Double(scale) * (Double(o) + 0.5) - 0.5)
        let i0 = min(Int(real.rounded(.down)), inSize - 1)
        let t = min(max(real - Float(i0), 0), 1)
        let (w0, w1, w2, w3) = cubicCoefficients(t, a: -0.75)
        for (j, w) in [w0, w1, w2, w3].enumerated() {
            index.append(min(max(i0 - 1 + j, 0), inSize - 1))
            weight.append(w)
        }
    }
    return AxisWeights(taps: 4, index: index, weight: weight)
}

/// Antialiased bicubic (F.interpolate(size=…, mode='bicubic', antialias=True)): Keys a = −0.5,
/// support 2·max(scale, 1), weights normalised to sum 1 (PyTorch _compute_indices_min_size_weights_aa).
package func bicubicAAAxisWeights(inSize: Int, outSize: Int) -> AxisWeights {
    let scale = Float(inSize) / Float(outSize)
    let support: Float = scale >= 1 ? 2 * scale : 2
    let invscale: Float = scale >= 1 ? 1 / scale : 1
    let taps = Int(support.rounded(.up)) * 2 + 1
    func kernel(_ x0: Float) -> Float {
        let a: Float = -0.5
        let x = abs(x0)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }
    var index = [Int](repeating: 0, count: outSize * taps), weight = [Float](repeating: 0, count: outSize * taps)
    for o in 0..<outSize {
        // Same promotions as PyTorch: (i + 0.5) is double, results stored in float.
        let center = Float(Double(scale) * (Double(o) + 0.5))
        let xmin = max(Int(Double(center - support) + 0.5), 0)
        let xsize = min(Int(Double(center + support) + 0.5), inSize) - xmin
        var total: Float = 0
        var ws = [Float](repeating: 0, count: taps)
        for j in 0..<min(xsize, taps) {
            let w = kernel(Float((Double(Float(j + xmin) - center) + 0.5) * Double(invscale)))
            ws[j] = w; total += w
        }
        for j in 0..<taps {
            index[o * taps + j] = min(xmin + j, inSize - 1)
            weight[o * taps + j] = j < xsize && total != 0 ? ws[j] / total : 0
        }
    }
    return AxisWeights(taps: taps, index: index, weight: weight)
}

/// out[oh, ow, c] = Σ_i Σ_j wy[oh, i] · wx[ow, j] · x[iy, ix, c], width pass first.
/// x: [inH, inW, C]; out: [outH, outW, C].
package func resampleSeparable(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    inHeight: Int, inWidth: Int, channels c: Int, rows wy: AxisWeights, cols wx: AxisWeights
) {
    let outH = wy.index.count / wy.taps, outW = wx.index.count / wx.taps
    // Horizontal: tmp[inH, outW, C]
    let tmp = UnsafeMutablePointer<Float>.allocate(capacity: inHeight * outW * c)
    defer { tmp.deallocate() }
    for y in 0..<inHeight {
        for o in 0..<outW {
            let dst = tmp + (y * outW + o) * c
            for ch in 0..<c { dst[ch] = 0 }
            for j in 0..<wx.taps {
                let w = wx.weight[o * wx.taps + j]
                let src = x + (y * inWidth + wx.index[o * wx.taps + j]) * c
                for ch in 0..<c { dst[ch] += w * src[ch] }
            }
        }
    }
    // Vertical: out[outH, outW, C]
    for o in 0..<outH {
        for xcol in 0..<outW {
            let dst = out + (o * outW + xcol) * c
            for ch in 0..<c { dst[ch] = 0 }
            for j in 0..<wy.taps {
                let w = wy.weight[o * wy.taps + j]
                let src = tmp + (wy.index[o * wy.taps + j] * outW + xcol) * c
                for ch in 0..<c { dst[ch] += w * src[ch] }
            }
        }
    }
}
