// PCK@α (METHOD §6.2, H27, H28) exactly as `pck_spair_pascal_sphere.py` computes it:
//   - keypoint rows are evaluated where BOTH images see them (`src_vis · trg_vis > 0`);
//   - prediction = centre of the argmax target patch, `14·p + 6.5` (float32);
//   - err = ‖pred − gt‖₂ in float32 (letterbox frame), with PyTorch's fused accumulation;
//   - correct ⇔ float64(err) < float64(float32(α)) · thr_p: the α tensor is float32
//     (`torch.tensor([0.1, 0.05, 0.01])`) and is promoted to float64 against the float64 thr_p,
//     so e.g. α = 0.1 is 0.100000001490116…, not 0.1 (an error of exactly 10 px with thr_p = 100
//     IS correct in the reference);
//   - per category: #correct / #evaluated pooled over all keypoints of all pairs.
// Inputs are keypoint matrices `[n, 3]` (x, y, vis) already in the R×R letterbox frame, as the
// SPair module produces them, and thr_p = target bbox max side × R / max(W_t, H_t).

import Imaging

/// The reference's α values for SPair-71k.
package let defaultPCKAlphas: [Float] = [0.1, 0.05, 0.01]

package enum PCK {
    /// Predicted point of a target patch (`14·p + 6.5` on both axes).
    package static func prediction(patch: Int, grid: PatchGrid) -> (x: Float, y: Float) { grid.centre(of: patch) }

    /// ‖pred − gt‖₂ in float32 as the reference gets it: it stacks (y, x) and calls
    /// `Tensor.norm(dim=-1)` on CPU, whose float32 kernel (the AVX2 build PyTorch dispatches to on
    /// any x86-64 CPU since 2013) accumulates `acc = dy·dy` and then `acc = fma(dx, dx, acc)`,
    /// followed by a float32 square root. (Plain `dx·dx + dy·dy` differs in the last bit for about
    /// 1 in 10 points, which matters only for an error within one ulp of a threshold.)
    package static func error(predicted: (x: Float, y: Float), groundTruth: (x: Float, y: Float)) -> Float {
        let dx = predicted.x - groundTruth.x, dy = predicted.y - groundTruth.y
        let s = (dy * dy).addingProduct(dx, dx)
        return s.squareRoot()
    }

    /// The strict test `err < α·thr_p` with float32 err and α, float64 thr_p and product.
    package static func isCorrect(error: Float, alpha: Float, threshold: Double) -> Bool {
        Double(error) < Double(alpha) * threshold
    }
}

