import HTTP1

/// An extra member of a problem+json body (RFC 9457 §3.2 extension members).
package enum ProblemValue: Hashable, Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case strings([String])
}

/// An error a handler (or the server itself) answers with: it becomes an RFC 9457
/// `application/problem+json` response carrying `type`, `title`, `status`, `detail`, `instance`, a
/// stable machine-readable `code` and the `request_id`.
package struct HTTPError: Error, Hashable, Sendable, CustomStringConvertible {
    package var status: HTTPStatus
    /// Stable, snake_case (SERVICE-NOTES §4.3), e.g. `payload_too_large`.
    package var code: String
    /// Short summary that does not change between occurrences; defaults to the reason phrase.
    package var title: String
    /// This occurrence, for humans. Never put internals (paths, stack traces) here.
    package var detail: String
    /// Extra response fields, e.g. `Retry-After` or `Allow`.
    package var headers: HTTPHeaders
    /// Extra members, e.g. `("limit_bytes", .int(33554432))`.
    package var extensions: [String: ProblemValue]
    /// Whether the connection must be closed after this response.
    package var closeConnection: Bool

    package init(
        status: HTTPStatus, code: String, title: String? = nil, detail: String,
        headers: HTTPHeaders = [:], extensions: [String: ProblemValue] = [:], closeConnection: Bool = false
    ) {
        self.status = status
        self.code = code
        self.title = title ?? status.reasonPhrase
        self.detail = detail
        self.headers = headers
        self.extensions = extensions
        self.closeConnection = closeConnection
    }

    package var description: String { "\(status.code) \(code): \(detail)" }

    // MARK: The server's own rejections (SERVICE-NOTES §4.3)

    package static func notFound(_ path: String) -> HTTPError {
        HTTPError(status: .notFound, code: "not_found", detail: "no route for this path")
    }

    package static func methodNotAllowed(_ method: HTTPMethod, allow: [String]) -> HTTPError {
        HTTPError(status: .methodNotAllowed, code: "method_not_allowed",
                  detail: "\(method.rawValue.truncatedForEcho) is not allowed here; allowed: \(allow.joined(separator: ", "))",
                  headers: HTTPHeaders([("Allow", allow.joined(separator: ", "))]))
    }

    package static func payloadTooLarge(declared: Int?, limit: Int) -> HTTPError {
        let detail = declared.map { "body is \($0) bytes; limit is \(limit)" } ?? "body exceeds the limit of \(limit) bytes"
        return HTTPError(status: .contentTooLarge, code: "payload_too_large", detail: detail,
                         extensions: ["limit_bytes": .int(limit)], closeConnection: true)
    }

    package static func requestTimeout(_ detail: String) -> HTTPError {
        HTTPError(status: .requestTimeout, code: "request_timeout", detail: detail, closeConnection: true)
    }

    package static func expectationFailed(_ expectation: String) -> HTTPError {
        HTTPError(status: .expectationFailed, code: "expectation_failed",
                  detail: "only Expect: 100-continue is supported", closeConnection: true)
    }

    package static func badRequest(_ detail: String, closeConnection: Bool = false) -> HTTPError {
        HTTPError(status: .badRequest, code: "bad_request", detail: detail, closeConnection: closeConnection)
    }

    package static func internalError() -> HTTPError {
        HTTPError(status: .internalServerError, code: "internal", detail: "the server failed to handle the request")
    }

    /// 503 with `Retry-After` (SERVICE-NOTES §4.3).
    package static func serviceUnavailable(code: String, detail: String, retryAfterSeconds: Int = 1, closeConnection: Bool = false) -> HTTPError {
        HTTPError(status: .serviceUnavailable, code: code, detail: detail,
                  headers: HTTPHeaders([("Retry-After", String(retryAfterSeconds))]), closeConnection: closeConnection)
    }

    /// The problem for a parser rejection: the parser's status and detail, SERVICE-NOTES §4.3's `code`, plus
    /// `parse_error` naming the exact rule. Always closes the connection.
    package static func from(_ error: ParseError) -> HTTPError {
        var problem = HTTPError(status: error.status, code: error.problemCode, detail: error.detail,
                                extensions: ["parse_error": .string(error.code.rawValue)], closeConnection: true)
        if error.code == .bodyTooLarge { problem.code = "payload_too_large" }
        return problem
    }
}

/// Renders problems as RFC 9457 JSON.
enum ProblemRenderer {
    static let contentType = "application/problem+json"

    /// The problem response for `error`. `instance` is the request path (or nil), `requestID` the
    /// request's id.
    static func response(for error: HTTPError, instance: String?, requestID: String, typeBase: String) -> Response {
        var json = JSONWriter()
        json.beginObject()
        json.member("type", typeBase + error.code)
        json.member("title", error.title)
        json.member("status", error.status.code)
        json.member("detail", Echo.truncate(error.detail, limit: Echo.maxDetailScalars))
        if let instance { json.member("instance", instance + "#" + requestID) }
        json.member("code", error.code)
        json.member("request_id", requestID)
        for key in error.extensions.keys.sorted() {
            switch error.extensions[key]! {
            case .string(let s): json.member(key, Echo.truncate(s, limit: Echo.maxDetailScalars))
            case .int(let i): json.member(key, i)
            case .double(let d): json.member(key, d)
            case .bool(let b): json.member(key, b)
            case .strings(let list): json.member(key, list.prefix(64).map { Echo.truncate($0) })
            }
        }
        json.endObject()
        var headers = error.headers
        headers.replaceOrAdd(name: "Content-Type", value: contentType)
        return Response(status: error.status, headers: headers, body: json.bytes)
    }
}

/// A minimal JSON writer for problem bodies and JSON access-log lines (fixed member order, RFC 8259
/// string escaping).
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needsComma = false

    init() { bytes.reserveCapacity(256) }

    mutating func beginObject() {
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func member(_ key: String, _ value: String) {
        writeKey(key)
        string(value)
    }

    mutating func member(_ key: String, _ value: Int) {
        writeKey(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func member(_ key: String, _ value: Double) {
        writeKey(key)
        bytes.append(contentsOf: (value.isFinite ? String(value) : "null").utf8)
    }

    mutating func member(_ key: String, _ value: Bool) {
        writeKey(key)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func member(_ key: String, _ value: [String]) {
        writeKey(key)
        bytes.append(UInt8(ascii: "["))
        for (i, s) in value.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            string(s)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    private mutating func writeKey(_ key: String) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
        string(key)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
