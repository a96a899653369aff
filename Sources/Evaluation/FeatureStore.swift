import DINOv2
import Foundation
import Hashing
import Imaging
import Kernels
import TensorFiles

/// Backbone features of evaluation images: each distinct image is embedded once per (backbone, resolution);
/// with a cache directory they persist across runs as safetensors keyed by image content and backbone.
package final class FeatureStore {
    let backbone: DinoVisionTransformer
    let backboneKey: String
    let resolution: Int
    let cacheDirectory: URL?
    private var memory: [String: [Float]] = [:]   // image path → [G·G, D]
    package private(set) var embedded = 0
    private(set) var diskHits = 0
    private(set) var memoryHits = 0

    package init(backbone: DinoVisionTransformer, backboneKey: String, resolution: Int, cacheDirectory: URL?) {
        self.backbone = backbone; self.backboneKey = backboneKey; self.resolution = resolution; self.cacheDirectory = cacheDirectory
    }

    /// Drops the in-memory features (between categories: a category's images fit in memory, all of SPair does not).
    package func clearMemory() { memory.removeAll(keepingCapacity: true) }

    /// Features [G·G, D] of the images at `paths` (absolute), embedding the missing ones two at a time.
    package func features(_ paths: [String]) throws -> [[Float]] {
        var missing: [(path: String, bytes: [UInt8], key: String)] = []
        for p in Set(paths) where memory[p] == nil {
            let bytes: [UInt8]
            do { bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: p))) } catch {
                throw EvaluationError.data(file: p, detail: "cannot read image: \(error.localizedDescription)")
            }
            // bf16 features are other features: their own key (fp32 keys unchanged, existing caches stay valid).
            let key = SHA256.hex(bytes) + "-" + backboneKey + "-r\(resolution)" + (Precision.current == .bf16 ? "-bf16" : "")
            if let cached = try readCache(key) { memory[p] = cached; diskHits += 1 } else { missing.append((p, bytes, key)) }
        }
        missing.sort { $0.path < $1.path }
        var i = 0
        while i < missing.count {
            let batch = Array(missing[i..<min(i + 2, missing.count)])
            var tensor: [Float] = []
            for m in batch {
                do {
                    let img = try decodeImage(m.bytes)
                    tensor += toNormalizedTensor(try letterbox(img, resolution: resolution))
                } catch { throw EvaluationError.data(file: m.path, detail: "cannot decode image: \(error)") }
            }
            let out = tensor.withUnsafeBufferPointer {
                backbone.forward(images: $0.baseAddress!, batch: batch.count, height: resolution, width: resolution)
            }
            let n = out.patches * out.dim
            for (b, m) in batch.enumerated() {
                let f = Array(UnsafeBufferPointer(start: out.features.pointer + b * n, count: n))
                memory[m.path] = f
                try writeCache(m.key, f, shape: [out.patches, out.dim])
                embedded += 1
            }
            i += batch.count
        }
        let hits = paths.count - missing.count
        memoryHits += max(0, hits)
        return paths.map { memory[$0]! }
    }

    private func cacheURL(_ key: String) -> URL? {
        cacheDirectory?.appendingPathComponent(String(key.prefix(2))).appendingPathComponent(key + ".safetensors")
    }

    private func readCache(_ key: String) throws -> [Float]? {
        guard let url = cacheURL(key), FileManager.default.fileExists(atPath: url.path) else { return nil }
        // A damaged cache entry is ignored and rewritten, never trusted.
        guard let f = try? SafeTensorsFile(contentsOf: url), let v = try? f.floats("features"),
              f.metadata["backbone"] == backboneKey, f.metadata["resolution"] == String(resolution) else { return nil }
        return v
    }

    private func writeCache(_ key: String, _ values: [Float], shape: [Int]) throws {
        guard let url = cacheURL(key) else { return }
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            var w = SafeTensorsWriter(metadata: ["backbone": backboneKey, "resolution": String(resolution)])
            w.add("features", shape: shape, floats: values)
            try w.write(to: url)
        } catch { throw EvaluationError.data(file: url.path, detail: "cannot write feature cache: \(error)") }
    }
}

