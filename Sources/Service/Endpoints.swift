import Correspondence
import Foundation
import HTTP1
import HTTPServer
import Imaging
import Kernels
import Runtime
import SphereMap
import Visualization

/// The inference endpoints: /v1/features, /v1/sphere-map, /v1/match.
struct Endpoints: Sendable {
    let pipeline: Pipeline
    let metrics: ServiceMetrics
    let multipartLimits: MultipartLimits
    let maxPoints: Int
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
        let format = try negotiate(head, offered: [.json, .png])
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
            let params = try Inputs.params(try Inputs.optionalPart(parts, "params"),
                                           allowed: ["alpha", "min_score", "max_matches", "restrict_to_image", "refine", "window", "temperature",
                                                     "visibility_threshold", "drop_invisible"])
            let alpha = try Inputs.double(params, "alpha", default: 0.2, range: 0...1)
            let minScore = try Inputs.double(params, "min_score", default: 0.5, range: -1...1)
            let maxMatches = try Inputs.int(params, "max_matches", default: 1000, range: 1...100_000)
            let restrict = try Inputs.bool(params, "restrict_to_image", default: true)
            let points = try Inputs.optionalPart(parts, "points").map { try Inputs.points($0, maxPoints: maxPoints) }
            let r = try pipeline.resolution(request.query("resolution"))
            let refinement = try Endpoints.refinement(params, resolution: r, grid: try snapshot().grid(resolution: r))
            let visibilityThreshold: Double? = try params["visibility_threshold"].map { _ in
                try Inputs.double(params, "visibility_threshold", default: 0, range: 0...1e9)
            }
            let dropInvisible = try Inputs.bool(params, "drop_invisible", default: false)
            let snap = try snapshot()
            var times = StageTimes()
            let uploads = [Pipeline.upload(part: "source", bytes: src.body), Pipeline.upload(part: "target", bytes: trg.body)]
            let headers = uploads.map { try? probeImage($0.bytes) }
            if let points, let header = headers[0] {
                // Check the points against the source size before any inference.
                for (i, p) in points.enumerated() where !(p.0 >= 0 && p.1 >= 0 && p.0 < Double(header.width) && p.1 < Double(header.height)) {
                    throw Inputs.invalid("/points/\(i)", "points[\(i)] = [\(p.0), \(p.1)] is outside the source image (\(header.width)×\(header.height); x in [0, \(header.width)), y in [0, \(header.height)))")
                }
            }
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
            let spheres: [FloatStorage]? = alpha > 0 ? try pipeline.spheres(images, snapshot: snap, request: request, times: &times) : nil
            let t0 = Measure.now()
            let result = try MatchComputation(source: images[0], target: images[1], spheres: spheres, alpha: alpha, restrict: restrict)
            var matches: [MatchOut] = if let points {
                try result.points(points, refinement: refinement, visibilityThreshold: visibilityThreshold)
            } else { result.dense(minScore: Float(minScore), max: maxMatches) }
            if dropInvisible { matches.removeAll { $0.visible == false } }
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
                "model_version": snap.version, "alpha": alpha, "resolution": r, "mode": points == nil ? "dense" : "points",
                "refine": refinement.record,
                "source": describe(images[0]), "target": describe(images[1]),
                "matches": matches.map { m -> [String: Any] in
                    var o: [String: Any] = ["source": [m.sx, m.sy], "target": [m.tx, m.ty], "score": Double(m.score),
                                            "source_patch": m.sourcePatch, "target_patch": m.targetPatch]
                    if let v = m.visible, let e = m.cycleError { o["visible"] = v; o["cycle_error_px"] = e }
                    return o
                },
            ]
            h.append(name: "Content-Type", value: "application/json")
            return Response(status: .ok, headers: h, body: try JSONWriter.encode(body))
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

/// One match in original pixel coordinates.
struct MatchOut {
    var sx: Double, sy: Double, tx: Double, ty: Double
    var score: Float
    var sourcePatch: Int, targetPatch: Int
    /// Points mode: the forward–backward check (nil in dense mode, where every mutual match is consistent).
    var visible: Bool? = nil
    var cycleError: Double? = nil
}

