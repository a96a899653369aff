/// Bounds of `MultipartParser` (SERVICE-NOTES §4.1 item 3 and L9).
package struct MultipartLimits: Hashable, Sendable {
    /// Parts in one body. Over → 400 `too_many_parts`.
    package var maxParts: Int = 8
    /// Bytes of one part's header section (each line with its CRLF, without the empty line).
    /// Over → 400 `part_header_too_large`.
    package var maxPartHeaderSize: Int = 4 * 1024
    /// Bytes of one part's content. Over → 413 `part_too_large`.
    package var maxPartSize: Int = 16 * 1024 * 1024

    package init(maxParts: Int = 8, maxPartHeaderSize: Int = 4 * 1024, maxPartSize: Int = 16 * 1024 * 1024) {
        self.maxParts = maxParts
        self.maxPartHeaderSize = maxPartHeaderSize
        self.maxPartSize = maxPartSize
    }
}

/// One part of a multipart/form-data body (RFC 7578 §4).
package struct MultipartPart: Hashable, Sendable {
    /// The part's fields, in order.
    package var headers: HTTPHeaders
    /// `name` of `Content-Disposition: form-data; name="..."`.
    package var name: String
    /// `filename` (or a UTF-8 `filename*`), if given.
    package var filename: String?
    /// The part's Content-Type value, if given (RFC 7578 §4.4: text/plain is implied without it).
    package var contentType: String?
    package var body: [UInt8]

    package init(headers: HTTPHeaders, name: String, filename: String?, contentType: String?, body: [UInt8]) {
        self.headers = headers
        self.name = name
        self.filename = filename
        self.contentType = contentType
        self.body = body
    }
}

/// Why a multipart body was refused.
package struct MultipartError: Error, Hashable, Sendable, CustomStringConvertible {
    package enum Code: String, Hashable, Sendable, CaseIterable {
        /// Content-Type is not multipart/form-data (415).
        case notMultipartFormData = "not_multipart_form_data"
        case missingBoundary = "missing_boundary"
        /// Empty, longer than 70, a byte outside RFC 2046 bchars, or ending in a space.
        case invalidBoundary = "invalid_boundary"
        case missingOpeningBoundary = "missing_opening_boundary"
        case missingClosingBoundary = "missing_closing_boundary"
        /// Bytes after a boundary other than padding + CRLF or "--".
        case malformedDelimiter = "malformed_delimiter"
        case malformedPartHeader = "malformed_part_header"
        case missingContentDisposition = "missing_content_disposition"
        case invalidContentDisposition = "invalid_content_disposition"
        case missingName = "missing_name"
        /// A part whose Content-Type is multipart/* (RFC 7578 §4.3 deprecates nesting; SERVICE-NOTES L9).
        case nestedMultipart = "nested_multipart"
        case tooManyParts = "too_many_parts"
        case partHeaderTooLarge = "part_header_too_large"
        /// 413.
        case partTooLarge = "part_too_large"

        package var status: HTTPStatus {
            switch self {
            case .notMultipartFormData: .unsupportedMediaType
            case .partTooLarge: .contentTooLarge
            default: .badRequest
            }
        }
    }

    package var code: Code
    package var detail: String

    package init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    package var status: HTTPStatus { code.status }

    /// The problem+json `code` of SERVICE-NOTES §4.3.
    package var problemCode: String {
        switch status.code {
        case 413: "payload_too_large"
        case 415: "unsupported_media_type"
        default: "malformed_multipart"
        }
    }

    package var description: String { "\(status.code) \(code.rawValue): \(detail)" }
}

