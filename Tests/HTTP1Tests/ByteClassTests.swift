import HTTP1
import Testing

/// Exhaustive 0...255 byte-class tests (after NIO's HTTPDecoderTest), with the ABNF written out
/// here independently of the parser's tables.
@Suite("Byte classes 0...255")
struct ByteClassTests {
    /// RFC 9110 §5.6.2
    ///     token = 1*tchar
    ///     tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
    ///           / DIGIT / ALPHA
    static func isTchar(_ b: UInt8) -> Bool {
        let symbols = Array("!#$%&'*+-.^_`|~".utf8)
        return (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || symbols.contains(b)
    }

    private let anyMethod = ParserOptions(knownMethods: nil)

    /// RFC 9112 §3.1: method = token. Every byte outside tchar is refused with 400.
    @Test("method bytes", arguments: 0...255)
    func methodByte(_ value: Int) {
        let b = UInt8(value)
        let input = [UInt8(ascii: "A"), b, UInt8(ascii: "A")] + bytes(" / HTTP/1.1\r\nHost: a\r\n\r\n")
        let outcome = verify(input, options: anyMethod, randomRounds: 1)
        if Self.isTchar(b) {
            #expect(outcome.error == nil, "byte \(value): \(outcome)")
            #expect(outcome.messages.first?.head.method.rawValue.utf8.elementsEqual([65, b, 65]) == true)
        } else {
            #expect(outcome.error?.status.code == 400, "byte \(value): \(outcome)")
            #expect(outcome.messages.isEmpty)
        }
    }

    /// RFC 9112 §3.2 / RFC 3986: a request-target is visible ASCII. We accept VCHAR (%x21-7E) like
    /// llhttp strict mode (quotes, `|`, `\`, `{`, `#` included) and refuse SP elsewhere, controls,
    /// DEL and non-ASCII with 400.
    @Test("request-target bytes", arguments: 0...255)
    func targetByte(_ value: Int) {
        let b = UInt8(value)
        let input = bytes("GET /a") + [b] + bytes("a HTTP/1.1\r\nHost: a\r\n\r\n")
        let outcome = verify(input, randomRounds: 1)
        if b >= 0x21 && b <= 0x7E {
            #expect(outcome.error == nil, "byte \(value): \(outcome)")
            #expect(outcome.messages.first?.head.target.utf8.elementsEqual(bytes("/a") + [b] + bytes("a")) == true)
        } else {
            #expect(outcome.error?.status.code == 400, "byte \(value): \(outcome)")
        }
    }

    /// RFC 9110 §5.1: field-name = token. First and inner positions.
    @Test("header-name bytes", arguments: 0...255)
    func headerNameByte(_ value: Int) {
        let b = UInt8(value)
        let first = verify(bytes("GET / HTTP/1.1\r\nHost: a\r\n") + [b] + bytes("X: v\r\n\r\n"), randomRounds: 1)
        let inner = verify(bytes("GET / HTTP/1.1\r\nHost: a\r\nX") + [b] + bytes("X: v\r\n\r\n"), randomRounds: 1)
        if Self.isTchar(b) {
            #expect(first.error == nil, "byte \(value) first: \(first)")
            #expect(inner.error == nil, "byte \(value) inner: \(inner)")
            #expect(inner.messages.first?.head.headers.last?.name.utf8.elementsEqual([88, b, 88]) == true)
        } else {
            #expect(first.error?.status.code == 400, "byte \(value) first: \(first)")
            if b == UInt8(ascii: ":") {
                // "X:X: v" is the field "X" with value "X: v".
                #expect(inner.messages.first?.head.headers["X"] == "X: v")
            } else {
                #expect(inner.error?.status.code == 400, "byte \(value) inner: \(inner)")
            }
        }
    }

    /// RFC 9110 §5.5: field-value = *field-content; field-vchar = VCHAR / obs-text, with SP / HTAB
    /// inside. NUL, other controls, DEL, bare CR and bare LF are refused (SERVICE-NOTES S6).
    @Test("header-value bytes", arguments: 0...255)
    func headerValueByte(_ value: Int) {
        let b = UInt8(value)
        let outcome = verify(bytes("GET / HTTP/1.1\r\nHost: a\r\nX: a") + [b] + bytes("a\r\n\r\n"), randomRounds: 1)
        let allowed = b == 0x09 || b == 0x20 || (b >= 0x21 && b <= 0x7E) || b >= 0x80
        if allowed {
            #expect(outcome.error == nil, "byte \(value): \(outcome)")
        } else {
            #expect(outcome.error?.status.code == 400, "byte \(value): \(outcome)")
        }
    }

    /// RFC 9112 §7.1: chunk-size = 1*HEXDIG.
    @Test("chunk-size bytes", arguments: 0...255)
    func chunkSizeByte(_ value: Int) {
        let b = UInt8(value)
        let head = bytes("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        let outcome = verify(head + [b] + bytes("\r\n"), randomRounds: 1)
        let hex = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
        if hex {
            #expect(outcome.error == nil, "byte \(value): \(outcome)")
        } else {
            #expect(outcome.error?.status.code == 400, "byte \(value): \(outcome)")
        }
    }

    @Test("the parser's tchar table agrees with the ABNF")
    func tokenTable() {
        for v in 0...255 {
            #expect(ByteClass.isToken(UInt8(v)) == Self.isTchar(UInt8(v)), "byte \(v)")
        }
        #expect("Content-Length".isHTTPToken)
        #expect(!"Content Length".isHTTPToken)
        #expect(!"".isHTTPToken)
    }
}
