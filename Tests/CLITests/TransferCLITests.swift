import Foundation
import Testing

/// `spherecorr-train transfer` (issue #14) as a user runs it: a source, a points file, a folder of targets.
@Suite struct TransferCLITests {
    let images = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev/JPEGImages/car")
    let backbone = dinoFixtures.appendingPathComponent("plain.safetensors").path
    let bundle = repoRoot.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path

    /// A folder holding three dataset images, one of them twice under another name, and a non-image file.
    func folder(_ dir: URL) throws -> (source: URL, targets: URL) {
        let targets = dir.appendingPathComponent("targets")
        try FileManager.default.createDirectory(at: targets, withIntermediateDirectories: true)
        let source = images.appendingPathComponent("2101_000001.jpg")
        for (name, file) in [("a.jpg", "2101_000002.jpg"), ("b.jpg", "2101_000003.jpg"), ("c.jpg", "2101_000001.jpg"), ("d.jpg", "2101_000002.jpg")] {
            try FileManager.default.copyItem(at: images.appendingPathComponent(file), to: targets.appendingPathComponent(name))
        }
        try Data("not an image".utf8).write(to: targets.appendingPathComponent("notes.txt"))
        return (source, targets)
    }

    func transfer(_ dir: URL, _ extra: [String], points: String = "[[10, 12], [200.5, 130], [399, 266]]") throws -> Run {
        let (source, targets) = try folder(dir)
        let p = dir.appendingPathComponent("points.json")
        try Data(points.utf8).write(to: p)
        return try run("spherecorr-train", ["transfer", "--backbone", backbone, "--source", source.path, "--points", p.path,
                                            "--targets", targets.path, "--resolution", "84", "--threads", "2"] + extra)
    }

    @Test func answersEveryTargetInNameOrder() throws {
        try #require(FileManager.default.fileExists(atPath: images.path), "the synthetic dataset is expected at \(images.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.json"), plots = dir.appendingPathComponent("plots")
        let r = try transfer(dir, ["--bundle", bundle, "--out", out.path, "--plots", plots.path + "/", "--refine", "soft-argmax", "--window", "2"])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("4/4 images"), "progress bar: \(r.stderr)")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        #expect(body["alpha"] as? Double == 0.2)
        #expect((body["refine"] as? [String: Any])?["method"] as? String == "soft-argmax")
        // The source (also c.jpg) and a.jpg (also d.jpg) and b.jpg: three distinct images, three embedded.
        #expect(body["images_embedded"] as? Int == 3)
        let targets = try #require(body["targets"] as? [[String: Any]])
        #expect(targets.map { URL(fileURLWithPath: $0["file"] as! String).lastPathComponent } == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
        for t in targets {
            let matches = try #require(t["matches"] as? [[String: Any]])
            #expect(matches.count == 3)
            for m in matches {
                let target = try #require(m["target"] as? [Double])
                #expect(target[0] >= 0 && target[0] < Double(t["width"] as! Int) && target[1] >= 0 && target[1] < Double(t["height"] as! Int))
                #expect(m["visible"] is Bool && (m["cycle_error_px"] as? Double ?? -1) >= 0)
            }
        }
        // Copies answer alike; the source against itself is a consistent cycle everywhere.
        #expect(NSArray(array: targets[0]["matches"] as! [Any]).isEqual(to: targets[3]["matches"] as! [Any]))
        for m in targets[2]["matches"] as! [[String: Any]] {
            #expect(m["visible"] as? Bool == true && m["cycle_error_px"] as? Double == 0, "\(m)")
        }
        let png = try Data(contentsOf: plots.appendingPathComponent("transfer.png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
    }

    @Test func withoutBundleTheAlphaIsZeroAndTheFlagsAreChecked() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.json")
        let r = try transfer(dir, ["--out", out.path, "--quiet"])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "--quiet: \(r.stderr)")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        #expect(body["alpha"] as? Double == 0 && body["bundle"] is NSNull)
        for (extra, words) in [(["--alpha", "0.2"], "needs --bundle"), (["--refine", "soft-argmax", "--window", "6"], "--window"),
                               (["--refine", "soft-argmax", "--window", "2", "--temperature", "0"], "--temperature"),
                               (["--refine", "bilinear"], "--refine"), (["--visibility-threshold", "-1"], "--visibility-threshold"),
                               (["--resolution", "50"], "--resolution")] {
            let bad = try transfer(try tempDir(), ["--out", out.path] + extra)
            #expect(bad.status != 0 && bad.stderr.contains(words), "\(extra): \(bad.stderr)")
        }
    }

    @Test func badFilesAreNamed() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.json").path
        for (points, words) in [("[[10, 12], [1, \"x\"]]", "points[1] must be [x, y]"), ("[]", "no points"), ("{\"a\": 1}", "JSON array"),
                                ("[[10, 12], [400, 5]]", "points[1] = [400.0, 5.0] is outside the source image"), ("[[1, 2]", "not valid JSON")] {
            let r = try transfer(try tempDir(), ["--out", out], points: points)
            #expect(r.status != 0 && r.stderr.contains("points.json") && r.stderr.contains(words), "\(points): \(r.stderr)")
        }
        // A target that is not an image, named by its file.
        let d2 = try tempDir()
        let (_, targets) = try folder(d2)
        try Data("garbage".utf8).write(to: targets.appendingPathComponent("e.png"))
        let p = d2.appendingPathComponent("p.json")
        try Data("[[10, 12]]".utf8).write(to: p)
        let bad = try run("spherecorr-train", ["transfer", "--backbone", backbone, "--source", images.appendingPathComponent("2101_000001.jpg").path,
                                               "--points", p.path, "--targets", targets.path, "--out", out, "--resolution", "84"])
        #expect(bad.status != 0 && bad.stderr.contains("e.png") && bad.stderr.contains("not a readable JPEG or PNG"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "nothing is written for a failed run")
        // An empty folder, and one that does not exist.
        let empty = d2.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        for (folder, words) in [(empty.path, "no .jpg, .jpeg or .png images"), (d2.appendingPathComponent("nope").path, "not a directory")] {
            let r = try run("spherecorr-train", ["transfer", "--backbone", backbone, "--source", images.appendingPathComponent("2101_000001.jpg").path,
                                                 "--points", p.path, "--targets", folder, "--out", out, "--resolution", "84"])
            #expect(r.status != 0 && r.stderr.contains(folder) && r.stderr.contains(words), "\(r.stderr)")
        }
    }
}
