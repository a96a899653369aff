import Correspondence
import DINOv2
import Features
import Foundation
import HTTP1
import HTTPServer
import Hashing
import Imaging
import Kernels
import Runtime
import SphereMap
import TensorFiles
import Visualization

/// An uploaded image, checked from its header before any pixel is decoded.
package struct UploadedImage: Sendable {
    package var part: String         // the multipart part (or "body") it came from, for messages
    package var bytes: [UInt8]
    package var sha256: String
}

/// One image's backbone features at a resolution, with the letterbox geometry that maps pixels to patches.
package struct EmbeddedImage: Sendable {
    package var width: Int
    package var height: Int
    package var transform: KeypointTransform
    package var features: FloatStorage   // [G·G, D]
    package var cached: Bool
    /// Its feature-cache key (content hash, resolution, backbone): the identity of the image in a request.
    package var key: FeatureCache.Key
    /// The image at drawing size, decoded in the same pass as the features (only when a picture was asked for).
    package var thumbnail: HeldImage? = nil
    package var grid: Int { transform.gridSize }
    package var tokens: Int { grid * grid }
}

/// Time spent in each stage (Server-Timing and the inference duration histogram).
package struct StageTimes: Sendable {
    package var queue = 0.0, decode = 0.0, backbone = 0.0, mapper = 0.0, match = 0.0
    package var serverTiming: String {
        String(format: "queue;dur=%.1f, decode;dur=%.1f, backbone;dur=%.1f, mapper;dur=%.1f, match;dur=%.1f",
               queue * 1e3, decode * 1e3, backbone * 1e3, mapper * 1e3, match * 1e3)
    }
}

package struct PipelineLimits: Sendable {
    package var maxImagePixels = 40_000_000
    package var maxImageBytes = 16 << 20
    package var minImageSide = 14
    package var defaultResolution = 448
    package var maxResolution = 1036
    /// The longest side of a drawn picture (PNG answers); larger pictures are drawn scaled down, aspect kept.
    package var maxRenderSide = 2048
}

/// Pixels kept for drawing after a decode, with their bytes held in the decode budget until the image is
/// dropped (the response has been drawn).
package final class HeldImage: Sendable {
    package let image: RGBImage
    private let budget: DecodeBudget
    let bytes: Int

    init(_ image: RGBImage, budget: DecodeBudget, bytes: Int) {
        self.image = image; self.budget = budget; self.bytes = bytes
    }

    deinit { budget.release(bytes) }
}

