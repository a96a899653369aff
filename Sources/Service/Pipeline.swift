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

    private func mapImageError(_ e: ImageError, _ u: UploadedImage) -> HTTPError {
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

    private func mapImageError(_ e: any Error, _ u: UploadedImage) -> HTTPError {
        if let e = e as? ImageError { return mapImageError(e, u) }
        return invalidImage(u, "cannot be decoded: \(e)")
    }

    /// Features of each upload at `resolution`: cache hits are reused, the misses go through ONE batched
    /// backbone pass on the inference queue.
    package func embed(_ uploads: [UploadedImage], resolution r: Int, snapshot: ModelSnapshot, request: Request,
                       times: inout StageTimes) throws -> [EmbeddedImage] {
        var out = [EmbeddedImage?](repeating: nil, count: uploads.count)
        var pending: [(index: Int, key: FeatureCache.Key, image: RGBImage)] = []
        let t0 = Measure.now()
        for (i, u) in uploads.enumerated() {
            let key = FeatureCache.Key(sha256: u.sha256, resolution: r, backbone: snapshot.backboneName)
            if let hit = cache.get(key) {
                out[i] = EmbeddedImage(width: hit.width, height: hit.height,
                                       transform: KeypointTransform(imageWidth: hit.width, imageHeight: hit.height, resolution: r),
                                       features: hit.features, cached: true)
            } else if let j = pending.firstIndex(where: { $0.key == key }) {
                pending.append((i, key, pending[j].image))  // the same image twice in one request
            } else {
                pending.append((i, key, try decode(u)))
            }
        }
        // Letterbox each distinct image once; identical uploads share a batch slot.
        var slots: [FeatureCache.Key] = []
        var tensor: [Float] = []
        for p in pending where !slots.contains(p.key) {
            slots.append(p.key)
            let boxed: RGBImage
            do { boxed = try letterbox(p.image, resolution: r) } catch {
                throw mapImageError(error, uploads[p.index])
            }
            tensor += toNormalizedTensor(boxed)
        }
        times.decode += Measure.now() - t0
        if !slots.isEmpty {
            let deadline = request.deadline
            let (wait, result) = try queued(deadline: deadline, request: request) {
                let t = Measure.now()
                let f = tensor.withUnsafeBufferPointer {
                    snapshot.backbone.forward(images: $0.baseAddress!, batch: slots.count, height: r, width: r)
                }
                return (f, Measure.now() - t)
            }
            times.queue += wait
            times.backbone += result.1
            let f = result.0
            let n = f.patches, d = f.dim
            for p in pending {
                let slot = slots.firstIndex(of: p.key)!
                let storage = FloatStorage(count: n * d, zeroed: false)
                storage.pointer.update(from: f.features.pointer + slot * n * d, count: n * d)
                let entry = FeatureCache.Entry(features: storage, width: p.image.width, height: p.image.height)
                cache.put(p.key, entry)
                out[p.index] = EmbeddedImage(width: p.image.width, height: p.image.height,
                                             transform: KeypointTransform(imageWidth: p.image.width, imageHeight: p.image.height, resolution: r),
                                             features: storage, cached: false)
            }
        }
        return out.map { $0! }
    }

    /// Unit sphere vectors [G·G, 3] of each embedded image (the mapper attends within each image).
    package func spheres(_ images: [EmbeddedImage], snapshot: ModelSnapshot, request: Request, times: inout StageTimes) throws -> [FloatStorage] {
        let (wait, result) = try queued(deadline: request.deadline, request: request) {
            let t = Measure.now()
            let s = images.map { img in snapshot.bundle.mapper.sphere(features: img.features.pointer, batch: 1, tokens: img.tokens) }
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
