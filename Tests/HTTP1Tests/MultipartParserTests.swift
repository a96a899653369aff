import HTTP1
import Testing

private let boundary = "------------------------d74496d66958873e"
private let contentType = "multipart/form-data; boundary=\(boundary)"

/// A body as curl -F builds it.
private func form(_ parts: [(headers: String, body: [UInt8])], boundary: String = boundary, preamble: String = "", epilogue: String = "") -> [UInt8] {
    var out = bytes(preamble)
    for p in parts {
        out += bytes("--\(boundary)\r\n\(p.headers)\r\n\r\n") + p.body + bytes("\r\n")
    }
    out += bytes("--\(boundary)--\r\n\(epilogue)")
    return out
}

private func file(_ name: String, _ filename: String, _ type: String, _ body: [UInt8]) -> (headers: String, body: [UInt8]) {
    ("Content-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: \(type)", body)
}

private func field(_ name: String, _ value: String) -> (headers: String, body: [UInt8]) {
    ("Content-Disposition: form-data; name=\"\(name)\"", bytes(value))
}

private func expectError(
    _ code: MultipartError.Code, _ body: [UInt8], contentType: String = contentType, limits: MultipartLimits = MultipartLimits(),
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let parts = try MultipartParser.parse(body, contentType: contentType, limits: limits)
        Issue.record("expected \(code), got \(parts.count) parts", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.status == code.status, sourceLocation: sourceLocation)
    }
}

