import Foundation
import Testing
import TensorFiles
import SphereMap

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let dinoFixtures = repoRoot.appendingPathComponent("Tests/Fixtures/dinov2")

/// The built `name` executable beside the test bundle (swift build --build-tests builds it too).
func executable(_ name: String) throws -> URL {
    let candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                      repoRoot.appendingPathComponent(".build/debug")]
    for dir in candidates {
        let u = dir.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: u.path) { return u }
    }
    throw CLIError("\(name) not built; run `swift build --build-tests` first")
}

struct CLIError: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

struct Run { var status: Int32; var stdout: String; var stderr: String }

func run(_ tool: String, _ args: [String], extraEnvironment: [String: String] = [:]) throws -> Run {
    let p = Process()
    p.executableURL = try executable(tool)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment.merging(extraEnvironment) { $1 }
    env["SPHERECORR_NO_REEXEC"] = "1"
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

func tempDir() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("spherecorr-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

@Suite struct FeaturesCommandTests {
    /// Writes case `k` of a fixture's first image as the [3, H, W] .npy the contract takes.
    func writeInput(_ model: String, case k: Int, to dir: URL) throws -> (URL, [Float], [Int]) {
        let fx = try SafeTensorsFile(contentsOf: dinoFixtures.appendingPathComponent("\(model).case\(k).safetensors"))
        let s = try fx.info("input").shape
        let chw = 3 * s[2] * s[3]
        let input = Array(try fx.floats("input").prefix(chw))
        let url = dir.appendingPathComponent("x.npy")
        try NPY.write(NPYArray(shape: [3, s[2], s[3]], floats: input), to: url)
        let f = try fx.info("features").shape  // [B, N, D]
        return (url, Array(try fx.floats("features").prefix(f[1] * f[2])), [f[1], f[2]])
    }

    @Test(arguments: [("plain", "plain.safetensors"), ("registers", "registers.safetensors"), ("swiglu", "hf-swiglu"), ("plain", "hf-prefixed")])
    func tensorInputGivesTheReferenceFeatures(model: String, backbone: String) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (input, expected, shape) = try writeInput(model, case: 1, to: dir)
        let out = dir.appendingPathComponent("f.npy")
        let r = try run("spherecorr-train", ["features", "--backbone", dinoFixtures.appendingPathComponent(backbone).path,
                                             "--tensor", input.path, "--out", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let a = try NPY.read(contentsOf: out)
        #expect(a.dtype == .float32 && a.shape == shape)
        let got = try a.floats()
        #expect(zip(got, expected).allSatisfy { abs($0 - $1) <= 2e-5 + 2e-4 * abs($1) })
    }

    @Test func errorsNameWhatWasWrong() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = dinoFixtures.appendingPathComponent("plain.safetensors").path
        let (input, _, _) = try writeInput("plain", case: 1, to: dir)
        let out = dir.appendingPathComponent("f.npy").path

        var r = try run("spherecorr-train", ["features", "--backbone", "/nonexistent/model", "--tensor", input.path, "--out", out])
        #expect(r.status != 0 && r.stderr.contains("/nonexistent/model"), "\(r.stderr)")

        r = try run("spherecorr-train", ["features", "--backbone", plain, "--variant", "base", "--tensor", input.path, "--out", out])
        #expect(r.status != 0 && r.stderr.contains("plain.safetensors") && r.stderr.contains("base"), "\(r.stderr)")

        let bad = dir.appendingPathComponent("bad.npy")
        try NPY.write(NPYArray(shape: [3, 15, 14], floats: Array(repeating: 0, count: 3 * 15 * 14)), to: bad)
        r = try run("spherecorr-train", ["features", "--backbone", plain, "--tensor", bad.path, "--out", out])
        #expect(r.status != 0 && r.stderr.contains("bad.npy") && r.stderr.contains("multiple of 14; got 15"), "\(r.stderr)")

        try Data("not numpy".utf8).write(to: bad)
        r = try run("spherecorr-train", ["features", "--backbone", plain, "--tensor", bad.path, "--out", out])
        #expect(r.status != 0 && r.stderr.contains("bad.npy"), "\(r.stderr)")

        r = try run("spherecorr-train", ["features", "--backbone", plain, "--tensor", input.path, "--image", "x.jpg", "--out", out])
        #expect(r.status != 0 && r.stderr.contains("exactly one of --image or --tensor"), "\(r.stderr)")

        r = try run("spherecorr-train", ["features", "--backbone", plain, "--image", "x.jpg", "--resolution", "100", "--out", out])
        #expect(r.status != 0 && r.stderr.contains("multiple of 14"), "\(r.stderr)")

        // A truncated weight file: named, no crash.
        let truncated = dir.appendingPathComponent("cut.safetensors")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: plain))
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        r = try run("spherecorr-train", ["features", "--backbone", truncated.path, "--tensor", input.path, "--out", out])
        #expect(r.status != 0 && r.stderr.contains("cut.safetensors"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out), "no output is written on failure")
    }
}

