import DINOv2
import Foundation
import Hashing
import Imaging
import Kernels
import TensorFiles

/// A problem with one image or cache file, named.
package struct FeatureStoreError: Error, CustomStringConvertible {
    package var file: String
    package var detail: String
    package var description: String { "\(file): \(detail)" }
}

/// Backbone features of image files: each distinct image is embedded once per (backbone, resolution); with a cache
/// directory they persist across runs as `<dir>/<k[0..2]>/<k>.safetensors` (`features` [G·G, D], metadata naming the
/// backbone and resolution), k = `FeatureKey.name`. Entries are written atomically, one per image, so any number of
/// processes (the shards of `cache-features` or `evaluate`) can fill one directory and a later run reuses them all.
package final class FeatureStore {
    package let backbone: DinoVisionTransformer
    package let backboneKey: String
    package let resolution: Int
    package let cacheDirectory: URL?
    /// Images per backbone pass.
    package var chunk = 2
    private var memory: [String: [Float]] = [:]   // image path → [G·G, D]
    package private(set) var embedded = 0
    package private(set) var diskHits = 0
    package private(set) var memoryHits = 0

    package init(backbone: DinoVisionTransformer, backboneKey: String, resolution: Int, cacheDirectory: URL?) {
        self.backbone = backbone; self.backboneKey = backboneKey; self.resolution = resolution; self.cacheDirectory = cacheDirectory
    }

    /// Drops the in-memory features (between categories: a category's images fit in memory, all of SPair does not).
    package func clearMemory() { memory.removeAll(keepingCapacity: true) }

    /// Features [G·G, D] of the images at `paths` (absolute), embedding the missing ones `chunk` at a time.
    package func features(_ paths: [String]) throws -> [[Float]] {
        var missing: [(path: String, bytes: [UInt8], key: FeatureKey)] = []
        for p in Set(paths) where memory[p] == nil {
            let (bytes, key) = try read(p)
            if let cached = readCache(key) { memory[p] = cached; diskHits += 1 } else { missing.append((p, bytes, key)) }
        }
        missing.sort { $0.path < $1.path }
        try embed(missing) { path, key, f in
            memory[path] = f
            try writeCache(key, f)
        }
        memoryHits += max(0, paths.count - missing.count)
        return paths.map { memory[$0]! }
    }

    /// Fills the on-disk cache for `paths` (sorted; only `shard`'s part of them when given), keeping nothing in
    /// memory. One image per backbone pass, so that an entry's bytes do not depend on which images shared its pass:
    /// N shard builds then write exactly the files of one unsharded build. Returns how many images were embedded; the
    /// rest were already cached.
    @discardableResult
    package func fill(_ paths: [String], shard: Shard? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        precondition(cacheDirectory != nil, "fill needs a cache directory")
        let all = Array(Set(paths)).sorted()
        let mine = all[shard?.range(total: all.count) ?? all.indices]
        let before = embedded
        for (done, p) in mine.enumerated() {
            let (bytes, key) = try read(p)
            if cacheHolds(key) { diskHits += 1 } else { try embed([(p, bytes, key)]) { _, key, f in try writeCache(key, f) } }
            progress?(done + 1, mine.count)
        }
        return embedded - before
    }

    private func read(_ path: String) throws -> (bytes: [UInt8], key: FeatureKey) {
        let bytes: [UInt8]
        do { bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw FeatureStoreError(file: path, detail: "cannot read image: \(error.localizedDescription)")
        }
        return (bytes, FeatureKey(sha256: SHA256.hex(bytes), resolution: resolution, backbone: backboneKey))
    }

    /// Embeds `images` `chunk` at a time and hands each one's features [G·G, D] to `store`.
    private func embed(_ images: [(path: String, bytes: [UInt8], key: FeatureKey)],
                       store: (String, FeatureKey, [Float]) throws -> Void) throws {
        var i = 0
        while i < images.count {
            let batch = images[i..<min(i + chunk, images.count)]
            var input: [Float] = []
            for m in batch {
                do { input += try ModelInput.tensor(bytes: m.bytes, resolution: resolution) } catch {
                    throw FeatureStoreError(file: m.path, detail: "cannot decode image: \(error)")
                }
            }
            var out: [Float] = []
            input.withUnsafeBufferPointer { backbone.features(of: $0, count: batch.count, side: resolution, chunk: chunk, into: &out) }
            let n = out.count / batch.count
            for (b, m) in batch.enumerated() {
                try store(m.path, m.key, Array(out[(b * n)..<((b + 1) * n)]))
                embedded += 1
            }
            i += batch.count
        }
    }

    private func cacheURL(_ key: FeatureKey) -> URL? {
        cacheDirectory?.appendingPathComponent(String(key.name.prefix(2))).appendingPathComponent(key.name + ".safetensors")
    }

    /// A valid entry for `key`; a damaged one is ignored (and rewritten), never trusted.
    private func cacheFile(_ key: FeatureKey) -> SafeTensorsFile? {
        guard let url = cacheURL(key), FileManager.default.fileExists(atPath: url.path),
              let f = try? SafeTensorsFile(contentsOf: url), f.tensors["features"] != nil,
              f.metadata["backbone"] == backboneKey, f.metadata["resolution"] == String(resolution) else { return nil }
        return f
    }

    private func cacheHolds(_ key: FeatureKey) -> Bool { cacheFile(key).map { (try? $0.floats("features")) != nil } ?? false }

    private func readCache(_ key: FeatureKey) -> [Float]? { cacheFile(key).flatMap { try? $0.floats("features") } }

    private func writeCache(_ key: FeatureKey, _ values: [Float]) throws {
        guard let url = cacheURL(key) else { return }
        let d = backbone.config.embedDim
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            var w = SafeTensorsWriter(metadata: ["backbone": backboneKey, "resolution": String(resolution)])
            w.add("features", shape: [values.count / d, d], floats: values)
            try w.write(to: url)
        } catch { throw FeatureStoreError(file: url.path, detail: "cannot write feature cache: \(error)") }
    }
}
