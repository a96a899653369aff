import Correspondence
import DINOv2
import Foundation
import HTTPServer
import Imaging
import Kernels
import SphereMap
import TensorFiles

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
}

/// The model work behind the endpoints: decode → letterbox → one batched backbone pass → sphere → match.
package final class Pipeline: Sendable {
    package let store: ModelStore
    package let cache: FeatureCache
    package let queue: InferenceQueue
    package let limits: PipelineLimits

    package init(store: ModelStore, cache: FeatureCache, queue: InferenceQueue, limits: PipelineLimits) {
        self.store = store; self.cache = cache; self.queue = queue; self.limits = limits
    }

    /// `?resolution=R`: a multiple of 14 up to the configured maximum.
    package func resolution(_ query: String?) throws -> Int {
        guard let query else { return limits.defaultResolution }
        guard let r = Int(query), r >= 14, r % 14 == 0, r <= limits.maxResolution else {
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Invalid parameter",
                            detail: "resolution must be a multiple of 14 between 14 and \(limits.maxResolution); got '\(query)'",
                            extensions: ["pointer": .string("/resolution")])
        }
        return r
    }

    package static func upload(part: String, bytes: [UInt8]) -> UploadedImage {
        UploadedImage(part: part, bytes: bytes, sha256: SHA256.hex(bytes))
    }

    /// Header checks (format, pixel bomb, too small), then a full decode. Errors are the client's: 4xx.
    package func decode(_ u: UploadedImage) throws -> RGBImage {
        if u.bytes.isEmpty { throw invalidImage(u, "is empty") }
        if u.bytes.count > limits.maxImageBytes {
            throw HTTPError(status: .contentTooLarge, code: "image_too_large", title: "Image too large",
                            detail: "part '\(u.part)' is \(u.bytes.count) bytes; the limit per image is \(limits.maxImageBytes)",
                            extensions: ["limit_bytes": .int(limits.maxImageBytes)])
        }
        let header: ImageHeader
        do { header = try probeImage(u.bytes) } catch { throw mapImageError(error, u) }
        if header.width * header.height > limits.maxImagePixels {
            throw HTTPError(status: .contentTooLarge, code: "image_too_large", title: "Image too large",
                            detail: "part '\(u.part)' is \(header.width)×\(header.height) = \(header.width * header.height) pixels; the limit is \(limits.maxImagePixels)",
                            extensions: ["limit_pixels": .int(limits.maxImagePixels)])
        }
        if min(header.width, header.height) < limits.minImageSide {
            throw HTTPError(status: .unprocessableContent, code: "image_too_small", title: "Image too small",
                            detail: "part '\(u.part)' is \(header.width)×\(header.height); both sides must be at least \(limits.minImageSide) pixels (one patch)")
        }
        do { return try decodeImage(u.bytes, limits: DecodeLimits(maxPixels: limits.maxImagePixels)) } catch {
            throw mapImageError(error, u)
        }
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
    package func embed(_ uploads: [UploadedImage], resolution r: Int, snapshot: ModelSnapshot, request: Request,
                       times: inout StageTimes) throws -> [EmbeddedImage] {
        var out = [EmbeddedImage?](repeating: nil, count: uploads.count)
        var pending: [(index: Int, key: FeatureCache.Key)] = []
        var slots: [(key: FeatureCache.Key, index: Int)] = []  // distinct images to embed, first upload of each
        let t0 = Measure.now()
        for (i, u) in uploads.enumerated() {
            let key = FeatureCache.Key(sha256: u.sha256, resolution: r, backbone: snapshot.backboneName)
            if let hit = cache.get(key) {
                out[i] = EmbeddedImage(width: hit.width, height: hit.height,
                                       transform: KeypointTransform(imageWidth: hit.width, imageHeight: hit.height, resolution: r),
                                       features: hit.features, cached: true)
            } else {
                pending.append((i, key))  // the same image twice in one request shares a batch slot
                if !slots.contains(where: { $0.key == key }) { slots.append((key, i)) }
            }
        }
        // Decode, letterbox and normalise the distinct images concurrently (two images of a match: one per core),
        // each straight into its slot of the batch; the first failure in upload order is the one reported.
        let prepared = PreparedImages(count: slots.count)
        let plane = 3 * r * r
        let batch = FloatStorage(count: slots.count * plane, zeroed: false)
        let uploadsCopy = uploads, slotIndices = slots.map(\.index), input = Shared(batch.pointer)
        DispatchQueue.concurrentPerform(iterations: slots.count) { s in
            let u = uploadsCopy[slotIndices[s]]
            prepared.set(s, Result {
                let image = try self.decode(u)
                let boxed: RGBImage
                do { boxed = try letterbox(image, resolution: r) } catch { throw self.mapImageError(error, u) }
                boxed.pixels.withUnsafeBufferPointer { px in
                    normalizeToTensor(UnsafeMutableBufferPointer(start: input.base + s * plane, count: plane), px,
                                      width: boxed.width, height: boxed.height)
                }
                return (image.width, image.height)
            })
        }
        let sizes = try (0..<slots.count).map { try prepared.get($0).get() }
        times.decode += Measure.now() - t0
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
                out[p.index] = EmbeddedImage(width: w, height: h, transform: KeypointTransform(imageWidth: w, imageHeight: h, resolution: r),
                                             features: stored[slot], cached: false)
            }
        }
        return out.map { $0! }
    }

    /// Unit sphere vectors [G·G, 3] of each embedded image (the mapper attends within each image).
    package func spheres(_ images: [EmbeddedImage], snapshot: ModelSnapshot, request: Request, times: inout StageTimes) throws -> [FloatStorage] {
        let (wait, result) = try queued(deadline: request.deadline, request: request) {
            let t = Measure.now()
            let mapper = snapshot.bundle.mapper
            let n = images.first?.tokens ?? 0, d = mapper.inputDim
            guard images.count > 1, images.allSatisfy({ $0.tokens == n }) else {
                return (images.map { mapper.sphere(features: $0.features.pointer, batch: 1, tokens: $0.tokens) }, Measure.now() - t)
            }
            // Same grid: one batched mapper pass (attention stays within each image).
            let batch = FloatStorage(count: images.count * n * d, zeroed: false)
            for (i, img) in images.enumerated() { (batch.pointer + i * n * d).update(from: img.features.pointer, count: n * d) }
            let all = mapper.sphere(features: batch.pointer, batch: images.count, tokens: n)
            let s = (0..<images.count).map { i in
                let one = FloatStorage(count: n * 3, zeroed: false)
                one.pointer.update(from: all.pointer + i * n * 3, count: n * 3)
                return one
            }
            return (s, Measure.now() - t)
        }
        times.queue += wait
        times.mapper += result.1
        return result.0
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

/// Per-slot results of the concurrent decode (each slot written by one worker, read after the join).
private final class PreparedImages: @unchecked Sendable {
    private var results: [Result<(width: Int, height: Int), any Error>?]
    private let lock = NSLock()
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<(width: Int, height: Int), any Error>) { lock.lock(); results[i] = r; lock.unlock() }
    func get(_ i: Int) -> Result<(width: Int, height: Int), any Error> { lock.lock(); defer { lock.unlock() }; return results[i]! }
}
