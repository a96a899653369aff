import Foundation
import HTTP1
import HTTPServer
import Testing

/// One framing or syntax attack of SERVICE-NOTES §2.1–2.3, sent as exact bytes on a fresh connection.
struct Attack: Sendable, CustomTestStringConvertible {
    var id: String
    var bytes: String
    var status: Int

    var testDescription: String { id }
}

/// A request the attacks try to smuggle; the server must never execute it.
let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

/// Every attack ends with `smuggled`, so a server that misframes the first request would run it.
let attacks: [Attack] = [
    // F1 / CL.TE and TE.CL
    Attack(id: "F1 CL+TE", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
    Attack(id: "F1 TE+CL", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", status: 400),
    // F2, F3 duplicate Content-Length
    Attack(id: "F2 CL 1 and 2", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", status: 400),
    Attack(id: "F3 CL 5, 5", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", status: 400),
    Attack(id: "F3 CL twice equal", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", status: 400),
    // F4 Content-Length syntax
    Attack(id: "F4 CL +5", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", status: 400),
    Attack(id: "F4 CL -1", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", status: 400),
    Attack(id: "F4 CL 0x10", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", status: 400),
    Attack(id: "F4 CL 5 5", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello", status: 400),
    Attack(id: "F4 CL 5.0", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5.0\r\n\r\nhello", status: 400),
    Attack(id: "F4 CL empty", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", status: 400),
    Attack(id: "F4 CL overflow", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", status: 400),
    // F5, F6, F7 Transfer-Encoding
    Attack(id: "F5 TE gzip", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", status: 400),
    Attack(id: "F5 TE chunked, gzip", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", status: 400),
    Attack(id: "F5 TE chunkedchunked", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunkedchunked\r\n\r\n0\r\n\r\n", status: 400),
    Attack(id: "F5 TE ,chunked", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", status: 400),
    Attack(id: "F5 TE identity", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", status: 400),
    Attack(id: "F5 TE gzip, chunked → 501", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501),
    Attack(id: "F6 TE chunked twice", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
    Attack(id: "F7 TE in HTTP/1.0", bytes: "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
    // F8, F9 chunk lines
    Attack(id: "F8 chunk size Z", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size 0x5", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size +5", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size -0", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size leading space", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size trailing space", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size empty", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F8 chunk size overflow", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F9 chunk line bare LF", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 400),
    Attack(id: "F9 chunk data without CRLF", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", status: 400),
    Attack(id: "F10 unbalanced quote in chunk-ext", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\nhello\r\n0\r\n\r\n", status: 400),
    // S1–S7 field syntax
    Attack(id: "S1 space before colon", bytes: "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello", status: 400),
    Attack(id: "S2 obs-fold", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", status: 400),
    Attack(id: "S3 space before first field", bytes: "GET /livez HTTP/1.1\r\n Host: x\r\n\r\n", status: 400),
    Attack(id: "S4 bare CR in value", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", status: 400),
    Attack(id: "S4 CR LF CR X terminator", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\n\rX", status: 400),
    Attack(id: "S5 bare LF line endings", bytes: "GET /livez HTTP/1.1\nHost: x\n\n", status: 400),
    Attack(id: "S6 NUL in value", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}b\r\n\r\n", status: 400),
    Attack(id: "S6 DEL in name", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nX-\u{7f}A: a\r\n\r\n", status: 400),
    Attack(id: "S7 no colon", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nX-A a\r\n\r\n", status: 400),
    Attack(id: "S7 empty name", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n", status: 400),
    // S8 request line
    Attack(id: "S8 garbage method", bytes: "G=\":<> / HTTP/1.1\r\nHost: x\r\n\r\n", status: 400),
    Attack(id: "S8 lowercase method", bytes: "get /livez HTTP/1.1\r\nHost: x\r\n\r\n", status: 501),
    Attack(id: "S8 two spaces", bytes: "GET  /livez HTTP/1.1\r\nHost: x\r\n\r\n", status: 400),
    Attack(id: "S8 tab separator", bytes: "GET\t/livez HTTP/1.1\r\nHost: x\r\n\r\n", status: 400),
    Attack(id: "S8 missing version", bytes: "GET /livez\r\nHost: x\r\n\r\n", status: 400),
    Attack(id: "S8 HTTP/1.32", bytes: "GET /livez HTTP/1.32\r\nHost: x\r\n\r\n", status: 400),
    Attack(id: "S8 HTTP/2.0 → 505", bytes: "GET /livez HTTP/2.0\r\nHost: x\r\n\r\n", status: 505),
    // S9 Host
    Attack(id: "S9 missing Host", bytes: "GET /livez HTTP/1.1\r\n\r\n", status: 400),
    Attack(id: "S9 two Hosts", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", status: 400),
    Attack(id: "S9 invalid Host", bytes: "GET /livez HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
    // S11 path
    Attack(id: "S11 %00 in path", bytes: "GET /livez%00 HTTP/1.1\r\nHost: x\r\n\r\n", status: 400),
    // L1, L2, L4 limits
    Attack(id: "L1 request line over 8 KiB", bytes: "GET /\(String(repeating: "a", count: 8300)) HTTP/1.1\r\nHost: x\r\n\r\n", status: 414),
    Attack(id: "L2 header line over 8 KiB", bytes: "GET /livez HTTP/1.1\r\nHost: x\r\nX-A: \(String(repeating: "a", count: 8300))\r\n\r\n", status: 431),
    Attack(id: "L4 chunked body over the route limit", bytes: "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n\(String(repeating: "a", count: 17))\r\n0\r\n\r\n", status: 413),
    Attack(id: "L3 Content-Length over the route limit", bytes: "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n\(String(repeating: "a", count: 17))", status: 413),
]

/// SERVICE-NOTES §2.1–2.3 over loopback: each attack gets its error status as problem+json with
/// `Connection: close`, the connection is then closed with nothing more sent, the pipelined smuggled
/// request never runs, and a fresh connection is served normally.
@Suite("Loopback: framing attacks (SERVICE-NOTES §2.1–2.3, C11)", .serialized, .timeLimit(.minutes(2)))
struct SmugglingTests {
    static let smuggledCalls = Counter()
    static let server: TestServer = {
        let smuggledCalls = Self.smuggledCalls
        let server = try! TestServer(extraRoutes: { router in
            router.get("/smuggled") { _ in
                smuggledCalls.increment()
                return .text("SMUGGLED")
            }
        })
        return server
    }()

    @Test("attack is refused and nothing is smuggled", arguments: attacks)
    func attack(_ attack: Attack) throws {
        let server = Self.server
        let before = server.calls.count
        let connection = try RawConnection(port: server.port)
        connection.send(attack.bytes + smuggled)
        let response = try #require(connection.readResponse(), "\(attack.id): no response")
        #expect(isProblem(response, status: attack.status), "\(attack.id): \(response)")
        #expect(response.header("Connection") == "close", "\(attack.id)")
        let (closed, extra) = connection.waitForClose()
        #expect(closed, "\(attack.id): connection left open")
        #expect(extra.isEmpty, "\(attack.id): more bytes after the error: \(String(decoding: extra, as: UTF8.self))")
        #expect(!response.text.contains("SMUGGLED"))
        #expect(server.calls.count == before, "\(attack.id): a handler ran")
        #expect(Self.smuggledCalls.count == 0, "\(attack.id): the smuggled request ran")

        // A fresh connection is served normally.
        let fresh = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(fresh.status == 200 && fresh.text == "ok", "\(attack.id): fresh connection got \(fresh)")
    }

    @Test("every attack in one burst: the smuggled request never runs")
    func nothingSmuggled() throws {
        let server = Self.server
        for attack in attacks {
            let connection = try RawConnection(port: server.port)
            connection.send(attack.bytes + smuggled)
            _ = connection.readResponse()
            _ = connection.waitForClose()
        }
        #expect(Self.smuggledCalls.count == 0)
        #expect(server.observer.completed.allSatisfy { $0.route != "/smuggled" })
    }

    @Test("chunked with extensions and trailers is accepted; trailers are not merged (F10, F11)")
    func chunkedAccepted() throws {
        let server = Self.server
        let connection = try RawConnection(port: server.port)
        connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6;a=\"x;y\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        let echoed = try #require(connection.readResponse())
        #expect(echoed.text == "hello world")
        #expect(connection.readResponse()?.text == "a")
    }

    @Test("missing last chunk then EOF: closed without an answer, no hang (F12)")
    func truncatedChunked() throws {
        let server = Self.server
        let connection = try RawConnection(port: server.port)
        connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        connection.shutdownWrite()
        let (closed, extra) = connection.waitForClose()
        #expect(closed)
        #expect(extra.isEmpty)
    }

    @Test("POST with neither Content-Length nor Transfer-Encoding has an empty body (F16)")
    func noFraming() throws {
        let server = Self.server
        let response = try #require(try exchange(server.port, "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
    }
}
