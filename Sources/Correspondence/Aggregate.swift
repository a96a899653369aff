// Category aggregates of PCK and KAP (METHOD §6.2, H27): the reference prints an unweighted
// ("Average") mean over categories and a "Weighted" mean with fixed weights, the SPair-71k
// test-pair counts of its 18 categories.
//
// Our weighted mean: with exactly the 18 SPair categories, the reference's fixed weights; for any
// other category set (a subset, synthetic data, unseen classes) the number of pairs evaluated in
// each category. On the full SPair test split both are the same numbers, because the reference
// weights ARE the test pair counts (690 aeroplane pairs, ...), so pair-count weighting is the
// reference's definition carried over to data where its fixed list does not apply. (The
// reference switches to unit weights with `--SAMPLE n`; `uniform` reproduces that.)
//
// Categories without a score (no keypoint evaluated, nothing emitted) are left out of both
// means; the reference would print NaN there.

/// How categories are weighted in the "weighted" aggregate. The fixed weights are a parameter: the SPair
/// module owns the reference's list (`SPairCategories.testPairCounts`).
package enum CategoryWeighting: Sendable, Equatable {
    /// Fixed weights by category, under a name the report prints (the reference's SPair test-pair counts).
    case fixed(name: String, weights: [String: Double])
    /// Pairs evaluated per category.
    case pairCounts
    /// Every category 1 (the reference with `--SAMPLE n`).
    case uniform

    /// The name reports print.
    package var name: String {
        switch self {
        case let .fixed(name, _): name
        case .pairCounts: "pairCounts"
        case .uniform: "uniform"
        }
    }

    /// `fixed` when the categories are exactly its keys, else `pairCounts`.
    package static func automatic(for categories: [String], fixed: CategoryWeighting) -> CategoryWeighting {
        guard case let .fixed(_, weights) = fixed else { return fixed }
        return Set(categories) == Set(weights.keys) && categories.count == weights.count ? fixed : .pairCounts
    }
}

/// One category's metric: scores per α (nil when there was nothing to score) and what they pool.
package struct CategoryScore: Sendable, Equatable {
    package var category: String
    package var pairs: Int
    package var keypoints: Int
    package var scores: [Double]?

    package init(category: String, pairs: Int, keypoints: Int, scores: [Double]?) {
        self.category = category; self.pairs = pairs; self.keypoints = keypoints; self.scores = scores
    }
}

/// Means over categories, per α.
package struct CategoryAggregate: Sendable, Equatable {
    /// Unweighted mean ("Average PCK@α").
    package var macro: [Double]
    /// Weighted mean ("Weighted PCK@α").
    package var weighted: [Double]
    package var weighting: CategoryWeighting
    /// Categories that entered the means.
    package var categories: [String]
}

package enum Aggregation {
    /// The weight of a category under a weighting; nil when the weighting has none for it.
    package static func weight(of score: CategoryScore, _ weighting: CategoryWeighting) -> Double? {
        switch weighting {
        case .uniform: 1
        case .pairCounts: Double(score.pairs)
        case let .fixed(_, weights): weights[score.category]
        }
    }

    /// Macro and weighted means of the scored categories (nil when none is scored, when their
    /// α counts differ, or when the weights sum to 0 or are missing for a category).
    package static func aggregate(_ scores: [CategoryScore], weighting: CategoryWeighting) -> CategoryAggregate? {
        let scored = scores.filter { $0.scores != nil }
        guard let width = scored.first?.scores?.count, scored.allSatisfy({ $0.scores!.count == width }) else { return nil }
        var weights: [Double] = []
        for s in scored {
            guard let w = weight(of: s, weighting) else { return nil }
            weights.append(w)
        }
        let total = weights.reduce(0, +)
        guard total > 0 else { return nil }
        var macro = [Double](repeating: 0, count: width), weighted = [Double](repeating: 0, count: width)
        for (s, w) in zip(scored, weights) {
            for a in 0..<width {
                macro[a] += s.scores![a]
                weighted[a] += w * s.scores![a]
            }
        }
        return CategoryAggregate(macro: macro.map { $0 / Double(scored.count) }, weighted: weighted.map { $0 / total },
                                 weighting: weighting, categories: scored.map(\.category))
    }
}
