import HTTP1
import Testing

private typealias M = ExpectedMessage

/// Field lines (each `name: value\r\n`) adding up to exactly `total` bytes, no line over `maxLine`
/// bytes without its CRLF. Starts with `Host: a`.
private func fieldSection(total: Int, maxLine: Int = 8000) -> String {
    var lines = ["Host: a\r\n"]
    var used = 9
    var i = 0
    while used < total {
        let left = total - used
        // A line is "X-n: " + value + "\r\n"; keep at least 8 bytes for the last one.
        let prefix = "X-\(i): "
        var size = min(left, maxLine + 2)
        if left - size > 0 && left - size < prefix.count + 2 { size -= prefix.count + 2 }
        let valueLength = size - prefix.count - 2
        precondition(valueLength >= 0, "cannot build a section of \(total) bytes")
        lines.append(prefix + String(repeating: "v", count: valueLength) + "\r\n")
        used += size
        i += 1
    }
    let s = lines.joined()
    precondition(s.utf8.count == total)
    return s
}

@Suite("ParserLimits boundaries (limit accepted, limit + 1 refused)")
struct ParserLimitsTests {
    let defaults = ParserLimits()

    @Test("defaults are SERVICE-NOTES §4.1")
    func defaultValues() {
        #expect(defaults.maxRequestLineSize == 8192)
        #expect(defaults.maxHeaderLineSize == 8192)
        #expect(defaults.maxHeaderSectionSize == 32768)
        #expect(defaults.maxHeaderCount == 100)
        #expect(defaults.maxBodySize == 32 << 20)
        #expect(defaults.maxChunkExtensionSize == 1024)
        #expect(defaults.maxTrailerSectionSize == 8192)
    }

    @Test("request line: 8 KiB accepted, 8 KiB + 1 → 414", arguments: [8192, 8193])
    func requestLine(length: Int) {
        // "GET /" + path + " HTTP/1.1" is `length` bytes without CRLF.
        let target = "/" + String(repeating: "a", count: length - 14)
        let line = "GET \(target) HTTP/1.1"
        #expect(line.utf8.count == length)
        let outcome = verify(bytes(line + "\r\nHost: a\r\n\r\n"), randomRounds: 2)
        if length <= 8192 {
            check(outcome, .messages([M("GET", target)]), "at limit")
        } else {
            check(outcome, .error(.requestLineTooLong), "over limit")
            #expect(outcome.error?.status.code == 414)
        }
    }

    @Test("request line limit is configurable and counts method, version and leading empty lines")
    func requestLineSmall() {
        let limits = ParserLimits(maxRequestLineSize: 20)
        // 20 bytes: "GET /123456 HTTP/1.1"
        check(verify(bytes("GET /123456 HTTP/1.1\r\nHost: a\r\n\r\n"), limits: limits), .messages([M("GET", "/123456")]), "20")
        check(verify(bytes("GET /1234567 HTTP/1.1\r\nHost: a\r\n\r\n"), limits: limits), .error(.requestLineTooLong), "21")
        // A long method is refused the same way, before its end is seen.
        check(verify(bytes(String(repeating: "G", count: 21)), limits: limits), .error(.requestLineTooLong), "method")
        // Leading empty lines count: 2 bytes + 18.
        check(verify(bytes("\r\nGET /1234 HTTP/1.1\r\nHost: a\r\n\r\n"), limits: limits), .messages([M("GET", "/1234")]), "crlf 20")
        check(verify(bytes("\r\nGET /12345 HTTP/1.1\r\nHost: a\r\n\r\n"), limits: limits), .error(.requestLineTooLong), "crlf 21")
        // Endless empty lines are bounded.
        check(verify(bytes(String(repeating: "\r\n", count: 11))), .messages([]), "few")
        check(verify(bytes(String(repeating: "\r\n", count: 11)), limits: limits), .error(.requestLineTooLong), "many")
    }

    @Test("one header line: 8 KiB accepted, 8 KiB + 1 → 431", arguments: [8192, 8193])
    func headerLine(length: Int) {
        let line = "X-Big: " + String(repeating: "b", count: length - 7)
        let outcome = verify(bytes("GET / HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n"), randomRounds: 2)
        if length <= 8192 {
            check(outcome, .messages([M("GET", "/")]), "at limit")
            #expect(outcome.messages.first?.head.headers["x-big"]?.utf8.count == length - 7)
        } else {
            check(outcome, .error(.headerTooLarge), "over limit")
            #expect(outcome.error?.status.code == 431)
        }
    }

    @Test("header line limit counts the name and leading whitespace")
    func headerLineSmall() {
        let limits = ParserLimits(maxHeaderLineSize: 10)
        // "Host:    a" is 10 bytes.
        check(verify(bytes("GET / HTTP/1.1\r\nHost:    a\r\n\r\n"), limits: limits), .messages([M("GET", "/")]), "10")
        check(verify(bytes("GET / HTTP/1.1\r\nHost:     a\r\n\r\n"), limits: limits), .error(.headerTooLarge), "11")
        // Trailing whitespace counts too (it is part of the line as sent).
        check(verify(bytes("GET / HTTP/1.1\r\nHost: a   \r\n\r\n"), limits: limits), .messages([M("GET", "/")]), "10 trailing")
        check(verify(bytes("GET / HTTP/1.1\r\nHost: a    \r\n\r\n"), limits: limits), .error(.headerTooLarge), "11 trailing")
        check(verify(bytes("GET / HTTP/1.1\r\nHost: a\r\nAbcdefghijk: 1\r\n\r\n"), limits: limits), .error(.headerTooLarge), "name")
    }