@Suite("MultipartParser")
struct MultipartParserTests {
    let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0, 0x0D, 0x0A, 0x2D, 0x2D, 0x00, 0x0D] + (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 131) }
    let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + (0..<2000).map { UInt8(truncatingIfNeeded: $0 &* 17) }

    @Test("curl -F source=@a.jpg -F target=@b.png -F top_k=5")
    func curlForm() throws {
        let body = form([file("source", "a.jpg", "image/jpeg", jpeg), file("target", "b.png", "image/png", png), field("top_k", "5")])
        let parts = try MultipartParser.parse(body, contentType: contentType)
        #expect(parts.count == 3)
        #expect(parts[0].name == "source")
        #expect(parts[0].filename == "a.jpg")
        #expect(parts[0].contentType == "image/jpeg")
        #expect(parts[0].body == jpeg)
        #expect(parts[1].name == "target")
        #expect(parts[1].body == png)
        #expect(parts[2].name == "top_k")
        #expect(parts[2].filename == nil)
        #expect(parts[2].contentType == nil)
        #expect(parts[2].body == bytes("5"))
        #expect(parts[0].headers.map(\.name) == ["Content-Disposition", "Content-Type"])
    }

    @Test("boundary from Content-Type: token, quoted, case-insensitive names, other parameters")
    func boundaryParsing() throws {
        #expect(try MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=abc") == "abc")
        #expect(try MultipartParser.boundary(fromContentType: "Multipart/Form-Data;BOUNDARY=abc") == "abc")
        #expect(try MultipartParser.boundary(fromContentType: "multipart/form-data; charset=utf-8; boundary=\"a b:c?\"") == "a b:c?")
        #expect(try MultipartParser.boundary(fromContentType: "multipart/form-data ; boundary=\"q(r)\"") == "q(r)")
        #expect(throws: MultipartError.self) { try MultipartParser.boundary(fromContentType: "multipart/form-data") }
        let cases: [(String, MultipartError.Code)] = [
            ("application/json", .notMultipartFormData),
            ("multipart/mixed; boundary=abc", .notMultipartFormData),
            ("multipart/form-data", .missingBoundary),
            ("multipart/form-data; boundary=", .notMultipartFormData),
            ("multipart/form-data; boundary=\"\"", .invalidBoundary),
            ("multipart/form-data; boundary=\"abc \"", .invalidBoundary),
            ("multipart/form-data; boundary=a{b", .notMultipartFormData),
            ("multipart/form-data; boundary=\"a{b\"", .invalidBoundary),
            ("multipart/form-data; boundary=" + String(repeating: "b", count: 71), .invalidBoundary),
            ("multipart/form-data; boundary=a; boundary=b", .notMultipartFormData),
        ]
        for (value, code) in cases {
            do {
                _ = try MultipartParser.boundary(fromContentType: value)
                Issue.record("\(value) accepted")
            } catch {
                #expect(error.code == code, "\(value): \(error)")
            }
        }
        #expect(try MultipartParser.boundary(fromContentType: "multipart/form-data; boundary=" + String(repeating: "b", count: 70)).count == 70)
        #expect(MultipartError(.notMultipartFormData, "").status.code == 415)
        #expect(MultipartError(.notMultipartFormData, "").problemCode == "unsupported_media_type")
    }

    @Test("preamble, transport padding and epilogue are ignored")
    func preambleEpilogue() throws {
        var body = bytes("This is a preamble\r\n--\(boundary)   \t\r\n")
        body += bytes("Content-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--\(boundary)--  \r\nepilogue junk")
        let parts = try MultipartParser.parse(body, contentType: contentType)
        #expect(parts.map(\.name) == ["a"])
        #expect(parts[0].body == bytes("value"))
        let withPreamble = form([field("x", "1")], preamble: "preamble\r\n")
        #expect(try MultipartParser.parse(withPreamble, contentType: contentType).count == 1)
    }

    @Test("content that looks like a boundary but is not one")
    func nearBoundaries() throws {
        // "\r\n--" + a prefix of the boundary, and the boundary without its CRLF, stay in the content.
        let tricky = bytes("a\r\n--" + boundary.dropLast() + "x\r\n-- \(boundary)b--\(boundary)")
        let parts = try MultipartParser.parse(form([("Content-Disposition: form-data; name=\"t\"", tricky)]), contentType: contentType)
        #expect(parts.first?.body == tricky)
        // The boundary right after CRLF followed by anything but padding/CRLF/-- is malformed.
        let bad = bytes("--\(boundary)\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nx\r\n--\(boundary)Z\r\n")
        expectError(.malformedDelimiter, bad)
    }

    @Test("empty parts and empty bodies")
    func emptyParts() throws {
        let parts = try MultipartParser.parse(form([field("a", ""), field("b", "")]), contentType: contentType)
        #expect(parts.map(\.body) == [[], []])
        // A body with only the close delimiter has no parts.
        #expect(try MultipartParser.parse(bytes("--\(boundary)--\r\n"), contentType: contentType).isEmpty)
    }

    @Test("file names: quoted-pair, UTF-8, filename*")
    func fileNames() throws {
        let body = form([
            ("Content-Disposition: form-data; name=\"f\"; filename=\"a \\\"q\\\".jpg\"", [1]),
            ("Content-Disposition: form-data; name=\"g\"; filename=\"caf\u{E9}.png\"", [2]),
            ("Content-Disposition: form-data; name=\"h\"; filename=\"x\"; filename*=UTF-8''%E2%82%AC.txt", [3]),
            ("content-disposition: FORM-DATA;name=i", [4]),
        ])
        let parts = try MultipartParser.parse(body, contentType: contentType)
        #expect(parts.map(\.filename) == ["a \"q\".jpg", "caf\u{E9}.png", "\u{20AC}.txt", nil])
        #expect(parts.map(\.name) == ["f", "g", "h", "i"])
    }

    @Test("refusals", arguments: [
        ("no boundary at all", MultipartError.Code.missingOpeningBoundary, "just text"),
        ("no closing boundary", .missingClosingBoundary, "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue"),
        ("ends after a delimiter", .missingClosingBoundary, "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--B"),
        ("ends inside headers", .missingClosingBoundary, "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n"),
        ("garbage after boundary", .malformedDelimiter, "--Bxyz\r\n"),
        ("bare LF after boundary", .malformedDelimiter, "--B\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B--"),
        ("header without colon", .malformedPartHeader, "--B\r\nContent-Disposition form-data\r\n\r\nv\r\n--B--"),
        ("space before colon", .malformedPartHeader, "--B\r\nContent-Disposition : form-data; name=a\r\n\r\nv\r\n--B--"),
        ("obs-fold", .malformedPartHeader, "--B\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nv\r\n--B--"),
        ("bare LF in header", .malformedPartHeader, "--B\r\nX: a\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B--"),
        ("NUL in header", .malformedPartHeader, "--B\r\nX: a\u{0}\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--B--"),
        ("no Content-Disposition", .missingContentDisposition, "--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--"),
        ("two Content-Disposition", .missingContentDisposition,
         "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\nv\r\n--B--"),
        ("attachment disposition", .invalidContentDisposition, "--B\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--B--"),
        ("unbalanced quote", .invalidContentDisposition, "--B\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--B--"),
        ("no name", .missingName, "--B\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nv\r\n--B--"),
        ("nested multipart", .nestedMultipart,
         "--B\r\nContent-Disposition: form-data; name=a\r\nContent-Type: multipart/mixed; boundary=C\r\n\r\n--C--\r\n--B--"),
    ])
    func refusals(name: String, code: MultipartError.Code, body: String) {
        expectError(code, bytes(body), contentType: "multipart/form-data; boundary=B")
    }

    @Test("part count: 8 accepted, 9 → 400")
    func partCount() throws {
        let eight = form((0..<8).map { field("p\($0)", "\($0)") })
        #expect(try MultipartParser.parse(eight, contentType: contentType).count == 8)
        expectError(.tooManyParts, form((0..<9).map { field("p\($0)", "\($0)") }))
        // L9: 1000 parts.
        expectError(.tooManyParts, form((0..<1000).map { field("p\($0)", "") }))
        expectError(.tooManyParts, eight, limits: MultipartLimits(maxParts: 7))
    }

    @Test("part header size: 4 KiB accepted, 4 KiB + 1 → 400", arguments: [4096, 4097])
    func partHeaderSize(total: Int) {
        // Content-Disposition line + an X line, CRLFs included, adding up to `total`.
        let cd = "Content-Disposition: form-data; name=\"a\""
        let x = "X: " + String(repeating: "x", count: total - (cd.utf8.count + 2) - 5)
        let body = form([("\(cd)\r\n\(x)", bytes("v"))])
        if total <= 4096 {
            #expect((try? MultipartParser.parse(body, contentType: contentType))?.count == 1)
        } else {
            expectError(.partHeaderTooLarge, body)
        }
    }

    @Test("L9: a 1 MB part header is refused without reading it all")
    func hugePartHeader() {
        let body = bytes("--\(boundary)\r\nX: ") + [UInt8](repeating: 0x61, count: 1 << 20)
        expectError(.partHeaderTooLarge, body)
    }

    @Test("part size: limit accepted, limit + 1 → 413", arguments: [1000, 1001])
    func partSize(size: Int) {
        let limits = MultipartLimits(maxPartSize: 1000)
        let body = form([file("source", "a.bin", "application/octet-stream", [UInt8](repeating: 0x0D, count: size))])
        if size <= 1000 {
            #expect((try? MultipartParser.parse(body, contentType: contentType, limits: limits))?.first?.body.count == size)
        } else {
            expectError(.partTooLarge, body, limits: limits)
            #expect(MultipartError(.partTooLarge, "").problemCode == "payload_too_large")
        }
        // Without a closing boundary a too-large part is still 413.
        if size > 1000 {
            let open = bytes("--\(boundary)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n") + [UInt8](repeating: 0x41, count: 5000)
            expectError(.partTooLarge, open, limits: limits)
        }
    }

    @Test("every truncation of a valid body is refused, never crashes")
    func truncations() {
        let body = form([file("source", "a.jpg", "image/jpeg", Array(jpeg.prefix(40))), field("k", "v")])
        // The close delimiter "--B--" is complete at body.count - 2 (the final CRLF is optional).
        let closeEnd = body.count - 2
        for n in 0..<body.count {
            let prefix = Array(body.prefix(n))
            let parsed = try? MultipartParser.parse(prefix, contentType: contentType)
            if n >= closeEnd {
                #expect(parsed?.count == 2, "prefix \(n)")
            } else {
                #expect(parsed == nil, "prefix \(n) accepted")
            }
        }
    }

    @Test("random bodies never crash and errors carry 400/413/415")
    func randomBodies() {
        var rng = SplitMix64(seed: 7)
        let alphabet = bytes("--B\r\n:; =\"xContent-Disposition: form-data; name=a") + [0, 0x0D, 0x0A, 0x2D]
        for _ in 0..<2000 {
            let length = Int(rng.next() % 120)
            let body = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            do {
                _ = try MultipartParser.parse(body, contentType: "multipart/form-data; boundary=B")
            } catch {
                #expect([400, 413, 415].contains(error.status.code))
            }
        }
    }

    @Test("linear time on adversarial content (many near-boundaries)")
    func adversarial() throws {
        let nearMiss = bytes("\r\n--" + boundary.dropLast())
        var content: [UInt8] = []
        while content.count < 200_000 { content += nearMiss }
        let parts = try MultipartParser.parse(form([field("a", String(decoding: content, as: UTF8.self))]), contentType: contentType)
        #expect(parts.first?.body == content)
    }

    @Test("MediaType parsing")
    func mediaType() throws {
        let m = try #require(MediaType(parsing: "Text/HTML; Charset=\"utf-8\"; q=0.5"))
        #expect(m.essence == "text/html")
        #expect(m.parameter("charset") == "utf-8")
        #expect(m.parameter("Q") == "0.5")
        #expect(m.description == "text/html; charset=utf-8; q=0.5")
        #expect(MediaType(parsing: "text") == nil)
        #expect(MediaType(parsing: "text/") == nil)
        #expect(MediaType(parsing: "text/plain; x") == nil)
        #expect(MediaType(parsing: "text/plain;;a=b")?.parameter("a") == "b")
        #expect(MediaType(parsing: "a/b; x=\"q\\\"y\"")?.description == "a/b; x=\"q\\\"y\"")
    }
}

