// The patch grid of a square R×R letterboxed input: G = R/14 patches per side, row-major token
// order `idx = row·G + col` (METHOD §2.3, H26). The reference fixes R = 840, G = 60; everything
// here takes R as a parameter. The one owner of the patch size and of the patch ↔ pixel geometry.
// DINOv1 (METHOD §1.5) has patches of p = 8 or 16 whose origins are a stride s | p apart:
// G = 1 + (R − p)/s, and the reference's back-projection `(c − 1)·s + s + p//2 − 0.5`.

/// A G×G grid of p-pixel patches, s apart, over an R×R image (DINOv2: p = s = 14).
package struct PatchGrid: Sendable, Equatable, Hashable {
    /// DINOv2's patch size, the default.
    package static let patchSize = 14

    /// R, the side of the letterboxed input in pixels.
    package let resolution: Int
    /// p, the patch side in pixels.
    package let patch: Int
    /// s, the distance between patch origins (the patch embedding's stride).
    package let stride: Int

    /// nil unless R is a positive multiple of p and s divides p.
    package init?(resolution: Int, patch: Int = PatchGrid.patchSize, stride: Int? = nil) {
        let s = stride ?? patch
        guard patch > 0, s > 0, patch % s == 0, resolution > 0, resolution % patch == 0 else { return nil }
        self.resolution = resolution; self.patch = patch; self.stride = s
    }

    /// The DINOv2 grid of G patches per side (R = 14·G).
    package init(side: Int) {
        precondition(side > 0, "a patch grid needs at least one patch per side")
        resolution = side * PatchGrid.patchSize
        patch = PatchGrid.patchSize; stride = PatchGrid.patchSize
    }

    /// Why R is not a valid letterbox side, for error messages; nil when it is.
    package static func invalidReason(resolution: Int, patch: Int = PatchGrid.patchSize) -> String? {
        PatchGrid(resolution: resolution, patch: patch) == nil ? "must be a positive multiple of \(patch); got \(resolution)" : nil
    }

    /// G = 1 + (R − p)/s (the reference: `int(p/s·(R//p − 1) + 1)`; R/14 for DINOv2).
    package var side: Int { 1 + (resolution - patch) / stride }
    /// G·G tokens.
    package var count: Int { side * side }

    /// float32(G/R): numpy multiplies the float32 coordinates by the Python float `G/R` in float32.
    package var coordinateFactor: Float { Float(Double(side) / Double(resolution)) }

    /// Patch column or row of one coordinate: `int32(float32(G/R)·v)`, truncation toward zero
    /// (H26). Non-finite or huge values saturate instead of trapping.
    package func cell(_ v: Float) -> Int {
        let p = coordinateFactor * v
        guard p.isFinite else { return p > 0 ? Int(Int32.max) : (p < 0 ? Int(Int32.min) : 0) }
        return Int(max(min(p, 2e9), -2e9))
    }

    /// `G·py + px` exactly as the reference computes it; a point outside [0, R) can give an index
    /// outside the grid (or wrap to the next row), as there.
    package func rawIndex(x: Float, y: Float) -> Int { side * cell(y) + cell(x) }

    /// `rawIndex` clamped into [0, G²). The reference would fail with an index error where the
    /// clamp acts (only for keypoints outside the letterboxed image).
    package func index(x: Float, y: Float) -> Int { min(max(rawIndex(x: x, y: y), 0), count - 1) }

    /// Source token of every row of a `[n, 3]` keypoint matrix in the letterbox frame, as the
    /// reference indexes the descriptors (`index` of (x, y); invisible rows sit at (0, 0), token 0).
    package func indices(ofKeypoints keypoints: [Float]) -> [Int] {
        Swift.stride(from: 0, to: keypoints.count - 2, by: 3).map { index(x: keypoints[$0], y: keypoints[$0 + 1]) }
    }

    /// p//2 − 0.5: the centre offset of the reference's back-projection (6.5 for DINOv2).
    private var centreOffset: Float { Float(patch / 2) - 0.5 }

    /// Back-projection of a patch for PCK: `(c − 1)·s + s + p//2 − 0.5 = s·c + p//2 − 0.5` on both axes
    /// (`14·c + 6.5` for DINOv2).
    package func centre(of index: Int) -> (x: Float, y: Float) {
        (Float(stride * (index % side)) + centreOffset, Float(stride * (index / side)) + centreOffset)
    }

    /// A fractional patch position (column, row), as a sub-patch refinement gives it, in pixels of the R×R
    /// frame on the same scale as `centre(of:)`: `s·c + p//2 − 0.5` (`14·c + 6.5`), rounded once to float32.
    package func point(column: Double, row: Double) -> (x: Float, y: Float) {
        let s = Double(stride), o = Double(centreOffset)
        return (Float(s * column + o), Float(s * row + o))
    }

    /// Where torch `nearest` samples a per-pixel R×R map for cell c of G: `min(floor(c·float32(R/G)), R − 1)`
    /// (`14·c` for DINOv2, H8).
    package func pixel(ofCell c: Int) -> Int {
        let scale = Float(resolution) / Float(side)
        return min(Int((Float(c) * scale).rounded(.down)), resolution - 1)
    }

    /// The pixel `nearest` samples for a patch: `(pixel(col), pixel(row))`.
    package func topLeft(of index: Int) -> (x: Int, y: Int) {
        (pixel(ofCell: index % side), pixel(ofCell: index / side))
    }
}
