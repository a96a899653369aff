// Backbone features of augmented views, fresh or from the view cache.
//
// The backbone is frozen (METHOD §4.1), so a view's features depend only on the backbone, the resolution, the
// crop and the image: `--views K` embeds K views per image once and stores them; training then picks one of
// the K views per item and epoch. `--views 0` crops afresh every epoch, as the reference does.
//
// Randomness is stateless: view v of an image is drawn from a generator seeded by (seed, image content, v);
// a fresh crop from (seed, epoch, item position). So a resumed run, or a cache built in another run, gives the
// same views without any saved generator state.

import DINOv2
import Features
import Foundation
import Hashing
import Kernels
import SPair
import TensorFiles

/// Derives independent 64-bit seeds from a seed and a few values (SplitMix64 finaliser over a running mix).
package func derivedSeed(_ seed: UInt64, _ parts: UInt64...) -> UInt64 {
    var g = SplitMix64(seed: seed)
    var s = g.next()
    for p in parts {
        g = SplitMix64(seed: s ^ p &* 0x9E37_79B9_7F4A_7C15)
        s = g.next()
    }
    return s
}

/// The first 8 bytes of a hex digest as a number (for seeding from a content hash).
package func seedFromHex(_ hex: String) -> UInt64 { UInt64(hex.prefix(16), radix: 16) ?? 0 }

/// Embeds views with the frozen backbone: normalised [3, S, S] images → patch features [N, D] (`x_prenorm`
/// without CLS and registers, H12), a few images per forward pass to bound memory.
package struct ViewEmbedder: @unchecked Sendable {
    package let backbone: DinoVisionTransformer
    package let crop: RandomResizedCrop
    /// Images per backbone pass (activations of ViT-B at 448² are ~25 MB per image per tensor).
    package var chunk = 4

    package init(backbone: DinoVisionTransformer, crop: RandomResizedCrop) { self.backbone = backbone; self.crop = crop }

    package var tokens: Int { (crop.size / patchSizeOf(backbone)) * (crop.size / patchSizeOf(backbone)) }
    package var width: Int { backbone.config.embedDim }

    /// Features of `views` appended to `out` ([B, N, D] row-major).
    package func embed(_ views: [AugmentedView], into out: inout [Float]) {
        let s = crop.size
        var input = [Float](); input.reserveCapacity(views.count * 3 * s * s)
        for v in views { input += v.image }
        input.withUnsafeBufferPointer { backbone.features(of: $0, count: views.count, side: s, chunk: chunk, into: &out) }
    }
}

func patchSizeOf(_ b: DinoVisionTransformer) -> Int { b.config.patchSize }

/// Float formats of the cached features.
package enum CachePrecision: String, Sendable, CaseIterable {
    case float16, bfloat16
    var dtype: SafeTensorsDType { self == .float16 ? .f16 : .bf16 }
}

