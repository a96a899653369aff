// The patch grid of a square R×R letterboxed input: G = R/14 patches per side, row-major token
// order `idx = row·G + col` (METHOD §2.3, H26). The reference fixes R = 840, G = 60; everything
// here takes R as a parameter. The one owner of the patch size and of the patch ↔ pixel geometry.

/// A G×G grid of 14-pixel patches over an R×R image.
package struct PatchGrid: Sendable, Equatable, Hashable {
    package static let patchSize = 14

    /// R, the side of the letterboxed input in pixels.
    package let resolution: Int

    /// nil unless R is a positive multiple of 14.
    package init?(resolution: Int) {
        guard resolution > 0, resolution % PatchGrid.patchSize == 0 else { return nil }
        self.resolution = resolution
    }

    /// The grid of G patches per side (R = 14·G).
    package init(side: Int) {
        precondition(side > 0, "a patch grid needs at least one patch per side")
        resolution = side * PatchGrid.patchSize
    }

    /// Why R is not a valid letterbox side, for error messages; nil when it is.
    package static func invalidReason(resolution: Int) -> String? {
        PatchGrid(resolution: resolution) == nil ? "must be a positive multiple of \(patchSize); got \(resolution)" : nil
    }

    /// G = R/14 (the reference: `int(14/14·(R//14 − 1) + 1)`).
    package var side: Int { resolution / PatchGrid.patchSize }
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
        stride(from: 0, to: keypoints.count - 2, by: 3).map { index(x: keypoints[$0], y: keypoints[$0 + 1]) }
    }

    /// Back-projection of a patch for PCK: `(p − 1)·14 + 14 + 14//2 − 0.5 = 14·p + 6.5` on both axes.
    package func centre(of index: Int) -> (x: Float, y: Float) {
        (Float(PatchGrid.patchSize * (index % side)) + 6.5, Float(PatchGrid.patchSize * (index / side)) + 6.5)
    }

    /// A fractional patch position (column, row), as a sub-patch refinement gives it, in pixels of the R×R
    /// frame on the same scale as `centre(of:)`: `14·c + 6.5`, rounded once to float32.
    package func point(column: Double, row: Double) -> (x: Float, y: Float) {
        let s = Double(PatchGrid.patchSize)
        return (Float(s * column + 6.5), Float(s * row + 6.5))
    }

    /// The top-left pixel `(14·col, 14·row)`: where torch `nearest` samples a per-pixel map (H8).
    package func topLeft(of index: Int) -> (x: Int, y: Int) {
        (PatchGrid.patchSize * (index % side), PatchGrid.patchSize * (index / side))
    }
}
