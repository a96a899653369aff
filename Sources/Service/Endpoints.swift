import Correspondence
import Features
import Foundation
import HTTP1
import HTTPServer
import Imaging
import JSON
import Kernels
import Runtime
import SphereMap
import Visualization

/// The inference endpoints: /v1/features, /v1/sphere-map, /v1/match, /v1/transfer.
struct Endpoints: Sendable {
    let pipeline: Pipeline
    let metrics: ServiceMetrics
    let multipartLimits: MultipartLimits
    let maxPoints: Int
    /// Most `target` parts of one /v1/transfer request (ServiceOptions.maxTargets).
    let maxTargets: Int
    let readiness: Readiness

    /// The model this request computes with. While draining (after SIGTERM) requests are still served: the load
    /// balancer keeps sending until it sees /readyz fail, and the listener closes only after the drain delay.
    func snapshot() throws -> ModelSnapshot {
        let phase = readiness.current.phase
        guard phase == .ready || phase == .draining, let s = pipeline.store.snapshot else {
            metrics.recordRejected("not_ready")
            throw HTTPError.serviceUnavailable(code: "model_not_ready",
                                               detail: phase == .failed ? "the model failed to load; see /readyz and the log" : "the model is \(phase.rawValue)")
        }
        return s
    }

    /// Runs the handler body, turning queue rejections into metrics.
    func counted(_ body: () throws -> Response) throws -> Response {
        do { return try body() } catch let e as HTTPError {
            if e.code == "overloaded" { metrics.recordRejected("overloaded") }
            if e.code == "deadline_exceeded" { metrics.recordRejected("deadline") }
            throw e
        } catch is RequestCancelled {
            // Nobody reads this answer; 499 (nginx's "client closed request") keeps it out of the 5xx counts.
            metrics.cancelled.increment()
            throw HTTPError(status: HTTPStatus(code: 499, reasonPhrase: "Client Closed Request"), code: "client_closed_request",
                            detail: "the client disconnected before its work started; the work was dropped", closeConnection: true)
        }
    }

    // MARK: Checks on the head (also run as the routes' head checks: refused before 100 Continue). The order is the
    // handlers': query, Accept, Content-Type, then readiness.

    var featuresQuery: Inputs.QuerySpec { ["resolution": resolutionCheck, "encoding": Endpoints.encodingCheck] }
    var sphereMapQuery: Inputs.QuerySpec { ["resolution": resolutionCheck, "encoding": Endpoints.encodingCheck, "box": Endpoints.boxCheck] }
    var matchQuery: Inputs.QuerySpec { ["resolution": resolutionCheck] }

    /// Pipeline.resolution's own check and message.
    var resolutionCheck: @Sendable (String) -> String? {
        { [pipeline] v in
            do { _ = try pipeline.resolution(v); return nil } catch let e as HTTPError { return e.detail } catch { return "\(error)" }
        }
    }

    static let encodingCheck: @Sendable (String) -> String? = { v in
        ["base64", "array"].contains(v) ? nil : "encoding must be 'base64' or 'array'; got '\(v.truncatedForEcho)'"
    }

    /// x1,y1,x2,y2: four decimal integers, nothing else (the range is checked against the image later).
    static let boxCheck: @Sendable (String) -> String? = { v in
        let fields = v.split(separator: ",", omittingEmptySubsequences: false)
        let ok = fields.count == 4 && fields.allSatisfy { !$0.isEmpty && $0.count <= 9 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }
        return ok ? nil : "box must be x1,y1,x2,y2: four non-negative integers separated by commas; got '\(v.truncatedForEcho)'"
    }

    static func query(_ head: RequestHead) -> [QueryItem] { head.query.map(QueryItem.parse) ?? [] }

    func featuresHead(_ head: RequestHead) throws -> TensorFormat {
        try Inputs.checkQuery(Endpoints.query(head), spec: featuresQuery)
        let format = try negotiate(head, offered: [.npy, .safetensors, .raw, .json])
        _ = try Inputs.contentType(head, rawAllowed: true)
        _ = try snapshot()
        return format
    }

