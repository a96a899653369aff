/// Turns a request path into the form to route on (SERVICE-NOTES S11).
///
/// Each segment is percent-decoded, then dot segments are removed (RFC 3986 §5.2.4, so `..`,
/// `%2e%2e` and `.%2E` cannot climb above the root) and empty segments (`//`) are dropped. The
/// result always starts with `/`; a trailing slash is kept.
///
/// Refused (nil → 400): `%00` and other decoded control bytes, malformed escapes, an encoded
/// slash `%2F` (it would change the segmentation), and decoded bytes that are not UTF-8.
package enum PathNormalizer {
    package static func normalize(_ path: some StringProtocol) -> String? {
        let raw = Array(path.utf8)
        guard raw.first == UInt8(ascii: "/") else { return nil }
        var segments: [String] = []
        let rawSegments = raw.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        for (index, rawSegment) in rawSegments.enumerated() {
            guard let segment = decode(rawSegment) else { return nil }
            let isLast = index == rawSegments.count - 1
            switch segment {
            case ".":
                if isLast { segments.append("") }
            case "..":
                if !segments.isEmpty { segments.removeLast() }
                if isLast { segments.append("") }
            case "":
                if isLast { segments.append("") }
            default:
                segments.append(segment)
            }
        }
        // Keep a single trailing slash only.
        while segments.count >= 2, segments[segments.count - 1] == "", segments[segments.count - 2] == "" {
            segments.removeLast()
        }
        if segments == [""] { return "/" }
        return "/" + segments.joined(separator: "/")
    }

    private static func decode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, ByteClass.isHexDigit(bytes[i + 1]), ByteClass.isHexDigit(bytes[i + 2]) else {
                    return nil
                }
                let v = UInt8(ByteClass.hexValue(bytes[i + 1]) * 16 + ByteClass.hexValue(bytes[i + 2]))
                guard v >= 0x20, v != 0x7F, v != UInt8(ascii: "/") else { return nil }
                out.append(v)
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
