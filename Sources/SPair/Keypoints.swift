import Imaging

/// A keypoint matrix K ∈ ℝ^{num_kps×3} (float32, row-major): row `id` = (x, y, 1) for a visible
/// keypoint, (0, 0, 0) otherwise (METHOD §6.1 step 3: built from the per-IMAGE annotation, by
/// `int(key)`, so key order does not matter).
package struct KeypointMatrix: Sendable, Equatable {
    /// Rows (num_kps of the category).
    package let count: Int
    /// `[count, 3]`: x, y, visibility.
    package var values: [Float]

    /// All rows invisible.
    package init(count: Int) {
        precondition(count >= 0)
        self.count = count
        self.values = [Float](repeating: 0, count: count * 3)
    }

    /// From raw rows `[count, 3]`.
    package init(count: Int, values: [Float]) {
        precondition(count >= 0 && values.count == count * 3, "KeypointMatrix: \(values.count) values for \(count) rows")
        self.count = count
        self.values = values
    }

    /// Scatters the visible keypoints of `annotation` into `count` rows (pixel coordinates of the
    /// original image). A keypoint id ≥ `count` is an error naming `file` (the reference's
    /// scatter would fail there).
    package init(annotation: ImageAnnotation, count: Int, file: String) throws(SPairError) {
        self.init(count: count)
        for slot in annotation.keypoints {
            guard let p = slot.position else { continue }
            guard slot.id < count else {
                throw SPairError(.inconsistent, file: file, field: "kps.\(slot.id)",
                                 "is keypoint id \(slot.id), but the category has \(count) keypoints (len(kps) of its first ImageAnnotation file)")
            }
            values[3 * slot.id] = Float(p.x)
            values[3 * slot.id + 1] = Float(p.y)
            values[3 * slot.id + 2] = 1
        }
    }

    package func x(_ row: Int) -> Float { values[3 * row] }
    package func y(_ row: Int) -> Float { values[3 * row + 1] }
    package func isVisible(_ row: Int) -> Bool { values[3 * row + 2] > 0 }
    package var visibleCount: Int { (0..<count).reduce(0) { $0 + (isVisible($1) ? 1 : 0) } }

    /// Into the R×R letterbox frame (`preprocess_kps_pad`, METHOD §2.3, H3/H4): x·scale + offset in
    /// float32, invisible rows all zero. The transform must be built from the pair JSON's
    /// `*_imsize`, see `LoadedPair.transforms(resolution:)`.
    package func letterboxed(_ transform: KeypointTransform) -> KeypointMatrix {
        var out = KeypointMatrix(count: count)
        for row in 0..<count where isVisible(row) {
            let p = transform.toLetterbox(x: x(row), y: y(row), visible: true)
            out.values[3 * row] = p.x
            out.values[3 * row + 1] = p.y
            out.values[3 * row + 2] = 1
        }
        return out
    }
}