/// The model work behind the endpoints: decode → letterbox → one batched backbone pass → sphere → match.
package final class Pipeline: Sendable {
    package let store: ModelStore
    package let cache: FeatureCache
    package let queue: InferenceQueue
    package let budget: DecodeBudget
    package let limits: PipelineLimits

    package init(store: ModelStore, cache: FeatureCache, queue: InferenceQueue, budget: DecodeBudget, limits: PipelineLimits) {
        self.store = store; self.cache = cache; self.queue = queue; self.budget = budget; self.limits = limits
    }

    /// `?resolution=R`: a multiple of the backbone's patch size (14 for DINOv2) up to the configured maximum.
    package func resolution(_ query: String?) throws -> Int {
        guard let query else { return limits.defaultResolution }
        let snapshot = store.snapshot
        let p = snapshot?.backbone.config.patchSize ?? PatchGrid.patchSize
        // Decimal digits only: Int("+28") would read a sign.
        guard query.utf8.count <= 6, query.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let r = Int(query),
              (snapshot.map { $0.grid(resolution: r) } ?? PatchGrid(resolution: r)) != nil, r <= limits.maxResolution else {
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Invalid parameter",
                            detail: "resolution must be a multiple of \(p) between \(p) and \(limits.maxResolution); got '\(query.truncatedForEcho)'",
                            extensions: ["pointer": .string("/resolution")])
        }
        return r
    }

    package static func upload(part: String, bytes: [UInt8]) -> UploadedImage {
        UploadedImage(part: part, bytes: bytes, sha256: SHA256.hex(bytes))
    }

    /// Header checks (empty, file size, format, pixel bomb, too small) before any pixel is decoded: the layout
    /// that prices the decode. Errors are the client's: 4xx.
    package func check(_ u: UploadedImage) throws -> ImageLayout {
        if u.bytes.isEmpty { throw invalidImage(u, "is empty") }
        if u.bytes.count > limits.maxImageBytes {
            throw HTTPError(status: .contentTooLarge, code: "image_too_large", title: "Image too large",
                            detail: "part '\(u.part)' is \(u.bytes.count) bytes; the limit per image is \(limits.maxImageBytes)",
                            extensions: ["limit_bytes": .int(limits.maxImageBytes)])
        }
        let header: ImageLayout
        do { header = try probeImageLayout(u.bytes) } catch { throw mapImageError(error, u) }
        if header.width * header.height > limits.maxImagePixels {
            throw HTTPError(status: .contentTooLarge, code: "image_too_large", title: "Image too large",
                            detail: "part '\(u.part)' is \(header.width)×\(header.height) = \(header.width * header.height) pixels; the limit is \(limits.maxImagePixels)",
                            extensions: ["limit_pixels": .int(limits.maxImagePixels)])
        }
        if min(header.width, header.height) < limits.minImageSide {
            throw HTTPError(status: .unprocessableContent, code: "image_too_small", title: "Image too small",
                            detail: "part '\(u.part)' is \(header.width)×\(header.height); both sides must be at least \(limits.minImageSide) pixels (one patch)")
        }
        return header
    }

    /// A full decode of an upload that passed `check` (the caller holds its cost in the budget).
    private func decodeChecked(_ u: UploadedImage) throws -> RGBImage {
        do { return try decodeImage(u.bytes, limits: DecodeLimits(maxPixels: limits.maxImagePixels)) } catch {
            throw mapImageError(error, u)
        }
    }

    /// The size a picture of `width × height` is drawn at: scaled down to `maxRenderSide` on its longest side.
    package func renderScale(width: Int, height: Int) -> Double {
        min(1, Double(limits.maxRenderSide) / Double(max(width, height, 1)))
    }

    /// Bytes one image costs at its peak: the decode itself (`ImageLayout.decodeBytes`), the letterbox (LANCZOS
    /// intermediate of at most long side × R RGB, the resized and padded R² RGB images, the R² float tensor)
    /// when it is embedded, and the drawing-size copy (with its row of accumulators) when it is drawn.
    static func decodeCost(_ l: ImageLayout, resolution r: Int, embed: Bool, thumbnail: (width: Int, height: Int)?) -> (total: Int, kept: Int) {
        let long = max(l.width, l.height)
        var total = l.decodeBytes
        if embed { total += long * r * 3 + 2 * r * r * 3 + 3 * r * r * 4 }
        var kept = 0
        if let t = thumbnail {
            kept = t.width * t.height * 3
            total += kept + (l.width + t.width * 3) * MemoryLayout<Int>.stride
        }
        return (total, kept)
    }

    private func invalidImage(_ u: UploadedImage, _ what: String) -> HTTPError {
        HTTPError(status: .unprocessableContent, code: "invalid_image", title: "Invalid image", detail: "part '\(u.part)' \(what)")
    }

    fileprivate func mapImageError(_ e: ImageError, _ u: UploadedImage) -> HTTPError {
        switch e {
        case .unsupportedFormat:
            return HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported image format",
                             detail: "part '\(u.part)' is not a JPEG or PNG image (formats are recognised by their magic bytes)")
        case let .unsupported(what):
            return HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", title: "Unsupported image variant",
                             detail: "part '\(u.part)': \(what)")
        case .truncated: return invalidImage(u, "is truncated")
        case let .corrupt(why): return invalidImage(u, "is corrupt: \(why)")
        case let .tooManyPixels(w, h, limit):
            return HTTPError(status: .contentTooLarge, code: "image_too_large", title: "Image too large",
                             detail: "part '\(u.part)' is \(w)×\(h) pixels; the limit is \(limit)", extensions: ["limit_pixels": .int(limit)])
        case .tooSmall:
            return HTTPError(status: .unprocessableContent, code: "image_too_small", title: "Image too small",
                             detail: "part '\(u.part)' is too small to letterbox")
        }
    }

    fileprivate func mapImageError(_ e: any Error, _ u: UploadedImage) -> HTTPError {
        if let e = e as? ImageError { return mapImageError(e, u) }
        return invalidImage(u, "cannot be decoded: \(e)")
    }

    /// Features of each upload at `resolution`: cache hits are reused, the misses go through ONE batched
    /// backbone pass on the inference queue.
    /// `thumbnails[i]`, when given, asks for upload i's pixels at that size as well (for drawing), from the
    /// same decode. Every decode is admitted by the memory budget first (`DecodeBudget`).
    package func embed(_ uploads: [UploadedImage], resolution r: Int, snapshot: ModelSnapshot, request: Request,
                       times: inout StageTimes, thumbnails: [(width: Int, height: Int)?] = []) throws -> [EmbeddedImage] {
        var out = [EmbeddedImage?](repeating: nil, count: uploads.count)
        var pending: [(index: Int, key: FeatureKey)] = []
        var slots: [(key: FeatureKey, index: Int)] = []  // distinct images to embed, first upload of each
        var jobs: [DecodeJob] = []
        var thumbnailJob = [Int?](repeating: nil, count: uploads.count)
        func wanted(_ i: Int) -> (width: Int, height: Int)? { i < thumbnails.count ? thumbnails[i] : nil }
        func sameThumbnail(_ a: (width: Int, height: Int)?, _ b: (width: Int, height: Int)?) -> Bool { a?.width == b?.width && a?.height == b?.height }
        let t0 = Measure.now()
        for (i, u) in uploads.enumerated() {
            let key = FeatureKey(sha256: u.sha256, resolution: r, backbone: snapshot.backboneName)
            if let hit = cache.get(key) {
                out[i] = EmbeddedImage(width: hit.width, height: hit.height,
                                       transform: KeypointTransform(imageWidth: hit.width, imageHeight: hit.height, resolution: r,
                                                                    grid: snapshot.grid(resolution: r)),
                                       features: hit.features, cached: true, key: key)
            } else {
                pending.append((i, key))  // the same image twice in one request shares a batch slot
                if !slots.contains(where: { $0.key == key }) {
                    slots.append((key, i))
                    jobs.append(DecodeJob(upload: i, slot: slots.count - 1, thumbnail: wanted(i)))
                }
            }
            // Pixels for drawing come from the decode that embeds, or from one decode of their own (a cache hit).
            if let t = wanted(i) {
                if let j = jobs.firstIndex(where: { uploads[$0.upload].sha256 == u.sha256 && sameThumbnail($0.thumbnail, t) }) {
                    thumbnailJob[i] = j
                } else if let j = jobs.firstIndex(where: { uploads[$0.upload].sha256 == u.sha256 && $0.thumbnail == nil }) {
                    jobs[j].thumbnail = t
                    thumbnailJob[i] = j
                } else {
                    jobs.append(DecodeJob(upload: i, slot: nil, thumbnail: t))
                    thumbnailJob[i] = jobs.count - 1
                }
            }
        }
        let plane = 3 * r * r
        let batch = FloatStorage(count: slots.count * plane, zeroed: false)
        let (sizes, held, waited) = try decode(jobs, uploads: uploads, resolution: r, into: batch, request: request)
        times.queue += waited
        times.decode += Measure.now() - t0 - waited
        for i in uploads.indices where out[i] != nil { out[i]!.thumbnail = thumbnailJob[i].flatMap { held[$0] } }
        if !slots.isEmpty {
            let deadline = request.deadline
            let (wait, result) = try queued(deadline: deadline, request: request) {
                let t = Measure.now()
                let f = snapshot.backbone.forward(images: batch.pointer, batch: slots.count, height: r, width: r)
                return (f, Measure.now() - t)
            }
            times.queue += wait
            times.backbone += result.1
            let f = result.0
            let n = f.patches, d = f.dim
            var stored: [FloatStorage] = []
            for (slot, s) in slots.enumerated() {
                let storage = FloatStorage(count: n * d, zeroed: false)
                storage.pointer.update(from: f.features.pointer + slot * n * d, count: n * d)
                cache.put(s.key, FeatureCache.Entry(features: storage, width: sizes[slot].width, height: sizes[slot].height))
                stored.append(storage)
            }
            for p in pending {
                let slot = slots.firstIndex { $0.key == p.key }!
                let (w, h) = sizes[slot]
                out[p.index] = EmbeddedImage(width: w, height: h,
                                             transform: KeypointTransform(imageWidth: w, imageHeight: h, resolution: r, grid: snapshot.grid(resolution: r)),
                                             features: stored[slot], cached: false, key: p.key, thumbnail: thumbnailJob[p.index].flatMap { held[$0] })
            }
        }
        return out.map { $0! }
    }

    /// One decode of a request: its upload, the batch slot it letterboxes into (nil: a cache hit decoded only for
    /// drawing), and the drawing size wanted.
    struct DecodeJob {
        var upload: Int
        var slot: Int?
        var thumbnail: (width: Int, height: Int)?
    }

    /// Checks every job's header (the first failure in upload order is reported), admits the request's decodes by
    /// the budget in ONE acquisition (so no request holds part of the budget while waiting for the rest), then
    /// decodes: concurrently when all of them fit at once, one after another when only the largest does. The
    /// budget is returned when the decodes end, except the drawing-size copies, held until they are dropped.
    /// Returns each slot's original size, each job's drawing copy and the seconds waited for the budget.
    private func decode(_ jobs: [DecodeJob], uploads: [UploadedImage], resolution r: Int, into batch: FloatStorage,
                        request: Request) throws -> (sizes: [(width: Int, height: Int)], held: [HeldImage?], waited: Double) {
        if jobs.isEmpty { return ([], [], 0) }
        let layouts = try jobs.map { try check(uploads[$0.upload]) }
        let costs = zip(jobs, layouts).map { Pipeline.decodeCost($1, resolution: r, embed: $0.slot != nil, thumbnail: $0.thumbnail) }
        let kept = costs.reduce(0) { $0 + $1.kept }
        let all = costs.reduce(0) { $0 + $1.total }
        let largest = costs.indices.max { costs[$0].total - costs[$0].kept < costs[$1].total - costs[$1].kept }!
        let oneAtATime = costs[largest].total - costs[largest].kept + kept
        let concurrent = all <= budget.capacity
        let need = concurrent ? all : oneAtATime
        let waited: Double
        do {
            waited = try budget.acquire(need, deadline: request.deadline, isCancelled: { !request.isClientConnected })
        } catch {
            throw budgetError(error, upload: uploads[jobs[largest].upload], layout: layouts[largest], alone: costs[largest].total)
        }
        // The bytes of the drawing copies actually made stay held by them; everything else is returned here.
        let prepared = PreparedImages(count: jobs.count)
        defer { budget.release(need - prepared.heldBytes) }
        let plane = 3 * r * r
        let input = Shared(batch.pointer)
        let work: @Sendable (Int) -> Void = { j in
            let job = jobs[j], u = uploads[job.upload]
            prepared.set(j, Result {
                let image = try self.decodeChecked(u)
                if let s = job.slot {
                    do { try ModelInput.write(image, resolution: r, into: UnsafeMutableBufferPointer(start: input.base + s * plane, count: plane)) } catch {
                        throw self.mapImageError(error, u)
                    }
                }
                let held = job.thumbnail.map { t in
                    let bytes = t.width * t.height * 3
                    let small = Rendering.downscale(image, width: t.width, height: t.height)
                    return HeldImage(small, budget: self.budget, bytes: bytes)
                }
                return (image.width, image.height, held)
            })
        }
        if concurrent {
            // Decode, letterbox and normalise concurrently (two images of a match: one per core), each straight
            // into its slot of the batch.
            DispatchQueue.concurrentPerform(iterations: jobs.count, execute: work)
        } else {
            for j in jobs.indices {
                work(j)
                if case .failure = prepared.get(j) { break }
            }
        }
        var sizes = [(width: Int, height: Int)](repeating: (0, 0), count: jobs.filter { $0.slot != nil }.count)
        var held = [HeldImage?](repeating: nil, count: jobs.count)
        for j in jobs.indices {
            let (w, h, t) = try prepared.get(j).get()
            if let s = jobs[j].slot { sizes[s] = (w, h) }
            held[j] = t
        }
        return (sizes, held, waited)
    }

    /// `alone`: what the largest image costs by itself; above the budget it is the image that can never be decoded,
    /// otherwise it is the request's images together (drawing copies included).
    private func budgetError(_ e: DecodeBudget.Rejection, upload u: UploadedImage, layout l: ImageLayout, alone: Int) -> any Error {
        switch e {
        case let .tooLarge(bytes, capacity):
            let what = alone > capacity
                ? "decoding part '\(u.part)' (\(l.width)×\(l.height), \(l.channels) channels of \(l.bitDepth) bits) needs \(alone) bytes"
                : "decoding this request's images, one at a time, with their drawing copies needs \(bytes) bytes"
            return HTTPError(status: .contentTooLarge, code: "image_too_large", title: "Image too large to decode",
                             detail: what + "; the decode budget (max_decode_bytes) is \(capacity) bytes",
                             extensions: ["limit": .string("max_decode_bytes"), "limit_bytes": .int(capacity),
                                          "decode_bytes": .int(alone > capacity ? alone : bytes)])
        case .overloaded:
            return HTTPError.serviceUnavailable(code: "overloaded",
                                                detail: "the image decode budget is in use and its queue is full (\(budget.maxWaiting) requests waiting); retry later",
                                                retryAfterSeconds: budget.retryAfterSeconds)
        case .deadlineExceeded:
            return HTTPError.serviceUnavailable(code: "deadline_exceeded", detail: "the request waited past its deadline for the image decode budget",
                                                retryAfterSeconds: budget.retryAfterSeconds)
        case .cancelled:
            return RequestCancelled()
        }
    }

    /// Unit sphere vectors [G·G, 3] of each embedded image (the mapper attends within each image). Vectors the
    /// feature cache holds for this model version are reused; the others are computed once per distinct image, in
    /// one batched mapper pass when their grids agree, and kept beside the features.
    package func spheres(_ images: [EmbeddedImage], snapshot: ModelSnapshot, request: Request, times: inout StageTimes) throws -> [FloatStorage] {
        var out = images.map { cache.sphere($0.key, version: snapshot.version) }
        var todo: [EmbeddedImage] = []
        for (i, img) in images.enumerated() where out[i] == nil && !todo.contains(where: { $0.key == img.key }) { todo.append(img) }
        if todo.isEmpty { return out.map { $0! } }
        let (wait, result) = try queued(deadline: request.deadline, request: request) {
            let t = Measure.now()
            let mapper = snapshot.bundle.mapper
            let n = todo[0].tokens, d = mapper.inputDim
            guard todo.count > 1, todo.allSatisfy({ $0.tokens == n }) else {
                return (todo.map { mapper.sphere(features: $0.features.pointer, batch: 1, tokens: $0.tokens) }, Measure.now() - t)
            }
            // Same grid: one batched mapper pass (attention stays within each image).
            let batch = FloatStorage(count: todo.count * n * d, zeroed: false)
            for (i, img) in todo.enumerated() { (batch.pointer + i * n * d).update(from: img.features.pointer, count: n * d) }
            let all = mapper.sphere(features: batch.pointer, batch: todo.count, tokens: n)
            let s = (0..<todo.count).map { i in
                let one = FloatStorage(count: n * 3, zeroed: false)
                one.pointer.update(from: all.pointer + i * n * 3, count: n * 3)
                return one
            }
            return (s, Measure.now() - t)
        }
        times.queue += wait
        times.mapper += result.1
        for (img, s) in zip(todo, result.0) { cache.putSphere(img.key, version: snapshot.version, s) }
        for i in images.indices where out[i] == nil { out[i] = result.0[todo.firstIndex { $0.key == images[i].key }!] }
        return out.map { $0! }
    }

    private func queued<T>(deadline: ContinuousClock.Instant, request: Request, _ work: () throws -> T) throws -> (Double, T) {
        do {
            let r = try queue.run(deadline: deadline, isCancelled: { !request.isClientConnected }, work)
            return (r.wait, r.value)
        } catch let e as InferenceQueue.Rejection {
            switch e {
            case let .overloaded(queued):
                throw HTTPError.serviceUnavailable(code: "overloaded", detail: "the inference queue is full (\(queued) requests waiting); retry later",
                                                   retryAfterSeconds: queue.retryAfterSeconds)
            case .deadlineExceeded:
                throw HTTPError.serviceUnavailable(code: "deadline_exceeded", detail: "the request waited past its deadline in the inference queue",
                                                   retryAfterSeconds: queue.retryAfterSeconds)
            case .cancelled:
                throw RequestCancelled()
            case .draining:
                throw HTTPError.serviceUnavailable(code: "draining", detail: "the server is shutting down", retryAfterSeconds: 1)
            }
        }
    }
}