/// Pooled PCK of one category: feed it every pair, read `scores`.
package struct PCKAccumulator: Sendable {
    package let alphas: [Float]
    /// Correct keypoints per α.
    package private(set) var correct: [Int]
    /// Keypoints evaluated (mutually visible), summed over pairs.
    package private(set) var evaluated: Int = 0
    /// Pairs added (including pairs with no mutually visible keypoint).
    package private(set) var pairs: Int = 0

    package init(alphas: [Float] = defaultPCKAlphas) {
        self.alphas = alphas
        self.correct = [Int](repeating: 0, count: alphas.count)
    }

    /// #correct / #evaluated per α; nil when no keypoint was evaluated (the reference divides
    /// 0 by 0 there and prints NaN).
    package var scores: [Double]? {
        evaluated == 0 ? nil : correct.map { Double($0) / Double(evaluated) }
    }

    /// Adds one pair given the predicted target patch of every keypoint row.
    /// - sourceKeypoints, targetKeypoints: `[n, 3]` in the letterbox frame.
    /// - predictions: `n` target patch indices (argmax of each row; invisible rows ignored).
    /// - threshold: thr_p (float64).
    package mutating func add(sourceKeypoints: [Float], targetKeypoints: [Float], predictions: [Int],
                              threshold: Double, grid: PatchGrid) throws(CorrespondenceError) {
        let n = try keypointRows(sourceKeypoints, targetKeypoints)
        guard predictions.count == n else { throw .shape("\(predictions.count) predictions for \(n) keypoint rows") }
        for k in 0..<n where sourceKeypoints[3 * k + 2] * targetKeypoints[3 * k + 2] > 0 {
            let p = predictions[k]
            guard p >= 0, p < grid.count else { throw .invalidArgument("prediction \(p) outside the \(grid.side)×\(grid.side) grid") }
        }
        try add(sourceKeypoints: sourceKeypoints, targetKeypoints: targetKeypoints,
                points: predictions.map { grid.centre(of: $0) }, threshold: threshold)
    }

    /// Adds one pair given the predicted target point of every keypoint row in the letterbox frame (the
    /// patch centre, or a refined point, `Refinement`).
    package mutating func add(sourceKeypoints: [Float], targetKeypoints: [Float], points: [(x: Float, y: Float)],
                              threshold: Double) throws(CorrespondenceError) {
        let n = try keypointRows(sourceKeypoints, targetKeypoints)
        guard points.count == n else { throw .shape("\(points.count) predictions for \(n) keypoint rows") }
        for k in 0..<n where sourceKeypoints[3 * k + 2] * targetKeypoints[3 * k + 2] > 0 {
            let err = PCK.error(predicted: points[k], groundTruth: (targetKeypoints[3 * k], targetKeypoints[3 * k + 1]))
            for (a, alpha) in alphas.enumerated() where PCK.isCorrect(error: err, alpha: alpha, threshold: threshold) {
                correct[a] += 1
            }
            evaluated += 1
        }
        pairs += 1
    }

    /// Adds one pair from its similarity rows (`[n, G²]`, one row per keypoint row): predictions
    /// are the first argmax of each row.
    package mutating func add(sourceKeypoints: [Float], targetKeypoints: [Float], similarity: SimilarityMatrix,
                              threshold: Double, grid: PatchGrid) throws(CorrespondenceError) {
        guard similarity.columns == grid.count else { throw .shape("similarity has \(similarity.columns) columns, the grid \(grid.count) patches") }
        try add(sourceKeypoints: sourceKeypoints, targetKeypoints: targetKeypoints, predictions: similarity.argmaxPerRow(),
                threshold: threshold, grid: grid)
    }

    /// Adds one pair from its similarity rows with a refinement: `.none` is exactly the method above.
    package mutating func add(sourceKeypoints: [Float], targetKeypoints: [Float], similarity: SimilarityMatrix,
                              threshold: Double, grid: PatchGrid, refinement: Refinement) throws(CorrespondenceError) {
        guard case let .softArgmax(window, temperature) = refinement else {
            return try add(sourceKeypoints: sourceKeypoints, targetKeypoints: targetKeypoints, similarity: similarity,
                           threshold: threshold, grid: grid)
        }
        let refined = try SoftArgmax.refine(similarity, rows: grid.side, columns: grid.side, window: window, temperature: temperature)
        try add(sourceKeypoints: sourceKeypoints, targetKeypoints: targetKeypoints,
                points: refined.map { grid.point(column: $0.column, row: $0.row) }, threshold: threshold)
    }
}

/// Row count of two `[n, 3]` keypoint matrices of the same n.
func keypointRows(_ source: [Float], _ target: [Float]) throws(CorrespondenceError) -> Int {
    guard source.count % 3 == 0, source.count == target.count else {
        throw .shape("keypoint matrices of \(source.count) and \(target.count) values (need equal [n, 3])")
    }
    return source.count / 3
}

extension PCKAccumulator {
    /// An accumulator holding these counts: a shard's state read back from its partial report.
    package init(alphas: [Float] = defaultPCKAlphas, correct: [Int], evaluated: Int, pairs: Int) {
        precondition(correct.count == alphas.count, "PCKAccumulator: \(correct.count) counts for \(alphas.count) alphas")
        self.init(alphas: alphas)
        self.correct = correct; self.evaluated = evaluated; self.pairs = pairs
    }

    /// Adds another accumulator's pairs (integer counts: the order of merging does not matter).
    package mutating func merge(_ other: PCKAccumulator) {
        precondition(other.alphas == alphas, "PCKAccumulator.merge: different alphas")
        for a in correct.indices { correct[a] += other.correct[a] }
        evaluated += other.evaluated
        pairs += other.pairs
    }
}
