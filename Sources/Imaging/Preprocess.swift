// Evaluation preprocessing (METHOD §2.3; hazards H3, H4, H5, H26): the square letterbox, the
// normalised tensor, and the keypoint ↔ letterbox ↔ patch-grid transforms.
//
// Reference: sd-dino / SphericalMaps `utils_correspondence.resize(img, R, resize=True,
// to_pil=True, edge=False)`, `preprocess_kps_pad`, the patch-index lines of
// `pck_spair_pascal_sphere.compute_score`, and torchvision ToTensor + Normalize.

/// ImageNet statistics used by torchvision Normalize (float32 tensors in the reference).
/// (`torch.as_tensor([...], dtype=float32)`: Python floats rounded to float32.)
package let imageNetMean: (Float, Float, Float) = (Float(0.485 as Double), Float(0.456 as Double), Float(0.406 as Double))
package let imageNetStd: (Float, Float, Float) = (Float(0.229 as Double), Float(0.224 as Double), Float(0.225 as Double))

/// Python `int(np.around(numerator / denominator))` for non-negative integers: the quotient is
/// correctly rounded to Double (as Python's int/int true division), then rounded half to even.
@inline(__always)
private func aroundDivide(_ numerator: Int, _ denominator: Int) -> Int {
    Int((Double(numerator) / Double(denominator)).rounded(.toNearestOrEven))
}

/// Size of the resized image inside an R×R letterbox: (R, around(R·H/W)) when H ≤ W (square
/// included), else (around(R·W/H), R).
package func letterboxContentSize(width: Int, height: Int, resolution: Int) -> (width: Int, height: Int) {
    precondition(width > 0 && height > 0 && resolution > 0)
    if height <= width { return (resolution, aroundDivide(resolution * height, width)) }
    return (aroundDivide(resolution * width, height), resolution)
}

/// Letterbox to a square R×R: LANCZOS resize (Pillow-exact) of the long side to R with the
/// short side `around(R·short/long)` (round half to even), pasted onto a black canvas at
/// (R − h')//2 rows (landscape/square) or (R − w')//2 columns (portrait). Throws `.tooSmall`
/// when the short side would round to 0 pixels (Pillow's resize would raise there). `order`
/// picks the Pillow generation to match (default: the reference's, horizontal pass first).
package func letterbox(_ image: RGBImage, resolution: Int, order: LanczosPassOrder = .horizontalFirst) throws(ImageError) -> RGBImage {
    precondition(resolution > 0)
    guard image.width > 0, image.height > 0 else { throw .tooSmall }
    let (w, h) = letterboxContentSize(width: image.width, height: image.height, resolution: resolution)
    guard w > 0, h > 0 else { throw .tooSmall }
    let resized = lanczosResize(image, width: w, height: h, order: order)
    if w == resolution && h == resolution { return resized }
    var canvas = [UInt8](repeating: 0, count: resolution * resolution * 3)
    let top = (resolution - h) / 2, left = (resolution - w) / 2
    canvas.withUnsafeMutableBufferPointer { dst in
        resized.pixels.withUnsafeBufferPointer { src in
            for y in 0..<h {
                (dst.baseAddress! + ((top + y) * resolution + left) * 3)
                    .update(from: src.baseAddress! + y * w * 3, count: w * 3)
            }
        }
    }
    return RGBImage(width: resolution, height: resolution, pixels: canvas)
}

/// torchvision `ToTensor()` then `Normalize(mean, std)`: out[c, y, x] = (v/255 − mean_c) / std_c
/// in float32, each step rounded as PyTorch does (divide, subtract, divide).
/// out: [3, H, W] float32; pixels: [H, W, 3] uint8.
package func normalizeToTensor(_ out: UnsafeMutableBufferPointer<Float>, _ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int) {
    let n = width * height
    precondition(pixels.count == n * 3 && out.count == n * 3, "buffer sizes")
    let mean = [imageNetMean.0, imageNetMean.1, imageNetMean.2], std = [imageNetStd.0, imageNetStd.1, imageNetStd.2]
    // 256-entry lookup per channel: the result depends only on the byte value.
    var table = [Float](repeating: 0, count: 3 * 256)
    for c in 0..<3 {
        for v in 0..<256 { table[c * 256 + v] = (Float(v) / 255 - mean[c]) / std[c] }
    }
    table.withUnsafeBufferPointer { t in
        for c in 0..<3 {
            let plane = out.baseAddress! + c * n, lut = t.baseAddress! + c * 256
            for p in 0..<n { plane[p] = lut[Int(pixels[3 * p + c])] }
        }
    }
}

