import Foundation
import Testing

/// `evaluate --shard K/N` and `merge-reports`, run as a user would on the synthetic SPair-format dev set: the merged
/// report equals the unsharded run's, key for key and bit for bit, except the run statistics.
@Suite struct ShardCLITests {
    let synth = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")

    func evaluate(_ report: URL, _ extra: [String] = []) throws -> Run {
        try run("spherecorr-train", ["evaluate", "--data", synth.path, "--backbone", dinoFixtures.appendingPathComponent("plain.safetensors").path,
                                     "--bundle", repoRoot.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path,
                                     "--alpha", "0,0.2,1", "--metric", "both", "--resolution", "84", "--threads", "2",
                                     "--report", report.path, "--quiet"] + extra)
    }

    /// The report without "stats" (time, images embedded, cache hits: they differ between any two runs), canonical.
    func canonical(_ url: URL) throws -> String {
        var obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        obj["stats"] = nil
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self)
    }

    @Test func mergedShardsEqualTheUnshardedRun() throws {
        try #require(FileManager.default.fileExists(atPath: synth.path), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = dir.appendingPathComponent("whole.json")
        let r = try evaluate(whole)
        try #require(r.status == 0, "\(r.stderr)")

        // 4 shards of 90 pairs in 3 categories: boundaries fall inside categories.
        let n = 4
        var parts: [URL] = []
        var counts: [Int] = []
        for k in 0..<n {
            let part = dir.appendingPathComponent("shard-\(k).json")
            let rk = try evaluate(part, ["--shard", "\(k)/\(n)"])
            try #require(rk.status == 0, "shard \(k): \(rk.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: part)) as? [String: Any])
            let shard = try #require(obj["shard"] as? [String: Any])
            counts.append(try #require(shard["pairs_evaluated"] as? Int))
            parts.append(part)
        }
        #expect(counts.reduce(0, +) == 90 && counts.allSatisfy { abs($0 - 90 / n) <= 1 }, "\(counts)")

        let merged = dir.appendingPathComponent("merged.json")
        let m = try run("spherecorr-train", ["merge-reports"] + parts.reversed().map(\.path) + ["--report", merged.path])
        try #require(m.status == 0, "\(m.stderr)")
        let got = try canonical(merged), expected = try canonical(whole)
        #expect(got == expected, "merged report differs:\n\(firstDifference(got, expected))")

        // Not a whole run: a shard missing, a shard twice, a report that is not a shard's.
        let missing = try run("spherecorr-train", ["merge-reports"] + parts.dropLast().map(\.path) + ["--report", merged.path])
        #expect(missing.status != 0 && missing.stderr.contains("missing shard(s) 3/4"), "\(missing.stderr)")
        let twice = try run("spherecorr-train", ["merge-reports"] + parts.map(\.path) + [parts[1].path, "--report", merged.path])
        #expect(twice.status != 0 && twice.stderr.contains("shard 1/4 again"), "\(twice.stderr)")
        let plain = try run("spherecorr-train", ["merge-reports", whole.path, "--report", merged.path])
        #expect(plain.status != 0 && plain.stderr.contains("whole.json") && plain.stderr.contains("not a partial report"), "\(plain.stderr)")
    }

    /// Issue #14: `--visibility` (precision/recall/F1 counts and the cycle-score KAP) and `--refine` survive sharding
    /// exactly, and the Markdown tables say which refinement and that visibility was scored.
    @Test func visibilityAndRefinementMergeExactly() throws {
        try #require(FileManager.default.fileExists(atPath: synth.path), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let extra = ["--visibility", "--refine", "soft-argmax", "--window", "2"]
        let whole = dir.appendingPathComponent("whole.json"), wholeMD = dir.appendingPathComponent("whole.md")
        let r = try evaluate(whole, extra + ["--markdown", wholeMD.path])
        try #require(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: whole)) as? [String: Any])
        let runs = try #require(obj["runs"] as? [[String: Any]])
        #expect(runs.allSatisfy { ($0["visibility"] as? [String: Any])?.count == 3 }, "every alpha scores visibility in 3 categories")
        let n = 3
        var parts: [URL] = []
        for k in 0..<n {
            let part = dir.appendingPathComponent("shard-\(k).json")
            let rk = try evaluate(part, extra + ["--shard", "\(k)/\(n)"])
            try #require(rk.status == 0, "shard \(k): \(rk.stderr)")
            parts.append(part)
        }
        let merged = dir.appendingPathComponent("merged.json"), mergedMD = dir.appendingPathComponent("merged.md")
        let m = try run("spherecorr-train", ["merge-reports"] + parts.map(\.path) + ["--report", merged.path, "--markdown", mergedMD.path])
        try #require(m.status == 0, "\(m.stderr)")
        let got = try canonical(merged), expected = try canonical(whole)
        #expect(got == expected, "merged report differs:\n\(firstDifference(got, expected))")
        let md = try String(contentsOf: mergedMD, encoding: .utf8), wholeText = try String(contentsOf: wholeMD, encoding: .utf8)
        #expect(md == wholeText, "merged Markdown differs:\n\(firstDifference(md, wholeText))")
        #expect(md.contains("PCK predictions: soft-argmax (window 2, temperature 0.02) refinement") && md.contains("## Not visible: F1")
                && md.contains("## Cycle-score KAP@0.1"), "\(md)")
        // Without either flag the tables say so.
        let plain = dir.appendingPathComponent("plain.json"), plainMD = dir.appendingPathComponent("plain.md")
        try #require(try evaluate(plain, ["--markdown", plainMD.path]).status == 0)
        let p = try String(contentsOf: plainMD, encoding: .utf8)
        #expect(p.contains("PCK predictions: patch centres (no refinement") && p.contains("Visibility: not scored") && !p.contains("Not visible: F1"), "\(p)")
    }

    @Test func shardOutsideTheRangeIsRefused() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for bad in ["4/4", "-1/4", "1/0", "1", "a/b"] {
            let r = try evaluate(dir.appendingPathComponent("r.json"), ["--shard", bad])
            #expect(r.status != 0 && r.stderr.contains("--shard"), "\(bad): \(r.stderr)")
        }
    }

    func firstDifference(_ a: String, _ b: String) -> String {
        let x = a.split(separator: "\n"), y = b.split(separator: "\n")
        for (i, (l, r)) in zip(x, y).enumerated() where l != r { return "line \(i + 1): \(l)  vs  \(r)" }
        return "\(x.count) vs \(y.count) lines"
    }
}

