// A small, strict JSON reader for the annotation files, written here rather than taken from
// Foundation so that:
//   - integers, floats, booleans and null stay distinct (Foundation's NSNumber blurs bool/int),
//     because the SPair fields are checked by type ("must be 4 integers");
//   - every failure is a value with a position, never a trap, whatever the bytes (depth-limited);
//   - duplicate keys keep the last value, as Python's `json.load` does (the reference reads
//     these files with it).
//
// Accepted grammar: RFC 8259 plus Python's `NaN`, `Infinity`, `-Infinity` literals (which
// `json.load` accepts). Integers too large for Int become doubles, so a field that must be an
// integer rejects them.

/// A parsed JSON value. Objects keep their keys in file order (`keys`) with the last value of a
/// repeated key.
package indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A short name of the value's type, for error messages.
    package var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a float"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON object: keys in first-appearance order, values as Python's dict would hold them.
package struct JSONObject: Sendable, Equatable {
    package private(set) var keys: [String] = []
    package private(set) var values: [String: JSONValue] = [:]

    package init() {}

    package var count: Int { keys.count }

    package subscript(key: String) -> JSONValue? { values[key] }

    mutating func set(_ key: String, _ value: JSONValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }
}

/// Why a document is not JSON: a message and the 1-based line and column of the offending byte.
package struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package var line: Int
    package var column: Int
    package var description: String { "\(message) at line \(line), column \(column)" }
}

package enum JSONReader {
    /// Deepest nesting accepted (annotation files need 3).
    package static let maxDepth = 64

    package static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.pos == bytes.count else { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var pos = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
            let end = min(offset ?? pos, bytes.count)
            var line = 1, column = 1
            for i in 0..<end {
                if bytes[i] == 0x0A { line += 1; column = 1 } else { column += 1 }
            }
            return JSONSyntaxError(message: message, line: line, column: column)
        }

        var atEnd: Bool { pos >= bytes.count }

        mutating func skipWhitespace() {
            while pos < bytes.count {
                switch bytes[pos] {
                case 0x20, 0x09, 0x0A, 0x0D: pos += 1
                default: return
                }
            }
        }

        mutating func expectLiteral(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard pos + w.count <= bytes.count, Array(bytes[pos..<(pos + w.count)]) == w else { return false }
            pos += w.count
            return true
        }

        mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard depth < JSONReader.maxDepth else { throw error("nesting deeper than \(JSONReader.maxDepth)") }
            guard !atEnd else { throw error(bytes.isEmpty ? "empty document" : "unexpected end of data") }
            switch bytes[pos] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                if expectLiteral("true") { return .bool(true) }
            case UInt8(ascii: "f"):
                if expectLiteral("false") { return .bool(false) }
            case UInt8(ascii: "n"):
                if expectLiteral("null") { return .null }
            case UInt8(ascii: "N"):
                if expectLiteral("NaN") { return .double(.nan) }
            case UInt8(ascii: "I"):
                if expectLiteral("Infinity") { return .double(.infinity) }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                if bytes[pos] == UInt8(ascii: "-"), expectLiteral("-Infinity") { return .double(-.infinity) }
                return try number()
            default:
                break
            }
            throw error("unexpected character \(describe(bytes[pos]))")
        }

        func describe(_ b: UInt8) -> String {
            (0x21..<0x7F).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x" + String(b, radix: 16, uppercase: true)
        }

        mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            pos += 1  // {
            var obj = JSONObject()
            skipWhitespace()
            if !atEnd, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(obj) }
            while true {
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of data inside an object") }
                guard bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let key = try string()
                skipWhitespace()
                guard !atEnd, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':' after an object key") }
                pos += 1
                skipWhitespace()
                obj.set(key, try value(depth: depth + 1))
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of data inside an object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(obj) }
                throw error("expected ',' or '}' in an object")
            }
        }

        mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            pos += 1  // [
            var items: [JSONValue] = []
            skipWhitespace()
            if !atEnd, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard !atEnd else { throw error("unexpected end of data inside an array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                throw error("expected ',' or ']' in an array")
            }
        }

        mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
            guard pos + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[pos]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw error("invalid \\u escape")
                }
                v = v << 4 | d
                pos += 1
            }
            return v
        }

        mutating func string() throws(JSONSyntaxError) -> String {
            let start = pos
            pos += 1  // opening quote
            var out: [UInt8] = []
            var runStart = pos
            while true {
                guard !atEnd else { throw error("unterminated string", at: start) }
                let c = bytes[pos]
                if c == UInt8(ascii: "\"") {
                    out.append(contentsOf: bytes[runStart..<pos])
                    pos += 1
                    break
                }
                if c < 0x20 { throw error("control character in a string") }
                if c != UInt8(ascii: "\\") { pos += 1; continue }
                out.append(contentsOf: bytes[runStart..<pos])
                pos += 1
                guard !atEnd else { throw error("unterminated string", at: start) }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), pos + 6 <= bytes.count,
                       bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        let save = pos
                        pos += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            pos = save
                        }
                    }
                    // Lone surrogates (which Python keeps) become U+FFFD.
                    let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'", at: pos - 1)
                }
                runStart = pos
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8", at: start) }
            return s
        }

        mutating func number() throws(JSONSyntaxError) -> JSONValue {
            let start = pos
            if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            func digits(_ p: inout Int) -> Int {
                let s = p
                while p < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[p]) { p += 1 }
                return p - s
            }
            guard !atEnd else { throw error("truncated number", at: start) }
            if bytes[pos] == UInt8(ascii: "0") {
                pos += 1
            } else if digits(&pos) == 0 {
                throw error("invalid number", at: start)
            }
            var isInteger = true
            if !atEnd, bytes[pos] == UInt8(ascii: ".") {
                pos += 1
                isInteger = false
                guard digits(&pos) > 0 else { throw error("invalid number", at: start) }
            }
            if !atEnd, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                pos += 1
                isInteger = false
                if !atEnd, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits(&pos) > 0 else { throw error("invalid number", at: start) }
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            if isInteger, let v = Int(text) { return .int(v) }
            guard let d = Double(text) else { throw error("invalid number", at: start) }
            return .double(d)
        }
    }
}