    func sphereMapHead(_ head: RequestHead) throws -> TensorFormat {
        let query = Endpoints.query(head)
        try Inputs.checkQuery(query, spec: sphereMapQuery)
        let format = try negotiate(head, offered: [.json, .npy, .safetensors, .raw, .png])
        if format != .png, query.contains(where: { $0.name == "box" }) {
            throw Inputs.invalid("/box", "'box' applies to Accept: image/png only")
        }
        _ = try Inputs.contentType(head, rawAllowed: true)
        _ = try snapshot()
        return format
    }

    func matchHead(_ head: RequestHead) throws -> TensorFormat {
        try Inputs.checkQuery(Endpoints.query(head), spec: matchQuery)
        let format = try negotiate(head, offered: [.json, .png, .npy])
        _ = try Inputs.contentType(head, rawAllowed: false)
        _ = try snapshot()
        return format
    }

    /// A head check for the router from one of the above.
    static func headCheck(_ check: @escaping @Sendable (RequestHead) throws -> TensorFormat) -> HeadCheck {
        { head in
            do { _ = try check(head); return nil } catch let e as HTTPError { return e } catch { return .internalError() }
        }
    }

    // MARK: /v1/features

    func features(_ request: Request) throws -> Response {
        try counted {
            let format = try featuresHead(request.head)
            let (upload, _) = try singleImage(request)
            let r = try pipeline.resolution(request.query("resolution"))
            let snap = try snapshot()
            var times = StageTimes()
            let img = try pipeline.embed([upload], resolution: r, snapshot: snap, request: request, times: &times)[0]
            metrics.recordStages(times, images: img.cached ? 0 : 1)
            metrics.recordCache(pipeline.cache, hits: img.cached ? 1 : 0, misses: img.cached ? 0 : 1)
            let d = img.features.count / img.tokens
            let tensor = OutputTensor(name: "features", shape: [img.grid, img.grid, d], values: img.features.array)
            return encoded([tensor], format: format, request: request, snapshot: snap, image: img, times: times)
        }
    }

    // MARK: /v1/sphere-map

    func sphereMap(_ request: Request) throws -> Response {
        try counted {
            let format = try sphereMapHead(request.head)
            let (upload, _) = try singleImage(request)
            let r = try pipeline.resolution(request.query("resolution"))
            let snap = try snapshot()
            var times = StageTimes()
            let img = try pipeline.embed([upload], resolution: r, snapshot: snap, request: request, times: &times)[0]
            let sphere = try pipeline.spheres([img], snapshot: snap, request: request, times: &times)[0]
            metrics.recordStages(times, images: img.cached ? 0 : 1)
            metrics.recordCache(pipeline.cache, hits: img.cached ? 1 : 0, misses: img.cached ? 0 : 1)
            if format == .png {
                let box = try parseBox(request.query("box"), width: img.width, height: img.height)
                // Drawn from the patch grid alone (no pixels needed), at most --max-render-side on its long side.
                let scale = pipeline.renderScale(width: img.width, height: img.height)
                let png = encodePNG(Rendering.sphereMap(sphere: sphere.pointer, transform: img.transform, box: box, scale: scale))
                var h = commonHeaders(snap, img, times)
                h.append(name: "Content-Type", value: "image/png")
                return Response(status: .ok, headers: h, body: png)
            }
            let tensor = OutputTensor(name: "sphere", shape: [img.grid, img.grid, 3], values: sphere.array)
            return encoded([tensor], format: format, request: request, snapshot: snap, image: img, times: times)
        }
    }

    // MARK: /v1/match