@Suite struct BenchCommandTests {
    @Test func jsonHasTheContractKeys() throws {
        let r = try run("spherecorr-train", ["bench", "--variant", "small", "--resolution", "28", "--batch", "2", "--repeat", "2", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in ["variant", "resolution", "batch", "latency_s", "gflop", "gflops", "sgemm_gflops", "blas_core"] {
            #expect(obj[key] != nil, "missing \(key)")
        }
        let lat = try #require(obj["latency_s"] as? [String: Double])
        #expect(lat["min"]! <= lat["median"]! && lat["median"]! <= lat["max"]!)
        #expect(obj["variant"] as? String == "small" && obj["batch"] as? Int == 2 && obj["resolution"] as? Int == 28)
    }

    @Test func rejectsBadArguments() throws {
        let r = try run("spherecorr-train", ["bench", "--variant", "huge", "--resolution", "28", "--batch", "1", "--repeat", "1"])
        #expect(r.status != 0 && r.stderr.contains("huge"))
    }

    /// --precision: bf16 runs where the CPU has the unit (and says so), is refused naming the missing ISA elsewhere,
    /// and never with the hand-written fp32 kernels.
    @Test func precisionIsCheckedAndReported() throws {
        let base = ["bench", "--variant", "small", "--resolution", "28", "--batch", "1", "--repeat", "1", "--json"]
        let bad = try run("spherecorr-train", base + ["--precision", "fp16"])
        #expect(bad.status != 0 && bad.stderr.contains("fp16"), "\(bad.stderr)")
        let mixed = try run("spherecorr-train", base + ["--precision", "bf16", "--kernels", "avx2"])
        #expect(mixed.status != 0 && mixed.stderr.contains("auto") && mixed.stderr.contains("avx2"), "\(mixed.stderr)")
        let r = try run("spherecorr-train", base + ["--precision", "bf16"])
        if r.status == 0 {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(obj["precision"] as? String == "bf16")
            let paths = try #require(obj["kernel_paths"] as? [String: String])
            #expect(paths["linear"]?.contains("bf16") == true || paths["linear"]?.contains("amx") == true, "\(paths)")
        } else {
            #expect(r.stderr.contains("AVX512_BF16"), "\(r.stderr)")
        }
    }

    /// ONEDNN_MAX_CPU_ISA (read once per process, hence a process of its own) caps oneDNN's kernels: the report says
    /// so, and bf16 is then refused naming the cap.
    @Test func oneDNNISACapIsHonouredAndReported() throws {
        let base = ["bench", "--variant", "small", "--resolution", "28", "--batch", "1", "--repeat", "1", "--json"]
        let r = try run("spherecorr-train", base, extraEnvironment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["onednn_isa"] as? String == "avx2", "\(obj["onednn_isa"] ?? "-")")
        let paths = try #require(obj["kernel_paths"] as? [String: String])
        #expect(paths["linear"]?.contains("avx2") == true, "\(paths)")
        let bf16 = try run("spherecorr-train", base + ["--precision", "bf16"], extraEnvironment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])
        #expect(bf16.status != 0 && (bf16.stderr.contains("ONEDNN_MAX_CPU_ISA") || bf16.stderr.contains("AVX512_BF16")), "\(bf16.stderr)")
    }
}

@Suite struct SphereCommandTests {
    /// Image → DINOv2 → f_S → unit vectors, against the reference DINOMapper.forward (make_sphere_fixtures.py).
    @Test func sphereMatchesTheReferenceEndToEnd() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fx = try SafeTensorsFile(contentsOf: repoRoot.appendingPathComponent("Tests/Fixtures/sphere/e2e.safetensors"))
        let s = try fx.info("input").shape
        let input = dir.appendingPathComponent("x.npy")
        try NPY.write(NPYArray(shape: Array(s.dropFirst()), floats: try fx.floats("input")), to: input)
        let out = dir.appendingPathComponent("s.npy")
        let r = try run("spherecorr-train", ["sphere", "--backbone", dinoFixtures.appendingPathComponent("plain.safetensors").path,
                                             "--bundle", repoRoot.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path,
                                             "--tensor", input.path, "--out", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        let a = try NPY.read(contentsOf: out)
        #expect(a.shape == [s[2] / 14 * s[3] / 14, 3])
        let got = try a.floats(), ref = try fx.floats("sphere")
        #expect(zip(got, ref).allSatisfy { abs($0 - $1) <= 5e-5 }, "max diff \(zip(got, ref).map { abs($0 - $1) }.max() ?? .infinity)")
    }

    @Test func missingOrMismatchedBundleIsNamed() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("x.npy")
        try NPY.write(NPYArray(shape: [3, 28, 28], floats: Array(repeating: 0.1, count: 3 * 28 * 28)), to: input)
        let plain = dinoFixtures.appendingPathComponent("plain.safetensors").path
        let out = dir.appendingPathComponent("o.npy").path
        let missing = dir.appendingPathComponent("missing.safetensors")
        let r0 = try run("spherecorr-train", ["sphere", "--backbone", plain, "--bundle", missing.path, "--tensor", input.path, "--out", out])
        #expect(r0.status != 0 && r0.stderr.contains("missing.safetensors"), "\(r0.stderr)")
        // The fixture backbone has width 128; a bundle trained for width 256 must be refused by name.
        let wide = dir.appendingPathComponent("wide.safetensors")
        try SphereBundle.initialised(backboneDim: 256, categories: ["car"], seed: 1).write(to: wide)
        let r1 = try run("spherecorr-train", ["sphere", "--backbone", plain, "--bundle", wide.path, "--tensor", input.path, "--out", out])
        #expect(r1.status != 0 && r1.stderr.contains("wide.safetensors") && r1.stderr.contains("256"), "\(r1.stderr)")
    }
}

@Suite struct EvaluateCommandTests {
    let synth = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")

