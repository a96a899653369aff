import Foundation
import Testing
import Kernels
import TensorFiles
import TestSupport
@testable import SphereMap

/// Fixtures from tools/parity/make_sphere_fixtures.py (the reference dino_mapper.py).
let sphereFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/sphere")

@Suite struct SphereMapTests {
    init() { Threading.configure(workers: 2) }

    func bundle() throws -> SphereBundle { try SphereBundle.load(path: sphereFixtures.appendingPathComponent("bundle.safetensors").path) }

    @Test func referenceCheckpointLoadsUnchanged() throws {
        let b = try bundle()
        #expect(b.backboneDim == 128)
        #expect(b.categories == ["car", "chair", "dog"])
        #expect(b.mapper.heads == 1)
        #expect(b.prototypes.categories == 3)
    }

    @Test func mapperMatchesTheReference() throws {
        let b = try bundle()
        let fx = try SafeTensorsFile(contentsOf: sphereFixtures.appendingPathComponent("case0.safetensors"))
        let feats = try fx.floats("features")
        let raw = feats.withUnsafeBufferPointer { b.mapper.forwardRaw(features: $0.baseAddress!, batch: 2, tokens: 12) }
        expectClose(raw.array, try fx.floats("s_raw"), atol: 2e-5, rtol: 2e-4, "s_raw")
        let sph = feats.withUnsafeBufferPointer { b.mapper.sphere(features: $0.baseAddress!, batch: 2, tokens: 12) }
        expectClose(sph.array, try fx.floats("sphere"), atol: 2e-5, rtol: 2e-4, "sphere")
    }

    @Test func prototypesMatchTheReference() throws {
        let b = try bundle()
        let fx = try SafeTensorsFile(contentsOf: sphereFixtures.appendingPathComponent("case0.safetensors"))
        let cats = try fx.floats("categories").map { Int($0) }
        let sph = try fx.floats("sphere")
        let r = sph.withUnsafeBufferPointer { b.prototypes.reconstruct(sphere: $0.baseAddress!, categories: cats, tokens: 12) }
        expectClose(r.array, try fx.floats("recon"), atol: 2e-5, rtol: 2e-4, "recon")
        let mask = try fx.floats("mask")
        let masked = (0..<sph.count).map { sph[$0] * mask[$0 / 3] }
        let rm = masked.withUnsafeBufferPointer { b.prototypes.reconstruct(sphere: $0.baseAddress!, categories: cats, tokens: 12) }
        expectClose(rm.array, try fx.floats("recon_masked"), atol: 2e-5, rtol: 2e-4, "recon (masked)")
    }

    @Test func writeThenLoadRoundTrips() throws {
        let b = try bundle()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bundle-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try b.write(to: url)
        let c = try SphereBundle.load(path: url.path)
        #expect(c.namedTensors().map(\.0) == b.namedTensors().map(\.0))
        #expect(zip(c.namedTensors(), b.namedTensors()).allSatisfy { $0.1.values == $1.1.values })
        #expect(c.metadata["format"] == "spherecorr-bundle" && c.metadata["version"] == "1")
    }

    @Test func initialisedBundleIsValid() throws {
        let b = SphereBundle.initialised(backboneDim: 128, categories: ["a", "b"], seed: 3)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("init-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try b.write(to: url)
        let c = try SphereBundle.load(path: url.path)
        #expect(c.categories == ["a", "b"])
        let x = [Float](repeating: 0.3, count: 5 * 128)
        let s = x.withUnsafeBufferPointer { c.mapper.sphere(features: $0.baseAddress!, batch: 1, tokens: 5) }
        for t in 0..<5 {
            let n = (0..<3).reduce(Float(0)) { $0 + s.pointer[t * 3 + $1] * s.pointer[t * 3 + $1] }
            #expect(abs(n - 1) < 1e-5)
        }
    }

    /// Every way a bundle can be wrong is reported with the file and what is wrong.
    @Test func malformedBundlesAreRejected() throws {
        let good = try SafeTensorsFile(contentsOf: sphereFixtures.appendingPathComponent("bundle.safetensors"))
        func rewrite(_ edit: (inout [(String, [Int], [Float])], inout [String: String]) -> Void) throws -> String {
            var tensors = try good.names.map { ($0, try good.info($0).shape, try good.floats($0)) }
            var meta = good.metadata
            edit(&tensors, &meta)
            var w = SafeTensorsWriter(metadata: meta)
            for (n, s, v) in tensors { w.add(n, shape: s, floats: v) }
            do { _ = try SphereBundle.load(file: SafeTensorsFile(bytes: w.encoded(), name: "bad.safetensors")) } catch {
                return "\(error)"
            }
            return "accepted"
        }
        let cases: [(String, (inout [(String, [Int], [Float])], inout [String: String]) -> Void)] = [
            ("'format'", { _, m in m["format"] = "something-else" }),
            ("'version'", { _, m in m["version"] = "2" }),
            ("missing tensor 'sphere_mapper.3.bias'", { t, _ in t.removeAll { $0.0 == "sphere_mapper.3.bias" } }),
            ("'sphere_mapper.2.attn.proj.weight' has shape", { t, _ in
                let i = t.firstIndex { $0.0 == "sphere_mapper.2.attn.proj.weight" }!
                t[i].1 = [t[i].1[0] * t[i].1[1]]
            }),
            ("unexpected tensors 'extra'", { t, _ in t.append(("extra", [1], [0])) }),
            ("non-finite", { t, _ in
                let i = t.firstIndex { $0.0 == "sphere_mapper.0.bias" }!
                t[i].2[3] = .nan
            }),
            ("differs from its twin 'prototypes.blocks.1.mlp.fc2.bias'", { t, _ in
                let i = t.firstIndex { $0.0 == "prototypes.blocks.1.mlp.fc2.bias" }!
                t[i].2[0] += 1
            }),
            ("backbone_embed_dim", { _, m in m["backbone_embed_dim"] = "768" }),
            ("categories", { _, m in m["categories"] = "car,dog" }),
        ]
        for (expected, edit) in cases {
            let message = try rewrite(edit)
            #expect(message.contains("bad.safetensors") && message.contains(expected), "\(expected): got \(message)")
        }
    }
}
