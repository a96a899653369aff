import DINOv2
import Features
import Foundation
import Kernels
import TensorFiles
import Testing
@testable import TrainingData

@Suite struct ViewCacheTests {
    /// Builds once, reuses, rebuilds only missing or damaged shards (an interrupted build resumes), serves a smaller K
    /// from larger shards, and stores what a fresh embedding of the same view gives (float16-rounded).
    @Test func buildIsResumableAndReused() throws {
        Threading.configure(workers: 2)
        let t = try TempSPair()
        var set = try TrainingSet.spair(root: t.root, replications: 1)
        let prints = set.validatePixels()
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        let embedder = ViewEmbedder(backbone: backbone, crop: RandomResizedCrop(size: 56))
        let dir = t.root.appendingPathComponent("cache")
        let cache = ViewCache(directory: dir, backboneKey: "fixture", size: 56, seed: 7, views: 2, precision: .float16)
        #expect(try cache.build(set, fingerprints: prints, embedder: embedder) == set.images.count)
        #expect(try cache.build(set, fingerprints: prints, embedder: embedder) == 0)

        // One shard gone (as if the build stopped there), one truncated: only those two are embedded again.
        try FileManager.default.removeItem(at: cache.url(fingerprint: prints[0]))
        let damaged = cache.url(fingerprint: prints[1])
        try Data(try Data(contentsOf: damaged).prefix(100)).write(to: damaged)
        #expect(try cache.build(set, fingerprints: prints, embedder: embedder) == 2)

        // K = 1 is served by the K = 2 shards; another seed or precision is another key.
        let one = ViewCache(directory: dir, backboneKey: "fixture", size: 56, seed: 7, views: 1, precision: .float16)
        #expect(try one.build(set, fingerprints: prints, embedder: embedder) == 0)
        #expect(ViewCache(directory: dir, backboneKey: "fixture", size: 56, seed: 8, views: 1, precision: .float16).key(fingerprint: prints[0])
                != one.key(fingerprint: prints[0]))
        #expect(ViewCache(directory: dir, backboneKey: "other", size: 56, seed: 7, views: 1, precision: .float16).key(fingerprint: prints[0])
                != one.key(fingerprint: prints[0]))

        // View 1 of image 2 equals a fresh embedding of the same draws, to float16 rounding.
        let shard = try #require(cache.shard(fingerprint: prints[2], tokens: embedder.tokens, width: embedder.width))
        let (features, mask) = try cache.read(shard, view: 1)
        var draws = cache.viewDraws(fingerprint: prints[2], view: 1)
        let view = try set.load(2).pixels.randomView(embedder.crop, draws: &draws)
        var fresh: [Float] = []
        embedder.embed([view], into: &fresh)
        #expect(mask == view.maskGrid)
        #expect(zip(features, fresh).allSatisfy { abs($0 - $1) <= 1e-3 * max(1, abs($1)) })
        #expect(shard.tensors["features.1"]?.dtype == .f16)
    }
}

/// Issue #13: `fit --shard K/N` builds the K-th part of the view cache; all N parts give the files of one build.
@Suite struct ViewCacheShardTests {
    @Test func shardedBuildEqualsTheUnshardedOne() throws {
        Threading.configure(workers: 2)
        var set = try TrainingSet.spair(root: synthDev, replications: 1)
        let prints = set.validatePixels()
        _ = try set.requireValid(skipInvalid: true)
        let backbone = try DinoVisionTransformer.load(path: repo.appendingPathComponent("Tests/Fixtures/dinov2/plain.safetensors").path)
        let embedder = ViewEmbedder(backbone: backbone, crop: RandomResizedCrop(size: 28))
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("view-shards-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        func cache(_ name: String) -> ViewCache {
            ViewCache(directory: tmp.appendingPathComponent(name), backboneKey: "fixture", size: 28, seed: 3, views: 2, precision: .float16)
        }
        #expect(try cache("whole").build(set, fingerprints: prints, embedder: embedder) == set.images.count)
        var embedded = 0
        for k in [1, 0] { embedded += try cache("sharded").build(set, fingerprints: prints, embedder: embedder, part: try Shard(index: k, count: 2)) }
        #expect(embedded == set.images.count)
        for fp in prints {
            let a = try Data(contentsOf: cache("whole").url(fingerprint: fp)), b = try Data(contentsOf: cache("sharded").url(fingerprint: fp))
            #expect(a == b, "the shard of \(fp) differs from the unsharded build's")
        }
        #expect(try cache("sharded").build(set, fingerprints: prints, embedder: embedder) == 0, "a later build reuses every shard")
    }
}
