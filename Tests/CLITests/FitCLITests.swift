import Foundation
import Imaging
import SphereMap
import TensorFiles
import Testing

/// `spherecorr-train fit` run as a user would, on the synthetic SPair-format dev set with the tiny parity backbone
/// (D = 128) at 112² (8×8 tokens), so each run takes seconds in a debug build.
@Suite(.serialized) struct FitCommandTests {
    static let synth = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev").path
    static let backbone = dinoFixtures.appendingPathComponent("plain.safetensors").path

    func fitArgs(out: URL, cache: URL, _ extra: [String] = []) -> [String] {
        ["fit", "--data", Self.synth, "--backbone", Self.backbone, "--out", out.path, "--cache", cache.path,
         "--resolution", "112", "--replications", "1", "--batch-size", "16", "--epochs", "4", "--save-every", "2",
         "--views", "2", "--threads", "2", "--seed", "3"] + extra
    }

    struct Line: Equatable { var epoch: Int; var loss, rec, vp, rd, o: Double }

    /// train.jsonl without `seconds` (wall time; everything else is deterministic).
    func journal(_ dir: URL) throws -> [Line] {
        try String(contentsOf: dir.appendingPathComponent("train.jsonl"), encoding: .utf8).split(separator: "\n").map {
            let o = try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            #expect(Set(o.keys).isSuperset(of: ["epoch", "loss", "rec", "vp", "rd", "o", "seconds"]))
            return Line(epoch: o["epoch"] as! Int, loss: o["loss"] as! Double, rec: o["rec"] as! Double, vp: o["vp"] as! Double,
                        rd: o["rd"] as! Double, o: o["o"] as! Double)
        }
    }

    func bytes(_ u: URL) throws -> Data { try Data(contentsOf: u) }

    @Test func trainsPublishesAndReproduces() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("cache")
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b"), c = dir.appendingPathComponent("c")

        let r = try run("spherecorr-train", fitArgs(out: a, cache: cache, ["--plot"]))
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        let lines = try journal(a)
        #expect(lines.map(\.epoch) == [1, 2, 3, 4])
        #expect(lines.last!.loss < lines.first!.loss, "total loss did not fall: \(lines.map(\.loss))")
        print("fit losses by epoch: \(lines.map(\.loss))")
        let names = try FileManager.default.contentsOfDirectory(atPath: a.path).sorted()
        #expect(names.contains("sphere-e000002.safetensors") && names.contains("sphere-e000004.safetensors"))
        #expect(names.contains("sphere-e000004.state") && names.contains("resume.state") && names.contains("losses.png"))
        #expect(!names.contains { $0.hasPrefix(".") }, "temporary files left: \(names)")
        let bundle = try SphereBundle.load(path: a.appendingPathComponent("sphere-e000004.safetensors").path)
        #expect(bundle.backboneDim == 128 && bundle.categories.count == 18)
        #expect(bundle.metadata["epoch"] == "4" && bundle.metadata["trained_by"] == "spherecorr-train fit")
        #expect(bundle.metadata["data_fingerprint"]?.count == 64 && bundle.metadata["train.seed"] == "3")
        #expect(r.stdout.contains("view cache"))

