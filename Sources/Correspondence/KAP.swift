// KAP@α (METHOD §6.3, H8, H28, H29, H30) as `pck_spair_pascal_sphere.py` computes it with `--AP`,
// generalised from R = 840 (G = 60) to any R = 14·G. Per pair:
//   1. rows evaluated: source-visible keypoints only (Kv of them);
//   2. thr_α = float32(thr_p) · float32(α) in float32 (0-d float64 tensor × float32 tensor gives
//      float32), compared as squared float32 distances: D < thr_α²;
//   3. D_k[j] = (14·c − x_k)² + (14·r − y_k)², float32, from each patch's TOP-LEFT pixel (torch
//      `nearest` from R×R to G×G samples pixel 14·index), with (x_k, y_k) the target keypoint
//      ((0, 0) when the target does not see it);
//   4. labels: D < thr_α², then the nearest patch (first argmin) forced positive, THEN rows whose
//      target keypoint is invisible cleared;
//   5. scores: the similarity rows of the visible keypoints, min-max normalised over the whole
//      [Kv, G²] block of this pair, in float32;
//   6. emitted per α (outer) and keypoint (inner): (max score over positives, 1) then (max over
//      negatives, 0); for a row without positives only (max over the row, 0).
// Per category: all pairs' emissions concatenated per α, then scikit-learn's binary
// `average_precision_score` (tie-grouped, no interpolation).
//
// Where the reference cannot run we define a result instead of failing: a pair with Kv = 0
// emits nothing (the reference raises on `min()` of an empty tensor); a pair whose visible block
// is constant normalises to 0 (the reference gets 0/0 = NaN and scikit-learn then raises); a row
// whose negative set is empty emits only its positive (torch raises on an empty `max()`).

import Imaging

/// The reference's KAP α values (the same as PCK's).
package let defaultKAPAlphas: [Float] = [0.1, 0.05, 0.01]

/// What one pair contributes to KAP: per α, scores and labels in emission order.
package struct KAPPairOutput: Sendable, Equatable {
    package var scores: [[Float]]
    package var labels: [[Bool]]
}

package enum KAP {
    /// Squared float32 thresholds `(float32(thr_p)·float32(α))²` per α.
    package static func squaredThresholds(threshold: Double, alphas: [Float]) -> [Float] {
        let t = Float(threshold)
        return alphas.map { a in
            let ta: Float = t * a
            return ta * ta
        }
    }

    /// Squared float32 distances from the pixel `nearest` samples for every patch (`grid.pixel(ofCell:)`) to (x, y),
    /// row-major.
    package static func distanceMap(x: Float, y: Float, grid: PatchGrid) -> [Float] {
        let g = grid.side
        var out = [Float](repeating: 0, count: g * g)
        for r in 0..<g {
            let dy: Float = Float(grid.pixel(ofCell: r)) - y
            let dy2: Float = dy * dy
            for c in 0..<g {
                let dx: Float = Float(grid.pixel(ofCell: c)) - x
                let dx2: Float = dx * dx
                out[r * g + c] = dx2 + dy2
            }
        }
        return out
    }

    /// The predictions and labels of one pair (steps 1–6 above).
    /// - sourceKeypoints, targetKeypoints: `[n, 3]` in the letterbox frame.
    /// - similarity: `[n, G²]`, one row per keypoint row (invisible rows included, ignored).
    /// - threshold: thr_p (float64).
    package static func pairOutput(sourceKeypoints: [Float], targetKeypoints: [Float], similarity: SimilarityMatrix,
                                   threshold: Double, grid: PatchGrid,
                                   alphas: [Float] = defaultKAPAlphas) throws(CorrespondenceError) -> KAPPairOutput {
        let n = try keypointRows(sourceKeypoints, targetKeypoints)
        guard similarity.rows == n, similarity.columns == grid.count else {
            throw .shape("similarity is \(similarity.rows)×\(similarity.columns), need \(n)×\(grid.count)")
        }
        let visible = (0..<n).filter { sourceKeypoints[3 * $0 + 2] > 0 }
        var output = KAPPairOutput(scores: Array(repeating: [], count: alphas.count), labels: Array(repeating: [], count: alphas.count))
        guard !visible.isEmpty else { return output }
        let cells = grid.count

        // Min-max normalisation over the [Kv, G²] block.
        var lo = Float.infinity, hi = -Float.infinity
        for k in visible {
            for v in similarity.row(k) where !v.isNaN {
                lo = min(lo, v)
                hi = max(hi, v)
            }
        }
        let range: Float = hi - lo
        var normalised = [Float](repeating: 0, count: visible.count * cells)
        for (row, k) in visible.enumerated() {
            let src = similarity.row(k)
            var i = row * cells
            for v in src {
                let shifted: Float = v - lo
                normalised[i] = range > 0 ? shifted / range : 0
                i += 1
            }
        }

        let squared = squaredThresholds(threshold: threshold, alphas: alphas)
        // Distance maps and nearest patches do not depend on α.
        var maps: [[Float]] = []
        var nearest: [Int] = []
        for k in visible {
            let d = distanceMap(x: targetKeypoints[3 * k], y: targetKeypoints[3 * k + 1], grid: grid)
            var best = 0
            for j in 1..<cells where d[j] < d[best] { best = j }
            maps.append(d)
            nearest.append(best)
        }

        for (a, t2) in squared.enumerated() {
            for (row, k) in visible.enumerated() {
                let scores = normalised[(row * cells)..<((row + 1) * cells)]
                let targetVisible = targetKeypoints[3 * k + 2] > 0
                if targetVisible {
                    let d = maps[row]
                    var pos = -Float.infinity, neg = -Float.infinity
                    var anyNegative = false
                    for j in 0..<cells {
                        let s = scores[scores.startIndex + j]
                        if d[j] < t2 || j == nearest[row] {
                            pos = max(pos, s)
                        } else {
                            neg = max(neg, s)
                            anyNegative = true
                        }
                    }
                    output.scores[a].append(pos)
                    output.labels[a].append(true)
                    if anyNegative {
                        output.scores[a].append(neg)
                        output.labels[a].append(false)
                    }
                } else {
                    output.scores[a].append(scores.max() ?? 0)
                    output.labels[a].append(false)
                }
            }
        }
        return output
    }
}

