import Foundation
import Testing
import TensorFiles

/// `--backbone` takes the official torch.save checkpoints (issue #12), and the one-image commands and cache-features
/// check their sides against the backbone's own patch grid (DINOv1: 8 or 16), before loading the weights.
@Suite struct BackboneFileCLITests {
    let pth = repoRoot.appendingPathComponent("Tests/Fixtures/pth")
    let v1 = repoRoot.appendingPathComponent("Tests/Fixtures/dino_v1")
    let synth = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")
    var image: String { synth.appendingPathComponent("JPEGImages/car/2101_000001.jpg").path }

    func features(_ backbone: URL, _ extra: [String], out: URL) throws -> Run {
        try run("spherecorr-train", ["features", "--backbone", backbone.path, "--out", out.path, "--threads", "2"] + extra)
    }

    /// The .pth gives the very bytes the safetensors file gives: DINOv2 (flat hub state_dict) and DINOv1 ('teacher').
    @Test(arguments: [("dinov2-plain.pth", "Tests/Fixtures/dinov2/plain.safetensors", [String]()),
                      ("dino_v1-p8-teacher.pth", "Tests/Fixtures/dino_v1/p8.safetensors", ["--patch-stride", "4"])])
    func featuresFromAPthEqualTheSafetensorsOnes(file: String, safetensors: String, extra: [String]) throws {
        try #require(FileManager.default.fileExists(atPath: image), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.npy"), b = dir.appendingPathComponent("b.npy")
        let args = ["--image", image, "--resolution", "56"] + extra
        let r1 = try features(pth.appendingPathComponent(file), args, out: a)
        let r2 = try features(repoRoot.appendingPathComponent(safetensors), args, out: b)
        try #require(r1.status == 0 && r2.status == 0, "\(r1.stderr)\(r2.stderr)")
        #expect(try Data(contentsOf: a) == Data(contentsOf: b), "\(file): features differ from \(safetensors)")
        #expect(try NPY.read(contentsOf: a).shape[1] == 128)
    }

    @Test func aForbiddenCheckpointIsNamed() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try features(pth.appendingPathComponent("forbidden-global.pth"), ["--image", image, "--resolution", "56"],
                             out: dir.appendingPathComponent("f.npy"))
        #expect(r.status != 0 && r.stderr.contains("forbidden-global.pth") && r.stderr.contains("'os.system'"), "\(r.stderr)")
    }

    /// A side that tiles the DINOv1 grid is taken; one that does not is refused naming the flag and the patch size
    /// (56 is a multiple of 14 but not of 16; 60 is not a multiple of 8 but is 8 + 4·13 with stride 4).
    @Test func oneImageCommandsUseTheBackbonesGrid() throws {
        try #require(FileManager.default.fileExists(atPath: image), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("f.npy")
        let p16 = v1.appendingPathComponent("hf-p16"), p8 = v1.appendingPathComponent("p8.safetensors")
        var r = try features(p16, ["--image", image, "--resolution", "64"], out: out)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try NPY.read(contentsOf: out).shape == [16, 128])
        r = try features(p16, ["--image", image, "--resolution", "56"], out: out)
        #expect(r.status != 0 && r.stderr.contains("--resolution must be a positive multiple of 16; got 56"), "\(r.stderr)")
        r = try features(p8, ["--image", image, "--resolution", "60"], out: out)
        #expect(r.status != 0 && r.stderr.contains("--resolution must be a positive multiple of 8; got 60"), "\(r.stderr)")
        r = try features(p8, ["--image", image, "--resolution", "60", "--patch-stride", "4"], out: out)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try NPY.read(contentsOf: out).shape == [14 * 14, 128])
        let bundle = repoRoot.appendingPathComponent("Tests/Fixtures/sphere/bundle.safetensors").path
        r = try run("spherecorr-train", ["sphere", "--backbone", p16.path, "--bundle", bundle, "--image", image, "--resolution", "48", "--out", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try NPY.read(contentsOf: out).shape == [9, 3])
        r = try run("spherecorr-train", ["sphere", "--backbone", p16.path, "--bundle", bundle, "--image", image, "--resolution", "42", "--out", out.path])
        #expect(r.status != 0 && r.stderr.contains("--resolution must be a positive multiple of 16; got 42"), "\(r.stderr)")
        // --tensor: H and W on the backbone's grid too.
        let t = dir.appendingPathComponent("x.npy")
        try NPY.write(NPYArray(shape: [3, 32, 48], floats: Array(repeating: 0.5, count: 3 * 32 * 48)), to: t)
        r = try features(p16, ["--tensor", t.path], out: out)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try NPY.read(contentsOf: out).shape == [6, 128])
        r = try features(p8, ["--tensor", t.path, "--patch-stride", "4"], out: out)
        #expect(r.status == 0, "\(r.stderr)")
        try NPY.write(NPYArray(shape: [3, 28, 28], floats: Array(repeating: 0.5, count: 3 * 28 * 28)), to: t)
        r = try features(p16, ["--tensor", t.path], out: out)
        #expect(r.status != 0 && r.stderr.contains("x.npy: the input height must be a positive multiple of 16; got 28"), "\(r.stderr)")
    }

    @Test func cacheFeaturesUsesTheBackbonesGrid() throws {
        try #require(FileManager.default.fileExists(atPath: synth.path), "the synthetic dataset is expected at \(synth.path)")
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let p16 = v1.appendingPathComponent("hf-p16").path, cache = dir.appendingPathComponent("cache").path
        var r = try run("spherecorr-train", ["cache-features", "--data", synth.path, "--categories", "car", "--backbone", p16,
                                             "--resolution", "32", "--cache", cache, "--threads", "2", "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        r = try run("spherecorr-train", ["cache-features", "--data", synth.path, "--categories", "car", "--backbone", p16,
                                         "--resolution", "56", "--cache", cache, "--quiet"])
        #expect(r.status != 0 && r.stderr.contains("--resolution must be a positive multiple of 16; got 56"), "\(r.stderr)")
    }
}
