// The training augmentation of METHOD §2.1 (hazards H6–H8): torchvision's
// `RandomResizedCrop(S, scale=(0.5, 1.5), ratio=(3/4, 4/3), BICUBIC, antialias=True)` applied jointly to the
// image and its mask as one 4-channel float tensor, then ImageNet normalisation of the image and the mask on
// the patch grid by nearest at each patch's top-left pixel.
//
// Parity: tools/parity/make_augment_fixtures.py replays the same uniform draws through torchvision's
// `get_params` (Tests/Fixtures/augment/boxes.json) and records torch's resized tensor.
//
// Shapes: [C, H, W] float32 planar, row-major.

import Imaging
import Kernels

/// The random numbers the augmentation consumes: uniforms in [0, 1). Where torch calls
/// `torch.empty(1).uniform_(lo, hi)` we take one draw u and compute `lo + (hi − lo)·u` in float32; where it
/// calls `torch.randint(lo, hi)` we take one draw and compute `lo + ⌊u·(hi − lo)⌋`. Bit parity with torch's
/// generator is impossible (METHOD §3.6); the arithmetic after the draw is what the fixtures pin down.
package protocol UniformSource {
    mutating func nextUniform() -> Double
}

extension SplitMix64: UniformSource {
    /// 24-bit uniform, as `uniform()`.
    package mutating func nextUniform() -> Double { Double(uniform()) }
}

/// Replays a fixed list (parity tests).
package struct ReplayedUniforms: UniformSource {
    package var draws: [Double]
    package private(set) var consumed = 0
    package init(_ draws: [Double]) { self.draws = draws }
    package mutating func nextUniform() -> Double {
        defer { consumed += 1 }
        return draws[consumed]
    }
}

/// A crop `[top ..< top + height, left ..< left + width]` (torchvision's `(i, j, h, w)`).
package struct CropBox: Sendable, Equatable, CustomStringConvertible {
    package var top: Int, left: Int, height: Int, width: Int
    package init(top: Int, left: Int, height: Int, width: Int) { self.top = top; self.left = left; self.height = height; self.width = width }
    package var description: String { "(i \(top), j \(left), h \(height), w \(width))" }
}

