// The one JSON reader of the project: the service's request parts and the SPair annotation files (issue #10).

/// A JSON value as read by `StrictJSON`. Objects keep their members in order (keys are unique). Numbers are
/// float64, as Python's `json` holds SPair's coordinates; `integer` reads the integral ones.
package enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    package static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case let (.bool(x), .bool(y)): x == y
        case let (.number(x), .number(y)): x == y
        case let (.string(x), .string(y)): x == y
        case let (.array(x), .array(y)): x == y
        case let (.object(x), .object(y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// An integral number that fits `Int` (exactly: 2.5 and 1e300 are not); nil for anything else.
    package var integer: Int? {
        guard case let .number(x) = self else { return nil }
        return Int(exactly: x)
    }

    /// A finite number; nil for anything else (booleans included).
    package var finiteNumber: Double? {
        guard case let .number(x) = self, x.isFinite else { return nil }
        return x
    }

    /// The member `key` of an object; nil when absent or not an object.
    package subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// A short name of the value's type, for error messages ("must be an integer, found a string").
    package var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: integer != nil ? "an integer" : "a non-integer number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Why a JSON text was refused. `offset` is the 0-based byte where reading stopped.
package struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    package enum Kind: Equatable, Sendable {
        case syntax
        /// An array reached `maxArrayElements + 1` elements; reading stopped there.
        case tooManyElements(limit: Int)
    }
    package var kind: Kind
    package var offset: Int
    package var reason: String

    package var description: String { "\(reason) (byte \(offset))" }

    /// The 1-based line and column of `offset` in the text that was read, for messages about files.
    package func position(in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1, column = 1
        for c in bytes.prefix(offset) {
            if c == 0x0A { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }
}

/// RFC 8259 JSON, strictly: UTF-8 only (no byte order mark, no UTF-16/32), no trailing commas, no comments,
/// no leading zeros or bare `.5`, no unescaped control characters, no unpaired surrogate escapes, unique object
/// keys, one value and nothing after it but whitespace. Foundation's reader accepts several of these (issue #16).
///
/// Limits are enforced while reading, so refusing a million-element array costs no more than reading
/// `maxArrayElements + 1` of them.
package struct StrictJSON {
    package var maxDepth = 64
    package var maxArrayElements = Int.max

    private let b: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8], maxDepth: Int, maxArrayElements: Int) {
        b = bytes
        self.maxDepth = maxDepth
        self.maxArrayElements = maxArrayElements
    }

    package static func parse(_ bytes: [UInt8], maxDepth: Int = 64, maxArrayElements: Int = .max) throws(JSONParseError) -> JSONValue {
        var p = StrictJSON(bytes, maxDepth: maxDepth, maxArrayElements: maxArrayElements)
        try p.checkEncoding()
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        if p.i < bytes.count { throw p.fail("unexpected data after the JSON value") }
        return v
    }

    // MARK: Encoding (RFC 8259 §8.1: UTF-8, and no byte order mark)

    private func checkEncoding() throws(JSONParseError) {
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { throw fail("a UTF-8 byte order mark; send UTF-8 without one") }
        if b.starts(with: [0x00, 0x00, 0xFE, 0xFF]) || b.starts(with: [0xFF, 0xFE, 0x00, 0x00]) {
            throw fail("UTF-32 (byte order mark); send UTF-8")
        }
        if b.starts(with: [0xFE, 0xFF]) || b.starts(with: [0xFF, 0xFE]) { throw fail("UTF-16 (byte order mark); send UTF-8") }
        // A NUL can never appear in UTF-8 JSON text; in the first bytes it is the mark of UTF-16/32 without a BOM.
        if b.prefix(4).contains(0) { throw fail("NUL bytes (UTF-16 or UTF-32?); send UTF-8") }
    }

    // MARK: Values

    private mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard i < b.count else { throw fail("unexpected end of the JSON text") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected \(describe(b[i])); expected a JSON value")
        }
    }

    private mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        i += 1
        var out: [JSONValue] = []
        skipWhitespace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
        while true {
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "]") { throw fail("a trailing comma before ']'") }
            if out.count == maxArrayElements {
                throw JSONParseError(kind: .tooManyElements(limit: maxArrayElements), offset: i,
                                     reason: "an array with more than \(maxArrayElements) elements")
            }
            out.append(try value(depth: depth))
            skipWhitespace()
            guard i < b.count else { throw fail("unexpected end inside an array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
            throw fail("unexpected \(describe(b[i])) in an array; expected ',' or ']'")
        }
    }

    private mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        i += 1
        var out: [(key: String, value: JSONValue)] = []
        var keys = Set<String>()
        skipWhitespace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
        while true {
            skipWhitespace()
            guard i < b.count else { throw fail("unexpected end inside an object") }
            if b[i] == UInt8(ascii: "}") { throw fail("a trailing comma before '}'") }
            guard b[i] == UInt8(ascii: "\"") else { throw fail("unexpected \(describe(b[i])); expected a quoted member name") }
            let keyOffset = i
            let key = try string()
            // RFC 8259 §4: names SHOULD be unique; readers disagree on duplicates (first or last wins), so refuse.
            guard keys.insert(key).inserted else {
                throw JSONParseError(kind: .syntax, offset: keyOffset, reason: "member '\(Self.quoted(key))' appears twice")
            }
            skipWhitespace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':' after a member name") }
            i += 1
            skipWhitespace()
            out.append((key, try value(depth: depth)))
            skipWhitespace()
            guard i < b.count else { throw fail("unexpected end inside an object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
            throw fail("unexpected \(describe(b[i])) in an object; expected ',' or '}'")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard i + w.count <= b.count, b[i..<(i + w.count)].elementsEqual(w) else { throw fail("unexpected \(describe(b[i])); expected a JSON value") }
        i += w.count
    }

    /// number = [ "-" ] int [ frac ] [ exp ]; int = "0" / ( digit1-9 *DIGIT ).
    private mutating func number() throws(JSONParseError) -> Double {
        let start = i
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, isDigit(b[i]) else { throw fail("a '-' without digits") }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if i < b.count, isDigit(b[i]) { throw fail("a number with a leading zero") }
        } else {
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, isDigit(b[i]) else { throw fail("no digits after a decimal point") }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, isDigit(b[i]) else { throw fail("no digits in an exponent") }
            while i < b.count, isDigit(b[i]) { i += 1 }
        }
        // The grammar above is a subset of what Double(String) reads, so this cannot fail.
        return Double(String(decoding: b[start..<i], as: UTF8.self)) ?? .nan
    }

    private mutating func string() throws(JSONParseError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("an unterminated string") }
            let c = b[i]
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                i += 1
                guard i < b.count else { throw fail("an unterminated string") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("an unpaired surrogate escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("an unpaired surrogate escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("an unpaired surrogate escape")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default:
                    i -= 1
                    throw fail("an invalid escape '\\\(describe(e))'")
                }
            case 0x00..<0x20:
                throw fail("an unescaped control character \(describe(c)) in a string")
            case 0x00..<0x80:
                out.append(c)
                i += 1
            default:
                let n = try utf8Sequence()
                out.append(contentsOf: b[i..<(i + n)])
                i += n
            }
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("a \\u escape needs four hex digits") }
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = b[i + k]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("a \\u escape needs four hex digits")
            }
            v = v << 4 | d
        }
        i += 4
        return v
    }

    /// The length of the well-formed UTF-8 sequence at `i` (RFC 3629 §4: no overlongs, no surrogates, ≤ U+10FFFF).
    private func utf8Sequence() throws(JSONParseError) -> Int {
        let c = b[i]
        func cont(_ k: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool { i + k < b.count && range.contains(b[i + k]) }
        switch c {
        case 0xC2...0xDF where cont(1): return 2
        case 0xE0 where cont(1, 0xA0...0xBF) && cont(2): return 3
        case 0xE1...0xEC where cont(1) && cont(2), 0xEE...0xEF where cont(1) && cont(2): return 3
        case 0xED where cont(1, 0x80...0x9F) && cont(2): return 3
        case 0xF0 where cont(1, 0x90...0xBF) && cont(2) && cont(3): return 4
        case 0xF1...0xF3 where cont(1) && cont(2) && cont(3): return 4
        case 0xF4 where cont(1, 0x80...0x8F) && cont(2) && cont(3): return 4
        default: throw fail("invalid UTF-8")
        }
    }

    // MARK: Helpers

    private mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
    }

    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    private func describe(_ c: UInt8) -> String {
        (0x21..<0x7F).contains(c) ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x" + String(c, radix: 16, uppercase: true)
    }

    private func fail(_ reason: String) -> JSONParseError { JSONParseError(kind: .syntax, offset: i, reason: reason) }

    /// A member name quoted in an error, cut to 64 scalars: the message stays small whatever was sent (issue #16).
    private static func quoted(_ key: String) -> String {
        key.unicodeScalars.count > 64 ? String(String.UnicodeScalarView(key.unicodeScalars.prefix(64))) + "…" : key
    }
}
