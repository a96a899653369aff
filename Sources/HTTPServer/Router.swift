import HTTP1

/// A route handler. It runs on a handler thread (or on the event loop for `.eventLoop` routes) and
/// may throw an `HTTPError` (answered as problem+json) or any other error (answered 500 `internal`,
/// logged with the request id).
package typealias Handler = @Sendable (Request) throws -> Response

/// Extra checks on a request head before its body is read (and before `100 Continue` is sent), such
/// as authentication or the Content-Type. Return an error to refuse the request.
package typealias HeadCheck = @Sendable (RequestHead) -> HTTPError?

/// Where a route's handler runs.
package enum HandlerExecution: Hashable, Sendable {
    /// On the connection's event-loop thread, immediately. Only for handlers that never block and take
    /// microseconds: liveness, readiness, metrics. A `/livez` registered this way never queues behind
    /// slow handlers.
    case eventLoop
    /// On the server's handler threads (the default): slow or blocking work (inference) does not hold
    /// up other connections.
    case pooled
}

/// One registered method + path.
package struct Route: Sendable {
    package let method: HTTPMethod
    /// The exact (normalized) path.
    package let path: String
    /// Body limit of this route; nil uses `ServerLimits.maxBodyBytes`.
    package let maxBodyBytes: Int?
    package let execution: HandlerExecution
    package let headCheck: HeadCheck?
    package let handler: Handler
}

/// What the router decided for a request head, before any body byte is read.
package enum Admission: Sendable {
    /// Read the body (after sending `100 Continue` when `sendContinue`), then call the route.
    case accept(route: Route, path: String, bodyLimit: Int, sendContinue: Bool)
    /// Answer with this response without calling a handler (automatic OPTIONS).
    case respond(Response)
    /// Refuse with this problem; the body is never read.
    case reject(HTTPError)
}

