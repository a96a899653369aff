import Correspondence
import Features
import Foundation
import Imaging

/// The `"shard"` object of a partial report: the accumulators behind every score rather than the scores, because
/// neither metric averages (PCK is a ratio of counts pooled over a category, KAP an average precision over its pooled
/// outputs). Merging all N gives the accumulators, hence the report, of the unsharded run; only `stats` (time,
/// images embedded, cache hits) differ, as they do between any two runs.
package enum ShardReport {
    static let format = "spherecorr-evaluation-shard"
    static let version = 1

    /// - config: the configuration the unsharded run would report (the merged report's).
    package static func json(_ r: EvaluationResult, shard: Shard, resolution: Int, config: [String: Any]) -> [String: Any] {
        func pck(_ a: PCKAccumulator?) -> Any {
            guard let a else { return NSNull() }
            return ["correct": a.correct, "evaluated": a.evaluated, "pairs": a.pairs] as [String: Any]
        }
        func kap(_ a: KAPAccumulator?) -> Any {
            guard let a else { return NSNull() }
            return ["alphas": a.alphas.map(Double.init), "scores": a.predictions.map(encode), "labels": a.labels.map(encode),
                    "pairs": a.pairs, "keypoints": a.keypoints] as [String: Any]
        }
        // --visibility: the four counts of the check, and the cycle confidence's outputs (its KAP does not average).
        func visibility(_ v: VisibilityScore?) -> Any {
            guard let v else { return NSNull() }
            return ["true_positives": v.truePositives, "false_positives": v.falsePositives, "false_negatives": v.falseNegatives,
                    "true_negatives": v.trueNegatives] as [String: Any]
        }
        func cycle(_ c: CycleConfidence?) -> Any {
            guard let c else { return NSNull() }
            return ["alphas": c.alphas.map(Double.init), "scores": encode(c.scores), "labels": c.labels.map(encode)] as [String: Any]
        }
        let runs: [[String: Any]] = r.runs.map { run in
            ["alpha": run.alpha, "categories": run.categories.map { c -> [String: Any] in
                ["category": c.category, "pck": pck(c.pckState), "kap": kap(c.kapState), "visibility": visibility(c.visibility),
                 "cycle": cycle(c.cycle)]
            }]
        }
        return [
            "format": format, "version": version, "index": shard.index, "count": shard.count, "pairs_total": r.pairsTotal,
            "resolution": resolution, "patch": [r.grid.patch, r.grid.stride], "config": config, "thresholds": r.thresholds.map(Double.init), "skipped": r.skipped,
            "backbone": r.backbone, "bundle": r.bundle ?? NSNull(), "weighting": r.weighting.name,
            "pairs_evaluated": r.pairsEvaluated, "images_embedded": r.imagesEmbedded, "feature_cache_hits": r.cacheHits,
            "seconds": r.seconds, "runs": runs,
        ]
    }

    /// The whole run's result and configuration from its N partial reports (any order), each `(file, parsed JSON)`.
    /// Refuses a set that is not exactly shards 0..<N of one run, naming the file.
    package static func merge(_ reports: [(file: String, json: [String: Any])]) throws -> (EvaluationResult, config: [String: Any]) {
        guard !reports.isEmpty else { throw EvaluationError.config("merge-reports needs the partial reports of evaluate --shard K/N") }
        var shards: [(file: String, s: Fields)] = []
        for (file, json) in reports {
            guard let s = json["shard"] as? [String: Any] else {
                throw EvaluationError.data(file: file, detail: "not a partial report: no \"shard\" object (write one with evaluate --shard K/N)")
            }
            let f = Fields(file: file, values: s)
            guard try f.string("format") == format, try f.int("version") == version else {
                throw EvaluationError.data(file: file, detail: "\"shard\" is not a \(format) version \(version) object")
            }
            shards.append((file, f))
        }
        let first = shards[0].s
        let count = try first.int("count")
        var byIndex: [Int: Fields] = [:]
        for (file, s) in shards {
            let n = try s.int("count")
            guard n == count else { throw EvaluationError.data(file: file, detail: "a shard of \(n), but \(first.file) is a shard of \(count)") }
            let k = try s.int("index")
            if let other = byIndex[k] { throw EvaluationError.data(file: file, detail: "shard \(k)/\(count) again (also \(other.file))") }
            byIndex[k] = s
            for key in ["config", "pairs_total", "resolution", "thresholds", "skipped", "backbone", "bundle", "weighting"] {
                guard let a = s.values[key], let b = first.values[key], sameJSON(a, b) else {
                    throw EvaluationError.data(file: file, detail: "\"\(key)\" differs from \(first.file)'s: not shards of one run")
                }
            }
            guard sameJSON(s.values["patch"] ?? NSNull(), first.values["patch"] ?? NSNull()) else {  // optional, see below
                throw EvaluationError.data(file: file, detail: "\"patch\" differs from \(first.file)'s: not shards of one run")
            }
        }
        let missing = (0..<count).filter { byIndex[$0] == nil }
        guard missing.isEmpty else {
            throw EvaluationError.config("missing shard(s) \(missing.map { "\($0)/\(count)" }.joined(separator: ", ")) of \(count)")
        }
        let ordered = (0..<count).map { byIndex[$0]! }
        let resolution = try first.int("resolution")
        // "patch": [p, s] of the backbone's grid (absent in shards written before DINOv1: DINOv2's 14).
        let patch = (first.values["patch"] as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? [PatchGrid.patchSize, PatchGrid.patchSize]
        guard patch.count == 2, let grid = PatchGrid(resolution: resolution, patch: patch[0], stride: patch[1]) else {
            throw EvaluationError.data(file: first.file, detail: "\"resolution\" \(resolution) with \"patch\" \(patch) is not a patch grid (R a multiple of p, s dividing p)")
        }
        // Shard 0's accumulators, then every other shard's merged in, in order.
        var runs = try first.runs(grid: grid)
        for s in ordered where s !== first {
            let other = try s.runs(grid: grid)
            guard other.count == runs.count, zip(other, runs).allSatisfy({ $0.alpha == $1.alpha && $0.categories.map(\.category) == $1.categories.map(\.category) }) else {
                throw EvaluationError.data(file: s.file, detail: "its alphas or categories differ from \(first.file)'s")
            }
            for (ri, run) in other.enumerated() {
                for (ci, c) in run.categories.enumerated() {
                    let mine = runs[ri].categories[ci]
                    var pck = mine.pckState, kap = mine.kapState, vis = mine.visibility, cyc = mine.cycle
                    guard (pck == nil) == (c.pckState == nil), (kap == nil) == (c.kapState == nil),
                          (vis == nil) == (c.visibility == nil), (cyc == nil) == (c.cycle == nil) else {
                        throw EvaluationError.data(file: s.file, detail: "its metrics differ from \(first.file)'s")
                    }
                    if let p = c.pckState { pck!.merge(p) }
                    if let k = c.kapState {
                        guard k.alphas == kap!.alphas else { throw EvaluationError.data(file: s.file, detail: "its KAP alphas differ from \(first.file)'s") }
                        kap!.merge(k)
                    }
                    if let v = c.visibility { vis!.merge(v) }
                    if let y = c.cycle {
                        guard y.alphas == cyc!.alphas else { throw EvaluationError.data(file: s.file, detail: "its cycle-KAP alphas differ from \(first.file)'s") }
                        cyc!.merge(y)
                    }
                    runs[ri].categories[ci] = CategoryResult(category: c.category, pck: pck, kap: kap, visibility: vis, cycle: cyc)
                }
            }
        }
        let evaluated = try ordered.reduce(0) { $0 + (try $1.int("pairs_evaluated")) }
        let total = try first.int("pairs_total")
        guard evaluated == total else { throw EvaluationError.config("the shards evaluated \(evaluated) pairs of \(total)") }
        var result = EvaluationResult(
            runs: runs, thresholds: try first.doubles("thresholds").map(Float.init), skipped: try first.strings("skipped"),
            pairsEvaluated: evaluated, pairsTotal: evaluated,
            imagesEmbedded: try ordered.reduce(0) { $0 + (try $1.int("images_embedded")) },
            cacheHits: try ordered.reduce(0) { $0 + (try $1.int("feature_cache_hits")) },
            seconds: try ordered.reduce(0) { $0 + (try $1.double("seconds")) },
            backbone: try first.string("backbone"), bundle: first.values["bundle"] as? String,
            weighting: try weighting(named: try first.string("weighting"), file: first.file), grid: grid)
        guard let config = first.values["config"] as? [String: Any] else {
            throw EvaluationError.data(file: first.file, detail: "\"shard.config\" is not an object")
        }
        result.refine = try refinement(config["refine"], file: first.file)
        return (result, config)
    }

    /// The refinement a report's configuration records (`Refinement.record`; absent: none, as before issue #14).
    static func refinement(_ record: Any?, file: String) throws -> Refinement {
        guard let record else { return .none }
        guard let r = record as? [String: Any], let method = r["method"] as? String else {
            throw EvaluationError.data(file: file, detail: "\"shard.config.refine\" must be an object with a \"method\"")
        }
        do {
            return try Refinement.parse(method: method, window: (r["window"] as? NSNumber)?.intValue, temperature: (r["temperature"] as? NSNumber)?.doubleValue)
        } catch { throw EvaluationError.data(file: file, detail: "\"shard.config.refine\": \(error)") }
    }

    static func sameJSON(_ a: Any, _ b: Any) -> Bool {
        let canonical = { (v: Any) in try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys]) }
        return canonical(a).map { $0 == canonical(b) } ?? false
    }

    static func weighting(named name: String, file: String) throws -> CategoryWeighting {
        for w in [CategoryWeighting.pairCounts, .uniform, .spairTestPairCounts] where w.name == name { return w }
        throw EvaluationError.data(file: file, detail: "unknown category weighting '\(name)'")
    }

    // Float32 scores and Bool labels as base64 of little-endian bytes: exact, and a quarter of the size of decimals.
    static func encode(_ v: [Float]) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(4 * v.count)
        for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 } }
        return Data(bytes).base64EncodedString()
    }

    static func encode(_ v: [Bool]) -> String { Data(v.map { $0 ? 1 : 0 }).base64EncodedString() }

    /// Typed access to one shard object, with errors that name the file and the key.
    final class Fields {
        let file: String
        let values: [String: Any]
        init(file: String, values: [String: Any]) { self.file = file; self.values = values }

        func bad(_ key: String, _ what: String) -> EvaluationError { .data(file: file, detail: "\"shard.\(key)\": \(what)") }
        func value(_ key: String) throws -> Any {
            guard let v = values[key] else { throw bad(key, "missing") }
            return v
        }
        func int(_ key: String) throws -> Int {
            guard let n = try value(key) as? NSNumber, let i = Int(exactly: n.doubleValue) else { throw bad(key, "not an integer") }
            return i
        }
        func double(_ key: String) throws -> Double {
            guard let n = try value(key) as? NSNumber else { throw bad(key, "not a number") }
            return n.doubleValue
        }
        func string(_ key: String) throws -> String {
            guard let s = try value(key) as? String else { throw bad(key, "not a string") }
            return s
        }
        func strings(_ key: String) throws -> [String] {
            guard let s = try value(key) as? [String] else { throw bad(key, "not a list of strings") }
            return s
        }
        func doubles(_ key: String) throws -> [Double] {
            guard let s = try value(key) as? [NSNumber] else { throw bad(key, "not a list of numbers") }
            return s.map(\.doubleValue)
        }

        func runs(grid: PatchGrid) throws -> [AlphaRun] {
            guard let runs = try value("runs") as? [[String: Any]] else { throw bad("runs", "not a list of objects") }
            return try runs.enumerated().map { ri, run in
                let at = "runs[\(ri)]"
                guard let alpha = (run["alpha"] as? NSNumber)?.doubleValue, let cats = run["categories"] as? [[String: Any]] else {
                    throw bad(at, "needs \"alpha\" and \"categories\"")
                }
                return AlphaRun(alpha: alpha, categories: try cats.enumerated().map { ci, c in
                    try category(c, at: "\(at).categories[\(ci)]", grid: grid)
                })
            }
        }

        private func category(_ c: [String: Any], at: String, grid: PatchGrid) throws -> CategoryResult {
            guard let name = c["category"] as? String else { throw bad(at, "no \"category\"") }
            var pck: PCKAccumulator?
            if let p = c["pck"] as? [String: Any] {
                guard let correct = (p["correct"] as? [NSNumber])?.map(\.intValue), let evaluated = (p["evaluated"] as? NSNumber)?.intValue,
                      let pairs = (p["pairs"] as? NSNumber)?.intValue, correct.count == defaultPCKAlphas.count else {
                    throw bad("\(at).pck", "needs \"correct\" (\(defaultPCKAlphas.count) counts), \"evaluated\" and \"pairs\"")
                }
                pck = PCKAccumulator(correct: correct, evaluated: evaluated, pairs: pairs)
            }
            var kap: KAPAccumulator?
            if let k = c["kap"] as? [String: Any] {
                guard let alphas = (k["alphas"] as? [NSNumber])?.map({ Float($0.doubleValue) }),
                      let scores = k["scores"] as? [String], let labels = k["labels"] as? [String],
                      let pairs = (k["pairs"] as? NSNumber)?.intValue, let keypoints = (k["keypoints"] as? NSNumber)?.intValue,
                      scores.count == alphas.count, labels.count == alphas.count else {
                    throw bad("\(at).kap", "needs \"alphas\", \"scores\" and \"labels\" (one per alpha), \"pairs\" and \"keypoints\"")
                }
                let s = try scores.map { try floats($0, at: "\(at).kap.scores") }
                let l = try labels.map { try bools($0, at: "\(at).kap.labels") }
                guard zip(s, l).allSatisfy({ $0.count == $1.count }) else { throw bad("\(at).kap", "as many labels as scores needed") }
                kap = KAPAccumulator(grid: grid, alphas: alphas, predictions: s, labels: l, pairs: pairs, keypoints: keypoints)
            }
            var visibility: VisibilityScore?
            if let v = c["visibility"] as? [String: Any] {
                let keys = ["true_positives", "false_positives", "false_negatives", "true_negatives"]
                let n = keys.compactMap { (v[$0] as? NSNumber)?.intValue }
                guard n.count == 4 else { throw bad("\(at).visibility", "needs \(keys.map { "\"\($0)\"" }.joined(separator: ", "))") }
                visibility = VisibilityScore(truePositives: n[0], falsePositives: n[1], falseNegatives: n[2], trueNegatives: n[3])
            }
            var cycle: CycleConfidence?
            if let y = c["cycle"] as? [String: Any] {
                guard let alphas = (y["alphas"] as? [NSNumber])?.map({ Float($0.doubleValue) }), let scores = y["scores"] as? String,
                      let labels = y["labels"] as? [String] else {
                    throw bad("\(at).cycle", "needs \"alphas\", \"scores\" and \"labels\" (one per alpha)")
                }
                do {
                    cycle = try CycleConfidence(alphas: alphas, scores: try floats(scores, at: "\(at).cycle.scores"),
                                                labels: try labels.map { try bools($0, at: "\(at).cycle.labels") })
                } catch let e as CorrespondenceError { throw bad("\(at).cycle", "\(e)") }
            }
            return CategoryResult(category: name, pck: pck, kap: kap, visibility: visibility, cycle: cycle)
        }

        private func floats(_ b64: String, at: String) throws -> [Float] {
            guard let d = Data(base64Encoded: b64), d.count % 4 == 0 else { throw bad(at, "not base64 of float32 values") }
            let b = [UInt8](d)
            return stride(from: 0, to: b.count, by: 4).map { i -> Float in
                let low = UInt32(b[i]) | UInt32(b[i + 1]) << 8
                let high = UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
                return Float(bitPattern: low | high)
            }
        }

        private func bools(_ b64: String, at: String) throws -> [Bool] {
            guard let d = Data(base64Encoded: b64), d.allSatisfy({ $0 <= 1 }) else { throw bad(at, "not base64 of 0/1 bytes") }
            return d.map { $0 == 1 }
        }
    }
}