/// The client went away while its work was queued: nothing is sent.
package struct RequestCancelled: Error {}

/// Per-job results of the decodes (each slot written by one worker, read after the join).
private final class PreparedImages: @unchecked Sendable {
    typealias Value = (width: Int, height: Int, held: HeldImage?)
    private var results: [Result<Value, any Error>?]
    private var held = 0
    private let lock = NSLock()
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<Value, any Error>) {
        lock.lock()
        results[i] = r
        if case .success(let v) = r, let h = v.held { held += h.bytes }
        lock.unlock()
    }
    func get(_ i: Int) -> Result<Value, any Error> { lock.lock(); defer { lock.unlock() }; return results[i]! }
    /// Bytes held by the drawing copies made so far.
    var heldBytes: Int { lock.lock(); defer { lock.unlock() }; return held }
}

extension FeatureCache {
    /// Each image's side of a match (candidate patches, normalised descriptors: METHOD §5) for `restrict`, with
    /// the sphere vectors of model `version` when given. Sides this cache holds are reused; the others are built
    /// once per distinct image and kept beside its features (counted in the bound), so a warm /v1/match or
    /// /v1/transfer normalises no descriptor (issue #14). The name says what a side depends on: the candidate set
    /// and whether, and from which model version, it has sphere vectors (new vectors drop it anyway).
    package func matchSides(_ images: [EmbeddedImage], spheres: [FloatStorage]?, restrict: Bool, version: String) throws -> [MatchSide] {
        let name = FeatureCache.matchSideName(restrict: restrict, sphereVersion: spheres == nil ? nil : version)
        var built: [Key: MatchSide] = [:]
        return try images.enumerated().map { i, img in
            if let side = built[img.key] ?? derived(img.key, name: name) as? MatchSide { built[img.key] = side; return side }
            let side = try matching { try MatchSide(img.matchImage(sphere: spheres?[i]), restrict: restrict) }
            putDerived(img.key, name: name, .init(side, bytes: side.bytes))
            built[img.key] = side
            return side
        }
    }

    static func matchSideName(restrict: Bool, sphereVersion: String?) -> String {
        "match-side restrict=\(restrict) sphere=\(sphereVersion ?? "none")"
    }
}