/// `RandomResizedCrop` parameters. Defaults are the paper's (`datasets/SPair.py`, `datasets/FCars.py`).
package struct RandomResizedCrop: Sendable, Equatable {
    package var size: Int = 448
    package var scale: (lower: Float, upper: Float) = (0.5, 1.5)
    /// Python floats 3/4 and 4/3 (the fallback compares against them in float64).
    package var ratio: (lower: Double, upper: Double) = (3.0 / 4.0, 4.0 / 3.0)

    package init(size: Int = 448) { self.size = size }

    package static func == (a: Self, b: Self) -> Bool {
        a.size == b.size && a.scale == b.scale && a.ratio == b.ratio
    }

    /// `torch.log(torch.tensor(ratio))`: float32 logs of the float32 ratios. torch's vectorised CPU log gives
    /// log(0.75) one ulp above the correctly rounded `logf` (0xBE934B10 vs …11; the fixture records torch's bits),
    /// so the default ratios use torch's values.
    var logRatio: (Float, Float) {
        if ratio == (3.0 / 4.0, 4.0 / 3.0) { return (Float(bitPattern: 0xBE93_4B10), Float(bitPattern: 0x3E93_4B12)) }
        return (logf(Float(ratio.lower)), logf(Float(ratio.upper)))
    }

    /// torchvision's `RandomResizedCrop.get_params` for an image of `height × width`: up to 10 attempts of
    /// area·U(scale) and exp(U(log ratio)), sides rounded half to even (Python `round`), accepted when both fit,
    /// then an inclusive random offset; else the centre-crop fallback. Each attempt consumes two draws, an
    /// accepted one two more.
    package func box(height: Int, width: Int, draws: inout some UniformSource) -> CropBox {
        precondition(height > 0 && width > 0)
        let area = Double(height * width)
        let (logLo, logHi) = logRatio
        func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(draws.nextUniform()) }
        func randint(_ lo: Int, _ hi: Int) -> Int { lo + Int((draws.nextUniform() * Double(hi - lo)).rounded(.down)) }
        for _ in 0..<10 {
            let targetArea = area * Double(uniform(scale.lower, scale.upper))
            let aspect = Double(expf(uniform(logLo, logHi)))
            let w = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0, w <= width, h > 0, h <= height {
                let i = randint(0, height - h + 1)
                let j = randint(0, width - w + 1)
                return CropBox(top: i, left: j, height: h, width: w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < min(ratio.lower, ratio.upper) {
            h = Int((Double(w) / min(ratio.lower, ratio.upper)).rounded(.toNearestOrEven))
        } else if inRatio > max(ratio.lower, ratio.upper) {
            w = Int((Double(h) * max(ratio.lower, ratio.upper)).rounded(.toNearestOrEven))
        }
        return CropBox(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w)
    }

    /// `resized_crop` of a [C, H, W] tensor: the crop, then torch antialiased bicubic to size×size on float, no
    /// clamping (the mask channel becomes non-binary, H6). Returns [C, size, size].
    package func resizedCrop(_ input: [Float], channels: Int, height: Int, width: Int, box: CropBox) -> [Float] {
        precondition(input.count == channels * height * width)
        precondition(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                     box.top + box.height <= height && box.left + box.width <= width, "crop \(box) outside \(height)×\(width)")
        var crop = [Float](repeating: 0, count: channels * box.height * box.width)
        crop.withUnsafeMutableBufferPointer { dst in
            input.withUnsafeBufferPointer { src in
                for c in 0..<channels {
                    for y in 0..<box.height {
                        (dst.baseAddress! + (c * box.height + y) * box.width)
                            .update(from: src.baseAddress! + (c * height + box.top + y) * width + box.left, count: box.width)
                    }
                }
            }
        }
        return bicubicAAResize(crop, channels: channels, inHeight: box.height, inWidth: box.width, outHeight: size, outWidth: size)
    }
}

/// One augmented training view: what the backbone and the losses need.
package struct AugmentedView: Sendable {
    /// Normalised image [3, S, S].
    package var image: [Float]
    /// The resampled mask at each patch's top-left pixel (H8), [G·G] row-major, non-binary.
    package var maskGrid: [Float]
    package var box: CropBox
    package var size: Int
}

/// A decoded training image with its mask as the 4-channel tensor `cat(to_tensor(rgb), mask)` [4, H, W].
package struct ImageWithMask: Sendable {
    package var tensor: [Float]
    package var height: Int
    package var width: Int

    /// `to_tensor` (v/255 in float32) of the image and the 0/1 mask as the fourth channel.
    package init(image: RGBImage, mask: [UInt8]) {
        precondition(mask.count == image.width * image.height)
        let n = image.width * image.height
        var t = [Float](repeating: 0, count: 4 * n)
        t.withUnsafeMutableBufferPointer { o in
            image.pixels.withUnsafeBufferPointer { p in
                for c in 0..<3 { for i in 0..<n { o[c * n + i] = Float(p[3 * i + c]) / 255 } }
            }
            for i in 0..<n { o[3 * n + i] = mask[i] != 0 ? 1 : 0 }
        }
        tensor = t; height = image.height; width = image.width
    }

    /// The view of `box`: resized crop, image normalised, mask to the grid.
    package func view(_ crop: RandomResizedCrop, box: CropBox) -> AugmentedView {
        let s = crop.size
        var y = crop.resizedCrop(tensor, channels: 4, height: height, width: width, box: box)
        let plane = s * s
        let mean = [imageNetMean.0, imageNetMean.1, imageNetMean.2], std = [imageNetStd.0, imageNetStd.1, imageNetStd.2]
        // torchvision Normalize: sub_(mean) then div_(std), float32.
        for c in 0..<3 {
            let m = mean[c], sd = std[c]
            for i in (c * plane)..<((c + 1) * plane) { y[i] = (y[i] - m) / sd }
        }
        // Nearest to the patch grid: each patch takes its top-left pixel (H8).
        let patches = PatchGrid(side: s / PatchGrid.patchSize)
        let grid = (0..<patches.count).map { i in
            let (x, yy) = patches.topLeft(of: i)
            return y[3 * plane + yy * s + x]
        }
        y.removeLast(plane)
        return AugmentedView(image: y, maskGrid: grid, box: box, size: s)
    }

    /// A random view: `crop.box` from `draws`, then `view`.
    package func randomView(_ crop: RandomResizedCrop, draws: inout some UniformSource) -> AugmentedView {
        view(crop, box: crop.box(height: height, width: width, draws: &draws))
    }
}

#if canImport(Glibc)
import Glibc
#endif