/// `normalizeToTensor` of an image: [3, H, W] float32.
package func toNormalizedTensor(_ image: RGBImage) -> [Float] {
    var out = [Float](repeating: 0, count: 3 * image.width * image.height)
    out.withUnsafeMutableBufferPointer { o in
        image.pixels.withUnsafeBufferPointer { p in normalizeToTensor(o, p, width: image.width, height: image.height) }
    }
    return out
}

/// Keypoint geometry of the square letterbox, for an image whose annotated size is (W, H).
///
/// The reference scales keypoints by R/max(W, H) on **both** axes, while the image's short side
/// is resized by the rounded h'/H (hazard H4): both are reproduced, not "fixed". (W, H) come from
/// the annotation (`src_imsize`/`trg_imsize`), not from the decoded image.
package struct KeypointTransform: Sendable, Equatable {
    /// Letterbox side R (a multiple of the patch size).
    package let resolution: Int
    /// The letterbox's patch grid (the backbone's patch and stride).
    package let grid: PatchGrid
    /// Annotated image size.
    package let imageWidth: Int
    package let imageHeight: Int
    /// float32(R / max(W, H)): Python computes the quotient in Double, PyTorch multiplies a
    /// float32 tensor by it as a float32 scalar.
    package let scale: Float
    /// int((R − new)/2) on the short axis, 0 on the other (and both 0 for a square image).
    package let offsetX: Int
    package let offsetY: Int

    /// `grid`: the backbone's grid at R; DINOv2's R/14 grid when nil.
    package init(imageWidth: Int, imageHeight: Int, resolution: Int, grid: PatchGrid? = nil) {
        precondition(imageWidth > 0 && imageHeight > 0 && (grid ?? PatchGrid(resolution: resolution)) != nil)
        precondition(grid.map { $0.resolution == resolution } ?? true, "grid of another resolution")
        self.resolution = resolution
        self.grid = grid ?? PatchGrid(resolution: resolution)!
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        scale = Float(Double(resolution) / Double(max(imageWidth, imageHeight)))
        if imageHeight < imageWidth {
            offsetX = 0
            offsetY = (resolution - aroundDivide(resolution * imageHeight, imageWidth)) / 2
        } else if imageWidth < imageHeight {
            offsetX = (resolution - aroundDivide(imageWidth * resolution, imageHeight)) / 2
            offsetY = 0
        } else {
            offsetX = 0
            offsetY = 0
        }
    }

    /// Patches per side, G (R/14 for DINOv2).
    package var gridSize: Int { grid.side }

    /// Original pixel coordinates → letterbox frame (`preprocess_kps_pad`): x·scale + offsetX,
    /// y·scale + offsetY in float32. Invisible keypoints become (0, 0) (`kps *= vis`).
    package func toLetterbox(x: Float, y: Float, visible: Bool = true) -> (x: Float, y: Float) {
        guard visible else { return (0, 0) }
        return (x * scale + Float(offsetX), y * scale + Float(offsetY))
    }

    /// Letterbox frame → original pixel coordinates: the inverse of `toLetterbox` for visible
    /// points, (x − offsetX)/scale, in Double.
    package func toOriginal(x: Double, y: Double) -> (x: Double, y: Double) {
        ((x - Double(offsetX)) / Double(scale), (y - Double(offsetY)) / Double(scale))
    }

    /// Patch (column, row) and row-major token index of a letterbox-frame point:
    /// trunc(float32(G/R)·coord) in float32 (hazard H26), as numpy computes it. Coordinates are
    /// expected inside [0, R); the result is not clamped, as in the reference.
    package func patch(x: Float, y: Float) -> (column: Int, row: Int, index: Int) {
        let g = grid
        return (g.cell(x), g.cell(y), g.rawIndex(x: x, y: y))
    }

    /// Centre of a patch in the letterbox frame (`PatchGrid.centre`).
    package func patchCentre(index: Int) -> (x: Float, y: Float) { grid.centre(of: index) }
}