/// `cache-features --shard K/N` (issue #13): the shards fill evaluate's --cache, and the evaluation that follows
/// embeds nothing and scores as the uncached run does.
@Suite struct CacheFeaturesCLITests {
    let synth = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")
    var backbone: String { dinoFixtures.appendingPathComponent("plain.safetensors").path }

    @Test func shardsFillTheCacheThatEvaluateReads() throws {
        try #require(FileManager.default.fileExists(atPath: synth.path), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("features").path
        for k in 0..<2 {
            let r = try run("spherecorr-train", ["cache-features", "--data", synth.path, "--backbone", backbone, "--resolution", "84",
                                                 "--cache", cache, "--shard", "\(k)/2", "--threads", "2", "--quiet"])
            try #require(r.status == 0, "shard \(k): \(r.stderr)")
        }
        func evaluate(_ report: URL, cache: String?) throws -> [String: Any] {
            let r = try run("spherecorr-train", ["evaluate", "--data", synth.path, "--backbone", backbone, "--alpha", "0", "--resolution", "84",
                                                 "--threads", "2", "--report", report.path, "--quiet"] + (cache.map { ["--cache", $0] } ?? []))
            try #require(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        }
        let cached = try evaluate(dir.appendingPathComponent("cached.json"), cache: cache)
        let stats = try #require(cached["stats"] as? [String: Any])
        #expect(stats["images_embedded"] as? Int == 0, "every image came from the shards' cache: \(stats)")
        let fresh = try evaluate(dir.appendingPathComponent("fresh.json"), cache: nil)
        let a = try #require(cached["pck"] as? [String: Any]), b = try #require(fresh["pck"] as? [String: Any])
        #expect(NSDictionary(dictionary: a).isEqual(to: b), "PCK from the cache differs from a fresh run's")

        let bad = try run("spherecorr-train", ["cache-features", "--data", synth.path, "--backbone", backbone, "--cache", cache, "--shard", "2/2"])
        #expect(bad.status != 0 && bad.stderr.contains("0 ≤ K < N"), "\(bad.stderr)")
    }
}
