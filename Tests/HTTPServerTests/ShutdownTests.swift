import Foundation
import Glibc
import HTTP1
import HTTPServer
import Synchronization
import Testing

/// Graceful shutdown (SERVICE-NOTES §4.4 steps 3–6, G1, G2) and the signal trap (G3, G4).
@Suite("Loopback: shutdown and signals", .serialized, .timeLimit(.minutes(2)))
struct ShutdownTests {
    @Test("shutdown finishes a slow in-flight request, closes idle keep-alive connections, then the listener is closed")
    func graceful() throws {
        let server = try TestServer()
        let port = server.port
        // An idle kept-alive connection.
        let idle = try RawConnection(port: port)
        idle.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(idle.readResponse()?.text == "ok")
        // A slow request in flight.
        let busy = try RawConnection(port: port)
        busy.send("GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(eventually(within: 2) { server.slowCalls.count == 1 })

        let returned = Counter()
        let start = now()
        let stopper = Thread {
            server.server.shutdown(grace: .seconds(10))
            returned.increment()
        }
        stopper.start()

        // The idle connection is closed at once.
        #expect(idle.waitForClose().closed)
        #expect(now() - start < 0.8)
        // New connections are refused while the slow request finishes.
        #expect(eventually(within: 1) { (try? RawConnection(port: port, timeout: 1)) == nil })
        #expect(returned.count == 0)
        // The slow request completes with Connection: close.
        let response = try #require(busy.readResponse())
        #expect(response.status == 200)
        #expect(response.text == "slow")
        #expect(response.header("Connection") == "close")
        #expect(busy.waitForClose().closed)
        // The server lingers until the client closes too (bounded by lingeringCloseTimeout).
        busy.closeNow()
        #expect(eventually(within: 3) { returned.count == 1 })
        let elapsed = now() - start
        #expect(elapsed > 0.5 && elapsed < 2, "shutdown took \(elapsed) s")
        // The listener is gone.
        #expect(throws: RawClientError.self) { _ = try RawConnection(port: port, timeout: 1) }
        #expect(server.slowFinished.count == 1)
        // A second call returns at once.
        server.server.shutdown(grace: .seconds(1))
    }

    @Test("a request that outlives the grace period gets 503 draining and shutdown returns on time (G2)")
    func graceExpires() throws {
        let server = try TestServer()
        let busy = try RawConnection(port: server.port)
        busy.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(eventually(within: 2) { server.slowCalls.count == 1 })
        let start = now()
        server.server.shutdown(grace: .milliseconds(500))
        let elapsed = now() - start
        #expect(elapsed > 0.4 && elapsed < 1.5, "shutdown took \(elapsed) s")
        let response = try #require(busy.readResponse())
        #expect(isProblem(response, status: 503, code: "draining"))
        #expect(response.header("Connection") == "close")
        #expect(server.observer.rejected.contains(.shutdown))
    }

    @Test("pipelined requests queued behind a draining request are not started")
    func drainingStopsPipeline() throws {
        let server = try TestServer()
        let connection = try RawConnection(port: server.port)
        connection.send("GET /slow?ms=500 HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(eventually(within: 2) { server.slowCalls.count == 1 })
        let before = server.calls.count
        server.server.shutdown(grace: .seconds(5))
        let response = try #require(connection.readResponse())
        #expect(response.text == "slow")
        #expect(response.header("Connection") == "close")
        #expect(connection.readResponse() == nil)
        #expect(server.calls.count == before)
    }

    @Test("a server that was never started shuts down at once")
    func neverStarted() {
        let server = Server(configuration: ServerConfiguration(host: "127.0.0.1", port: 0), router: Router())
        server.shutdown(grace: .seconds(1))
        server.waitUntilStopped()
    }

    @Test("listening on a port in use fails with the errno")
    func portInUse() throws {
        let server = try TestServer()
        defer { server.stop() }
        let second = Server(configuration: ServerConfiguration(host: "127.0.0.1", port: server.port), router: Router())
        #expect(throws: SocketError.self) { try second.start() }
        do {
            try second.start()
        } catch {
            #expect(error.errno == EADDRINUSE)
        }
    }

    @Test("the signal trap calls back on the first signal, and onRepeat on later ones while the first still runs")
    func signalTrap() {
        let first = Counter()
        let firstDone = Counter()
        let repeated = Counter()
        let trap = SignalTrap.install(signals: [SIGUSR2], onRepeat: { _ in repeated.increment() }) { signal in
            #expect(signal == SIGUSR2)
            first.increment()
            usleep(1_000_000)  // like a graceful shutdown in progress
            firstDone.increment()
        }
        kill(getpid(), SIGUSR2)
        #expect(eventually(within: 2) { first.count == 1 })
        kill(getpid(), SIGUSR2)
        #expect(eventually(within: 0.5) { repeated.count == 1 })
        #expect(firstDone.count == 0)
        #expect(trap.signalsReceived == 2)
        #expect(eventually(within: 2) { firstDone.count == 1 })
        #expect(first.count == 1)
    }
}