        // Same seed, data and threads, another directory (the view cache is reused): identical losses and bundle.
        let r2 = try run("spherecorr-train", fitArgs(out: b, cache: cache, ["--quiet"]))
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try journal(b) == lines)
        #expect(try bytes(b.appendingPathComponent("sphere-e000004.safetensors")) == bytes(a.appendingPathComponent("sphere-e000004.safetensors")))

        // Stopped after 5 steps (epoch 2 of 4 has 4 batches: mid-epoch), then resumed: the same bundles.
        let s = try run("spherecorr-train", fitArgs(out: c, cache: cache, ["--quiet", "--stop-after-steps", "5"]))
        #expect(s.status == 143 && s.stderr.contains("--resume"), "\(s.status) \(s.stderr)")
        #expect(FileManager.default.fileExists(atPath: c.appendingPathComponent("resume.state").path))
        let r3 = try run("spherecorr-train", fitArgs(out: c, cache: cache, ["--resume"]))
        #expect(r3.status == 0, "\(r3.stderr)")
        #expect(r3.stdout.contains("resuming at epoch 2, batch 2"), "\(r3.stdout)")
        #expect(try journal(c) == lines)
        for e in ["000002", "000004"] {
            #expect(try bytes(c.appendingPathComponent("sphere-e\(e).safetensors")) == bytes(a.appendingPathComponent("sphere-e\(e).safetensors")))
        }
        // A finished run refuses to start over in its directory.
        let again = try run("spherecorr-train", fitArgs(out: a, cache: cache, ["--quiet"]))
        #expect(again.status != 0 && again.stderr.contains("--resume"))
    }

    /// SIGTERM (stops at the next batch, state saved) or SIGKILL (the last epoch-end state is all there is) from
    /// outside while training, then --resume: the bundle and log of an uninterrupted run.
    @Test(arguments: [SIGTERM, SIGKILL])
    func signalThenResumeGivesTheSameBundle(_ sig: Int32) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("cache")
        let a = dir.appendingPathComponent("a"), b = dir.appendingPathComponent("b")
        let extra = ["--views", "0", "--epochs", "3", "--save-every", "3", "--quiet"]
        let r = try run("spherecorr-train", fitArgs(out: a, cache: cache, extra))
        #expect(r.status == 0, "\(r.stderr)")

        let p = Process()
        p.executableURL = try executable("spherecorr-train")
        p.arguments = fitArgs(out: b, cache: cache, extra)
        var env = ProcessInfo.processInfo.environment
        env["SPHERECORR_NO_REEXEC"] = "1"
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait for the first epoch's line, then stop it.
        let journal = b.appendingPathComponent("train.jsonl")
        let deadline = Date().addingTimeInterval(300)
        while !FileManager.default.fileExists(atPath: journal.path) && p.isRunning && Date() < deadline { usleep(20_000) }
        kill(p.processIdentifier, sig)
        p.waitUntilExit()
        if p.terminationStatus == 0 {
            print("the run finished before signal \(sig) arrived; resume is then a no-op")
        } else if sig == SIGTERM {
            #expect(p.terminationStatus == 143 && p.terminationReason == .exit, "exit \(p.terminationStatus)")
        } else {
            #expect(p.terminationStatus == SIGKILL && p.terminationReason == .uncaughtSignal)
        }
        let r2 = try run("spherecorr-train", fitArgs(out: b, cache: cache, extra + ["--resume"]))
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try bytes(b.appendingPathComponent("sphere-e000003.safetensors")) == bytes(a.appendingPathComponent("sphere-e000003.safetensors")))
        #expect(try self.journal(b) == self.journal(a))
    }

    /// --eval-data: PCK@0.1 of the evaluation module after each published bundle, in train.jsonl.
    @Test func evalDataLogsPCK() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("o")
        let r = try run("spherecorr-train", fitArgs(out: out, cache: dir.appendingPathComponent("cache"),
                                                    ["--epochs", "1", "--views", "1", "--eval-data", Self.synth, "--eval-resolution", "56",
                                                     "--weights", "vp=0", "--quiet"]))
        #expect(r.status == 0, "\(r.stderr)")
        let line = try String(contentsOf: out.appendingPathComponent("train.jsonl"), encoding: .utf8)
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let pck = try #require(o["pck"] as? Double), weighted = try #require(o["pck_weighted"] as? Double)
        #expect((0...1).contains(pck) && (0...1).contains(weighted) && pck > 0)
        let bundle = try SphereBundle.load(path: out.appendingPathComponent("sphere-e000001.safetensors").path)
        #expect(bundle.metadata["train.weights"]?.contains("vp=0.0") == true)
    }

    /// --cache-only (scripts/reproduce-paper's cache step): builds the view cache, trains nothing, writes nothing to
    /// --out; a second call embeds nothing, and a training run afterwards reuses every shard.
    @Test func cacheOnlyBuildsTheViewCacheAlone() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("cache"), out = dir.appendingPathComponent("o")
        let args = fitArgs(out: out, cache: cache, ["--views", "1", "--epochs", "1"])
        let r = try run("spherecorr-train", args + ["--cache-only"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("view cache") && r.stdout.contains("58 of 58 images embedded now"), "\(r.stdout)")
        #expect(r.stdout.contains("done: view cache of 1 views per image ready"), "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: out.path), "--cache-only wrote into --out")
        let shards = try #require(FileManager.default.enumerator(atPath: cache.path)).allObjects.count
        #expect(shards >= 58)
        let again = try run("spherecorr-train", args + ["--cache-only"])
        #expect(again.status == 0 && again.stdout.contains("0 of 58 images embedded now"), "\(again.stdout)")
        let train = try run("spherecorr-train", args)
        #expect(train.status == 0 && train.stdout.contains("0 of 58 images embedded now"), "\(train.stderr)\n\(train.stdout)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("sphere-e000001.safetensors").path))
        let refused = try run("spherecorr-train", args + ["--views", "0", "--cache-only"])
        #expect(refused.status != 0 && refused.stderr.contains("--cache-only builds the view cache of --views K"), "\(refused.stderr)")
    }

    /// --fcars: Freiburg Cars layout (images/, annotations/, instance_masks/), one condition, azimuth bins.
    @Test func freiburgCars() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let root = dir.appendingPathComponent("fcars")
        let jpegs = try fm.contentsOfDirectory(atPath: Self.synth + "/JPEGImages/car").sorted().prefix(6)
        try fm.createDirectory(at: root.appendingPathComponent("annotations"), withIntermediateDirectories: true)
        var annot = ""
        for d in ["images/car_003", "instance_masks/car_003"] { try fm.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true) }
        for (i, j) in jpegs.enumerated() {
            try Data(contentsOf: URL(fileURLWithPath: Self.synth + "/JPEGImages/car/" + j)).write(to: root.appendingPathComponent("images/car_003/" + j))
            // The Segmentation PNG (0 / 7) is not an L > 127 mask: brighten it as a Mask R-CNN mask would be stored.
            let png = try Data(contentsOf: URL(fileURLWithPath: Self.synth + "/Segmentation/car/" + j.dropLast(4) + ".png"))
            try png.write(to: root.appendingPathComponent("instance_masks/car_003/" + j))
            annot += "car_003/\(j) 1 1 10 10 \(i * 60)\n"
        }
        try Data(annot.utf8).write(to: root.appendingPathComponent("annotations/3_annot.txt"))
        let args = ["fit", "--fcars", root.path, "--backbone", Self.backbone, "--resolution", "56", "--batch-size", "4", "--epochs", "1",
                    "--vp-bins", "4", "--threads", "2", "--quiet"]
        // Those masks are dark (values 0/7): every one is empty under the reference's L > 0.5 rule, and says so.
        let r = try run("spherecorr-train", args + ["--out", dir.appendingPathComponent("o1").path])
        #expect(r.status != 0 && r.stderr.contains("instance_masks/car_003/") && r.stderr.contains("no object pixel"), "\(r.stderr)")
        // Stored as a Mask R-CNN mask would be (object 255): trains, one condition.
        for j in jpegs {
            let u = root.appendingPathComponent("instance_masks/car_003/" + j)
            var img = try decodeImage(contentsOf: u)
            for i in img.pixels.indices where img.pixels[i] != 0 { img.pixels[i] = 255 }
            try Data(encodePNG(img)).write(to: u)
        }
        let ok = try run("spherecorr-train", args + ["--out", dir.appendingPathComponent("o2").path])
        #expect(ok.status == 0, "\(ok.stderr)")
        let b = try SphereBundle.load(path: dir.appendingPathComponent("o2/sphere-e000001.safetensors").path)
        #expect(b.categories == ["car"])
    }

    @Test func badDataAndBackboneAreNamed() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A copy of the dev set's car category with one source image missing.
        let data = dir.appendingPathComponent("data")
        let fm = FileManager.default
        for sub in ["ImageAnnotation/car", "JPEGImages/car", "Segmentation/car", "PairAnnotation/trn"] {
            try fm.createDirectory(at: data.appendingPathComponent(sub), withIntermediateDirectories: true)
            for n in try fm.contentsOfDirectory(atPath: Self.synth + "/" + sub) where !sub.hasPrefix("Pair") || n.hasSuffix(":car.json") {
                try Data(contentsOf: URL(fileURLWithPath: Self.synth + "/" + sub + "/" + n)).write(to: data.appendingPathComponent(sub + "/" + n))
            }
        }
        try fm.removeItem(at: data.appendingPathComponent("JPEGImages/car/2101_000002.jpg"))
        func args(_ out: String, _ extra: [String] = []) -> [String] {
            ["fit", "--data", data.path, "--backbone", Self.backbone, "--out", dir.appendingPathComponent(out).path, "--resolution", "56",
             "--replications", "1", "--batch-size", "32", "--epochs", "1", "--views", "0", "--threads", "2", "--quiet"] + extra
        }
        let r = try run("spherecorr-train", args("o1"))
        #expect(r.status != 0 && r.stderr.contains("JPEGImages/car/2101_000002.jpg") && r.stderr.contains("--skip-invalid"), "\(r.stderr)")
        let s = try run("spherecorr-train", args("o2", ["--skip-invalid"]).filter { $0 != "--quiet" })
        #expect(s.status == 0, "\(s.stderr)")
        #expect(s.stdout.contains("1 skipped as invalid") && s.stdout.contains("JPEGImages/car/2101_000002.jpg"), "\(s.stdout)")

        // Malformed pair JSON: the file is named.
        let pair = try fm.contentsOfDirectory(atPath: data.appendingPathComponent("PairAnnotation/trn").path).sorted()[0]
        try Data("{\"pair_id\": ".utf8).write(to: data.appendingPathComponent("PairAnnotation/trn/" + pair))
        let j = try run("spherecorr-train", args("o3"))
        #expect(j.status != 0 && j.stderr.contains(pair), "\(j.stderr)")

        // Unreadable backbone: the file is named.
        let bad = dir.appendingPathComponent("bad.safetensors")
        try Data("not safetensors".utf8).write(to: bad)
        var a = args("o4")
        a[a.firstIndex(of: "--backbone")! + 1] = bad.path
        let b = try run("spherecorr-train", a)
        #expect(b.status != 0 && b.stderr.contains(bad.path), "\(b.stderr)")
        // Flags are checked before anything runs.
        let f = try run("spherecorr-train", args("o5", ["--weights", "vp=x"]))
        #expect(f.status != 0 && f.stderr.contains("vp"), "\(f.stderr)")
    }
}
