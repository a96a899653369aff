import Foundation
import Glibc
import HTTP1
import HTTPServer
import Synchronization
import Testing

/// Black-box tests over 127.0.0.1 / ::1 with raw sockets (SERVICE-NOTES §2.3–2.5).
@Suite("Loopback: semantics", .timeLimit(.minutes(2)))
struct LoopbackTests {
    @Test("GET: status, body, Date, exact Content-Length, X-Request-Id, hook headers")
    func basicGet() throws {
        let server = try TestServer()
        defer { server.stop() }
        let response = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(response.status == 200)
        #expect(response.text == "ok")
        #expect(response.header("Content-Length") == "2")
        #expect(response.headerCount("Content-Length") == 1)
        #expect(response.header("Transfer-Encoding") == nil)
        #expect(response.header("Date")?.hasSuffix(" GMT") == true)
        #expect(response.header("X-Model-Version") == "test-1")
        let id = try #require(response.header("X-Request-Id"))
        #expect(id.count == 16 && id.allSatisfy(\.isHexDigit))
        #expect(response.header("Connection") == nil)
    }

    @Test("a valid X-Request-Id is echoed; an invalid one is replaced")
    func requestIDs() throws {
        let server = try TestServer()
        defer { server.stop() }
        let kept = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\n\r\n"))
        #expect(kept.header("X-Request-Id") == "abc-123")
        let long = String(repeating: "z", count: 200)
        let replaced = try #require(try exchange(server.port, "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: \(long)\r\n\r\n"))
        #expect(replaced.status == 404)
        #expect(replaced.header("X-Request-Id")?.count == 16)
        #expect(replaced.json["request_id"] as? String == replaced.header("X-Request-Id"))
    }

    @Test("keep-alive: several requests on one connection")
    func keepAlive() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        for name in ["a", "b", "c"] {
            connection.send("GET /hello?name=\(name) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(connection.readResponse())
            #expect(response.text == "hello \(name)")
        }
        #expect(server.observer.opened.count == 1)
    }