    func match(_ request: Request) throws -> Response {
        try counted {
            let format = try matchHead(request.head)
            guard let parts = try Inputs.parts(request, limits: multipartLimits, rawAllowed: false) else {
                throw HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", detail: "send multipart/form-data with parts 'source' and 'target'")
            }
            try Inputs.rejectUnknownParts(parts, allowed: ["source", "target", "points", "params"])
            let src = try Inputs.requiredPart(parts, "source"), trg = try Inputs.requiredPart(parts, "target")
            let params = try Inputs.params(try Inputs.optionalPart(parts, "params"), allowed: MatchParams.keys.union(["min_score", "max_matches"]))
            let minScore = try Inputs.double(params, "min_score", default: 0.5, range: -1...1)
            let maxMatches = try Inputs.int(params, "max_matches", default: 1000, range: 1...100_000)
            let points = try Inputs.optionalPart(parts, "points").map { try Inputs.points($0, maxPoints: maxPoints) }
            if format == .npy, points != nil {
                throw HTTPError(status: .notAcceptable, code: "not_acceptable", title: "Not acceptable",
                                detail: "application/x-npy is the dense correspondence field, answered for a request without 'points'; ask for application/json with points")
            }
            let r = try pipeline.resolution(request.query("resolution"))
            let mp = try MatchParams(params, resolution: r, grid: pipeline.store.snapshot?.grid(resolution: r))
            let snap = try snapshot()
            var times = StageTimes()
            let uploads = [Pipeline.upload(part: "source", bytes: src.body), Pipeline.upload(part: "target", bytes: trg.body)]
            let headers = uploads.map { try? probeImage($0.bytes) }
            if let points, let header = headers[0] { try Endpoints.checkPoints(points, source: header) }
            // A picture is drawn from pixels decoded in the same pass as the features, both images at one scale that
            // keeps the side-by-side canvas within --max-render-side.
            var thumbnails: [(width: Int, height: Int)?] = []
            var scale = 1.0
            if format == .png, let s = headers[0], let t = headers[1] {
                scale = pipeline.renderScale(width: s.width + t.width, height: max(s.height, t.height))
                thumbnails = [s, t].map { h in (max(1, Int((Double(h.width) * scale).rounded())), max(1, Int((Double(h.height) * scale).rounded()))) }
            }
            var images = try pipeline.embed(uploads, resolution: r, snapshot: snap, request: request, times: &times, thumbnails: thumbnails)
            let misses = images.filter { !$0.cached }.count
            metrics.recordCache(pipeline.cache, hits: 2 - misses, misses: misses)
            let spheres: [FloatStorage]? = mp.alpha > 0 ? try pipeline.spheres(images, snapshot: snap, request: request, times: &times) : nil
            let t0 = Measure.now()
            let sides = try pipeline.cache.matchSides(images, spheres: spheres, restrict: mp.restrict, version: snap.version)
            let result = PairMatcher(source: sides[0], target: sides[1], alpha: mp.alpha)
            if format == .npy {
                let tensor = OutputTensor(name: "field", shape: [images[0].grid, images[0].grid, 3], values: try matching { try result.field() })
                times.match = Measure.now() - t0
                metrics.recordStages(times, images: misses)
                return encoded([tensor], format: format, request: request, snapshot: snap, image: images[0], times: times)
            }
            let matches: [PointMatch] = if let points {
                try mp.points(points, result)
            } else { try matching { try result.dense(minScore: Float(minScore), max: maxMatches) } }
            times.match = Measure.now() - t0
            metrics.recordStages(times, images: misses)
            var h = commonHeaders(snap, nil, times)
            if format == .png, let s = images[0].thumbnail, let t = images[1].thumbnail {
                let png = encodePNG(Rendering.matches(source: s.image, target: t.image, matches: matches.map { ($0.sx, $0.sy, $0.tx, $0.ty, $0.score) },
                                                      scale: scale))
                // The drawing copies go back to the decode budget now, not when the response has been sent.
                images[0].thumbnail = nil
                images[1].thumbnail = nil
                h.append(name: "Content-Type", value: "image/png")
                return Response(status: .ok, headers: h, body: png)
            }
            let body: [String: Any] = [
                "model_version": snap.version, "alpha": mp.alpha, "resolution": r, "mode": points == nil ? "dense" : "points",
                "refine": mp.refinement.record,
                "source": describe(images[0]), "target": describe(images[1]),
                "matches": matches.map(\.record),
            ]
            h.append(name: "Content-Type", value: "application/json")
            return Response(status: .ok, headers: h, body: try JSONWriter.encode(body))
        }
    }

    // MARK: /v1/transfer

    /// The multipart limits of /v1/transfer: room for every target besides 'source', 'points' and 'params'.
    var transferLimits: MultipartLimits {
        var l = multipartLimits
        l.maxParts = max(l.maxParts, maxTargets + 3)
        return l
    }

