import Correspondence
import Foundation

/// R.json (docs/CONTRACTS.md): `{"pck": {"<category>": {"0.1": x, "0.05": y, "0.01": z}, …, "macro": {…}, "weighted": {…}},
/// "kap": {…}, "config": {…}}`; several alphas → one such object per alpha, in order, under `"runs"`.
package enum Report {
    package static func json(_ r: EvaluationResult, config: [String: Any]) -> [String: Any] {
        var cfg = config
        cfg["weighting"] = r.weighting.name
        cfg["pairs_evaluated"] = r.pairsEvaluated
        cfg["pairs_skipped"] = r.skipped.count
        func table(_ run: AlphaRun, _ pick: (CategoryResult) -> [Double]?) -> [String: Any] {
            var t: [String: Any] = [:]
            for c in run.categories { t[c.category] = keyed(pick(c), r.thresholds) }
            let scores = run.categories.map { CategoryScore(category: $0.category, pairs: $0.pairs, keypoints: $0.pckKeypoints, scores: pick($0)) }
            let agg = Aggregation.aggregate(scores, weighting: r.weighting)
            t["macro"] = keyed(agg?.macro, r.thresholds)
            t["weighted"] = keyed(agg?.weighted, r.thresholds)
            return t
        }
        func one(_ run: AlphaRun) -> [String: Any] {
            var o: [String: Any] = ["alpha": run.alpha]
            if run.categories.contains(where: { $0.pck != nil }) { o["pck"] = table(run) { $0.pck } }
            if run.categories.contains(where: { $0.kap != nil }) { o["kap"] = table(run) { $0.kap } }
            if run.categories.contains(where: { $0.visibility != nil }) {
                var t: [String: Any] = [:]
                for c in run.categories {
                    guard let v = c.visibility else { continue }
                    t[c.category] = ["precision": v.precision ?? NSNull(), "recall": v.recall ?? NSNull(), "f1": v.f1 ?? NSNull(),
                                     "hidden": v.truePositives + v.falseNegatives,
                                     "keypoints": v.truePositives + v.falseNegatives + v.falsePositives + v.trueNegatives,
                                     "cycle_kap": Dictionary(uniqueKeysWithValues: zip(r.thresholds, c.cycleKAP ?? []).map { (label($0), $1.map { $0 as Any } ?? NSNull()) })]
                                     as [String: Any]
                }
                o["visibility"] = t
            }
            o["pairs"] = Dictionary(uniqueKeysWithValues: run.categories.map { ($0.category, $0.pairs) })
            var c = cfg
            c["alpha"] = run.alpha
            o["config"] = c
            return o
        }
        // Run statistics vary with the machine and the cache; everything else is a function of the inputs.
        let stats: [String: Any] = ["seconds": (r.seconds * 1000).rounded() / 1000, "images_embedded": r.imagesEmbedded,
                                    "feature_cache_hits": r.cacheHits,
                                    "pairs_per_second": (Double(r.pairsEvaluated) / max(r.seconds, 1e-9) * 100).rounded() / 100]
        var out: [String: Any]
        if r.runs.count == 1 {
            out = one(r.runs[0])
        } else {
            out = ["runs": r.runs.map(one), "config": cfg]
        }
        if !r.skipped.isEmpty { out["skipped"] = r.skipped }
        out["stats"] = stats
        return out
    }

    /// {"0.1": x, "0.05": y, "0.01": z}; NSNull for a category with nothing to score.
    static func keyed(_ v: [Double]?, _ thresholds: [Float]) -> Any {
        guard let v else { return NSNull() }
        return Dictionary(uniqueKeysWithValues: zip(thresholds, v).map { (label($0), $1) })
    }

    static func label(_ t: Float) -> String {
        // 0.1, 0.05, 0.01 as the reference prints them.
        String(format: "%g", Double(t))
    }

    /// The paper's Tables 1 and 2 layout: rows = methods (one per alpha), columns = categories + averages;
    /// one table per metric and threshold.
    package static func markdown(_ r: EvaluationResult, title: String) -> String {
        var out = "# \(title)\n\n"
        out += "Backbone: \(r.backbone); bundle: \(r.bundle ?? "none"); \(r.pairsEvaluated) pairs"
        out += r.skipped.isEmpty ? "" : ", \(r.skipped.count) invalid pairs skipped"
        out += "; weighted average: \(r.weighting.name).\n"
        // Issue #14: which points PCK scored (patch centres are the paper's) and whether visibility was checked.
        out += "PCK predictions: " + (r.refine == .none ? "patch centres (no refinement, the paper's protocol)" : "\(r.refine) refinement") + ".\n"
        let visibility = r.runs.contains { $0.categories.contains { $0.visibility != nil } }
        out += visibility ? "Visibility: forward–backward check scored against the target-invisible keypoints (tables below).\n\n"
                          : "Visibility: not scored (evaluate --visibility).\n\n"
        let cats = r.runs.first?.categories.map(\.category) ?? []
        func method(_ a: Double) -> String {
            a == 0 ? "DINOv2 (α = 0)" : (a == 1 ? "sphere only (α = 1)" : "DINOv2 + sphere (α = \(trim(a)))")
        }
        for (name, pick) in [("PCK", { (c: CategoryResult) in c.pck }), ("KAP", { (c: CategoryResult) in c.kap })] {
            guard r.runs.contains(where: { $0.categories.contains { pick($0) != nil } }) else { continue }
            for (ti, t) in r.thresholds.enumerated() {
                out += "## \(name)@\(label(t))\n\n"
                out += "| method | " + cats.joined(separator: " | ") + " | avg | w.avg |\n"
                out += "|---|" + String(repeating: "---:|", count: cats.count + 2) + "\n"
                for run in r.runs {
                    let scores = run.categories.map { CategoryScore(category: $0.category, pairs: $0.pairs, keypoints: $0.pckKeypoints, scores: pick($0)) }
                    let agg = Aggregation.aggregate(scores, weighting: r.weighting)
                    let cells = run.categories.map { pick($0).map { pct($0[ti]) } ?? "–" }
                    out += "| \(method(run.alpha)) | " + cells.joined(separator: " | ")
                        + " | \(agg.map { pct($0.macro[ti]) } ?? "–") | \(agg.map { pct($0.weighted[ti]) } ?? "–") |\n"
                }
                out += "\n"
            }
        }
        if visibility {
            // Averages are plain means over the categories that have a value (these are not the paper's metrics).
            func row(_ run: AlphaRun, _ pick: (CategoryResult) -> Double?) -> String {
                let v = run.categories.map(pick)
                let defined = v.compactMap { $0 }
                return "| \(method(run.alpha)) | " + v.map { $0.map(pct) ?? "–" }.joined(separator: " | ")
                    + " | \(defined.isEmpty ? "–" : pct(defined.reduce(0, +) / Double(defined.count))) |\n"
            }
            var tables: [(String, (CategoryResult) -> Double?)] = [
                ("Not visible: precision", { $0.visibility?.precision }), ("Not visible: recall", { $0.visibility?.recall }),
                ("Not visible: F1", { $0.visibility?.f1 }),
            ]
            for (ti, t) in r.thresholds.enumerated() {
                tables.append(("Cycle-score KAP@\(label(t))", { c in (c.cycleKAP?[ti]).flatMap { $0 } }))
            }
            for (name, pick) in tables {
                out += "## \(name)\n\n"
                out += "| method | " + cats.joined(separator: " | ") + " | avg |\n"
                out += "|---|" + String(repeating: "---:|", count: cats.count + 1) + "\n"
                for run in r.runs { out += row(run, pick) }
                out += "\n"
            }
        }
        return out
    }

    static func pct(_ v: Double) -> String { String(format: "%.1f", 100 * v) }
    static func trim(_ a: Double) -> String { String(format: "%g", a) }
}
