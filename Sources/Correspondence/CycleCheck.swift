// "Not visible" answers (issue #14, outside the paper): a forward–backward check. A source point is matched to
// the target (its patch's best target patch), that target patch is matched back to the source (its best source
// patch, same blend and candidates), and the cycle error is the distance from where it started (the centre of
// the query's patch, so that a consistent cycle gives exactly 0 at any patch size) to where it lands (the centre
// of the patch it comes back to). A part the target does not show has no true match, so its best target patch
// usually prefers another source patch: a large cycle error. The point is `visible` when the error is at most a
// threshold.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

package enum CycleCheck {
    /// Default visibility threshold as a fraction of the source image's longer side (0.1: PCK@0.1 on the
    /// whole image; about 3 patches at G = 32).
    package static let defaultFraction = 0.1

    /// Euclidean distance from where the cycle starts to where it lands, in the same pixels.
    package static func error(from p: (Double, Double), back q: (Double, Double)) -> Double {
        hypot(q.0 - p.0, q.1 - p.1)
    }

    /// `error ≤ threshold` (a non-finite error is never visible).
    package static func visible(error: Double, threshold: Double) -> Bool { error.isFinite && error <= threshold }

    /// Best source row of each forward target column over a similarity matrix read both ways: `forward[k]` is
    /// the target column chosen for query k; `backward` is `[targets, sources]` (rows = target tokens). Returns
    /// the source index each target column maps back to, first index on ties.
    package static func backward(_ backward: SimilarityMatrix, targets: [Int]) throws(CorrespondenceError) -> [Int] {
        try targets.map { t throws(CorrespondenceError) in
            guard t >= 0, t < backward.rows else { throw .invalidArgument("target \(t) outside 0..<\(backward.rows)") }
            return firstArgmax(backward.values, from: t * backward.columns, count: backward.columns).index
        }
    }
}

/// Precision, recall and F1 of "not visible" predictions against labels (positive = not visible in the target).
package struct VisibilityScore: Sendable, Equatable {
    package var truePositives = 0, falsePositives = 0, falseNegatives = 0, trueNegatives = 0
    package init() {}
    package init(truePositives: Int, falsePositives: Int, falseNegatives: Int, trueNegatives: Int) {
        self.truePositives = truePositives; self.falsePositives = falsePositives
        self.falseNegatives = falseNegatives; self.trueNegatives = trueNegatives
    }

    /// The counts of both (evaluation shards: the counts of their union).
    package mutating func merge(_ o: VisibilityScore) {
        truePositives += o.truePositives; falsePositives += o.falsePositives
        falseNegatives += o.falseNegatives; trueNegatives += o.trueNegatives
    }

    /// One keypoint: `predictedHidden` from the cycle check, `hidden` from the dataset.
    package mutating func add(predictedHidden: Bool, hidden: Bool) {
        switch (predictedHidden, hidden) {
        case (true, true): truePositives += 1
        case (true, false): falsePositives += 1
        case (false, true): falseNegatives += 1
        case (false, false): trueNegatives += 1
        }
    }

    /// nil when undefined (nothing predicted hidden / nothing hidden).
    package var precision: Double? { truePositives + falsePositives == 0 ? nil : Double(truePositives) / Double(truePositives + falsePositives) }
    package var recall: Double? { truePositives + falseNegatives == 0 ? nil : Double(truePositives) / Double(truePositives + falseNegatives) }
    package var f1: Double? {
        guard let p = precision, let r = recall, p + r > 0 else { return precision == nil && recall == nil ? nil : 0 }
        return 2 * p * r / (p + r)
    }
}

/// The cycle score as a confidence (issue #14): every source-visible keypoint's match, scored by −cycle error,
/// positive at α when the target sees the keypoint and the match is within α·thr_p (PCK's test); AP per α.
package struct CycleConfidence: Sendable {
    package let alphas: [Float]
    package private(set) var scores: [Float] = []
    package private(set) var labels: [[Bool]]
    package init(alphas: [Float] = defaultPCKAlphas) { self.alphas = alphas; labels = alphas.map { _ in [] } }

    /// A confidence rebuilt from its outputs (evaluation shards): one label list per α, as long as `scores`.
    package init(alphas: [Float], scores: [Float], labels: [[Bool]]) throws(CorrespondenceError) {
        guard labels.count == alphas.count, labels.allSatisfy({ $0.count == scores.count }) else {
            throw .shape("\(labels.count) label lists of \(labels.map(\.count)) for \(alphas.count) alphas and \(scores.count) scores")
        }
        self.alphas = alphas; self.scores = scores; self.labels = labels
    }

    /// Appends `o`'s outputs (same α): shards merged in order give the unsharded run's outputs in its order.
    package mutating func merge(_ o: CycleConfidence) {
        scores += o.scores
        for a in labels.indices { labels[a] += o.labels[a] }
    }

    package mutating func add(cycleError: Double, correct: [Bool]) {
        scores.append(Float(-cycleError))
        for a in alphas.indices { labels[a].append(correct[a]) }
    }

    /// AP per α (nil for an α without a positive).
    package var kap: [Double?] { labels.map { averagePrecision(labels: $0, scores: scores) } }
}