    func transferHead(_ head: RequestHead) throws -> TensorFormat {
        try Inputs.checkQuery(Endpoints.query(head), spec: matchQuery)
        let format = try negotiate(head, offered: [.json])
        _ = try Inputs.contentType(head, rawAllowed: false)
        _ = try snapshot()
        return format
    }

    /// One source with points against 1…max_targets targets (issue #14): every distinct image embedded once in one
    /// batched backbone pass (cache hits skipped), the source's descriptors built once, then each target matched
    /// as /v1/match matches points. Any bad part fails the whole request: nothing is half-answered.
    func transfer(_ request: Request) throws -> Response {
        try counted {
            _ = try transferHead(request.head)
            let tooMany = HTTPError(status: .unprocessableContent, code: "too_many_targets", title: "Too many targets",
                                    detail: "the body has more than \(transferLimits.maxParts) parts; /v1/transfer takes 'source', 'points', optional 'params' and at most \(maxTargets) 'target' parts (max_targets)",
                                    extensions: ["pointer": .string("/target"), "limit": .string("max_targets"), "max_targets": .int(maxTargets)])
            guard let parts = try Inputs.parts(request, limits: transferLimits, rawAllowed: false, tooManyParts: tooMany) else {
                throw HTTPError(status: .unsupportedMediaType, code: "unsupported_media_type", detail: "send multipart/form-data with parts 'source', 'points' and 'target'")
            }
            try Inputs.rejectUnknownParts(parts, allowed: ["source", "target", "points", "params"])
            let src = try Inputs.requiredPart(parts, "source")
            let targets = parts.filter { $0.name == "target" }
            if targets.isEmpty {
                throw HTTPError(status: .unprocessableContent, code: "missing_part", title: "Missing part",
                                detail: "no 'target' part: /v1/transfer needs 1 to \(maxTargets) 'target' parts (images), in the order of the answer",
                                extensions: ["pointer": .string("/target")])
            }
            if targets.count > maxTargets {
                throw HTTPError(status: .unprocessableContent, code: "too_many_targets", title: "Too many targets",
                                detail: "\(targets.count) 'target' parts; at most \(maxTargets) (max_targets); 'target[\(maxTargets)]' is one too many",
                                extensions: ["pointer": .string("/target/\(maxTargets)"), "limit": .string("max_targets"), "max_targets": .int(maxTargets)])
            }
            let points = try Inputs.points(try Inputs.requiredPart(parts, "points"), maxPoints: maxPoints)
            let params = try Inputs.params(try Inputs.optionalPart(parts, "params"), allowed: MatchParams.keys)
            let r = try pipeline.resolution(request.query("resolution"))
            let mp = try MatchParams(params, resolution: r, grid: pipeline.store.snapshot?.grid(resolution: r))
            let snap = try snapshot()
            var times = StageTimes()
            // Targets are named target[0], target[1], … in every message, as in the answer's order.
            let uploads = [Pipeline.upload(part: "source", bytes: src.body)]
                + targets.enumerated().map { Pipeline.upload(part: "target[\($0)]", bytes: $1.body) }
            if let header = try? probeImage(uploads[0].bytes) { try Endpoints.checkPoints(points, source: header) }
            let images = try pipeline.embed(uploads, resolution: r, snapshot: snap, request: request, times: &times)
            let embedded = Set(images.filter { !$0.cached }.map(\.key)).count
            metrics.recordCache(pipeline.cache, hits: images.count - embedded, misses: embedded)
            let spheres: [FloatStorage]? = mp.alpha > 0 ? try pipeline.spheres(images, snapshot: snap, request: request, times: &times) : nil
            let t0 = Measure.now()
            let sides = try pipeline.cache.matchSides(images, spheres: spheres, restrict: mp.restrict, version: snap.version)
            var answers: [[String: Any]] = []
            for i in 1..<images.count {
                let matches = try mp.points(points, PairMatcher(source: sides[0], target: sides[i], alpha: mp.alpha))
                answers.append(["part": uploads[i].part, "target": describe(images[i]), "matches": matches.map(\.record)])
            }
            times.match = Measure.now() - t0
            metrics.recordStages(times, images: embedded)
            var h = commonHeaders(snap, nil, times)
            let body: [String: Any] = [
                "model_version": snap.version, "alpha": mp.alpha, "resolution": r, "mode": "points", "refine": mp.refinement.record,
                "images_embedded": embedded, "source": describe(images[0]), "targets": answers,
            ]
            h.append(name: "Content-Type", value: "application/json")
            return Response(status: .ok, headers: h, body: try JSONWriter.encode(body))
        }
    }

