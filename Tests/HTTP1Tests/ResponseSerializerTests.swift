import HTTP1
import Testing

private let date = "Sun, 06 Nov 1994 08:49:37 GMT"

private func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

private func context(_ method: HTTPMethod? = .get, _ version: HTTPVersion = .http1_1, keepAlive: Bool = true) -> ResponseContext {
    ResponseContext(requestMethod: method, requestVersion: version, keepAlive: keepAlive, date: date)
}

@Suite("ResponseSerializer")
struct ResponseSerializerTests {
    @Test("status line, Date, caller fields in order, exact Content-Length, body")
    func basic() {
        let r = Response(status: .ok, headers: ["Content-Type": "application/json", "X-Request-Id": "abc"], body: "{\"a\":1}")
        let out = ResponseSerializer.serialize(r, context: context())
        #expect(
            text(out)
                == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n"
                + "Content-Length: 7\r\n\r\n{\"a\":1}")
    }

    @Test("Connection: close when closing; keep-alive for persistent HTTP/1.0")
    func connection() {
        let r = Response(status: .badRequest, body: "x")
        #expect(
            text(ResponseSerializer.serialize(r, context: context(keepAlive: false)))
                == "HTTP/1.1 400 Bad Request\r\nDate: \(date)\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
        #expect(
            text(ResponseSerializer.serialize(r, context: context(.get, .http1_0, keepAlive: true)))
                == "HTTP/1.1 400 Bad Request\r\nDate: \(date)\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx")
        #expect(
            text(ResponseSerializer.serialize(r, context: context(.get, .http1_0, keepAlive: false)))
                == "HTTP/1.1 400 Bad Request\r\nDate: \(date)\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
        // A request that could not be parsed.
        let e = ResponseSerializer.serialize(Response(status: .uriTooLong), context: context(nil, keepAlive: false))
        #expect(text(e) == "HTTP/1.1 414 URI Too Long\r\nDate: \(date)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    @Test("context from a request head")
    func contextFromHead() {
        let head = RequestHead(method: .head, target: "/", version: .http1_0, keepAlive: true)
        let c = ResponseContext(for: head, date: date)
        #expect(c == ResponseContext(requestMethod: .head, requestVersion: .http1_0, keepAlive: true, date: date))
        #expect(ResponseContext(for: head, close: true, date: date).keepAlive == false)
    }

    @Test("managed fields set by the caller are replaced")
    func managedFields() {
        let r = Response(
            headers: ["content-length": "999", "Transfer-Encoding": "chunked", "Connection": "keep-alive", "DATE": "x", "X": "1"],
            body: "abc")
        #expect(
            text(ResponseSerializer.serialize(r, context: context(keepAlive: false)))
                == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nX: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
    }

    @Test("HEAD: Content-Length of the GET, no body")
    func head() {
        let r = Response(headers: ["Content-Type": "text/plain"], body: "hello")
        #expect(
            text(ResponseSerializer.serialize(r, context: context(.head)))
                == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n")
        // A HEAD handler may skip the body and declare the length.
        let declared = Response(headers: ["Content-Length": "1234"])
        #expect(
            text(ResponseSerializer.serialize(declared, context: context(.head)))
                == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: 1234\r\n\r\n")
        // For GET the declared value is replaced by the real one.
        #expect(
            text(ResponseSerializer.serialize(declared, context: context(.get)))
                == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("no body and no Content-Length for 1xx and 204; no body for 304", arguments: [100, 101, 204, 304])
    func noBodyStatuses(code: Int) {
        let r = Response(status: HTTPStatus(code: code), headers: ["ETag": "\"x\""], body: "must not appear")
        let reason = HTTPStatus.standardReasonPhrase(for: code)
        #expect(
            text(ResponseSerializer.serialize(r, context: context()))
                == "HTTP/1.1 \(code) \(reason)\r\nDate: \(date)\r\nETag: \"x\"\r\n\r\n")
    }

    @Test("100 Continue")
    func continueResponse() {
        #expect(text(ResponseSerializer.continueResponse) == "HTTP/1.1 100 Continue\r\n\r\n")
    }

    @Test("streamed: chunked for HTTP/1.1, until-close for HTTP/1.0, nothing for HEAD")
    func streaming() {
        let r = Response(headers: ["Content-Type": "application/x-npy"])
        let (head11, mode11) = ResponseSerializer.serializeHead(r, context: context())
        #expect(mode11 == .chunked)
        #expect(
            text(head11)
                == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Type: application/x-npy\r\nTransfer-Encoding: chunked\r\n\r\n")
        let body = ResponseSerializer.chunk(bytes("hello")) + ResponseSerializer.chunk([UInt8](repeating: 0x41, count: 26))
            + ResponseSerializer.chunk([]) + ResponseSerializer.lastChunk
        #expect(text(body) == "5\r\nhello\r\n1a\r\n" + String(repeating: "A", count: 26) + "\r\n0\r\n\r\n")

        let (head10, mode10) = ResponseSerializer.serializeHead(r, context: context(.get, .http1_0, keepAlive: true))
        #expect(mode10 == .untilClose)
        #expect(text(head10) == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nContent-Type: application/x-npy\r\nConnection: close\r\n\r\n")

        let (headHead, modeHead) = ResponseSerializer.serializeHead(r, context: context(.head))
        #expect(modeHead == BodyWriteMode.none)
        #expect(text(headHead).hasSuffix("Transfer-Encoding: chunked\r\n\r\n"))
    }

    @Test("the serializer's chunked output parses back through RequestParser's chunk decoder")
    func chunkRoundTrip() {
        let payload = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var body: [UInt8] = []
        for start in stride(from: 0, to: payload.count, by: 777) {
            body += ResponseSerializer.chunk(payload[start..<min(start + 777, payload.count)])
        }
        body += ResponseSerializer.lastChunk
        let request = bytes("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") + body
        let outcome = verify(request, randomRounds: 2)
        #expect(outcome.messages.first?.body == payload)
        #expect(outcome.messages.first?.complete == true)
    }

    @Test("response splitting is impossible: bad names dropped, controls in values replaced")
    func sanitizing() {
        let r = Response(headers: HTTPHeaders([("X-Ok", "a\r\nSet-Cookie: evil"), ("Bad Name", "v"), ("X\r\nY", "v"), ("Z", "t\tu\u{0}")]))
        let out = text(ResponseSerializer.serialize(r, context: context()))
        #expect(out == "HTTP/1.1 200 OK\r\nDate: \(date)\r\nX-Ok: a  Set-Cookie: evil\r\nZ: t\tu \r\nContent-Length: 0\r\n\r\n")
        let custom = Response(status: HTTPStatus(code: 599, reasonPhrase: "Odd\r\nX: y"))
        #expect(text(ResponseSerializer.serialize(custom, context: context())).hasPrefix("HTTP/1.1 599 Odd  X: y\r\nDate:"))
    }

    @Test("reason phrases")
    func reasons() {
        #expect(HTTPStatus.contentTooLarge.description == "413 Content Too Large")
        #expect(HTTPStatus.requestHeaderFieldsTooLarge.reasonPhrase == "Request Header Fields Too Large")
        #expect(HTTPStatus(code: 418).reasonPhrase == "Client Error")
        #expect(!HTTPStatus.noContent.mayHaveBody)
        #expect(HTTPStatus.ok.mayHaveBody)
    }

    @Test("IMF-fixdate", arguments: [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (951_868_799, "Tue, 29 Feb 2000 23:59:59 GMT"),
        (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 GMT"),
        (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
        (-86_400, "Wed, 31 Dec 1969 00:00:00 GMT"),
        (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ])
    func imfFixdate(seconds: Int, expected: String) {
        #expect(HTTPDate.imfFixdate(epochSeconds: seconds) == expected)
    }

    @Test("HTTPDate.now() is well-formed")
    func now() {
        let s = HTTPDate.now()
        #expect(s.utf8.count == 29)
        #expect(s.hasSuffix(" GMT"))
    }

    @Test("HTTPHeaders helpers")
    func headers() {
        var h: HTTPHeaders = ["Connection": "keep-alive, Upgrade", "X": "1", "x": "2"]
        #expect(h["CONNECTION"] == "keep-alive, Upgrade")
        #expect(h.values(for: "x") == ["1", "2"])
        #expect(h.count(of: "X") == 2)
        #expect(h.containsToken("upgrade", in: "connection"))
        #expect(!h.containsToken("close", in: "connection"))
        h.replaceOrAdd(name: "X", value: "3")
        #expect(h.values(for: "x") == ["3"])
        h.remove(name: "connection")
        #expect(!h.contains("Connection"))
        h.append(name: "Y", value: "4")
        #expect(h.map(\.name) == ["X", "Y"])
    }
}
