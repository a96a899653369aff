/// How the request body is delimited (RFC 9112 §6.3).
package enum BodyFraming: Hashable, Sendable {
    /// No Content-Length and no Transfer-Encoding: the body is empty (rule 7).
    case none
    /// `Content-Length: n` (n may be 0).
    case contentLength(Int)
    /// `Transfer-Encoding: chunked`.
    case chunked
}

/// The four forms of request-target (RFC 9112 §3.2).
package enum TargetForm: Hashable, Sendable {
    /// `/path?query` — the usual form.
    case origin
    /// `http://host/path?query` — accepted; route on `path` (RFC 9112 §3.2.2).
    case absolute
    /// `host:port` — only with CONNECT (the server should answer 501/405 and close).
    case authority
    /// `*` — meant for `OPTIONS *` (the server should reject `*` with any other method).
    case asterisk
}

/// What the `Expect` header asks for (RFC 9110 §10.1.1).
package enum RequestExpectation: Hashable, Sendable {
    /// No Expect header (or an HTTP/1.0 request, where Expect is ignored).
    case none
    /// `Expect: 100-continue`: answer `100 Continue` once the route, limits and Content-Type are
    /// checked, or send the final status straight away (then close, or read and discard the body).
    case continue100
    /// Any other expectation: the server should answer 417.
    case unsupported(String)
}

/// A parsed request line and field section.
package struct RequestHead: Hashable, Sendable {
    package var method: HTTPMethod
    /// The request-target exactly as received.
    package var target: String
    package var targetForm: TargetForm
    package var version: HTTPVersion
    /// Every field line in order, duplicates kept.
    package var headers: HTTPHeaders
    /// Whether the connection stays open after this exchange (RFC 9112 §9.3): HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`. Always false for CONNECT and
    /// for upgrade requests (this parser never switches protocols, so the bytes after such a request
    /// are never parsed as HTTP).
    package var keepAlive: Bool
    package var framing: BodyFraming
    package var expectation: RequestExpectation
    /// `Connection: upgrade` plus an `Upgrade` header on an HTTP/1.1 request. Not honoured (the
    /// server answers normally and closes), reported for logging.
    package var isUpgradeRequest: Bool

    package init(
        method: HTTPMethod, target: String, targetForm: TargetForm = .origin, version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = [:], keepAlive: Bool = true, framing: BodyFraming = .none,
        expectation: RequestExpectation = .none, isUpgradeRequest: Bool = false
    ) {
        self.method = method
        self.target = target
        self.targetForm = targetForm
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
        self.framing = framing
        self.expectation = expectation
        self.isUpgradeRequest = isUpgradeRequest
    }

    /// True for `Expect: 100-continue` on an HTTP/1.1 request.
    package var expectsContinue: Bool { expectation == .continue100 }

    /// The declared Content-Length, if any.
    package var contentLength: Int? {
        if case .contentLength(let n) = framing { return n }
        return nil
    }

    /// Whether a Content-Length body would exceed `limit` (for answering 413 instead of 100).
    package func contentLengthExceeds(_ limit: Int) -> Bool {
        if case .contentLength(let n) = framing { return n > limit }
        return false
    }

    /// The path to route on: for origin-form the target up to `?` or `#`; for absolute-form the path
    /// after the authority (`/` when empty); `*` for asterisk-form; empty for authority-form.
    package var path: Substring {
        switch targetForm {
        case .origin:
            return target.prefix { $0 != "?" && $0 != "#" }
        case .asterisk:
            return target[...]
        case .authority:
            return target[target.endIndex...]
        case .absolute:
            let rest = absoluteFormPathAndQuery
            let path = rest.prefix { $0 != "?" && $0 != "#" }
            return path.isEmpty ? "/" : path
        }
    }

    /// The query (after `?`, before `#`), if any.
    package var query: Substring? {
        let source: Substring
        switch targetForm {
        case .origin: source = target[...]
        case .absolute: source = absoluteFormPathAndQuery
        default: return nil
        }
        guard let q = source.firstIndex(of: "?") else { return nil }
        let afterQ = source[source.index(after: q)...]
        return afterQ.prefix { $0 != "#" }
    }

    /// For absolute-form, the part after `scheme://authority` (or after `scheme:` when there is no
    /// authority).
    private var absoluteFormPathAndQuery: Substring {
        guard let colon = target.firstIndex(of: ":") else { return target[...] }
        var rest = target[target.index(after: colon)...]
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let end = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
            rest = rest[end...]
        }
        return rest
    }
}
