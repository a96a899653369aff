import Foundation
import Glibc
import HTTP1
import HTTPServer
import Testing

/// Timeouts with short configured values (SERVICE-NOTES §2.4 C1–C4, F13, §4.1 item 4).
@Suite("Loopback: timeouts", .serialized, .timeLimit(.minutes(2)))
struct TimeoutTests {
    static func shortTimeouts(_ c: inout ServerConfiguration) {
        c.limits.headerReadTimeout = .seconds(1)
        c.limits.bodyIdleTimeout = .seconds(1)
        c.limits.keepAliveIdleTimeout = .seconds(1)
        c.limits.responseWriteTimeout = .seconds(1)
        c.limits.requestDeadline = .seconds(1)
        c.limits.lingeringCloseTimeout = .seconds(1)
    }

    @Test("slowloris: a header trickled byte by byte gets 408 and is closed within the header timeout (C1)")
    func slowloris() throws {
        let server = try TestServer(configure: Self.shortTimeouts)
        defer { server.stop() }
        let connection = try RawConnection(port: server.port, timeout: 5)
        let start = now()
        let bytes = Array("GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
        // One byte every 100 ms on a helper thread, for at most 3 s.
        let fd = connection.fd
        let sender = Thread {
            for b in bytes + Array(repeating: UInt8(ascii: "a"), count: 30) {
                var byte = b
                if Glibc.send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) <= 0 { return }
                usleep(100_000)
            }
        }
        sender.start()
        let response = try #require(connection.readResponse())
        let elapsed = now() - start
        #expect(isProblem(response, status: 408, code: "request_timeout"))
        #expect(response.header("Connection") == "close")
        #expect(elapsed > 0.9 && elapsed < 2.0, "closed after \(elapsed) s")
        #expect(connection.waitForClose().closed)
        #expect(server.observer.rejected.contains(.headerTimeout))
        // Meanwhile other clients are served.
        #expect(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")?.text == "ok")
    }

    @Test("many slowloris connections do not stop /livez on a fresh connection from answering at once")
    func slowlorisFlood() throws {
        let server = try TestServer(configure: { c in
            Self.shortTimeouts(&c)
            c.limits.headerReadTimeout = .seconds(3)
        })
        defer { server.stop() }
        var holders: [RawConnection] = []
        for _ in 0..<200 {
            let c = try RawConnection(port: server.port)
            c.send("GET /livez HTTP/1.1\r\nHo")
            holders.append(c)
        }
        let t0 = now()
        let response = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(response.text == "ok")
        #expect(now() - t0 < 0.1)
        #expect(eventually(within: 6) { server.server.openConnections == 0 })
        withExtendedLifetime(holders) {}
    }

    @Test("a fresh connection that sends nothing is closed silently after the header timeout")
    func silentConnection() throws {
        let server = try TestServer(configure: Self.shortTimeouts)
        defer { server.stop() }
        let connection = try RawConnection(port: server.port, timeout: 4)
        let start = now()
        let (closed, extra) = connection.waitForClose()
        #expect(closed)
        #expect(extra.isEmpty)
        #expect(now() - start < 2.5)
    }

    @Test("a stalled body gets 408 and is closed (C2, F13)")
    func slowBody() throws {
        let server = try TestServer(configure: Self.shortTimeouts)
        defer { server.stop() }
        let connection = try RawConnection(port: server.port, timeout: 5)
        let start = now()
        connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        let response = try #require(connection.readResponse())
        #expect(isProblem(response, status: 408, code: "request_timeout"))
        #expect(now() - start < 2.5)
        #expect(connection.waitForClose().closed)
        #expect(server.echoCalls.count == 0)
        #expect(server.observer.rejected.contains(.bodyTimeout))
    }

    @Test("an idle keep-alive connection is closed after the keep-alive timeout (C4)")
    func keepAliveIdle() throws {
        let server = try TestServer(configure: Self.shortTimeouts)
        defer { server.stop() }
        let connection = try RawConnection(port: server.port, timeout: 5)
        connection.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readResponse()?.text == "ok")
        let start = now()
        let (closed, extra) = connection.waitForClose()
        let elapsed = now() - start
        #expect(closed)
        #expect(extra.isEmpty)
        #expect(elapsed > 0.8 && elapsed < 2.5, "closed after \(elapsed) s")
    }

    @Test("a handler over the request deadline: 503 deadline_exceeded, late result dropped")
    func requestDeadline() throws {
        let server = try TestServer(configure: Self.shortTimeouts)
        defer { server.stop(grace: .seconds(3)) }
        let start = now()
        let response = try #require(try exchange(server.port, "GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(response, status: 503, code: "deadline_exceeded"))
        #expect(response.header("Retry-After") == "1")
        #expect(now() - start < 1.8)
        #expect(server.observer.rejected.contains(.deadlineExceeded))
    }

    @Test("a client that never reads a large response is disconnected after the write timeout (C3)")
    func slowReader() throws {
        let server = try TestServer(configure: Self.shortTimeouts)
        defer { server.stop() }
        let connection = try RawConnection(port: server.port, timeout: 5)
        var small: Int32 = 4096
        setsockopt(connection.fd, SOL_SOCKET, SO_RCVBUF, &small, 4)
        connection.send("GET /big?kb=16384 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(eventually(within: 5) { server.observer.rejected.contains(.writeTimeout) })
        #expect(eventually(within: 2) { server.server.openConnections == 0 })
    }
}
