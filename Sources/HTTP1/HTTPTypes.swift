// Small HTTP vocabulary types shared by the parser, the serializer and the multipart parser.
// Pure value types; no Foundation.

/// HTTP-version = HTTP-name "/" DIGIT "." DIGIT (RFC 9112 §2.3).
package struct HTTPVersion: Hashable, Sendable, CustomStringConvertible {
    package var major: Int
    package var minor: Int

    package init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    package static let http1_0 = HTTPVersion(major: 1, minor: 0)
    package static let http1_1 = HTTPVersion(major: 1, minor: 1)

    package var description: String { "HTTP/\(major).\(minor)" }
}

/// A request method. Methods are case-sensitive tokens (RFC 9110 §9.1).
package struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    package var rawValue: String

    package init(rawValue: String) { self.rawValue = rawValue }
    package init(_ rawValue: String) { self.rawValue = rawValue }
    package init(stringLiteral value: String) { self.rawValue = value }

    package var description: String { rawValue }

    package static let get = HTTPMethod("GET")
    package static let head = HTTPMethod("HEAD")
    package static let post = HTTPMethod("POST")
    package static let put = HTTPMethod("PUT")
    package static let delete = HTTPMethod("DELETE")
    package static let options = HTTPMethod("OPTIONS")
    package static let patch = HTTPMethod("PATCH")
    package static let trace = HTTPMethod("TRACE")
    package static let connect = HTTPMethod("CONNECT")
}

/// A status code with its reason phrase.
package struct HTTPStatus: Hashable, Sendable, CustomStringConvertible {
    package var code: Int
    package var reasonPhrase: String

    package init(code: Int, reasonPhrase: String? = nil) {
        self.code = code
        self.reasonPhrase = reasonPhrase ?? HTTPStatus.standardReasonPhrase(for: code)
    }

    package var description: String { "\(code) \(reasonPhrase)" }

    /// 1xx, 204 and 304 responses never carry content (RFC 9110 §6.4.1).
    package var mayHaveBody: Bool { !(code < 200 || code == 204 || code == 304) }

    package static let `continue` = HTTPStatus(code: 100)
    package static let switchingProtocols = HTTPStatus(code: 101)
    package static let ok = HTTPStatus(code: 200)
    package static let created = HTTPStatus(code: 201)
    package static let accepted = HTTPStatus(code: 202)
    package static let noContent = HTTPStatus(code: 204)
    package static let notModified = HTTPStatus(code: 304)
    package static let badRequest = HTTPStatus(code: 400)
    package static let unauthorized = HTTPStatus(code: 401)
    package static let forbidden = HTTPStatus(code: 403)
    package static let notFound = HTTPStatus(code: 404)
    package static let methodNotAllowed = HTTPStatus(code: 405)
    package static let notAcceptable = HTTPStatus(code: 406)
    package static let requestTimeout = HTTPStatus(code: 408)
    package static let lengthRequired = HTTPStatus(code: 411)
    package static let contentTooLarge = HTTPStatus(code: 413)
    package static let uriTooLong = HTTPStatus(code: 414)
    package static let unsupportedMediaType = HTTPStatus(code: 415)
    package static let expectationFailed = HTTPStatus(code: 417)
    package static let unprocessableContent = HTTPStatus(code: 422)
    package static let tooManyRequests = HTTPStatus(code: 429)
    package static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431)
    package static let internalServerError = HTTPStatus(code: 500)
    package static let notImplemented = HTTPStatus(code: 501)
    package static let serviceUnavailable = HTTPStatus(code: 503)
    package static let httpVersionNotSupported = HTTPStatus(code: 505)

    /// Reason phrases of RFC 9110 §15 (and RFC 6585 for 429/431).
    package static func standardReasonPhrase(for code: Int) -> String {
        switch code {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 203: "Non-Authoritative Information"
        case 204: "No Content"
        case 205: "Reset Content"
        case 206: "Partial Content"
        case 300: "Multiple Choices"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 407: "Proxy Authentication Required"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 416: "Range Not Satisfiable"
        case 417: "Expectation Failed"
        case 421: "Misdirected Request"
        case 422: "Unprocessable Content"
        case 426: "Upgrade Required"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default:
            switch code / 100 {
            case 1: "Informational"
            case 2: "Success"
            case 3: "Redirection"
            case 4: "Client Error"
            default: "Server Error"
            }
        }
    }
}

/// One field line, as received or to be sent. Names keep their original case.
package struct HTTPField: Hashable, Sendable, CustomStringConvertible {
    package var name: String
    package var value: String

    package init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    package var description: String { "\(name): \(value)" }
}