/// Pooled KAP of one category: feed it every pair, read `scores`.
package struct KAPAccumulator: Sendable {
    package let alphas: [Float]
    package let grid: PatchGrid
    /// Emitted scores and labels per α, all pairs concatenated in order.
    package private(set) var predictions: [[Float]]
    package private(set) var labels: [[Bool]]
    package private(set) var pairs: Int = 0
    /// Source-visible keypoint rows seen (each emits one or two entries per α).
    package private(set) var keypoints: Int = 0

    package init(grid: PatchGrid, alphas: [Float] = defaultKAPAlphas) {
        self.grid = grid
        self.alphas = alphas
        self.predictions = Array(repeating: [], count: alphas.count)
        self.labels = Array(repeating: [], count: alphas.count)
    }

    package mutating func add(sourceKeypoints: [Float], targetKeypoints: [Float], similarity: SimilarityMatrix,
                              threshold: Double) throws(CorrespondenceError) {
        let out = try KAP.pairOutput(sourceKeypoints: sourceKeypoints, targetKeypoints: targetKeypoints, similarity: similarity,
                                     threshold: threshold, grid: grid, alphas: alphas)
        for a in alphas.indices {
            predictions[a].append(contentsOf: out.scores[a])
            labels[a].append(contentsOf: out.labels[a])
        }
        pairs += 1
        keypoints += (0..<(sourceKeypoints.count / 3)).filter { sourceKeypoints[3 * $0 + 2] > 0 }.count
    }

    /// Average precision per α; nil when nothing was emitted (scikit-learn raises there).
    package var scores: [Double]? {
        var out: [Double] = []
        for a in alphas.indices {
            guard let ap = averagePrecision(labels: labels[a], scores: predictions[a]) else { return nil }
            out.append(ap)
        }
        return out
    }
}

/// scikit-learn's `average_precision_score` for binary labels, exactly:
/// scores sorted in decreasing order, exact ties grouped into one threshold
/// (`_binary_clf_curve`: thresholds at the last index of each distinct value), then
/// `precision_recall_curve` (P = TP/(TP+FP), R = TP/P_total, reversed, with (R, P) = (0, 1)
/// appended) and `AP = −Σ diff(R)·P[:-1] = Σ_m (R_m − R_{m−1})·P_m`, R₀ = 0, no interpolation,
/// clipped at 0. With no positive label scikit-learn sets every recall to 1 and returns 0.
/// nil for no samples or a NaN score (scikit-learn raises for both).
package func averagePrecision(labels: [Bool], scores: [Float]) -> Double? {
    precondition(labels.count == scores.count, "averagePrecision: \(labels.count) labels, \(scores.count) scores")
    guard !scores.isEmpty, !scores.contains(where: { $0.isNaN }) else { return nil }
    let totalPositives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }
    guard totalPositives > 0 else { return 0 }
    let order = scores.indices.sorted { scores[$0] > scores[$1] }
    var ap = 0.0
    var tp = 0, seen = 0
    var previousRecall = 0.0
    for (position, i) in order.enumerated() {
        seen += 1
        if labels[i] { tp += 1 }
        let groupEnds = position == order.count - 1 || scores[order[position + 1]] != scores[i]
        guard groupEnds else { continue }
        let recall = Double(tp) / Double(totalPositives)
        let precision = Double(tp) / Double(seen)
        ap += (recall - previousRecall) * precision
        previousRecall = recall
    }
    return max(0, ap)
}

extension KAPAccumulator {
    /// An accumulator holding these outputs: a shard's state read back from its partial report.
    package init(grid: PatchGrid, alphas: [Float] = defaultKAPAlphas, predictions: [[Float]], labels: [[Bool]], pairs: Int, keypoints: Int) {
        precondition(predictions.count == alphas.count && labels.count == alphas.count
                     && zip(predictions, labels).allSatisfy { $0.count == $1.count }, "KAPAccumulator: outputs do not match the alphas")
        self.init(grid: grid, alphas: alphas)
        self.predictions = predictions; self.labels = labels; self.pairs = pairs; self.keypoints = keypoints
    }

    /// Appends another accumulator's outputs after this one's. Average precision depends only on the multiset of
    /// (score, label), so merging shards in any order gives the unsharded score; in shard order, the same arrays.
    package mutating func merge(_ other: KAPAccumulator) {
        precondition(other.alphas == alphas && other.grid == grid, "KAPAccumulator.merge: different alphas or grid")
        for a in alphas.indices {
            predictions[a] += other.predictions[a]
            labels[a] += other.labels[a]
        }
        pairs += other.pairs
        keypoints += other.keypoints
    }
}
