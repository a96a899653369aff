/// The content codings the server can apply to a response body (RFC 9110 §8.4.1).
package enum ContentCoding: String, Sendable, Hashable {
    case identity
    case gzip
}

/// `Accept-Encoding` (RFC 9110 §12.5.3) as a pure function: which coding to send. Pure protocol code, no zlib.
package enum AcceptEncoding {
    /// One element of the field: a coding name (lower case; "x-gzip" is read as "gzip", RFC 9110 §8.4.1.3) and its
    /// weight in thousandths (q=0.5 → 500), so weights compare exactly.
    package struct Element: Sendable, Hashable {
        package var coding: String
        package var weight: Int

        package init(coding: String, weight: Int) {
            self.coding = coding
            self.weight = weight
        }
    }

    /// The elements in order. An element whose name is not a token or whose weight is not a valid qvalue
    /// (`0[.ddd]` or `1[.000]`) is dropped, so a malformed part can only make the answer more conservative.
    package static func parse(_ field: String) -> [Element] {
        field.split(separator: ",", omittingEmptySubsequences: true).compactMap { part -> Element? in
            let pieces = part.split(separator: ";", omittingEmptySubsequences: false).map { String(trimOWS($0)) }
            guard let name = pieces.first, !name.isEmpty, name.utf8.allSatisfy(ByteClass.isToken) else { return nil }
            var weight = 1000
            for parameter in pieces.dropFirst() {
                let kv = parameter.split(separator: "=", maxSplits: 1).map { String(trimOWS($0)) }
                guard kv.count == 2, kv[0].lowercased() == "q", let w = qvalue(kv[1]) else { return nil }
                weight = w
            }
            let lower = name.lowercased()
            return Element(coding: lower == "x-gzip" ? "gzip" : lower, weight: weight)
        }
    }

    /// The coding to use for a response the server could send as gzip. No field: identity (a client that says
    /// nothing gets what every client reads). gzip when its weight is above zero and not below identity's, where
    /// `*` stands for every coding not listed. Identity not listed (and no `*`) has no weight of its own: it is
    /// the fallback, acceptable unless `identity;q=0` or `*;q=0` excludes it, so `gzip;q=0.5` alone still means
    /// gzip. When both are excluded the answer is still identity: RFC 9110 §12.5.3 lets the server ignore the
    /// field rather than answer 406.
    package static func negotiate(_ field: String?) -> ContentCoding {
        guard let field else { return .identity }
        let elements = parse(field)
        func weight(of coding: String) -> Int? {
            // Several elements for one coding: the most specific is the same name, and the last one wins.
            elements.last(where: { $0.coding == coding })?.weight
        }
        let star = weight(of: "*")
        let gzip = weight(of: "gzip") ?? star ?? 0
        let identity = weight(of: "identity") ?? star ?? 0
        return gzip > 0 && gzip >= identity ? .gzip : .identity
    }

    /// RFC 9110 §12.4.2: `0` followed by up to three decimals, or `1` followed by up to three zeros.
    static func qvalue(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "0") || first == UInt8(ascii: "1") else { return nil }
        var value = Int(first - UInt8(ascii: "0")) * 1000
        guard bytes.count > 1 else { return value }
        guard bytes[1] == UInt8(ascii: "."), bytes.count <= 5 else { return nil }
        var scale = 100
        for digit in bytes[2...] {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            value += Int(digit - UInt8(ascii: "0")) * scale
            scale /= 10
        }
        return value <= 1000 ? value : nil
    }
}
