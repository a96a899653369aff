import DINOv2
import Foundation
import Kernels
import SPair
import TensorFiles
import Testing
@testable import Features

let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let synthDev = repo.deletingLastPathComponent().appendingPathComponent("shared/data/spair-synth-dev")

/// The on-disk feature cache (issue #13): N shard builds leave exactly the files of one unsharded build, and a later
/// run reads every image from them.
@Suite struct FeatureStoreTests {
    /// Every image of the synthetic dev set's test pairs, as `cache-features` lists them.
    func testImages() throws -> [String] {
        try #require(FileManager.default.fileExists(atPath: synthDev.path), "the synthetic dataset is expected at \(synthDev.path)")
        let ds = try SPairDataset(root: synthDev)
        var paths = Set<String>()
        for c in try ds.categories() {
            for p in try ds.loadPairs(split: .test, category: c).requireValid() {
                paths.insert(ds.url(p.sourceImagePath).path); paths.insert(ds.url(p.targetImagePath).path)
            }
        }
        return paths.sorted()
    }

    /// Relative path → bytes of every file under `dir`.
    func files(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = try #require(FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.isRegularFileKey]))
        for case let u as URL in e where (try u.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            out[String(u.path.dropFirst(dir.path.count))] = try Data(contentsOf: u)
        }
        return out
    }

    @Test func shardedBuildEqualsTheUnshardedOne() throws {
        Threading.configure(workers: 2)
        let paths = try testImages()
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("feature-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        func store(_ name: String) -> FeatureStore {
            FeatureStore(backbone: backbone, backboneKey: "fixture", resolution: 56, cacheDirectory: tmp.appendingPathComponent(name))
        }
        let whole = store("whole")
        #expect(try whole.fill(paths) == paths.count)
        let sharded = store("sharded")
        var embedded = 0
        for k in [2, 0, 1] { embedded += try store("sharded").fill(paths, shard: try Shard(index: k, count: 3)) }
        #expect(embedded == paths.count, "each image is embedded by exactly one shard")
        let a = try files(tmp.appendingPathComponent("whole")), b = try files(tmp.appendingPathComponent("sharded"))
        #expect(a.count == paths.count && Set(a.keys) == Set(b.keys))
        #expect(a.allSatisfy { b[$0.key] == $0.value }, "same bytes in every entry")
        // A later run reads them all and embeds nothing; what it reads is what a fresh embedding gives.
        let later = try sharded.features(Array(paths.prefix(3)))
        #expect(sharded.embedded == 0 && sharded.diskHits == 3)
        let fresh = store("fresh-\(UUID().uuidString)")
        let again = try fresh.features(Array(paths.prefix(3)))  // two images per pass there, one in fill: same values
        #expect(fresh.embedded == 3 && zip(again.joined(), later.joined()).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
        // Filling again embeds nothing.
        #expect(try whole.fill(paths) == 0)
    }

    @Test func badImagesAreNamed() throws {
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("feature-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let bad = tmp.appendingPathComponent("not-an-image.jpg")
        try Data("text".utf8).write(to: bad)
        let s = FeatureStore(backbone: backbone, backboneKey: "fixture", resolution: 56, cacheDirectory: tmp.appendingPathComponent("cache"))
        do { _ = try s.fill([bad.path, tmp.appendingPathComponent("missing.jpg").path]); Issue.record("accepted") } catch {
            #expect("\(error)".contains("missing.jpg") || "\(error)".contains("not-an-image.jpg"), "\(error)")
        }
    }
}