/// METHOD §5 matching for the service: blended cosine similarities, argmax with first-index ties. With
/// `restrict`, target candidates (and dense sources) are the patches whose centre lies inside the image,
/// not the letterbox padding, so every answer is a point of the image; without it, exactly the reference.
struct MatchComputation {
    let source: EmbeddedImage, target: EmbeddedImage
    let srcDesc: ImageDescriptors, trgDesc: ImageDescriptors
    let srcRows: [Int], trgRows: [Int]
    let alpha: Double

    init(source: EmbeddedImage, target: EmbeddedImage, spheres: [FloatStorage]?, alpha: Double, restrict: Bool) throws {
        self.source = source; self.target = target; self.alpha = alpha
        srcRows = restrict ? MatchComputation.contentPatches(source) : Array(0..<source.tokens)
        trgRows = restrict ? MatchComputation.contentPatches(target) : Array(0..<target.tokens)
        let d = source.features.count / source.tokens
        func desc(_ img: EmbeddedImage, _ sphere: FloatStorage?, _ rows: [Int]) throws -> ImageDescriptors {
            var f = [Float](), s = [Float]()
            f.reserveCapacity(rows.count * d)
            for r in rows { f += UnsafeBufferPointer(start: img.features.pointer + r * d, count: d) }
            if let sphere { for r in rows { s += UnsafeBufferPointer(start: sphere.pointer + r * 3, count: 3) } }
            do { return try ImageDescriptors(features: f, sphere: sphere == nil ? nil : s, tokens: rows.count, featureDimension: d) } catch {
                throw HTTPError(status: .internalServerError, code: "internal", detail: "descriptor shapes: \(error)")
            }
        }
        srcDesc = try desc(source, spheres?[0], srcRows)
        trgDesc = try desc(target, spheres?[1], trgRows)
    }

    /// Patches whose centre falls inside the image (not in the letterbox padding). A very elongated image can be
    /// thinner than half a patch in the letterbox, so that no centre falls inside it: then the patches the image
    /// overlaps at all (never none; answers are clamped into the image by `original`).
    static func contentPatches(_ img: EmbeddedImage) -> [Int] {
        let centred = (0..<img.tokens).filter { i in
            let c = img.transform.patchCentre(index: i)
            let o = img.transform.toOriginal(x: Double(c.x), y: Double(c.y))
            return o.x >= 0 && o.y >= 0 && o.x < Double(img.width) && o.y < Double(img.height)
        }
        if !centred.isEmpty { return centred }
        let t = img.transform, g = img.grid, p = Double(t.resolution) / Double(g)
        let x0 = Double(t.offsetX), y0 = Double(t.offsetY)
        let x1 = x0 + max(Double(t.scale) * Double(img.width), 1), y1 = y0 + max(Double(t.scale) * Double(img.height), 1)
        let overlapping = (0..<img.tokens).filter { i in
            let (r, c) = (Double(i / g), Double(i % g))
            return c * p < x1 && (c + 1) * p > x0 && r * p < y1 && (r + 1) * p > y0
        }
        return overlapping.isEmpty ? Array(0..<img.tokens) : overlapping
    }

    func original(_ img: EmbeddedImage, patch: Int) -> (Double, Double) {
        let c = img.transform.patchCentre(index: patch)
        let o = img.transform.toOriginal(x: Double(c.x), y: Double(c.y))
        return (min(max(o.x, 0), Double(img.width) - 0.5), min(max(o.y, 0), Double(img.height) - 0.5))
    }