/// An ordered list of fields. Duplicates are kept (so that duplicate Content-Length, Host or
/// Transfer-Encoding stay visible); lookups are ASCII case-insensitive (RFC 9110 §5.1).
package struct HTTPHeaders: RandomAccessCollection, Hashable, Sendable, ExpressibleByDictionaryLiteral,
    CustomStringConvertible
{
    package private(set) var fields: [HTTPField]

    package init() { fields = [] }
    package init(_ fields: [HTTPField]) { self.fields = fields }
    package init(_ pairs: [(String, String)]) { fields = pairs.map { HTTPField(name: $0.0, value: $0.1) } }
    package init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { HTTPField(name: $0.0, value: $0.1) }
    }

    package var startIndex: Int { fields.startIndex }
    package var endIndex: Int { fields.endIndex }
    package subscript(position: Int) -> HTTPField { fields[position] }

    package var description: String { fields.map(\.description).joined(separator: "\n") }

    /// The first value of `name`, or nil.
    package subscript(name: String) -> String? {
        fields.first { asciiCaseInsensitiveEquals($0.name, name) }?.value
    }

    /// All values of `name`, in order.
    package func values(for name: String) -> [String] {
        fields.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
    }

    /// How many field lines are named `name`.
    package func count(of name: String) -> Int {
        fields.reduce(0) { $0 + (asciiCaseInsensitiveEquals($1.name, name) ? 1 : 0) }
    }

    package func contains(_ name: String) -> Bool {
        fields.contains { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// The comma-separated list elements of every `name` line, trimmed, empty elements dropped
    /// (RFC 9110 §5.6.1).
    package func listValues(for name: String) -> [Substring] {
        var out: [Substring] = []
        for value in values(for: name) {
            for element in value.split(separator: ",", omittingEmptySubsequences: true) {
                let trimmed = trimOWS(element)
                if !trimmed.isEmpty { out.append(trimmed) }
            }
        }
        return out
    }

    /// Whether the list header `name` contains `token` (case-insensitively).
    package func containsToken(_ token: String, in name: String) -> Bool {
        listValues(for: name).contains { asciiCaseInsensitiveEquals($0, token) }
    }

    package mutating func append(name: String, value: String) {
        fields.append(HTTPField(name: name, value: value))
    }

    package mutating func append(_ field: HTTPField) { fields.append(field) }

    /// Removes every line named `name`.
    package mutating func remove(name: String) {
        fields.removeAll { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// Replaces every line named `name` with one line.
    package mutating func replaceOrAdd(name: String, value: String) {
        if let first = fields.firstIndex(where: { asciiCaseInsensitiveEquals($0.name, name) }) {
            fields[first].value = value
            var index = fields.index(after: first)
            while index < fields.endIndex {
                if asciiCaseInsensitiveEquals(fields[index].name, name) {
                    fields.remove(at: index)
                } else {
                    index += 1
                }
            }
        } else {
            append(name: name, value: value)
        }
    }
}

// MARK: - ASCII helpers

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
}

/// ASCII case-insensitive comparison (non-ASCII bytes compare exactly).
package func asciiCaseInsensitiveEquals(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
    var ia = a.utf8.makeIterator()
    var ib = b.utf8.makeIterator()
    while true {
        switch (ia.next(), ib.next()) {
        case (nil, nil): return true
        case (let x?, let y?): if asciiLower(x) != asciiLower(y) { return false }
        default: return false
        }
    }
}

/// Fast path for the common String/String case (contiguous UTF-8).
package func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count else { return false }
    var a = a
    var b = b
    return a.withUTF8 { ua in
        b.withUTF8 { ub in
            for i in 0..<ua.count where asciiLower(ua[i]) != asciiLower(ub[i]) {
                return false
            }
            return true
        }
    }
}

/// Strips optional whitespace (SP / HTAB) at both ends (RFC 9110 §5.6.3).
package func trimOWS<S: StringProtocol>(_ s: S) -> Substring where S.SubSequence == Substring {
    var sub = s[...]
    while let first = sub.first, first == " " || first == "\t" { sub = sub.dropFirst() }
    while let last = sub.last, last == " " || last == "\t" { sub = sub.dropLast() }
    return sub
}

func trimOWS(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var lo = bytes.startIndex
    var hi = bytes.endIndex
    while lo < hi, bytes[lo] == 0x20 || bytes[lo] == 0x09 { lo += 1 }
    while hi > lo, bytes[hi - 1] == 0x20 || bytes[hi - 1] == 0x09 { hi -= 1 }
    return bytes[lo..<hi]
}