/// A whole-buffer multipart/form-data parser (RFC 7578, RFC 2046 §5.1.1). Request bodies are
/// bounded by the HTTP parser's body limit, so the body is parsed in one piece; every scan is
/// linear and bounded by the limits.
package enum MultipartParser {
    /// The boundary of a `multipart/form-data` Content-Type value.
    ///
    ///     boundary := 0*69<bchars> bcharsnospace
    ///     bchars := bcharsnospace / " "
    ///     bcharsnospace := DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" / "." / "/" / ":" / "=" / "?"
    package static func boundary(fromContentType value: String) throws(MultipartError) -> String {
        guard let mediaType = MediaType(parsing: value), mediaType.essence == "multipart/form-data" else {
            throw MultipartError(.notMultipartFormData, "Content-Type must be multipart/form-data")
        }
        guard let boundary = mediaType.parameter("boundary") else {
            throw MultipartError(.missingBoundary, "multipart/form-data without a boundary parameter")
        }
        let b = Array(boundary.utf8)
        guard !b.isEmpty, b.count <= 70, b.allSatisfy(isBoundaryChar), b.last != 0x20 else {
            throw MultipartError(.invalidBoundary, "boundary must be 1 to 70 characters of RFC 2046 bchars")
        }
        return boundary
    }

    /// Parses `body` given its Content-Type value.
    package static func parse(
        _ body: [UInt8], contentType: String, limits: MultipartLimits = MultipartLimits()
    ) throws(MultipartError) -> [MultipartPart] {
        try parse(body, boundary: boundary(fromContentType: contentType), limits: limits)
    }

    /// Parses `body` with a known boundary.
    ///
    ///     multipart-body := [preamble CRLF] dash-boundary transport-padding CRLF body-part
    ///                       *encapsulation close-delimiter transport-padding [CRLF epilogue]
    ///     encapsulation  := delimiter transport-padding CRLF body-part
    ///     delimiter      := CRLF dash-boundary ;  dash-boundary := "--" boundary
    ///     close-delimiter := delimiter "--"
    package static func parse(
        _ body: [UInt8], boundary: String, limits: MultipartLimits = MultipartLimits()
    ) throws(MultipartError) -> [MultipartPart] {
        let b = Array(boundary.utf8)
        guard !b.isEmpty, b.count <= 70, b.allSatisfy(isBoundaryChar), b.last != 0x20 else {
            throw MultipartError(.invalidBoundary, "boundary must be 1 to 70 characters of RFC 2046 bchars")
        }
        let delimiter = Array("\r\n--\(boundary)".utf8)
        let result: Result<[MultipartPart], MultipartError> = body.withUnsafeBytes { raw in
            do throws(MultipartError) {
                return .success(try parse(raw, delimiter: delimiter, limits: limits))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private static func parse(
        _ body: UnsafeRawBufferPointer, delimiter: [UInt8], limits: MultipartLimits
    ) throws(MultipartError) -> [MultipartPart] {
        let end = body.count
        let dashBoundary = delimiter[2...]
        // The first boundary: at the very start, or after a preamble ending in CRLF.
        var pos: Int
        if startsWith(body, at: 0, dashBoundary) {
            pos = dashBoundary.count
        } else if let found = find(delimiter, in: body, from: 0, to: end) {
            pos = found + delimiter.count
        } else {
            throw MultipartError(.missingOpeningBoundary, "no boundary line found")
        }

        var parts: [MultipartPart] = []
        while true {
            // After a boundary: "--" closes; otherwise transport padding and CRLF.
            if startsWith(body, at: pos, [0x2D, 0x2D]) { return parts }
            while pos < end, body[pos] == 0x20 || body[pos] == 0x09 { pos += 1 }
            guard startsWith(body, at: pos, [0x0D, 0x0A]) else {
                if pos >= end { throw MultipartError(.missingClosingBoundary, "body ends without a closing boundary") }
                throw MultipartError(.malformedDelimiter, "boundary not followed by CRLF or --")
            }
            pos += 2
            guard parts.count < limits.maxParts else {
                throw MultipartError(.tooManyParts, "more than \(limits.maxParts) parts")
            }

            // Header section.
            var headers = HTTPHeaders()
            var headerBytes = 0
            while true {
                let budget = limits.maxPartHeaderSize - headerBytes
                let searchEnd = min(end, pos + budget + 2)
                guard let crlf = find([0x0D, 0x0A], in: body, from: pos, to: searchEnd) else {
                    if searchEnd < end {
                        throw MultipartError(.partHeaderTooLarge, "part header larger than \(limits.maxPartHeaderSize) bytes")
                    }
                    throw MultipartError(.missingClosingBoundary, "body ends inside a part header")
                }
                if crlf == pos {
                    pos += 2
                    break
                }
                headerBytes += crlf - pos + 2
                if headerBytes > limits.maxPartHeaderSize {
                    throw MultipartError(.partHeaderTooLarge, "part header larger than \(limits.maxPartHeaderSize) bytes")
                }
                headers.append(try parseHeaderLine(UnsafeRawBufferPointer(rebasing: body[pos..<crlf])))
                pos = crlf + 2
            }

            // Content, up to the next delimiter; scanning is bounded by the part size limit.
            let windowEnd = min(end, pos + limits.maxPartSize + delimiter.count)
            guard let next = find(delimiter, in: body, from: pos, to: windowEnd) else {
                if windowEnd < end || end - pos >= limits.maxPartSize + delimiter.count {
                    throw MultipartError(.partTooLarge, "a part is larger than \(limits.maxPartSize) bytes")
                }
                throw MultipartError(.missingClosingBoundary, "body ends without a closing boundary")
            }
            if next - pos > limits.maxPartSize {
                throw MultipartError(.partTooLarge, "a part is larger than \(limits.maxPartSize) bytes")
            }
            let content = [UInt8](UnsafeRawBufferPointer(rebasing: body[pos..<next]))
            parts.append(try makePart(headers: headers, body: content))
            pos = next + delimiter.count
        }
    }

    /// field-line = field-name ":" OWS field-value OWS, like HTTP fields (no obs-fold, no
    /// whitespace before the colon). Values may hold UTF-8 (file names).
    private static func parseHeaderLine(_ line: UnsafeRawBufferPointer) throws(MultipartError) -> HTTPField {
        var i = 0
        while i < line.count, ByteClass.isToken(line[i]) { i += 1 }
        guard i > 0, i < line.count, line[i] == UInt8(ascii: ":") else {
            throw MultipartError(.malformedPartHeader, "malformed part header line")
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<i]), as: UTF8.self)
        var lo = i + 1
        var hi = line.count
        while lo < hi, line[lo] == 0x20 || line[lo] == 0x09 { lo += 1 }
        while hi > lo, line[hi - 1] == 0x20 || line[hi - 1] == 0x09 { hi -= 1 }
        for j in lo..<hi where !ByteClass.isFieldValue(line[j]) {
            throw MultipartError(.malformedPartHeader, "control byte in a part header")
        }
        return HTTPField(name: name, value: String(decoding: UnsafeRawBufferPointer(rebasing: line[lo..<hi]), as: UTF8.self))
    }

    /// Content-Disposition: form-data; name="field"; filename="file.jpg"   (RFC 7578 §4.2)
    private static func makePart(headers: HTTPHeaders, body: [UInt8]) throws(MultipartError) -> MultipartPart {
        let dispositions = headers.values(for: "content-disposition")
        guard dispositions.count == 1, let disposition = dispositions.first else {
            throw MultipartError(.missingContentDisposition, "each part needs one Content-Disposition: form-data")
        }
        var scanner = ParameterScanner(Array(disposition.utf8))
        guard let type = scanner.token(), asciiCaseInsensitiveEquals(type, "form-data"),
            let parameters = scanner.parameters()
        else {
            throw MultipartError(.invalidContentDisposition, "Content-Disposition must be form-data")
        }
        func parameter(_ n: String) -> String? { parameters.first { $0.name == n }?.value }
        guard let name = parameter("name") else {
            throw MultipartError(.missingName, "Content-Disposition without a name")
        }
        var filename = parameter("filename")
        if let extended = parameter("filename*"), let decoded = decodeExtValue(extended) { filename = decoded }
        let contentTypes = headers.values(for: "content-type")
        if contentTypes.count > 1 {
            throw MultipartError(.malformedPartHeader, "more than one Content-Type in a part")
        }
        let contentType = contentTypes.first
        if let contentType, let media = MediaType(parsing: contentType), media.type == "multipart" {
            throw MultipartError(.nestedMultipart, "nested multipart bodies are not accepted")
        }
        return MultipartPart(headers: headers, name: name, filename: filename, contentType: contentType, body: body)
    }

    /// RFC 8187 ext-value `UTF-8''percent%20encoded` (only UTF-8 is decoded).
    private static func decodeExtValue(_ value: String) -> String? {
        let b = Array(value.utf8)
        guard let q1 = b.firstIndex(of: UInt8(ascii: "'")),
            let q2 = b[(q1 + 1)...].firstIndex(of: UInt8(ascii: "'")),
            asciiCaseInsensitiveEquals(String(decoding: b[..<q1], as: UTF8.self), "utf-8")
        else { return nil }
        var out: [UInt8] = []
        var i = q2 + 1
        while i < b.count {
            if b[i] == UInt8(ascii: "%") {
                guard i + 2 < b.count, ByteClass.isHexDigit(b[i + 1]), ByteClass.isHexDigit(b[i + 2]) else { return nil }
                out.append(UInt8(ByteClass.hexValue(b[i + 1]) * 16 + ByteClass.hexValue(b[i + 2])))
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func isBoundaryChar(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            || Array("'()+_,-./:=? ".utf8).contains(c)
    }

    @inline(__always)
    private static func startsWith(_ body: UnsafeRawBufferPointer, at pos: Int, _ prefix: some Collection<UInt8>) -> Bool {
        guard pos >= 0, body.count - pos >= prefix.count else { return false }
        var i = pos
        for b in prefix {
            if body[i] != b { return false }
            i += 1
        }
        return true
    }

    /// The first offset of `needle` in `body[from..<to]`.
    ///
    /// Linear time: every needle here starts with CR and has no other CR (boundaries are bchars),
    /// so after a partial match of length j no match can start inside it and the scan resumes at
    /// the mismatch. (For a needle whose first byte recurs it falls back to a plain search.)
    private static func find(_ needle: some Collection<UInt8>, in body: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
        let n = Array(needle)
        guard let first = n.first, to - from >= n.count else { return nil }
        let skipsPartialMatches = !n.dropFirst().contains(first)
        let lastStart = to - n.count
        var i = from
        while i <= lastStart {
            if body[i] != first {
                i += 1
                continue
            }
            var j = 1
            while j < n.count, body[i + j] == n[j] { j += 1 }
            if j == n.count { return i }
            i += skipsPartialMatches ? j : 1
        }
        return nil
    }
}