    /// For each source point (original pixels), its patch, then the best target patch; with `soft-argmax`, the
    /// expected target point over the window around it (docs/METHOD.md §5), patches outside the image (when
    /// `restrict`) taking no part, like those outside the window.
    ///
    /// Visibility (issue #14): the target patch's own best source patch (same blend, same candidates); `cycleError`
    /// is the distance between its centre and the centre of the query's patch, in source pixels (0 for a consistent
    /// cycle, whatever the patch size), and the point is `visible` when that is at most `visibilityThreshold`
    /// (default `CycleCheck.defaultFraction` × the source's longer side).
    func points(_ pts: [(Double, Double)], refinement: Refinement = .none, visibilityThreshold: Double? = nil) throws -> [MatchOut] {
        let t = source.transform
        let patchOf: [Int] = pts.map { p in
            let l = t.toLetterbox(x: Float(p.0), y: Float(p.1))
            return min(max(t.patch(x: l.x, y: l.y).index, 0), source.tokens - 1)
        }
        // Query rows: a point's patch is always a content patch unless restrict is off (then rows = all).
        let rowIndex = Dictionary(srcRows.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let queries = patchOf.map { rowIndex[$0] ?? nearestRow($0) }
        let nn: [PatchMatch]
        do { nn = try Matching.nearestNeighbours(source: srcDesc, target: trgDesc, sourceRows: queries, alpha: alpha) } catch {
            throw HTTPError(status: .internalServerError, code: "internal", detail: "matching: \(error)")
        }
        var refined: [(Double, Double)]? = nil
        if case let .softArgmax(window, temperature) = refinement {
            refined = try refine(queries: queries, window: window, temperature: temperature)
        }
        let back: [PatchMatch]
        do { back = try Matching.nearestNeighbours(source: trgDesc, target: srcDesc, sourceRows: nn.map(\.target), alpha: alpha) } catch {
            throw HTTPError(status: .internalServerError, code: "internal", detail: "matching: \(error)")
        }
        let threshold = visibilityThreshold ?? CycleCheck.defaultFraction * Double(max(source.width, source.height))
        return zip(pts, zip(patchOf, nn)).enumerated().map { k, pm in
            let (p, m) = pm
            let tp = trgRows[m.1.target]
            let (tx, ty) = refined?[k] ?? original(target, patch: tp)
            let e = CycleCheck.error(from: original(source, patch: srcRows[queries[k]]), back: original(source, patch: srcRows[back[k].target]))
            return MatchOut(sx: p.0, sy: p.1, tx: tx, ty: ty, score: m.1.score, sourcePatch: m.0, targetPatch: tp,
                            visible: CycleCheck.visible(error: e, threshold: threshold), cycleError: e)
        }
    }

    /// Window soft-argmax of each query row over the full target grid (non-candidate patches −∞), in original
    /// target pixels, clamped into the image as `original` clamps a patch centre.
    func refine(queries: [Int], window: Int, temperature: Double) throws -> [(Double, Double)] {
        let sim: SimilarityMatrix
        do { sim = try Matching.similarity(source: srcDesc, target: trgDesc, sourceRows: queries, alpha: alpha) } catch {
            throw HTTPError(status: .internalServerError, code: "internal", detail: "matching: \(error)")
        }
        let g = target.grid, n = target.tokens
        var full = [Float](repeating: -.infinity, count: queries.count * n)
        for k in 0..<queries.count {
            for (j, t) in trgRows.enumerated() { full[k * n + t] = sim[k, j] }
        }
        return full.withUnsafeBufferPointer { p in
            (0..<queries.count).map { k in
                let c = SoftArgmax.refine(p.baseAddress! + k * n, rows: g, columns: g, window: window, temperature: temperature)
                let l = target.transform.grid.point(column: c.column, row: c.row)
                let o = target.transform.toOriginal(x: Double(l.x), y: Double(l.y))
                return (min(max(o.x, 0), Double(target.width) - 0.5), min(max(o.y, 0), Double(target.height) - 0.5))
            }
        }
    }

    /// The content patch nearest to `patch` (a point on the padding boundary of a rounding edge).
    func nearestRow(_ patch: Int) -> Int {
        let g = source.grid
        let (r0, c0) = (patch / g, patch % g)
        return srcRows.enumerated().min { a, b in
            let da = (a.element / g - r0) * (a.element / g - r0) + (a.element % g - c0) * (a.element % g - c0)
            let db = (b.element / g - r0) * (b.element / g - r0) + (b.element % g - c0) * (b.element % g - c0)
            return da < db
        }?.offset ?? 0
    }

    /// Dense mutual nearest neighbours above `minScore`, best first, at most `max`.
    func dense(minScore: Float, max: Int) -> [MatchOut] {
        let m = (try? Matching.mutualNearestNeighbours(source: srcDesc, target: trgDesc, alpha: alpha, minScore: minScore)) ?? []
        return m.sorted { $0.score > $1.score || ($0.score == $1.score && $0.source < $1.source) }.prefix(max).map { x in
            let sp = srcRows[x.source], tp = trgRows[x.target]
            let (sx, sy) = original(source, patch: sp), (tx, ty) = original(target, patch: tp)
            return MatchOut(sx: sx, sy: sy, tx: tx, ty: ty, score: x.score, sourcePatch: sp, targetPatch: tp)
        }
    }
}