/// Per-image shards of precomputed views: `<dir>/<k[0..2]>/<k>.safetensors` with `features.<v>` [N, D]
/// (float16 or bfloat16) and `mask.<v>` [N] (float32, the non-binary grid mask) for v = 0..<views, where the key
/// k hashes the backbone identity, the resolution, the augmentation seed and the image content. A shard is
/// written atomically once all its views exist, so an interrupted build resumes at the first missing image,
/// and a shard with more views than asked serves a smaller K.
package struct ViewCache: Sendable {
    package static let format = "spherecorr-views"
    package let directory: URL
    package let backboneKey: String
    package let size: Int
    package let seed: UInt64
    package let views: Int
    package let precision: CachePrecision

    package init(directory: URL, backboneKey: String, size: Int, seed: UInt64, views: Int, precision: CachePrecision) {
        precondition(views >= 1)
        self.directory = directory; self.backboneKey = backboneKey; self.size = size; self.seed = seed; self.views = views
        self.precision = precision
    }

    package func key(fingerprint: String) -> String {
        SHA256.hex(Array("\(Self.format)|backbone \(backboneKey)|size \(size)|seed \(seed)|image \(fingerprint)|\(precision.rawValue)".utf8))
    }

    package func url(fingerprint: String) -> URL {
        let k = key(fingerprint: fingerprint)
        return directory.appendingPathComponent(String(k.prefix(2))).appendingPathComponent(k + ".safetensors")
    }

    /// The generator of view v of an image.
    package func viewDraws(fingerprint: String, view v: Int) -> SplitMix64 {
        SplitMix64(seed: derivedSeed(seed, 0x7669_6577, seedFromHex(fingerprint), UInt64(v)))  // "view"
    }

    /// The stored shard if it is complete for this cache (enough views, the right shapes), else nil: a damaged or
    /// partial file is rebuilt, never trusted.
    package func shard(fingerprint: String, tokens: Int, width: Int) -> SafeTensorsFile? {
        let u = url(fingerprint: fingerprint)
        guard FileManager.default.fileExists(atPath: u.path), let f = try? SafeTensorsFile(contentsOf: u),
              f.metadata["format"] == Self.format, f.metadata["key"] == key(fingerprint: fingerprint),
              let n = f.metadata["views"].flatMap(Int.init), n >= views else { return nil }
        for v in 0..<views {
            guard f.tensors["features.\(v)"]?.shape == [tokens, width], f.tensors["mask.\(v)"]?.shape == [tokens] else { return nil }
        }
        return f
    }

    /// Features [N·D] and grid mask [N] of view v from a shard.
    package func read(_ f: SafeTensorsFile, view v: Int) throws -> (features: [Float], mask: [Float]) {
        (try f.floats("features.\(v)"), try f.floats("mask.\(v)"))
    }

    /// Embeds and writes every image's views that are not stored yet (with `part`, only the images of that shard of
    /// the list: N shard builds, in any order or on any machines sharing the directory, write exactly the files of one
    /// unsharded build). `progress(done, total, embedded)` after each image. Returns how many images were embedded
    /// (the rest were already there).
    /// `stop` is asked before each image: when it says so the build ends (throwing `ViewCacheStopped`), leaving only
    /// complete shards behind, and the next build continues from there.
    @discardableResult
    package func build(_ set: TrainingSet, fingerprints: [String], embedder: ViewEmbedder, part: Shard? = nil,
                       stop: (() -> Bool)? = nil, progress: ((Int, Int, Int) -> Void)? = nil) throws -> Int {
        precondition(fingerprints.count == set.images.count)
        let tokens = embedder.tokens, width = embedder.width
        let mine = part?.range(total: set.images.count) ?? set.images.indices
        var embedded = 0
        for (done, i) in mine.enumerated() {
            if let stop, stop() { throw ViewCacheStopped(done: done, total: mine.count) }
            let fp = fingerprints[i]
            if shard(fingerprint: fp, tokens: tokens, width: width) == nil {
                let img = try set.load(i)
                guard img.fingerprint == fp else {
                    throw SPairError(.inconsistent, file: set.images[i].imagePath, "changed while the view cache was being built")
                }
                var viewList: [AugmentedView] = []
                for v in 0..<views {
                    var draws = viewDraws(fingerprint: fp, view: v)
                    viewList.append(img.pixels.randomView(embedder.crop, draws: &draws))
                }
                var feats: [Float] = []
                embedder.embed(viewList, into: &feats)
                var w = SafeTensorsWriter(metadata: ["format": Self.format, "key": key(fingerprint: fp), "views": String(views),
                                                     "backbone": backboneKey, "size": String(size), "seed": String(seed),
                                                     "image": set.images[i].imagePath])
                let n = tokens * width
                feats.withUnsafeBufferPointer { p in
                    for v in 0..<views {
                        w.add("features.\(v)", shape: [tokens, width], floats: UnsafeBufferPointer(rebasing: p[(v * n)..<((v + 1) * n)]), as: precision.dtype)
                    }
                }
                for v in 0..<views { w.add("mask.\(v)", shape: [tokens], floats: viewList[v].maskGrid) }
                let u = url(fingerprint: fp)
                do {
                    try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try w.write(to: u)
                } catch { throw SPairError(.unreadableFile, file: u.path, "cannot write the view cache: \(error)") }
                embedded += 1
            }
            progress?(done + 1, mine.count, embedded)
        }
        return embedded
    }
}

/// A view cache build ended early on request; the shards written so far are complete and reused.
package struct ViewCacheStopped: Error, CustomStringConvertible {
    package var done: Int
    package var total: Int
    package var description: String { "view cache build stopped after \(done) of \(total) images" }
}