/// Issue #16 item 6: a malformed Content-Type is refused with what is wrong with it, never its bytes.
@Suite struct MediaTypeReasonTests {
    func reason(_ value: String) -> String? {
        if case .failure(let e) = MediaType.parse(value) { return e.reason }
        return nil
    }

    @Test func saysWhatIsWrong() {
        #expect(reason("")?.contains("empty") == true)
        #expect(reason("   ")?.contains("empty") == true)
        #expect(reason(";;;")?.contains("type token") == true)
        #expect(reason("text")?.contains("'/'") == true)
        #expect(reason("text/")?.contains("subtype") == true)
        #expect(reason("multipart/form-data; boundary=a; boundary=b") == "parameter 'boundary' is given twice")
        #expect(reason("multipart/form-data; Boundary=a; boundary=a") == "parameter 'boundary' is given twice")
        #expect(reason("a/b; x")?.contains("no '=value'") == true)
        #expect(reason("a/b; x=")?.contains("empty or non-token value") == true)
        #expect(reason("a/b; x=\"q")?.contains("unterminated") == true)
        #expect(reason("a/b x=1")?.contains("expected ';'") == true)
        #expect(reason("a/b; =1")?.contains("parameter name") == true)
        #expect(reason("multipart/form-data; boundary=abc;; charset=utf-8") == nil)
    }

    @Test func neverEchoesMuch() {
        let long = String(repeating: "n", count: 100_000)
        #expect((reason("a/b; \(long)")?.utf8.count ?? .max) < 200)
        #expect((reason("a/b; \(long)=1; \(long)=2")?.utf8.count ?? .max) < 200)
    }
}