    @Test("pipelined GET, POST with body, GET are answered in order (C6, F14)")
    func pipelining() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readResponse()?.text == "a")
        #expect(connection.readResponse()?.text == "hello")
        #expect(connection.readResponse()?.text == "b")
        // Many small pipelined requests in one write.
        var batch = ""
        for i in 0..<200 { batch += "GET /hello?name=\(i) HTTP/1.1\r\nHost: x\r\n\r\n" }
        connection.send(batch)
        for i in 0..<200 {
            guard let response = connection.readResponse() else { Issue.record("missing response \(i)"); return }
            #expect(response.text == "hello \(i)")
        }
    }

    @Test("GET with a body: the body is read and discarded, the next request still parses (F15)")
    func getWithBody() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readResponse()?.text == "a")
        #expect(connection.readResponse()?.text == "b")
    }

    @Test("HEAD: same status and headers as GET, no body (M1)")
    func head() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("HEAD /big?kb=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try #require(connection.readResponse(headRequest: true))
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "3072")
        #expect(head.body.isEmpty)
        // Nothing else arrives: the next response on the connection starts right away.
        connection.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        let next = try #require(connection.readResponse())
        #expect(next.text == "ok")
        #expect(connection.leftover.isEmpty)
    }

    @Test("OPTIONS → 204 with Allow (M4)")
    func options() throws {
        let server = try TestServer()
        defer { server.stop() }
        let response = try #require(try exchange(server.port, "OPTIONS /echo HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(response.status == 204)
        #expect(response.header("Allow") == "POST, OPTIONS")
        #expect(response.header("Content-Length") == nil)
    }

    @Test("404, 405 + Allow, 413, 414, 431, 505, 501: all problem+json (M2, M7, L1–L3, S8)")
    func problemStatuses() throws {
        let server = try TestServer()
        defer { server.stop() }
        let notFound = try #require(try exchange(server.port, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(notFound, status: 404, code: "not_found"))
        #expect(notFound.json["instance"] as? String == "/missing#" + (notFound.header("X-Request-Id") ?? ""))
        #expect(notFound.json["type"] as? String == "/problems/not_found")

        let notAllowed = try #require(try exchange(server.port, "DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(notAllowed, status: 405, code: "method_not_allowed"))
        #expect(notAllowed.header("Allow") == "POST, OPTIONS")

        let tooLarge = try #require(try exchange(server.port, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n"))
        #expect(isProblem(tooLarge, status: 413, code: "payload_too_large"))
        #expect(tooLarge.json["limit_bytes"] as? Int == 16)
        #expect(tooLarge.header("Connection") == "close")

        let longURI = try #require(try exchange(server.port, "GET /\(String(repeating: "a", count: 9000)) HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(longURI, status: 414, code: "uri_too_long"))
        #expect(longURI.header("Connection") == "close")

        let longHeader = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 9000))\r\n\r\n"))
        #expect(isProblem(longHeader, status: 431, code: "headers_too_large"))
        var many = "GET /livez HTTP/1.1\r\nHost: x\r\n"
        for i in 0..<120 { many += "X-H\(i): v\r\n" }
        let manyHeaders = try #require(try exchange(server.port, many + "\r\n"))
        #expect(isProblem(manyHeaders, status: 431, code: "headers_too_large"))

        let version = try #require(try exchange(server.port, "GET /livez HTTP/2.0\r\nHost: x\r\n\r\n"))
        #expect(isProblem(version, status: 505, code: "version_not_supported"))

        let method = try #require(try exchange(server.port, "FOO /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(method, status: 501, code: "not_implemented"))

        let expect = try #require(try exchange(server.port, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx"))
        #expect(isProblem(expect, status: 417, code: "expectation_failed"))
    }

    @Test("handler errors: HTTPError → its problem; other errors → 500 internal without details")
    func handlerErrors() throws {
        let server = try TestServer()
        defer { server.stop() }
        let failed = try #require(try exchange(server.port, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(failed, status: 422, code: "invalid_parameter"))
        #expect(failed.json["title"] as? String == "Invalid parameter")
        #expect(failed.json["pointer"] as? String == "/top_k")
        #expect(failed.header("X-Model-Version") == "test-1")
        let crashed = try #require(try exchange(server.port, "GET /crash HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(isProblem(crashed, status: 500, code: "internal"))
        #expect(!crashed.text.contains("Boom"))
    }

    @Test("Connection: close is honoured both ways (C9)")
    func connectionClose() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let response = try #require(connection.readResponse())
        #expect(response.header("Connection") == "close")
        #expect(connection.waitForClose().closed)
    }

    @Test("HTTP/1.0: close by default; kept alive with Connection: keep-alive (C10)")
    func http10() throws {
        let server = try TestServer()
        defer { server.stop() }
        let plain = try RawConnection(port: server.port)
        plain.send("GET /livez HTTP/1.0\r\n\r\n")
        let first = try #require(plain.readResponse())
        #expect(first.status == 200)
        #expect(first.header("Connection") == "close")
        #expect(plain.waitForClose().closed)

        let kept = try RawConnection(port: server.port)
        kept.send("GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let second = try #require(kept.readResponse())
        #expect(second.header("Connection") == "keep-alive")
        kept.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(kept.readResponse()?.text == "a")
    }

    @Test("Expect: 100-continue: 100 only when the route accepts (L5, L6)")
    func expectContinue() throws {
        let server = try TestServer()
        defer { server.stop() }
        let accepted = try RawConnection(port: server.port)
        accepted.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let interim = try #require(accepted.readResponse(keepInterim: true))
        #expect(interim.status == 100)
        accepted.send("data")
        #expect(accepted.readResponse()?.text == "data")

        let refused = try RawConnection(port: server.port)
        refused.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        let final = try #require(refused.readResponse(keepInterim: true))
        #expect(isProblem(final, status: 413, code: "payload_too_large"))
        #expect(refused.waitForClose().closed)

        let unauthorized = try RawConnection(port: server.port)
        unauthorized.send("POST /secure HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        let denied = try #require(unauthorized.readResponse(keepInterim: true))
        #expect(isProblem(denied, status: 401, code: "unauthorized"))
        #expect(server.calls.count == 1)
    }

    @Test("client half-close after a full request still gets the response (C7)")
    func halfClose() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n")
        connection.shutdownWrite()
        let response = try #require(connection.readResponse())
        #expect(response.text == "slow")
        #expect(response.header("Connection") == "close")
        #expect(connection.waitForClose().closed)
    }

    @Test("pipelined requests sent before a half-close are all answered; the last says close")
    func pipelinedThenHalfClose() throws {
        let server = try TestServer()
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        connection.send("GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        connection.shutdownWrite()
        let first = try #require(connection.readResponse())
        #expect(first.text == "slow")
        #expect(first.header("Connection") == nil)
        #expect(connection.readResponse()?.text == "a")
        let last = try #require(connection.readResponse())
        #expect(last.text == "b")
        #expect(last.header("Connection") == "close")
        #expect(connection.waitForClose().closed)
    }

    @Test("maxRequestsPerConnection: the last allowed response says close (L10)")
    func requestsPerConnection() throws {
        let server = try TestServer(configure: { $0.limits.maxRequestsPerConnection = 3 })
        defer { server.stop() }
        let connection = try RawConnection(port: server.port)
        for i in 1...3 {
            connection.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try #require(connection.readResponse())
            #expect(response.header("Connection") == (i == 3 ? "close" : nil))
        }
        #expect(connection.waitForClose().closed)
    }

    @Test("IPv6 loopback (::1)")
    func ipv6() throws {
        let server = try TestServer(host: "::1")
        defer { server.stop() }
        let response = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: [::1]\r\n\r\n", host: "::1"))
        #expect(response.text == "ok")
    }

    @Test("observer and response hook see every response with a route label")
    func observer() throws {
        let server = try TestServer()
        defer { server.stop() }
        _ = try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\nX-Request-Id: obs-1\r\n\r\n")
        _ = try exchange(server.port, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try exchange(server.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        #expect(eventually(within: 2) { server.observer.completed.count == 3 })
        let byStatus = Dictionary(grouping: server.observer.completed, by: \.status)
        let ok = try #require(byStatus[200]?.first { $0.route == "/livez" })
        #expect(ok.requestID == "obs-1")
        #expect(ok.responseBodyBytes == 2)
        #expect(byStatus[404]?.first?.route == nil)
        #expect(byStatus[404]?.first?.path == "/missing")
        #expect(byStatus[200]?.contains { $0.route == "/echo" && $0.requestBodyBytes == 3 } == true)
        #expect(eventually(within: 2) { server.observer.closed.count == 3 })
    }
}

/// Concurrency and resilience over loopback (SERVICE-NOTES §2.4, H2).
@Suite("Loopback: load and resilience", .serialized, .timeLimit(.minutes(2)))
struct ResilienceTests {
    @Test("200 concurrent connections, one request each, all answered within 20 s")
    func twoHundredConnections() throws {
        let server = try TestServer(configure: { $0.limits.maxConnections = 512 })
        defer { server.stop() }
        let ok = Counter()
        let group = DispatchGroup()
        let port = server.port
        for i in 0..<200 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let connection = try? RawConnection(port: port, timeout: 15) else { return }
                connection.send("GET /hello?name=\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                if connection.readResponse()?.text == "hello \(i)" { ok.increment() }
            }.start()
        }
        #expect(group.wait(timeout: .now() + 20) == .success)
        #expect(ok.count == 200)
        #expect(eventually(within: 5) { server.server.openConnections == 0 })
    }

    @Test("slow handlers do not block other connections; /livez answers at once")
    func slowHandlersDoNotBlock() throws {
        let server = try TestServer()
        defer { server.stop() }
        let done = Counter()
        let group = DispatchGroup()
        let port = server.port
        let started = now()
        for _ in 0..<6 {
            group.enter()
            Thread {
                defer { group.leave() }
                if (try? exchange(port, "GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n"))??.text == "slow" { done.increment() }
            }.start()
        }
        #expect(eventually(within: 2) { server.slowCalls.count == 6 })
        let t0 = now()
        let live = try #require(try exchange(port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        let livezLatency = now() - t0
        #expect(live.text == "ok")
        #expect(livezLatency < 0.2, "livez took \(livezLatency) s")
        #expect(group.wait(timeout: .now() + 10) == .success)
        #expect(done.count == 6)
        // Six 1 s handlers ran side by side, not one after another.
        #expect(now() - started < 3)
    }

    @Test("a client that resets mid-request or mid-response does not disturb the server (C8)")
    func resets() throws {
        let server = try TestServer()
        defer { server.stop() }
        for _ in 0..<5 {
            let partial = try RawConnection(port: server.port)
            partial.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            partial.reset()
            let midResponse = try RawConnection(port: server.port)
            midResponse.send("GET /big?kb=4096 HTTP/1.1\r\nHost: x\r\n\r\n")
            usleep(20_000)
            midResponse.reset()
            let inHandler = try RawConnection(port: server.port)
            inHandler.send("GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n")
            inHandler.reset()
        }
        #expect(eventually(within: 5) { server.server.openConnections == 0 })
        let response = try #require(try exchange(server.port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(response.text == "ok")
        #expect(server.echoCalls.count == 0)
    }

    @Test("a handler can see that its client went away")
    func clientDisconnectVisible() throws {
        let sawDisconnect = Counter()
        let server = try TestServer(extraRoutes: { router in
            router.get("/watch") { request in
                for _ in 0..<300 {
                    if !request.isClientConnected {
                        sawDisconnect.increment()
                        break
                    }
                    usleep(10_000)
                }
                return .text("done")
            }
        })
        defer { server.stop() }
        do {
            let connection = try RawConnection(port: server.port)
            connection.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
            usleep(100_000)
        }  // closed here
        #expect(eventually(within: 3) { sawDisconnect.count == 1 })
    }

    @Test("above maxConnections: 503 problem with Retry-After, then close; the server recovers (C5)")
    func connectionLimit() throws {
        let server = try TestServer(configure: { $0.limits.maxConnections = 2; $0.eventLoopCount = 1 })
        defer { server.stop() }
        let first = try RawConnection(port: server.port)
        let second = try RawConnection(port: server.port)
        first.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        second.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(first.readResponse()?.status == 200)
        #expect(second.readResponse()?.status == 200)
        let third = try RawConnection(port: server.port)
        third.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        let refused = try #require(third.readResponse())
        #expect(isProblem(refused, status: 503, code: "overloaded"))
        #expect(refused.header("Retry-After") == "1")
        #expect(refused.header("Connection") == "close")
        #expect(third.waitForClose().closed)
        #expect(eventually(within: 2) { server.observer.rejected.contains(.connectionLimit) })
        #expect(server.calls.count == 2)
    }
}
