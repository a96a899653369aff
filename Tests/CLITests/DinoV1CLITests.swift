import Foundation
import Testing

/// `evaluate` takes a DINOv1 backbone like any other (issue #12, Also): the tiny facebookresearch/dino fixture, its
/// family inferred from the files, on the synthetic SPair-format dev set, with the reference extractor's stride.
@Suite struct DinoV1CLITests {
    let synth = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")
    let v1 = repoRoot.appendingPathComponent("Tests/Fixtures/dino_v1")

    func evaluate(backbone: String, _ extra: [String], report: URL) throws -> Run {
        try run("spherecorr-train", ["evaluate", "--data", synth.path, "--backbone", backbone,
                                     "--bundle", repoRoot.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path,
                                     "--alpha", "0,0.2", "--metric", "both", "--threads", "2", "--report", report.path, "--quiet"] + extra)
    }

    @Test func evaluateRunsADinoV1BackboneOnItsOwnGrid() throws {
        try #require(FileManager.default.fileExists(atPath: synth.path), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = dir.appendingPathComponent("whole.json")
        // p = 8, stride 4 at R = 64: a 15×15 grid (the reference's int(8/4·(64//8 − 1) + 1)).
        let r = try evaluate(backbone: v1.appendingPathComponent("p8.safetensors").path, ["--resolution", "64", "--patch-stride", "4"], report: whole)
        try #require(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: whole)) as? [String: Any])
        let config = try #require(obj["config"] as? [String: Any])
        #expect(config["backbone_variant"] as? String == "dino-custom(D=128,L=2,p=8)-stride4")
        let runs = try #require(obj["runs"] as? [[String: Any]])
        #expect(runs.map { $0["alpha"] as? Double } == [0, 0.2])
        for run in runs {
            for metric in ["pck", "kap"] {
                let t = try #require(run[metric] as? [String: Any], "missing \(metric)")
                let macro = try #require(t["macro"] as? [String: Double], "\(metric).macro")
                #expect(Set(macro.keys) == ["0.1", "0.05", "0.01"] && macro.values.allSatisfy { (0...1).contains($0) }, "\(macro)")
            }
        }

        // Shards of the same run merge to it (the shard files record the grid's patch and stride).
        var parts: [URL] = []
        for k in 0..<2 {
            let part = dir.appendingPathComponent("shard-\(k).json")
            let rk = try evaluate(backbone: v1.appendingPathComponent("p8.safetensors").path,
                                  ["--resolution", "64", "--patch-stride", "4", "--shard", "\(k)/2"], report: part)
            try #require(rk.status == 0, "\(rk.stderr)")
            parts.append(part)
        }
        let merged = dir.appendingPathComponent("merged.json")
        let m = try run("spherecorr-train", ["merge-reports"] + parts.map(\.path) + ["--report", merged.path])
        try #require(m.status == 0, "\(m.stderr)")
        func scores(_ url: URL) throws -> String {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            return String(decoding: try JSONSerialization.data(withJSONObject: try #require(o["runs"]), options: [.sortedKeys]), as: UTF8.self)
        }
        #expect(try scores(merged) == scores(whole))
    }

    @Test func theHuggingFaceLayoutAndBadGridsAreNamed() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("r.json")
        let ok = try evaluate(backbone: v1.appendingPathComponent("hf-p16").path, ["--resolution", "64", "--categories", "car"], report: report)
        #expect(ok.status == 0, "\(ok.stderr)")
        // 56 is a multiple of 14 but not of the patch size 16.
        let bad = try evaluate(backbone: v1.appendingPathComponent("hf-p16").path, ["--resolution", "56", "--categories", "car"], report: report)
        #expect(bad.status != 0 && bad.stderr.contains("--resolution must be a positive multiple of 16; got 56"), "\(bad.stderr)")
        let stride = try evaluate(backbone: v1.appendingPathComponent("hf-p16").path, ["--resolution", "64", "--patch-stride", "5"], report: report)
        #expect(stride.status != 0 && stride.stderr.contains("must divide the patch size 16"), "\(stride.stderr)")
        let v2 = try evaluate(backbone: dinoFixtures.appendingPathComponent("plain.safetensors").path, ["--resolution", "56", "--patch-stride", "7"], report: report)
        #expect(v2.status != 0 && v2.stderr.contains("DINOv1 option"), "\(v2.stderr)")
    }
}