    @Test("header section: 32 KiB accepted, 32 KiB + 1 → 431", arguments: [32768, 32769])
    func headerSection(total: Int) {
        let outcome = verify(bytes("GET / HTTP/1.1\r\n" + fieldSection(total: total) + "\r\n"), randomRounds: 1)
        if total <= 32768 {
            check(outcome, .messages([M("GET", "/")]), "at limit")
        } else {
            check(outcome, .error(.headerSectionTooLarge), "over limit")
            #expect(outcome.error?.status.code == 431)
        }
    }

    @Test("header section limit, small", arguments: [40, 41])
    func headerSectionSmall(total: Int) {
        let limits = ParserLimits(maxHeaderSectionSize: 40)
        let outcome = verify(bytes("GET / HTTP/1.1\r\n" + fieldSection(total: total) + "\r\n"), limits: limits)
        check(outcome, total <= 40 ? .messages([M("GET", "/")]) : .error(.headerSectionTooLarge), "\(total)")
    }

    @Test("header count: 100 accepted, 101 → 431", arguments: [100, 101])
    func headerCount(count: Int) {
        let fields = ["Host: a\r\n"] + (1..<count).map { "X-\($0): \($0)\r\n" }
        let outcome = verify(bytes("GET / HTTP/1.1\r\n" + fields.joined() + "\r\n"), randomRounds: 2)
        if count <= 100 {
            check(outcome, .messages([M("GET", "/")]), "at limit")
            #expect(outcome.messages.first?.head.headers.count == count)
        } else {
            check(outcome, .error(.tooManyHeaders), "over limit")
            #expect(outcome.error?.status.code == 431)
        }
    }

    @Test("header count limit is configurable")
    func headerCountSmall() {
        let limits = ParserLimits(maxHeaderCount: 2)
        check(verify(bytes("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n"), limits: limits), .messages([M("GET", "/")]), "2")
        check(verify(bytes("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"), limits: limits), .error(.tooManyHeaders), "3")
        // Trailers do not count as headers (they have their own size limit).
        let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        check(verify(bytes(chunked), limits: limits), .messages([M("POST", "/")]), "trailers")
    }

    @Test("Content-Length at the body limit is read; one more → 413 before any body byte")
    func contentLengthLimit() {
        let limits = ParserLimits(maxBodySize: 10)
        let ok = verify(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"), limits: limits)
        check(ok, .messages([M("POST", "/", body: "0123456789")]), "at limit")
        // Only the head is sent: the 413 must not wait for the body.
        let over = verify(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"), limits: limits)
        check(over, .error(.bodyTooLarge, after: [M("POST", "/", complete: false)]), "over limit")
        #expect(over.error?.status.code == 413)
        #expect(over.error?.problemCode == "payload_too_large")
        // The default limit is 32 MiB.
        let big = verify(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(32 << 20 + 1)\r\n\r\n"))
        check(big, .error(.bodyTooLarge, after: [M("POST", "/", complete: false)]), "default over")
        let fits = verify(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(32 << 20)\r\n\r\nabc"))
        check(fits, .incomplete([M("POST", "/", body: "abc", complete: false)]), "default at limit")
    }

    @Test("chunked body counted against the limit as chunks arrive")
    func chunkedLimit() {
        let limits = ParserLimits(maxBodySize: 10)
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        let ok = verify(bytes(head + "4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n"), limits: limits)
        check(ok, .messages([M("POST", "/", body: "0123456789")]), "at limit")
        // The 11th byte is refused as soon as its chunk header arrives, without reading its data.
        let over = verify(bytes(head + "4\r\n0123\r\n7\r\n"), limits: limits)
        check(over, .error(.bodyTooLarge, after: [M("POST", "/", body: "0123", complete: false)]), "over limit")
        let huge = verify(bytes(head + "fffffffffffffff\r\n"), limits: limits)
        check(huge, .error(.bodyTooLarge, after: [M("POST", "/", complete: false)]), "huge")
    }

    @Test("chunk extensions: 1 KiB accepted, 1 KiB + 1 → 400", arguments: [1024, 1025])
    func chunkExtension(length: Int) {
        let ext = ";" + String(repeating: "e", count: length - 1)
        let input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\(ext)\r\nx\r\n0\r\n\r\n"
        let outcome = verify(bytes(input), randomRounds: 2)
        if length <= 1024 {
            check(outcome, .messages([M("POST", "/", body: "x")]), "at limit")
        } else {
            check(outcome, .error(.chunkExtensionTooLarge, after: [M("POST", "/", complete: false)]), "over limit")
            #expect(outcome.error?.status.code == 400)
        }
    }

    @Test("trailer section: 8 KiB accepted, 8 KiB + 1 → 400", arguments: [8192, 8193])
    func trailers(total: Int) {
        // Trailer lines adding up to `total` bytes (CRLFs included).
        let first = "T: " + String(repeating: "t", count: 4000) + "\r\n"
        let second = "U: " + String(repeating: "u", count: total - first.utf8.count - 5) + "\r\n"
        let input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\(first)\(second)\r\n"
        let outcome = verify(bytes(input), randomRounds: 2)
        if total <= 8192 {
            check(outcome, .messages([M("POST", "/")]), "at limit")
        } else {
            check(outcome, .error(.trailersTooLarge, after: [M("POST", "/", complete: false)]), "over limit")
            #expect(outcome.error?.status.code == 400)
        }
    }

    @Test("chunk size digits: 16 accepted, 17 refused")
    func chunkSizeDigits() {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        check(verify(bytes(head + "0000000000000001\r\nx\r\n0\r\n\r\n")), .messages([M("POST", "/", body: "x")]), "16")
        check(
            verify(bytes(head + "00000000000000001\r\nx\r\n0\r\n\r\n")),
            .error(.badChunkSize, after: [M("POST", "/", complete: false)]), "17")
    }
}
