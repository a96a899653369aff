/// A response to serialize. `Content-Length`, `Transfer-Encoding`, `Connection` and `Date` are the
/// serializer's: any such field set here is replaced (except a HEAD response's Content-Length,
/// see `ResponseSerializer`).
package struct Response: Hashable, Sendable {
    package var status: HTTPStatus
    package var headers: HTTPHeaders
    package var body: [UInt8]

    package init(status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    package init(status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: String) {
        self.init(status: status, headers: headers, body: Array(body.utf8))
    }
}

/// What the exchange being answered looks like.
package struct ResponseContext: Hashable, Sendable {
    /// The method of the request; `nil` when answering a request that could not be parsed.
    package var requestMethod: HTTPMethod?
    /// The version of the request (HTTP/1.0 gets `Connection: keep-alive` and no chunked coding).
    package var requestVersion: HTTPVersion
    /// Whether the connection stays open. When false the response says `Connection: close` and the
    /// caller closes after writing it.
    package var keepAlive: Bool
    /// The `Date` value, an IMF-fixdate (`HTTPDate.now()` or a per-second cache of it).
    package var date: String

    package init(requestMethod: HTTPMethod?, requestVersion: HTTPVersion = .http1_1, keepAlive: Bool, date: String) {
        self.requestMethod = requestMethod
        self.requestVersion = requestVersion
        self.keepAlive = keepAlive
        self.date = date
    }

    /// The context for answering `head`; `keepAlive` is the head's unless `close` is set.
    package init(for head: RequestHead, close: Bool = false, date: String) {
        self.init(requestMethod: head.method, requestVersion: head.version, keepAlive: head.keepAlive && !close, date: date)
    }
}

/// How the caller must write the body after a head from `ResponseSerializer.serializeHead`.
package enum BodyWriteMode: Hashable, Sendable {
    /// Write nothing (HEAD, 1xx, 204, 304).
    case none
    /// Write exactly this many bytes.
    case contentLength(Int)
    /// Write `ResponseSerializer.chunk(_:)` pieces, then `ResponseSerializer.lastChunk`.
    case chunked
    /// HTTP/1.0 streaming: write raw bytes, then close the connection (the head says close).
    case untilClose
}

/// Turns responses into bytes (RFC 9112 §4, §6; RFC 9110 §6.4.1, §8.6, §9.3.2).
///
/// Always: a status line `HTTP/1.1 code reason`, a `Date`, the caller's fields in order (field
/// names that are not tokens are dropped and control bytes in values become spaces, so a response
/// can never be split), exactly one framing (Content-Length or chunked), and `Connection: close`
/// when the connection is closing (`Connection: keep-alive` for a persistent HTTP/1.0 exchange).
/// No body for HEAD, 1xx, 204 and 304; 1xx and 204 carry no Content-Length; HEAD carries the
/// Content-Length of the GET (the body's length, or the Content-Length field set by the caller when
/// the body is left empty).
package enum ResponseSerializer {
    /// `HTTP/1.1 100 Continue`, to send on `Expect: 100-continue` before reading the body.
    package static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// The end of a chunked body (last-chunk and an empty trailer section).
    package static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// A complete response framed by Content-Length.
    package static func serialize(_ response: Response, context: ResponseContext) -> [UInt8] {
        var out: [UInt8] = []
        let mode = writeHead(response, context: context, streaming: false, into: &out)
        if case .contentLength = mode { out.append(contentsOf: response.body) }
        return out
    }

    /// The head of a response whose body is streamed by the caller (`response.body` is ignored
    /// except for a HEAD response's length). Chunked for HTTP/1.1, until-close for HTTP/1.0.
    package static func serializeHead(_ response: Response, context: ResponseContext) -> (bytes: [UInt8], mode: BodyWriteMode) {
        var out: [UInt8] = []
        let mode = writeHead(response, context: context, streaming: true, into: &out)
        return (out, mode)
    }

    /// One chunk of a chunked body. Empty input gives no bytes (an empty chunk would end the body).
    package static func chunk(_ data: some Collection<UInt8>) -> [UInt8] {
        guard !data.isEmpty else { return [] }
        var out = Array(String(data.count, radix: 16).utf8)
        out.reserveCapacity(out.count + data.count + 4)
        out.append(contentsOf: [0x0D, 0x0A])
        out.append(contentsOf: data)
        out.append(contentsOf: [0x0D, 0x0A])
        return out
    }

    // MARK: - Internals

    private static let managed = ["content-length", "transfer-encoding", "connection", "date"]

    private static func writeHead(
        _ response: Response, context: ResponseContext, streaming: Bool, into out: inout [UInt8]
    ) -> BodyWriteMode {
        let status = response.status
        let isHead = context.requestMethod == .head
        let isHTTP10 = context.requestVersion.minor == 0 && context.requestVersion.major == 1
        var keepAlive = context.keepAlive

        // Framing decision.
        var framingField: (String, String)?
        var mode: BodyWriteMode
        if !status.mayHaveBody {
            // RFC 9110 §8.6: no Content-Length in 1xx or 204; 304 has no content either.
            mode = .none
        } else if streaming {
            if isHTTP10 {
                // No chunked coding for HTTP/1.0 (RFC 9112 §7): the body ends when we close.
                keepAlive = false
                mode = isHead ? .none : .untilClose
            } else {
                framingField = ("Transfer-Encoding", "chunked")
                mode = isHead ? .none : .chunked
            }
        } else {
            var length = response.body.count
            if isHead, response.body.isEmpty, let declared = response.headers["content-length"],
                let n = parseDecimal(declared.utf8)
            {
                // RFC 9110 §9.3.2: HEAD may carry the Content-Length the GET would have.
                length = n
            }
            framingField = ("Content-Length", String(length))
            mode = isHead ? .none : .contentLength(length)
        }

        out.reserveCapacity(256 + response.headers.count * 32 + (mode == .none ? 0 : response.body.count))
        append("HTTP/1.1 \(status.code) ", to: &out)
        appendSanitized(status.reasonPhrase, to: &out)
        append("\r\nDate: ", to: &out)
        appendSanitized(context.date, to: &out)
        append("\r\n", to: &out)
        for field in response.headers {
            guard field.name.isHTTPToken else { continue }
            let lower = String(decoding: field.name.utf8.map(asciiLower), as: UTF8.self)
            if managed.contains(lower) { continue }
            append(field.name, to: &out)
            append(": ", to: &out)
            appendSanitized(field.value, to: &out)
            append("\r\n", to: &out)
        }
        if let (name, value) = framingField {
            append("\(name): \(value)\r\n", to: &out)
        }
        if !keepAlive {
            append("Connection: close\r\n", to: &out)
        } else if isHTTP10 {
            append("Connection: keep-alive\r\n", to: &out)
        }
        append("\r\n", to: &out)
        return mode
    }

    @inline(__always)
    private static func append(_ s: String, to out: inout [UInt8]) {
        out.append(contentsOf: s.utf8)
    }

    /// Copies a value, turning CR, LF, NUL and other controls (HTAB aside) into SP.
    private static func appendSanitized(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 {
            out.append((b < 0x20 && b != 0x09) || b == 0x7F ? 0x20 : b)
        }
    }
}
