import Dispatch
import Foundation
import Glibc
import HTTP1
import Logging
import Synchronization

/// The HTTP/1.1 server: a listening socket, `eventLoopCount` epoll loops that own the connections, and
/// a pool of handler threads for slow routes.
///
/// ```swift
/// var router = Router()
/// router.get("/livez", execution: .eventLoop) { _ in .text("ok") }
/// router.post("/v1/match", maxBodyBytes: 64 << 20) { request in try match(request) }
/// let server = Server(configuration: config, router: router, logger: logger, observer: metrics,
///                     responseHook: { _, response in response.headers.replaceOrAdd(name: "X-Model-Version", value: v) })
/// try server.start()                      // binds and serves; returns at once
/// let trap = SignalTrap.install { _ in server.shutdown(grace: .seconds(20)) }
/// server.waitUntilStopped()
/// ```
///
/// Design (benchmarked against Hummingbird 2 and nginx, see `make bench-http`): non-blocking sockets on
/// epoll loops, level-triggered, one thread per loop; handlers marked `.eventLoop` run inline,
/// everything else on `HandlerPool` threads whose results are posted back to the owning loop. Each
/// connection answers its requests strictly in order.
package final class Server: Sendable {
    private enum Phase {
        case created
        case running(loops: [EventLoop], address: SocketAddress)
        case stopping
        case stopped
    }

    private let core: ServerCore
    private let phase = Mutex(Phase.created)
    private let loopsExited = DispatchGroup()
    private let stoppedSignal = DispatchSemaphore(value: 0)
    private let stopCompleted = Atomic<Bool>(false)

    package init(
        configuration: ServerConfiguration, router: Router, logger: Logger = Logger(label: "HTTPServer"),
        observer: (any ServerObserver)? = nil, responseHook: ResponseHook? = nil
    ) {
        core = ServerCore(configuration: configuration, router: router, logger: logger, observer: observer,
                          responseHook: responseHook)
    }

    package var configuration: ServerConfiguration { core.configuration }

    /// Open connections right now (all loops).
    package var openConnections: Int { core.openConnections.load(ordering: .relaxed) }

    /// The bound address (with the real port when the configuration asked for port 0).
    package var localAddress: SocketAddress? {
        phase.withLock { phase in
            if case .running(_, let address) = phase { return address }
            return nil
        }
    }

    /// Binds the listening socket and starts the event loops. Returns once the server accepts
    /// connections. Ignores SIGPIPE process-wide.
    package func start() throws(SocketError) {
        ignoreSIGPIPE()
        let config = core.configuration
        let listener = try Socket.listen(host: config.host, port: config.port, backlog: config.backlog)
        let address: SocketAddress
        var loops: [EventLoop] = []
        do {
            address = try listener.localAddress()
            for i in 0..<max(1, config.eventLoopCount) {
                loops.append(try EventLoop(index: i, core: core))
            }
        } catch {
            listener.close()
            throw error
        }
        let started: Bool = phase.withLock { phase in
            guard case .created = phase else { return false }
            phase = .running(loops: loops, address: address)
            return true
        }
        guard started else {
            listener.close()
            throw SocketError(operation: "start (server already started)", errno: EINVAL)
        }
        for loop in loops {
            loop.configure(loops: loops, listener: loop.index == 0 ? listener : nil)
        }
        for loop in loops {
            loopsExited.enter()
            let group = loopsExited
            let thread = Thread {
                loop.run()
                group.leave()
            }
            thread.name = "http-loop-\(loop.index)"
            thread.start()
        }
        core.logger.info("HTTP server listening", metadata: [
            "address": .string(address.description), "event_loops": .stringConvertible(loops.count),
        ])
    }

    /// Graceful shutdown (SERVICE-NOTES §4.4 steps 3–6). Stops accepting (the listening socket is closed
    /// before this returns), closes idle keep-alive connections, lets every in-flight request finish
    /// with `Connection: close`, and waits for that up to `grace`. Requests still being handled then
    /// get 503 `draining`, every connection is closed, the loops and handler threads stop, and the call
    /// returns. Safe to call from any thread, more than once (later calls wait for the first).
    package func shutdown(grace: Duration) {
        enum Step { case drain([EventLoop]), neverStarted, wait }
        let step: Step = phase.withLock { phase in
            switch phase {
            case .running(let loops, _):
                phase = .stopping
                return .drain(loops)
            case .created:
                phase = .stopped
                return .neverStarted
            case .stopping, .stopped:
                return .wait
            }
        }
        let loops: [EventLoop]
        switch step {
        case .drain(let list):
            loops = list
        case .neverStarted:
            stopCompleted.store(true, ordering: .releasing)
            stoppedSignal.signal()
            return
        case .wait:
            waitUntilStopped()
            return
        }
        let started = monotonicNanoseconds()
        core.logger.info("HTTP server shutting down", metadata: [
            "open_connections": .stringConvertible(openConnections), "grace_s": .stringConvertible(grace.secondsDouble),
        ])

        // 1. Stop accepting, and wait until the listener is really closed.
        let listenerClosed = DispatchSemaphore(value: 0)
        loops[0].execute { loop in
            loop.closeListener()
            listenerClosed.signal()
        }
        listenerClosed.wait()
        // 2. Idle connections close; busy ones answer with `Connection: close`.
        for loop in loops { loop.execute { $0.beginDrain() } }
        // 3. Wait for in-flight requests, up to the grace period.
        let deadline = started + grace.nanosecondsClamped
        while core.openConnections.load(ordering: .relaxed) > 0 && monotonicNanoseconds() < deadline {
            usleep(5_000)
        }
        // 4. Out of time: 503 to what is still being handled, close everything.
        let remaining = core.openConnections.load(ordering: .relaxed)
        if remaining > 0 {
            core.logger.warning("shutdown grace period over; closing connections", metadata: [
                "open_connections": .stringConvertible(remaining),
            ])
            for loop in loops { loop.execute { $0.forceClose() } }
        }
        // 5. Stop the loops and the handler threads.
        for loop in loops { loop.execute { $0.stop() } }
        loopsExited.wait()
        core.pool.stop(timeout: .now() + .milliseconds(100))
        phase.withLock { $0 = .stopped }
        core.logger.info("HTTP server stopped", metadata: [
            "duration_ms": .stringConvertible((monotonicNanoseconds() - started) / 1_000_000),
        ])
        stopCompleted.store(true, ordering: .releasing)
        stoppedSignal.signal()
    }

    /// Blocks until `shutdown(grace:)` has finished (returns at once if it already has).
    package func waitUntilStopped() {
        if stopCompleted.load(ordering: .acquiring) { return }
        stoppedSignal.wait()
        stoppedSignal.signal()
    }
}