    /// Points are checked against the source's size (from its header) before any inference.
    static func checkPoints(_ points: [(Double, Double)], source header: ImageHeader) throws {
        for (i, p) in points.enumerated() where !(p.0 >= 0 && p.1 >= 0 && p.0 < Double(header.width) && p.1 < Double(header.height)) {
            throw Inputs.invalid("/points/\(i)", "points[\(i)] = [\(p.0), \(p.1)] is outside the source image (\(header.width)×\(header.height); x in [0, \(header.width)), y in [0, \(header.height)))")
        }
    }

    // MARK: helpers

    /// `params.refine` (`none` | `soft-argmax`), `params.window` (patches, default 5, below the patch grid's side at
    /// this resolution) and `params.temperature` (> 0, default 0.02); 422 naming the field.
    static func refinement(_ params: [String: JSONValue], resolution r: Int, grid: PatchGrid?) throws -> Refinement {
        var method: String?
        if let v = params["refine"] {
            guard case .string(let m) = v else { throw Inputs.invalid("/params/refine", "'refine' must be \"none\" or \"soft-argmax\"") }
            method = m
        }
        let window = try params["window"].map { _ in try Inputs.int(params, "window", default: Refinement.defaultWindow, range: 1...10_000) }
        var temperature: Double?
        if let v = params["temperature"] {
            guard case .number(let t) = v, t.isFinite, t > 0 else { throw Inputs.invalid("/params/temperature", "'temperature' must be a number > 0") }
            temperature = t
        }
        do {
            let refinement = try Refinement.parse(method: method, window: window, temperature: temperature)
            let side = grid?.side ?? r / PatchGrid.patchSize
            try refinement.check(gridRows: side, gridColumns: side)
            return refinement
        } catch {
            throw Inputs.invalid("/params/\(error.field)", "'\(error.field)' \(error.detail) (resolution \(r))")
        }
    }

    func negotiate(_ head: RequestHead, offered: [TensorFormat]) throws -> TensorFormat {
        guard let f = ContentNegotiation.choose(accept: head.headers["Accept"], offered: offered) else {
            throw HTTPError(status: .notAcceptable, code: "not_acceptable", title: "Not acceptable",
                            detail: "Accept '\((head.headers["Accept"] ?? "").truncatedForEcho)' matches none of \(offered.map(\.rawValue).joined(separator: ", "))")
        }
        return f
    }

    /// The image of a single-image route: multipart part `image` or a raw image body.
    func singleImage(_ request: Request) throws -> (UploadedImage, String) {
        if let parts = try Inputs.parts(request, limits: multipartLimits, rawAllowed: true) {
            try Inputs.rejectUnknownParts(parts, allowed: ["image"])
            let p = try Inputs.requiredPart(parts, "image")
            return (Pipeline.upload(part: "image", bytes: p.body), "image")
        }
        return (Pipeline.upload(part: "body", bytes: request.body), "body")
    }

    func parseBox(_ text: String?, width: Int, height: Int) throws -> (Int, Int, Int, Int)? {
        guard let text else { return nil }
        let v = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard v.count == 4, let x1 = v[0], let y1 = v[1], let x2 = v[2], let y2 = v[3],
              x1 >= 0, y1 >= 0, x2 > x1, y2 > y1, x2 <= width, y2 <= height else {
            throw Inputs.invalid("/box", "box must be x1,y1,x2,y2 integers with 0 ≤ x1 < x2 ≤ \(width) and 0 ≤ y1 < y2 ≤ \(height)")
        }
        return (x1, y1, x2, y2)
    }

