import HTTP1
import Testing

private typealias M = ExpectedMessage

/// Requests that parse, framing, smuggling and syntax cases of SERVICE-NOTES §2.1, §2.2, §2.4.
/// Every case runs through the verifier (whole, byte by byte, random splits, feed), and the
/// well-formed ones are also concatenated (pipelining) below.
private let cases: [ParserCase] = [
    // MARK: Well-formed
    ParserCase(
        "simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        .messages([M("GET", "/", version: .http1_1, keepAlive: true, framing: BodyFraming.none, headers: [("Host", "a")])])),
    ParserCase(
        "headers kept in order with duplicates and case", "GET /x?y=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nAccept:*/*\r\n\r\n",
        .messages([M("GET", "/x?y=1", headers: [("Host", "a"), ("X-A", "1"), ("x-a", "2"), ("Accept", "*/*")])])),
    ParserCase(
        "OWS around values trimmed, inner spaces kept", "GET / HTTP/1.1\r\nHost:  a \t\r\nX:\t a  b\t \r\nEmpty:\r\nEmpty2:   \r\n\r\n",
        .messages([M("GET", "/", headers: [("Host", "a"), ("X", "a  b"), ("Empty", ""), ("Empty2", "")])])),
    ParserCase(
        "obs-text in a value is tolerated (NIO testNonASCIIWorksAsHeaderValue)",
        bytes: bytes("GET / HTTP/1.1\r\nHost: a\r\nX: caf") + [0xC3, 0xA9, 0xFF] + bytes("\r\n\r\n"),
        .messages([M("GET", "/")])),
    ParserCase(
        "POST with Content-Length", "POST /v1/embed HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        .messages([M("POST", "/v1/embed", body: "hello", framing: .contentLength(5))])),
    ParserCase(
        "Content-Length 0", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        .messages([M("POST", "/", body: "", framing: .contentLength(0))])),
    ParserCase(
        "Content-Length leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc",
        .messages([M("POST", "/", body: "abc", framing: .contentLength(3))])),
    ParserCase(
        "F16 POST without CL or TE has an empty body", "POST / HTTP/1.1\r\nHost: a\r\n\r\n",
        .messages([M("POST", "/", body: "", framing: BodyFraming.none)])),
    ParserCase(
        "chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        .messages([M("POST", "/", body: "hello world", framing: .chunked)])),
    ParserCase(
        "chunked, TE case-insensitive with OWS, hex sizes", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tChunKed \r\n\r\na\r\n0123456789\r\nA\r\n0123456789\r\n000\r\n\r\n",
        .messages([M("POST", "/", body: "01234567890123456789", framing: .chunked)])),
    ParserCase(
        "F10 chunk extensions token and quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1;a=\"x;y\";b;c=\"q\\\"z\"\r\n!\r\n0;last\r\n\r\n",
        .messages([M("POST", "/", body: "hello!")])),
    ParserCase(
        "chunk extension with BWS around ; and =", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ; a = b ;c\r\nhello\r\n0\r\n\r\n",
        .messages([M("POST", "/", body: "hello")])),
    ParserCase(
        "F11 trailers accepted and discarded", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\nContent-Length: 99\r\n\r\n",
        .messages([M("POST", "/", body: "hello", headers: [("Host", "a"), ("Transfer-Encoding", "chunked")])])),
    ParserCase(
        "one each of Authorization, Content-Type, Expect", "POST / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        .messages([M("POST", "/", body: "hi", headers: [("Host", "a"), ("Authorization", "Bearer t"), ("Content-Type", "text/plain"), ("Expect", "100-continue"), ("Content-Length", "2")])])),
    ParserCase(
        "HTTP/1.0 defaults to close", "GET / HTTP/1.0\r\n\r\n",
        .messages([M("GET", "/", version: .http1_0, keepAlive: false)])),
    ParserCase(
        "C10 HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        .messages([M("GET", "/", version: .http1_0, keepAlive: true)])),
    ParserCase(
        "C9 Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        .messages([M("GET", "/", keepAlive: false)])),
    ParserCase(
        "Connection list with close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\t\r\n\r\n",
        .messages([M("GET", "/", keepAlive: false)])),
    ParserCase(
        "empty lines before the request line are skipped (RFC 9112 §2.2)", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        .messages([M("GET", "/")])),
    ParserCase(
        "S10 absolute-form", "GET http://x/features?a=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        .messages([M("GET", "http://x/features?a=1")])),
    ParserCase(
        "S10 OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        .messages([M("OPTIONS", "*")])),
    ParserCase(
        "S10 CONNECT is parsed, then the connection closes", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        .messages([M("CONNECT", "example.com:443", keepAlive: false)])),
    ParserCase(
        "upgrade request is answered normally, then the connection closes", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        .messages([M("GET", "/ws", keepAlive: false)])),
    ParserCase(
        "Upgrade without the connection option is ignored", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
        .messages([M("GET", "/", keepAlive: true)])),
    ParserCase(
        "IPv6 Host with port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", .messages([M("GET", "/")])),
    ParserCase("empty Host is valid", "GET / HTTP/1.1\r\nHost:\r\n\r\n", .messages([M("GET", "/")])),
    ParserCase(
        "F15 GET with a body is framed by its Content-Length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        .messages([M("GET", "/", body: "0123456789"), M("GET", "/2")])),
    ParserCase(
        "F14 bytes after Content-Length belong to the next request", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        .messages([M("POST", "/", body: "abc"), M("GET", "/next")])),
    ParserCase(
        "C6 three pipelined requests", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        .messages([M("GET", "/1"), M("POST", "/2", body: "body"), M("GET", "/3")])),
    ParserCase(
        "unknown-but-registered methods parse", "PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n", .messages([M("PROPFIND", "/x")])),

    // MARK: Incomplete
    ParserCase("partial request line", "GET /inde", .incomplete([])),
    ParserCase("partial headers", "GET / HTTP/1.1\r\nHost: a\r\n", .incomplete([])),
    ParserCase(
        "F13 body shorter than Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        .incomplete([M("POST", "/", body: "abc", complete: false)])),
    ParserCase(
        "F12 missing last-chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        .incomplete([M("POST", "/", body: "hello", complete: false)])),

    // MARK: F1–F9 framing and smuggling
    ParserCase(
        "F1 CL + TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        .error(.conflictingFraming)),
    ParserCase(
        "F1 TE + CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        .error(.conflictingFraming)),
    ParserCase(
        "F2 two different CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        .error(.duplicateContentLength)),
    ParserCase(
        "F3 two identical CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        .error(.duplicateContentLength)),
    ParserCase("F3 CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", .error(.badContentLength)),
    ParserCase("F4 CL +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", .error(.badContentLength)),
    ParserCase("F4 CL -1", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", .error(.badContentLength)),
    ParserCase("F4 CL 0x10", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", .error(.badContentLength)),
    ParserCase("F4 CL 5 5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", .error(.badContentLength)),
    ParserCase("F4 CL 5.0", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", .error(.badContentLength)),
    ParserCase("F4 CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", .error(.badContentLength)),
    ParserCase("F4 CL 1_0", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n", .error(.badContentLength)),
    ParserCase(
        "F4 CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", .error(.badContentLength)),
    ParserCase("F5 TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", .error(.badTransferEncoding)),
    ParserCase(
        "F5 TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .error(.badTransferEncoding)),
    ParserCase(
        "F5 TE chunkedchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedchunked\r\n\r\n", .error(.badTransferEncoding)),
    ParserCase("F5 TE ,chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", .error(.badTransferEncoding)),
    ParserCase("F5 TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", .error(.badTransferEncoding)),
    ParserCase("F5 TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", .error(.badTransferEncoding)),
    ParserCase(
        "F5 TE gzip, chunked → 501", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        .error(.unsupportedTransferCoding)),
    ParserCase(
        "F5 TE gzip then chunked on two lines → 501", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        .error(.unsupportedTransferCoding)),
    ParserCase(
        "F6 two TE chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        .error(.badTransferEncoding)),
    ParserCase(
        "F7 TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .error(.transferEncodingHTTP10)),
    ParserCase("F8 chunk size Z", chunked("Z\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size 0x5", chunked("0x5\r\nhello\r\n0\r\n\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size +5", chunked("+5\r\nhello\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size -0", chunked("-0\r\n\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size leading space", chunked(" 5\r\nhello\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size trailing space", chunked("5 \r\nhello\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size empty", chunked("\r\nhello\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size 17 hex digits", chunked("00000000000000005\r\nhello\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F8 chunk size overflow", chunked("8000000000000000\r\n"), .error(.badChunkSize, after: openPost)),
    ParserCase("F9 chunk line with bare LF", chunked("5\nhello\r\n"), .error(.bareLF, after: openPost)),
    ParserCase("F9 chunk data not followed by CRLF", chunked("5\r\nHelloXX"), .error(.badChunkTerminator, after: openPost)),
    ParserCase("F9 chunk data followed by CR only", chunked("5\r\nHello\rX"), .error(.badChunkTerminator, after: openPost)),
    ParserCase("F10 unbalanced quote", chunked("5;a=\"x\r\nhello\r\n"), .error(.badChunkExtension, after: openPost)),
    ParserCase("F10 empty extension", chunked("5;\r\nhello\r\n"), .error(.badChunkExtension, after: openPost)),
    ParserCase("F10 extension value missing", chunked("5;a=\r\nhello\r\n"), .error(.badChunkExtension, after: openPost)),
    ParserCase("F10 whitespace before CR", chunked("5;a \r\nhello\r\n"), .error(.badChunkExtension, after: openPost)),
    ParserCase("F11 trailer with space before colon", chunked("0\r\nX : 1\r\n\r\n"), .error(.spaceBeforeColon, after: openPost)),
    ParserCase("F11 trailer obs-fold", chunked("0\r\nX: 1\r\n 2\r\n\r\n"), .error(.obsFold, after: openPost)),

    // MARK: S1–S9 syntax
    ParserCase("S1 space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", .error(.spaceBeforeColon)),
    ParserCase("S1 tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", .error(.spaceBeforeColon)),
    ParserCase("S2 obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", .error(.obsFold)),
    ParserCase("S3 whitespace before the first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", .error(.obsFold)),
    ParserCase("S4 bare CR in a value", "GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n", .error(.bareCR)),
    ParserCase("S4 \\r\\n\\rX terminator", "GET / HTTP/1.1\r\nHost: a\r\n\rX", .error(.bareCR)),
    ParserCase("S4 bare CR in request line", "GET / HTTP/1.1\rX", .error(.bareCR)),
    ParserCase("S5 bare LF after request line", "GET / HTTP/1.1\nHost: a\n\n", .error(.bareLF)),
    ParserCase("S5 bare LF after a header", "GET / HTTP/1.1\r\nHost: a\n\r\n", .error(.bareLF)),
    ParserCase("S5 bare LF ending the section", "GET / HTTP/1.1\r\nHost: a\r\n\n", .error(.bareLF)),
    ParserCase("S5 bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .error(.bareLF)),
    ParserCase("S6 NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", .error(.invalidHeaderValue)),
    ParserCase("S6 DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7F}b\r\n\r\n", .error(.invalidHeaderValue)),
    ParserCase("S6 form feed in value", "GET / HTTP/1.1\r\nHost: a\r\nX: \u{0C}\r\n\r\n", .error(.invalidHeaderValue)),
    ParserCase(
        "S6 obs-text in a name", bytes: bytes("GET / HTTP/1.1\r\nHost: a\r\nX") + [0xE9] + bytes(": 1\r\n\r\n"),
        .error(.invalidHeaderName)),
    ParserCase("S6 DEL in a name", "GET / HTTP/1.1\r\nX\u{7F}: 1\r\n\r\n", .error(.invalidHeaderName)),
    ParserCase("S7 line without colon", "GET / HTTP/1.1\r\nHost: a\r\nname value\r\n\r\n", .error(.spaceBeforeColon)),
    ParserCase("S7 token line without colon", "GET / HTTP/1.1\r\nHost: a\r\nnamevalue\r\n\r\n", .error(.missingColon)),
    ParserCase("S7 empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", .error(.invalidHeaderName)),
    ParserCase("S8 garbage method", "G=\":<> / HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidMethod)),
    ParserCase("S8 lowercase method is an unknown token → 501", "get / HTTP/1.1\r\nHost: a\r\n\r\n", .error(.unknownMethod)),
    ParserCase("S8 unknown method → 501", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", .error(.unknownMethod)),
    ParserCase("S8 two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidRequestLine)),
    ParserCase("S8 two spaces before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidVersion)),
    ParserCase("S8 tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidMethod)),
    ParserCase("S8 leading space", " GET / HTTP/1.1\r\n\r\n", .error(.invalidRequestLine)),
    ParserCase("S8 LF inside the request line", "GET /a\nb HTTP/1.1\r\n\r\n", .error(.invalidRequestLine)),
    ParserCase("S8 missing version", "GET / \r\n\r\n", .error(.invalidVersion)),
    ParserCase("S8 HTTP/0.9 style", "GET /\r\n\r\n", .error(.invalidRequestLine)),
    ParserCase("S8 method only", "GET\r\n\r\n", .error(.invalidRequestLine)),
    ParserCase("S8 HTTP/1.32", "GET / HTTP/1.32\r\nHost: a\r\n\r\n", .error(.invalidVersion)),
    ParserCase("S8 HTTP/1.2 → 505", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .error(.unsupportedVersion)),
    ParserCase("S8 HTTP/2.0 → 505", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .error(.unsupportedVersion)),
    ParserCase("S8 HTTP/0.9 → 505", "GET / HTTP/0.9\r\n\r\n", .error(.unsupportedVersion)),
    ParserCase("S8 lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", .error(.invalidVersion)),
    ParserCase("S8 HTTP/1.1 with trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", .error(.invalidVersion)),
    ParserCase("S8 HTTP/11", "GET / HTTP/11\r\n\r\n", .error(.invalidVersion)),
    ParserCase("S8 PRI preface → 505", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", .error(.unsupportedVersion)),
    ParserCase("S9 missing Host", "GET / HTTP/1.1\r\n\r\n", .error(.missingHost)),
    ParserCase("S9 two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .error(.duplicateHost)),
    ParserCase("S9 two equal Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", .error(.duplicateHost)),
    // #16 item 3: singleton fields given twice (RFC 9110), whatever the order or the values.
    ParserCase("two Authorization", "POST /admin/reload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nAuthorization: Bearer bad\r\n\r\n",
               .error(.duplicateField)),
    ParserCase("two equal Authorization, any case", "GET / HTTP/1.1\r\nHost: a\r\nauthorization: x\r\nAUTHORIZATION: x\r\n\r\n",
               .error(.duplicateField)),
    ParserCase("two Content-Type", "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: image/png\r\nContent-Length: 0\r\nContent-type: multipart/form-data; boundary=x\r\n\r\n",
               .error(.duplicateField)),
    ParserCase("two Expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
               .error(.duplicateField)),
    ParserCase("S9 invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .error(.invalidHost)),
    ParserCase("S9 invalid Host port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", .error(.invalidHost)),
    ParserCase("S9 Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", .error(.invalidHost)),
    ParserCase("S9 HTTP/1.0 without Host is fine", "GET / HTTP/1.0\r\n\r\n", .messages([M("GET", "/")])),
    ParserCase("S11 control byte in target", "GET /a\u{1}b HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidTarget)),
    ParserCase(
        "S11 UTF-8 in target", bytes: bytes("GET /") + [0xCE, 0xB4] + bytes(" HTTP/1.1\r\nHost: a\r\n\r\n"),
        .error(.invalidTarget)),
    ParserCase("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidTarget)),
    ParserCase("CONNECT without port", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidTarget)),
    ParserCase("CONNECT with origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", .error(.invalidTarget)),

    // MARK: C11 nothing after a closing message
    ParserCase(
        "C11 request after Connection: close is refused", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /evil HTTP/1.1\r\nHost: a\r\n\r\n",
        .error(.dataAfterClose, after: [M("GET", "/", keepAlive: false)])),
    ParserCase(
        "C11 HTTP/1.0 then another request", "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        .error(.dataAfterClose, after: [M("GET", "/", keepAlive: false)])),
    ParserCase(
        "empty lines after a closing message are tolerated", "GET / HTTP/1.0\r\n\r\n\r\n\r\n",
        .messages([M("GET", "/", keepAlive: false)])),
    ParserCase(
        "C11 an error stops the pipeline", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost : a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        .error(.spaceBeforeColon, after: [M("GET", "/1")])),
    ParserCase(
        "bytes after CONNECT are not HTTP", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        .error(.dataAfterClose, after: [M("CONNECT", "a:443", keepAlive: false)])),
]

/// The chunked POST of `chunked(_:)`, head reported, body not finished.
private let openPost = [M("POST", "/", body: nil, complete: false)]

/// A chunked POST with `body` after the head.
private func chunked(_ body: String) -> String {
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
}

@Suite("RequestParser")
struct RequestParserTests {
    @Test("verifier: whole, byte by byte, random splits, feed", arguments: cases)
    func verifierCase(_ c: ParserCase) {
        let outcome = verify(c.input)
        check(outcome, c.expected, c.name)
        if case .error(let code, _) = c.expected, let error = outcome.error {
            #expect(error.status == code.status)
            #expect(error.code.rawValue == code.rawValue)
        }
    }

    /// (c) of the verifier: every case that ends cleanly between messages, concatenated, then each
    /// remaining case as the tail. The result must be the concatenation of the individual results.
    @Test("verifier: all cases pipelined on one connection")
    func pipelined() {
        var prefix: [UInt8] = []
        var prefixOutcome = Outcome()
        var tails: [(ParserCase, Outcome)] = []
        for c in cases {
            let outcome = runParser(fragments: [c.input])
            let clean = outcome.error == nil && outcome.idle && outcome.messages.allSatisfy { $0.complete && $0.head.keepAlive }
            if clean {
                prefix += c.input
                prefixOutcome.messages += outcome.messages
            } else {
                tails.append((c, outcome))
            }
        }
        #expect(prefixOutcome.messages.count > 20)
        let all = verify(prefix)
        #expect(all == prefixOutcome)
        for (c, tailOutcome) in tails {
            // Leading empty lines count towards the request line; none of the tails relies on that.
            var expected = prefixOutcome
            expected.messages += tailOutcome.messages
            expected.error = tailOutcome.error
            expected.idle = tailOutcome.idle
            let combined = runParser(fragments: [prefix + c.input])
            #expect(combined == expected, "pipelined tail \(c.name)")
        }
    }

    @Test("head is reported before any body byte is consumed")
    func headBeforeBody() {
        let input = bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        var parser = RequestParser()
        input.withUnsafeBytes { raw in
            let step = parser.next(raw)
            guard case .head(let head) = step.event else {
                Issue.record("expected head, got \(step)")
                return
            }
            #expect(step.consumed == input.count - 5)
            #expect(head.framing == .contentLength(5))
            #expect(head.contentLength == 5)
            #expect(!head.contentLengthExceeds(5))
            #expect(head.contentLengthExceeds(4))
            let body = parser.next(UnsafeRawBufferPointer(rebasing: raw[step.consumed...]))
            #expect(body == ParseStep(consumed: 5, event: .body(bytes("hello"))))
            let end = parser.next(UnsafeRawBufferPointer(start: nil, count: 0))
            #expect(end == ParseStep(consumed: 0, event: .end))
            #expect(parser.isIdle)
        }
    }

    @Test("Expect: 100-continue is exposed on the head")
    func expectContinue() {
        let cases: [(String, RequestExpectation)] = [
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", .continue100),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n", .continue100),
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", RequestExpectation.none),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\n\r\n", .unsupported("something-else")),
            // RFC 9110 §10.1.1: ignored in HTTP/1.0.
            ("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", RequestExpectation.none),
        ]
        for (input, expectation) in cases {
            let outcome = verify(bytes(input))
            #expect(outcome.messages.first?.head.expectation == expectation, "\(input)")
        }
        let head = verify(bytes(cases[0].0)).messages.first?.head
        #expect(head?.expectsContinue == true)
    }

    @Test("target forms, path and query")
    func targetForms() throws {
        let table: [(String, TargetForm, String, String?)] = [
            ("GET /a/b?c=d#frag HTTP/1.1", .origin, "/a/b", "c=d"),
            ("GET /a HTTP/1.1", .origin, "/a", nil),
            ("GET http://h:1/x/y?q HTTP/1.1", .absolute, "/x/y", "q"),
            ("GET http://h?q=1 HTTP/1.1", .absolute, "/", "q=1"),
            ("GET https://h HTTP/1.1", .absolute, "/", nil),
            ("OPTIONS * HTTP/1.1", .asterisk, "*", nil),
            ("CONNECT h:443 HTTP/1.1", .authority, "", nil),
        ]
        for (line, form, path, query) in table {
            let outcome = verify(bytes(line + "\r\nHost: h\r\n\r\n"))
            let head = try #require(outcome.messages.first?.head, "\(line)")
            #expect(head.targetForm == form, "\(line)")
            #expect(head.path == path[...], "\(line)")
            #expect(head.query.map(String.init) == query, "\(line)")
        }
    }

    @Test("setBodyLimit refuses an oversized Content-Length at once")
    func setBodyLimitImmediately() {
        var parser = RequestParser()
        let events = parser.feed(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"))
        #expect(events.count == 1)
        #expect(parser.setBodyLimit(100) == nil)
        let error = parser.setBodyLimit(99)
        #expect(error?.code == .bodyTooLarge)
        #expect(error?.status.code == 413)
        #expect(parser.feed([]) == [.error(error!)])
    }

    @Test("per-request body limit set after the head")
    func perRequestBodyLimit() {
        let input = bytes(
            "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd"
                + "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabcdef")
        let limits = ParserLimits(maxBodySize: 5)
        // Default limit 5 refuses the second request …
        let outcome = verify(input, limits: limits)
        check(
            outcome, .error(.bodyTooLarge, after: [M("POST", "/small", body: "abcd"), M("POST", "/big", complete: false)]),
            "default")
        // … unless the router raises the limit for /big after seeing its head.
        let raised = verify(input, limits: limits, bodyLimit: { $0.target == "/big" ? 6 : nil })
        check(raised, .messages([M("POST", "/small", body: "abcd"), M("POST", "/big", body: "abcdef")]), "raised")
        // The limit is reset after each message.
        let again = bytes("POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabcdefPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabcdef")
        let reset = verify(again, limits: limits, bodyLimit: { $0.target == "/big" ? 6 : nil })
        check(
            reset, .error(.bodyTooLarge, after: [M("POST", "/big", body: "abcdef"), M("POST", "/x", complete: false)]),
            "reset")
        // A lowered limit applies to chunked bodies too.
        let chunkedInput = bytes("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        let lowered = verify(chunkedInput, bodyLimit: { _ in 2 })
        check(lowered, .error(.bodyTooLarge, after: [M("POST", "/", body: "", complete: false)]), "chunked lowered")
    }

    @Test("a dead parser stays dead")
    func deadParser() {
        var parser = RequestParser()
        let first = parser.feed(bytes("GET / HTTP/1.1\r\nHost : a\r\n\r\n"))
        guard case .error(let error) = first.last else {
            Issue.record("expected an error")
            return
        }
        #expect(error.code == .spaceBeforeColon)
        #expect(error.status == .badRequest)
        #expect(error.problemCode == "bad_request")
        #expect(parser.feed(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n")) == [.error(error)])
        #expect(parser.error == error)
        #expect(!parser.isIdle)
    }

    @Test("every error code maps to the status of SERVICE-NOTES §4.3")
    func statusMap() {
        for code in ParseError.Code.allCases {
            let error = ParseError(code)
            #expect([400, 413, 414, 431, 501, 505].contains(error.status.code))
            #expect(!error.detail.isEmpty)
        }
        #expect(ParseError(.bodyTooLarge).problemCode == "payload_too_large")
        #expect(ParseError(.requestLineTooLong).problemCode == "uri_too_long")
        #expect(ParseError(.tooManyHeaders).problemCode == "headers_too_large")
        #expect(ParseError(.unknownMethod).problemCode == "not_implemented")
        #expect(ParseError(.unsupportedVersion).problemCode == "version_not_supported")
        #expect(ParseError(.conflictingFraming).problemCode == "bad_request")
    }

    @Test("large body arrives in pieces that add up")
    func largeBody() {
        let body = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let input = bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n") + body
        var rng = SplitMix64(seed: 42)
        let outcome = runParser(fragments: randomSplit(input, using: &rng))
        #expect(outcome.messages.first?.body == body)
        #expect(outcome.error == nil)
        // Chunked, in chunks of 1000.
        var chunkedBody: [UInt8] = []
        for start in stride(from: 0, to: body.count, by: 1000) {
            let piece = body[start..<min(start + 1000, body.count)]
            chunkedBody += bytes(String(piece.count, radix: 16) + "\r\n") + piece + bytes("\r\n")
        }
        let input2 = bytes("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") + chunkedBody + bytes("0\r\n\r\n")
        let outcome2 = runParser(fragments: randomSplit(input2, using: &rng))
        #expect(outcome2.messages.first?.body == body)
        #expect(outcome2.messages.first?.complete == true)
    }
}
