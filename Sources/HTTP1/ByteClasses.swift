// Character classes of RFC 9110 §5.6 and RFC 9112 §3, as 256-entry tables.

/// Bit flags for `ByteClass.table`.
package enum ByteClass {
    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
    ///       / DIGIT / ALPHA                                   (RFC 9110 §5.6.2)
    package static let token: UInt8 = 1 << 0
    /// Bytes accepted in a request-target: VCHAR (%x21-7E). Control bytes, SP, DEL and
    /// non-ASCII (obs-text) are rejected, like llhttp strict mode.
    package static let target: UInt8 = 1 << 1
    /// field-vchar = VCHAR / obs-text, plus SP and HTAB inside a value  (RFC 9110 §5.5)
    package static let fieldValue: UInt8 = 1 << 2
    /// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text  (RFC 9110 §5.6.4)
    package static let qdtext: UInt8 = 1 << 3
    /// HEXDIG
    package static let hexDigit: UInt8 = 1 << 4

    package static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 256)
        for b in 0...255 {
            var flags: UInt8 = 0
            let isDigit = b >= 0x30 && b <= 0x39
            let isAlpha = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            let tcharSymbols: [Int] = [0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E]
            if isDigit || isAlpha || tcharSymbols.contains(b) { flags |= token }
            if b >= 0x21 && b <= 0x7E { flags |= target }
            if b == 0x09 || b == 0x20 || (b >= 0x21 && b <= 0x7E) || b >= 0x80 { flags |= fieldValue }
            if b == 0x09 || b == 0x20 || b == 0x21 || (b >= 0x23 && b <= 0x5B) || (b >= 0x5D && b <= 0x7E) || b >= 0x80 {
                flags |= qdtext
            }
            if isDigit || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) { flags |= hexDigit }
            t[b] = flags
        }
        return t
    }()

    @inline(__always)
    package static func isToken(_ b: UInt8) -> Bool { table[Int(b)] & token != 0 }
    @inline(__always)
    package static func isTarget(_ b: UInt8) -> Bool { table[Int(b)] & target != 0 }
    @inline(__always)
    package static func isFieldValue(_ b: UInt8) -> Bool { table[Int(b)] & fieldValue != 0 }
    @inline(__always)
    package static func isQdtext(_ b: UInt8) -> Bool { table[Int(b)] & qdtext != 0 }
    @inline(__always)
    package static func isHexDigit(_ b: UInt8) -> Bool { table[Int(b)] & hexDigit != 0 }

    /// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
    @inline(__always)
    package static func isQuotedPairChar(_ b: UInt8) -> Bool { b == 0x09 || b == 0x20 || (b >= 0x21 && b != 0x7F) }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> Int {
        switch b {
        case 0x30...0x39: Int(b - 0x30)
        case 0x41...0x46: Int(b - 0x41 + 10)
        default: Int(b - 0x61 + 10)
        }
    }
}

package extension StringProtocol {
    /// Whether the string is a non-empty RFC 9110 token.
    var isHTTPToken: Bool {
        !isEmpty && utf8.allSatisfy(ByteClass.isToken)
    }
}

/// Host = uri-host [ ":" port ]   (RFC 9110 §7.2, RFC 3986 §3.2.2)
/// uri-host = IP-literal / IPv4address / reg-name; an empty host is allowed (RFC 9112 §3.2).
package func isValidHostHeader(_ bytes: some Collection<UInt8>) -> Bool {
    let b = Array(bytes)
    var i = 0
    if b.first == UInt8(ascii: "[") {
        // IP-literal = "[" ( IPv6address / IPvFuture ) "]": hex digits, ":", ".", "v" and
        // unreserved / sub-delims for IPvFuture. Checked loosely for characters only.
        i = 1
        var closed = false
        while i < b.count {
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "]") {
                closed = true
                break
            }
            if !(isUnreserved(c) || isSubDelim(c) || c == UInt8(ascii: ":")) { return false }
        }
        if !closed || i == 2 { return false }
    } else {
        while i < b.count, b[i] != UInt8(ascii: ":") {
            let c = b[i]
            if !(isUnreserved(c) || isSubDelim(c) || c == UInt8(ascii: "%")) { return false }
            i += 1
        }
    }
    if i == b.count { return true }
    guard b[i] == UInt8(ascii: ":") else { return false }
    // port = *DIGIT
    i += 1
    while i < b.count {
        guard b[i] >= 0x30 && b[i] <= 0x39 else { return false }
        i += 1
    }
    return true
}

/// unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
@inline(__always)
func isUnreserved(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
        || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "~")
}

/// sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
@inline(__always)
func isSubDelim(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
        UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
        UInt8(ascii: "="):
        true
    default: false
    }
}