/// Exact method + path routing (a plain table: the service has a handful of routes).
///
/// - Unknown path → 404 `not_found`; known path, other method → 405 `method_not_allowed` with `Allow`.
/// - HEAD is served by the GET route (the serializer drops the body, keeps Content-Length).
/// - OPTIONS on a known path (without its own route) → 204 with `Allow`; `OPTIONS *` → 204 with every
///   method the router serves.
/// - Paths are normalized with `PathNormalizer` before matching (`//`, `.`, `..`, `%2e%2e`); a path it
///   refuses (`%00`, `%2F`, bad escapes) → 400.
package struct Router: Sendable {
    private var table: [String: [HTTPMethod: Route]] = [:]

    package init() {}

    /// Registers `handler` for `method` and `path` (an already-normalized absolute path such as
    /// "/v1/match"). Registering the same method and path twice is a programming error.
    package mutating func add(
        _ method: HTTPMethod, _ path: String, maxBodyBytes: Int? = nil, execution: HandlerExecution = .pooled,
        headCheck: HeadCheck? = nil, handler: @escaping Handler
    ) {
        precondition(PathNormalizer.normalize(path) == path, "route path \(path) is not a normalized absolute path")
        precondition(table[path]?[method] == nil, "route \(method) \(path) registered twice")
        precondition(maxBodyBytes.map { $0 >= 0 } ?? true, "negative body limit")
        table[path, default: [:]][method] = Route(
            method: method, path: path, maxBodyBytes: maxBodyBytes, execution: execution, headCheck: headCheck,
            handler: handler)
    }

    package mutating func get(
        _ path: String, execution: HandlerExecution = .pooled, headCheck: HeadCheck? = nil,
        handler: @escaping Handler
    ) {
        add(.get, path, maxBodyBytes: nil, execution: execution, headCheck: headCheck, handler: handler)
    }

    package mutating func post(
        _ path: String, maxBodyBytes: Int? = nil, execution: HandlerExecution = .pooled,
        headCheck: HeadCheck? = nil, handler: @escaping Handler
    ) {
        add(.post, path, maxBodyBytes: maxBodyBytes, execution: execution, headCheck: headCheck, handler: handler)
    }

    /// Every registered route.
    package var routes: [Route] { table.values.flatMap(\.values) }

    /// The route for `method` on `path`: exact match, or the GET route for HEAD.
    package func route(_ method: HTTPMethod, _ path: String) -> Route? {
        guard let byMethod = table[path] else { return nil }
        if let route = byMethod[method] { return route }
        if method == .head { return byMethod[.get] }
        return nil
    }

    /// The `Allow` list of `path`, or nil when the path is unknown.
    package func allowedMethods(_ path: String) -> [String]? {
        guard let byMethod = table[path] else { return nil }
        return Self.allowList(Set(byMethod.keys))
    }

    /// The `Allow` list of `OPTIONS *`: every method some route serves.
    package var allMethods: [String] {
        Self.allowList(Set(table.values.flatMap(\.keys)))
    }

    private static let preferredOrder = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    private static func allowList(_ methods: Set<HTTPMethod>) -> [String] {
        var names = Set(methods.map(\.rawValue))
        if names.contains("GET") { names.insert("HEAD") }
        names.insert("OPTIONS")
        let known = preferredOrder.filter { names.contains($0) }
        let others = names.subtracting(preferredOrder).sorted()
        return known + others
    }

    /// `PathNormalizer.normalize`, with a fast path for the common case of a path that is already
    /// normal: no `%`, no `//`, no `.` or `..` segment (the parser has checked that every byte is VCHAR).
    package static func normalize(_ path: Substring) -> String? {
        var previous: UInt8 = 0
        var fast = path.utf8.first == UInt8(ascii: "/")
        if fast {
            let bytes = path.utf8
            var index = bytes.startIndex
            while index != bytes.endIndex {
                let b = bytes[index]
                if b == UInt8(ascii: "%") || (b == UInt8(ascii: "/") && previous == UInt8(ascii: "/")) {
                    fast = false
                    break
                }
                if b == UInt8(ascii: ".") && previous == UInt8(ascii: "/") {
                    // "/." starts a dot segment only if followed by "/", ".", or the end.
                    let next = bytes.index(after: index)
                    if next == bytes.endIndex || bytes[next] == UInt8(ascii: "/") || bytes[next] == UInt8(ascii: ".") {
                        fast = false
                        break
                    }
                }
                previous = b
                index = bytes.index(after: index)
            }
        }
        return fast ? String(path) : PathNormalizer.normalize(path)
    }

    /// Decides what to do with a request head before its body is read (SERVICE-NOTES §4.1 item 7: the
    /// route, the method, the head check and the Content-Length limit all pass before `100 Continue`).
    package func admit(_ head: RequestHead, defaultBodyLimit: Int) -> Admission {
        switch head.targetForm {
        case .asterisk:
            // RFC 9112 §3.2.4: asterisk-form is only for a server-wide OPTIONS.
            guard head.method == .options else {
                return .reject(.badRequest("the * target is only valid with OPTIONS", closeConnection: true))
            }
            return .respond(Response(status: .noContent, headers: HTTPHeaders([("Allow", allMethods.joined(separator: ", "))])))
        case .authority:
            // CONNECT (SERVICE-NOTES S10): this server is not a proxy.
            return .reject(HTTPError(status: .notImplemented, code: "not_implemented",
                                     detail: "CONNECT is not supported", closeConnection: true))
        case .origin, .absolute:
            break
        }
        guard let path = Self.normalize(head.path) else {
            return .reject(.badRequest("malformed request path", closeConnection: true))
        }
        guard let route = route(head.method, path) else {
            guard let allow = allowedMethods(path) else { return .reject(.notFound(path)) }
            if head.method == .options {
                return .respond(Response(status: .noContent, headers: HTTPHeaders([("Allow", allow.joined(separator: ", "))])))
            }
            return .reject(.methodNotAllowed(head.method, allow: allow))
        }
        // RFC 9110 §10.1.1: an expectation other than 100-continue may be answered 417.
        if case .unsupported(let value) = head.expectation {
            return .reject(.expectationFailed(value))
        }
        let limit = route.maxBodyBytes ?? defaultBodyLimit
        // SERVICE-NOTES L3/L6: 413 decided from Content-Length, before reading (and before 100 Continue).
        if let length = head.contentLength, length > limit {
            return .reject(.payloadTooLarge(declared: length, limit: limit))
        }
        if let check = route.headCheck, let problem = check(head) {
            return .reject(problem)
        }
        let hasBody: Bool
        switch head.framing {
        case .none: hasBody = false
        case .contentLength(let n): hasBody = n > 0
        case .chunked: hasBody = true
        }
        return .accept(route: route, path: path, bodyLimit: limit, sendContinue: head.expectsContinue && hasBody)
    }
}