    func describe(_ img: EmbeddedImage) -> [String: Any] {
        ["width": img.width, "height": img.height, "grid": [img.grid, img.grid], "patch_size": img.transform.grid.patch,
         "patch_stride": img.transform.grid.stride,
         "letterbox": ["resolution": img.transform.resolution, "scale": Double(img.transform.scale),
                       "offset": [img.transform.offsetX, img.transform.offsetY]],
         "cached": img.cached]
    }

    func commonHeaders(_ snap: ModelSnapshot, _ img: EmbeddedImage?, _ times: StageTimes) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.append(name: "X-Model-Version", value: snap.version)
        h.append(name: "Server-Timing", value: times.serverTiming)
        if let img {
            h.append(name: "X-Patch-Grid", value: "\(img.grid),\(img.grid)")
            h.append(name: "X-Letterbox", value: "resolution=\(img.transform.resolution); scale=\(img.transform.scale); offset_x=\(img.transform.offsetX); offset_y=\(img.transform.offsetY)")
        }
        return h
    }

    func encoded(_ tensors: [OutputTensor], format: TensorFormat, request: Request, snapshot snap: ModelSnapshot,
                 image img: EmbeddedImage, times: StageTimes) -> Response {
        var info: [String: any Sendable] = ["model_version": snap.version, "patch_size": img.transform.grid.patch, "grid": "\(img.grid),\(img.grid)",
                                            "image_size": "\(img.width),\(img.height)", "resolution": img.transform.resolution]
        if format == .json {
            info["grid"] = [img.grid, img.grid]
            info["image_size"] = [img.width, img.height]
            info["letterbox"] = ["scale": Double(img.transform.scale), "offset": [img.transform.offsetX, img.transform.offsetY]] as [String: any Sendable]
        }
        let e = TensorEncoder.encode(tensors, as: format, info: info, jsonArrays: request.query("encoding") == "array")
        var h = commonHeaders(snap, img, times)
        h.append(name: "Content-Type", value: e.contentType)
        for (k, v) in e.headers { h.append(name: k, value: v) }
        return Response(status: .ok, headers: h, body: e.body)
    }
}

extension EmbeddedImage {
    /// The image as matching sees it, with its sphere vectors when the blend needs them.
    func matchImage(sphere: FloatStorage?) -> MatchImage {
        MatchImage(width: width, height: height, transform: transform, features: features, sphere: sphere)
    }
}

/// Matching failures are the server's own (it built the shapes): 500.
func matching<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as CorrespondenceError {
        throw HTTPError(status: .internalServerError, code: "internal", detail: "matching: \(error)")
    }
}

/// The matching parameters /v1/match and /v1/transfer share (`params` part), each checked and named in a 422.
struct MatchParams {
    static let keys: Set<String> = ["alpha", "restrict_to_image", "refine", "window", "temperature", "visibility_threshold", "drop_invisible"]
    var alpha: Double
    var restrict: Bool
    var refinement: Refinement
    /// nil: `CycleCheck.defaultFraction` × the source's longer side.
    var visibilityThreshold: Double?
    var dropInvisible: Bool

    /// `grid`: the live backbone's at R (DINOv2's R/14 when nil).
    init(_ params: [String: JSONValue], resolution r: Int, grid: PatchGrid?) throws {
        alpha = try Inputs.double(params, "alpha", default: 0.2, range: 0...1)
        restrict = try Inputs.bool(params, "restrict_to_image", default: true)
        refinement = try Endpoints.refinement(params, resolution: r, grid: grid)
        visibilityThreshold = try params["visibility_threshold"].map { _ in
            try Inputs.double(params, "visibility_threshold", default: 0, range: 0...1e9)
        }
        dropInvisible = try Inputs.bool(params, "drop_invisible", default: false)
    }

    /// The point matches of one pair, hidden ones removed when `drop_invisible`.
    func points(_ pts: [(Double, Double)], _ m: PairMatcher) throws -> [PointMatch] {
        var out = try matching { try m.points(pts, refinement: refinement, visibilityThreshold: visibilityThreshold) }
        if dropInvisible { out.removeAll { $0.visible == false } }
        return out
    }
}