    @Test func reportFollowsTheContract() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("r.json"), md = dir.appendingPathComponent("r.md")
        let r = try run("spherecorr-train", ["evaluate", "--data", synth.path, "--split", "test",
                                             "--backbone", dinoFixtures.appendingPathComponent("plain.safetensors").path,
                                             "--bundle", repoRoot.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path,
                                             "--alpha", "0.2", "--metric", "both", "--resolution", "28", "--categories", "car", "dog",
                                             "--report", report.path, "--markdown", md.path, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        for metric in ["pck", "kap"] {
            let t = try #require(obj[metric] as? [String: Any], "missing \(metric)")
            for key in ["car", "dog", "macro", "weighted"] {
                let v = try #require(t[key] as? [String: Double], "\(metric).\(key)")
                #expect(Set(v.keys) == ["0.1", "0.05", "0.01"])
                #expect(v.values.allSatisfy { (0...1).contains($0) })
            }
        }
        #expect(obj["config"] is [String: Any])
        let table = try String(contentsOf: md, encoding: .utf8)
        #expect(table.contains("| method | car | dog | avg | w.avg |") && table.contains("DINOv2 + sphere (α = 0.2)"))
    }

    /// `--refine` (issue #14): recorded in the report; `none` is the default and the paper's numbers; bad values
    /// name the flag.
    @Test func refinementIsRecordedAndChecked() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func args(_ report: String, _ extra: [String]) -> [String] {
            ["evaluate", "--data", synth.path, "--backbone", dinoFixtures.appendingPathComponent("plain.safetensors").path,
             "--alpha", "0", "--metric", "pck", "--resolution", "84", "--categories", "car",
             "--report", dir.appendingPathComponent(report).path, "--quiet"] + extra
        }
        func config(_ report: String) throws -> [String: Any] {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(report))) as? [String: Any])
            return try #require(obj["config"] as? [String: Any])
        }
        let plain = try run("spherecorr-train", args("plain.json", []))
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try config("plain.json")["refine"] as? [String: String] == ["method": "none"])
        let soft = try run("spherecorr-train", args("soft.json", ["--refine", "soft-argmax", "--window", "2", "--temperature", "0.05"]))
        #expect(soft.status == 0, "\(soft.stderr)")
        let rec = try #require(try config("soft.json")["refine"] as? [String: Any])
        #expect(rec["method"] as? String == "soft-argmax" && rec["window"] as? Int == 2 && rec["temperature"] as? Double == 0.05)
        for (extra, flag) in [(["--refine", "bilinear"], "--refine"), (["--refine", "soft-argmax", "--temperature", "0"], "--temperature"),
                              (["--refine", "soft-argmax", "--window", "6"], "--window"), (["--window", "3"], "--window")] {
            let r = try run("spherecorr-train", args("bad.json", extra))
            #expect(r.status != 0 && r.stderr.contains(flag), "\(extra): \(r.stderr)")
        }
    }

    /// `--visibility` (issue #14): per category precision, recall, F1 of "not visible" against the target-invisible
    /// keypoints; absent without the flag (the paper's report stays as it was).
    @Test func visibilityIsReportedPerCategory() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func evaluate(_ extra: [String]) throws -> [String: Any] {
            let report = dir.appendingPathComponent("r.json")
            let r = try run("spherecorr-train", ["evaluate", "--data", synth.path, "--backbone", dinoFixtures.appendingPathComponent("plain.safetensors").path,
                                            "--alpha", "0", "--metric", "pck", "--resolution", "84", "--categories", "car", "dog",
                                            "--report", report.path, "--quiet"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        }
        #expect(try evaluate([])["visibility"] == nil)
        let vis = try #require(try evaluate(["--visibility"])["visibility"] as? [String: [String: Any]])
        #expect(Set(vis.keys) == ["car", "dog"])
        for (_, v) in vis {
            let hidden = try #require(v["hidden"] as? Int), n = try #require(v["keypoints"] as? Int)
            #expect(hidden > 0 && n > hidden)
            for key in ["precision", "recall", "f1"] { #expect((v[key] as? Double).map { (0...1).contains($0) } ?? true, "\(key)") }
            let kap = try #require(v["cycle_kap"] as? [String: Any])
            #expect(Set(kap.keys) == ["0.1", "0.05", "0.01"])
            for (_, x) in kap { #expect(x is NSNull || ((x as? Double).map { (0...1).contains($0) } ?? false)) }
        }
    }

    @Test func invalidPairIsNamedOrSkippedAndCounted() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        try FileManager.default.copyItem(at: synth, to: data)
        let pairs = data.appendingPathComponent("PairAnnotation/test")
        let victim = try FileManager.default.contentsOfDirectory(atPath: pairs.path).filter { $0.hasSuffix(":car.json") }.sorted()[0]
        try Data("{ not json".utf8).write(to: pairs.appendingPathComponent(victim))
        let args = ["evaluate", "--data", data.path, "--backbone", dinoFixtures.appendingPathComponent("plain.safetensors").path,
                    "--alpha", "0", "--resolution", "28", "--categories", "car", "--report", dir.appendingPathComponent("r.json").path, "--quiet"]
        let r1 = try run("spherecorr-train", args)
        #expect(r1.status != 0 && r1.stderr.contains(victim), "\(r1.stderr)")
        let r2 = try run("spherecorr-train", args + ["--skip-invalid"])
        #expect(r2.status == 0, "\(r2.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("r.json"))) as? [String: Any])
        let skipped = try #require(obj["skipped"] as? [String])
        #expect(skipped.count == 1 && skipped[0].contains(victim))
        let cfg = try #require(obj["config"] as? [String: Any])
        #expect(cfg["pairs_skipped"] as? Int == 1)
    }
}
