// Character classes of RFC 9110 §5.6 and RFC 9112 §3, as 256-entry tables.

/// Character classes as 128-bit masks over ASCII (compile-time constants: no table, no lazy
/// global initialisation in the per-byte loop). Bytes >= 0x80 (obs-text) are handled per class.
package enum ByteClass {
    @inline(__always)
    private static func test(_ b: UInt8, _ lo: UInt64, _ hi: UInt64) -> Bool {
        if b < 64 { return (lo >> UInt64(b)) & 1 != 0 }
        if b < 128 { return (hi >> UInt64(b &- 64)) & 1 != 0 }
        return false
    }

    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
    ///       / DIGIT / ALPHA                                   (RFC 9110 §5.6.2)
    @inline(__always)
    package static func isToken(_ b: UInt8) -> Bool { test(b, 0x03FF_6CFA_0000_0000, 0x57FF_FFFF_C7FF_FFFE) }

    /// Bytes accepted in a request-target: VCHAR (%x21-7E). Control bytes, SP, DEL and non-ASCII
    /// (obs-text) are refused, like llhttp strict mode.
    @inline(__always)
    package static func isTarget(_ b: UInt8) -> Bool { test(b, 0xFFFF_FFFE_0000_0000, 0x7FFF_FFFF_FFFF_FFFF) }

    /// field-vchar = VCHAR / obs-text, plus SP and HTAB inside a value   (RFC 9110 §5.5)
    @inline(__always)
    package static func isFieldValue(_ b: UInt8) -> Bool {
        b >= 0x80 || test(b, 0xFFFF_FFFF_0000_0200, 0x7FFF_FFFF_FFFF_FFFF)
    }

    /// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text   (RFC 9110 §5.6.4)
    @inline(__always)
    package static func isQdtext(_ b: UInt8) -> Bool {
        b >= 0x80 || test(b, 0xFFFF_FFFB_0000_0200, 0x7FFF_FFFF_EFFF_FFFF)
    }

    /// HEXDIG (either case)
    @inline(__always)
    package static func isHexDigit(_ b: UInt8) -> Bool { test(b, 0x03FF_0000_0000_0000, 0x0000_007E_0000_007E) }

    /// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
    @inline(__always)
    package static func isQuotedPairChar(_ b: UInt8) -> Bool { b == 0x09 || b == 0x20 || (b >= 0x21 && b != 0x7F) }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> Int {
        switch b {
        case 0x30...0x39: Int(b &- 0x30)
        case 0x41...0x46: Int(b &- 0x41 &+ 10)
        default: Int(b &- 0x61 &+ 10)
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
