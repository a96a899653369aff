/// Conditional GET with entity tags (RFC 9110 §8.8.3, §13.1.2): a pure function of the header text.
package enum EntityTag {
    /// Whether `If-None-Match: header` matches the current `etag` (an entity-tag as sent in ETag, e.g. `"abc"` or
    /// `W/"abc"`), i.e. whether the answer is 304. The comparison is weak, as §13.1.2 requires for If-None-Match:
    /// `W/"x"` and `"x"` match. `*` matches any current representation. A list member that is not a well-formed
    /// entity-tag makes the whole field invalid, and an invalid field is ignored (no 304), as §13.1.2 allows.
    package static func ifNoneMatch(_ header: String, matches etag: String) -> Bool {
        guard let current = opaque(Substring(etag)) else { return false }
        let trimmed = header.trimmingHTTPWhitespace
        if trimmed == "*" { return true }
        var found = false
        for member in trimmed.split(separator: ",", omittingEmptySubsequences: true) {
            let m = member.trimmingHTTPWhitespace
            if m.isEmpty { continue }
            guard let tag = opaque(m) else { return false }
            if tag == current { found = true }
        }
        return found
    }

    /// The opaque-tag of `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE`, quotes included; nil when malformed.
    /// etagc = %x21 / %x23-7E / obs-text (any byte but DQUOTE, controls, space and DEL).
    static func opaque(_ s: Substring) -> Substring? {
        let body = s.hasPrefix("W/") ? s.dropFirst(2) : s
        let bytes = Array(body.utf8)
        guard bytes.count >= 2, bytes.first == 0x22, bytes.last == 0x22 else { return nil }
        for b in bytes.dropFirst().dropLast() where b == 0x22 || b < 0x21 || b == 0x7F { return nil }
        return body
    }
}

extension StringProtocol {
    /// Without leading and trailing SP and HTAB (RFC 9110 §5.6.3 OWS).
    fileprivate var trimmingHTTPWhitespace: Substring {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return s[s.endIndex...] }
        let end = s.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return s[start...end]
    }
}
