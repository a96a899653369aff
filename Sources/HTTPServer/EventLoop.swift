import Dispatch
import Foundation
import Glibc
import HTTP1
import Logging
import Synchronization

/// One epoll event loop on its own thread, owning a share of the connections.
///
/// Concurrency contract (this and `Connection` are the module's only unchecked types, besides `TLSContext`, an
/// immutable `SSL_CTX` that OpenSSL lets threads share):
/// - Everything below "loop-thread state" — the connection table, every `Connection` and its parser
///   and buffers, the listener, timers — is touched only on this loop's thread.
/// - Other threads talk to the loop only through `execute(_:)`: the closure is queued under a `Mutex`
///   and the loop is woken through an eventfd; the closure then runs on the loop thread.
/// - The immutable `let`s (`index`, `core`, the epoll and eventfd descriptors) are safe anywhere.
final class EventLoop: @unchecked Sendable {
    let index: Int
    let core: ServerCore
    private let epollFD: Int32
    private let wakeFD: Int32
    private let inbox = Mutex<[@Sendable (EventLoop) -> Void]>([])
    private let wakePending = Atomic<Bool>(false)

    // MARK: Loop-thread state

    private var connections: [Connection?] = []
    private(set) var connectionCount = 0
    private var nextConnectionID: UInt64 = 1
    private var loops: [EventLoop] = []
    private var nextLoop = 0
    private var listener: Socket?
    private var listenerArmed = false
    private var listenerResumeAt: UInt64 = 0
    private var acceptBackoff: UInt64 = 0
    private var running = true
    private(set) var draining = false
    /// Monotonic time of the current iteration.
    private(set) var now: UInt64 = monotonicNanoseconds()
    private var nextSweep: UInt64 = 0
    private var dateSecond = -1
    private var dateValue = ""
    var requestIDs = RequestIDGenerator()
    /// Shared receive buffer: every recv lands here first.
    let readBuffer: UnsafeMutableRawBufferPointer
    private let eventBuffer: UnsafeMutableRawBufferPointer
    private let maxEvents = 256

    private static let wakeKey = UInt64.max
    private static let listenerKey = UInt64.max - 1

    init(index: Int, core: ServerCore) throws(SocketError) {
        self.index = index
        self.core = core
        let sys = LinuxSyscalls.shared
        let ep = sys.epollCreate1(O_CLOEXEC)
        guard ep >= 0 else { throw SocketError.last("epoll_create1") }
        let wake = sys.eventfd(0, O_NONBLOCK | O_CLOEXEC)
        guard wake >= 0 else {
            let error = SocketError.last("eventfd")
            Glibc.close(ep)
            throw error
        }
        epollFD = ep
        wakeFD = wake
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        eventBuffer = .allocate(byteCount: maxEvents * LinuxSyscalls.epollEventSize, alignment: 16)
        if !control(LinuxSyscalls.epollCtlAdd, fd: wake, events: LinuxSyscalls.epollIn, key: Self.wakeKey) {
            let error = SocketError.last("epoll_ctl(eventfd)")
            Glibc.close(ep)
            Glibc.close(wake)
            throw error
        }
    }

    deinit {
        Glibc.close(epollFD)
        Glibc.close(wakeFD)
        readBuffer.deallocate()
        eventBuffer.deallocate()
    }

    /// Called once before the thread starts.
    func configure(loops: [EventLoop], listener: Socket?) {
        self.loops = loops
        self.listener = listener
        nextLoop = index
    }

    // MARK: Cross-thread entry

    /// Runs `task` on the loop thread, soon. Safe from any thread.
    func execute(_ task: @escaping @Sendable (EventLoop) -> Void) {
        inbox.withLock { $0.append(task) }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    // MARK: The loop

    func run() {
        if let listener { armListener(listener) }
        let sys = LinuxSyscalls.shared
        nextSweep = monotonicNanoseconds() + core.sweepInterval
        while running {
            let timeout = waitTimeoutMilliseconds()
            let n = sys.epollWait(epollFD, eventBuffer.baseAddress, Int32(maxEvents), timeout)
            now = monotonicNanoseconds()
            if n < 0 {
                let error = currentErrno()
                if error == EINTR { continue }
                core.logger.critical("epoll_wait failed", metadata: ["error": "\(SocketError(operation: "epoll_wait", errno: error))"])
                break
            }
            for i in 0..<Int(n) {
                let base = i * LinuxSyscalls.epollEventSize
                let events = eventBuffer.loadUnaligned(fromByteOffset: base, as: UInt32.self)
                let key = eventBuffer.loadUnaligned(fromByteOffset: base + LinuxSyscalls.epollDataOffset, as: UInt64.self)
                switch key {
                case Self.wakeKey: runInbox()
                case Self.listenerKey: acceptConnections()
                default:
                    let fd = Int(key)
                    if fd < connections.count, let connection = connections[fd] {
                        connection.handle(events: events)
                    }
                }
            }
            if let listener, !listenerArmed, now >= listenerResumeAt { armListener(listener) }
            if now >= nextSweep {
                sweep()
                nextSweep = now + core.sweepInterval
            }
        }
        // Stopped: close whatever is left.
        for connection in connections.compactMap({ $0 }) { connection.close() }
        closeListener()
    }

    private func waitTimeoutMilliseconds() -> Int32 {
        var deadline = UInt64.max
        if connectionCount > 0 { deadline = nextSweep }
        if listener != nil, !listenerArmed { deadline = min(deadline, listenerResumeAt) }
        if deadline == UInt64.max { return -1 }
        let current = monotonicNanoseconds()
        if deadline <= current { return 0 }
        return Int32(min(60_000, (deadline - current + 999_999) / 1_000_000))
    }

    private func runInbox() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeFD, &value, 8)
        wakePending.store(false, ordering: .releasing)
        let tasks = inbox.withLock { tasks -> [@Sendable (EventLoop) -> Void] in
            let taken = tasks
            tasks.removeAll(keepingCapacity: true)
            return taken
        }
        for task in tasks { task(self) }
    }

    private func sweep() {
        guard connectionCount > 0 else { return }
        for case let connection? in connections {
            connection.checkTimeouts()
        }
    }

    // MARK: epoll

    @discardableResult
    func control(_ op: Int32, fd: Int32, events: UInt32, key: UInt64) -> Bool {
        var event = (UInt64(0), UInt64(0))  // 16 bytes, enough for either layout
        return withUnsafeMutableBytes(of: &event) { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: key, toByteOffset: LinuxSyscalls.epollDataOffset, as: UInt64.self)
            return LinuxSyscalls.shared.epollCtl(epollFD, op, fd, raw.baseAddress) == 0
        }
    }

    // MARK: Accepting

    private func armListener(_ listener: Socket) {
        listenerArmed = control(LinuxSyscalls.epollCtlAdd, fd: listener.fd, events: LinuxSyscalls.epollIn, key: Self.listenerKey)
    }

    private func acceptConnections() {
        guard let listener, listenerArmed else { return }
        let maxConnections = core.configuration.limits.maxConnections
        for _ in 0..<64 {
            let accepted: (Socket, SocketAddress)?
            do {
                accepted = try listener.accept()
            } catch {
                switch error.errno {
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: stop accepting for a while instead of spinning on a
                    // listener that stays readable.
                    control(LinuxSyscalls.epollCtlDel, fd: listener.fd, events: 0, key: Self.listenerKey)
                    listenerArmed = false
                    let initial = max(1_000_000, core.configuration.limits.acceptBackoffInitial.nanosecondsClamped)
                    let cap = max(initial, core.configuration.limits.acceptBackoffMax.nanosecondsClamped)
                    acceptBackoff = acceptBackoff == 0 ? initial : min(cap, acceptBackoff * 2)
                    listenerResumeAt = now + acceptBackoff
                    core.logger.warning("accept paused", metadata: [
                        "error": "\(error)", "backoff_ms": "\(acceptBackoff / 1_000_000)",
                    ])
                    core.observer?.requestRejected(.acceptResourceExhausted, status: nil, peer: .unknown)
                default:
                    core.logger.error("accept failed", metadata: ["error": "\(error)"])
                }
                return
            }
            guard let (socket, peer) = accepted else { return }
            acceptBackoff = 0
            let open = core.openConnections.wrappingAdd(1, ordering: .relaxed).newValue
            if open > maxConnections {
                core.openConnections.wrappingSubtract(1, ordering: .relaxed)
                refuseOverLimit(socket, peer: peer)
                continue
            }
            let target = loops.isEmpty ? self : loops[nextLoop % loops.count]
            nextLoop &+= 1
            if target === self {
                adopt(socket, peer: peer)
            } else {
                target.execute { loop in loop.adopt(socket, peer: peer) }
            }
        }
    }

    /// Above `maxConnections`: a 503 problem and close, without reading a request.
    private func refuseOverLimit(_ socket: Socket, peer: SocketAddress) {
        if core.configuration.tls != nil {
            // A TLS client cannot read a plaintext answer: close at once (it sees the connection fail and retries).
            core.observer?.requestRejected(.connectionLimit, status: nil, peer: peer)
            socket.close()
            return
        }
        // Read what the client already sent, so closing does not reset the connection before it reads
        // the answer.
        _ = try? socket.receive(into: readBuffer)
        let id = requestIDs.next()
        let problem = HTTPError.serviceUnavailable(code: "overloaded", detail: "too many open connections", closeConnection: true)
        var response = ProblemRenderer.response(for: problem, instance: nil, requestID: id, typeBase: core.configuration.problemTypeBase)
        response.headers.replaceOrAdd(name: RequestID.headerName, value: id)
        let bytes = ResponseSerializer.serialize(
            response, context: ResponseContext(requestMethod: nil, keepAlive: false, date: httpDate()))
        core.observer?.requestRejected(.connectionLimit, status: 503, peer: peer)
        _ = bytes.withUnsafeBytes { try? socket.send($0) }
        socket.shutdownWrite()
        socket.close()
    }

    /// Takes ownership of an accepted socket (already counted in `openConnections`).
    func adopt(_ socket: Socket, peer: SocketAddress) {
        guard running else {
            socket.close()
            core.openConnections.wrappingSubtract(1, ordering: .relaxed)
            return
        }
        now = monotonicNanoseconds()
        socket.setNoDelay()
        var tls: TLSSession? = nil
        if let certificates = core.configuration.tls {
            guard let session = certificates.session(fd: socket.fd) else {
                core.logger.error("TLS session allocation failed", metadata: ["error": "\(openSSLError())"])
                core.observer?.tlsHandshakeFailed(.other, peer: peer)
                socket.close()
                core.openConnections.wrappingSubtract(1, ordering: .relaxed)
                return
            }
            tls = session
        }
        let connection = Connection(socket: socket, tls: tls, peer: peer, id: nextConnectionID, loop: self)
        nextConnectionID &+= 1
        let fd = Int(socket.fd)
        if fd >= connections.count {
            connections.append(contentsOf: repeatElement(nil, count: max(fd + 1 - connections.count, connections.count)))
        }
        connections[fd] = connection
        connectionCount += 1
        guard control(LinuxSyscalls.epollCtlAdd, fd: socket.fd, events: connection.interest, key: UInt64(fd)) else {
            core.logger.error("epoll_ctl(add) failed", metadata: ["error": "\(SocketError.last("epoll_ctl"))"])
            connection.close()
            return
        }
        core.observer?.connectionOpened(peer: peer)
        if draining { connection.beginDrain() }
    }

    /// Called by `Connection.close()`.
    func forget(_ connection: Connection) {
        let fd = Int(connection.socket.fd)
        if fd < connections.count, connections[fd] === connection {
            connections[fd] = nil
            connectionCount -= 1
            core.openConnections.wrappingSubtract(1, ordering: .relaxed)
        }
    }

    /// A pooled handler finished: hand its outcome to the connection if the request is still current.
    func deliver(fd: Int32, connectionID: UInt64, sequence: UInt64, outcome: HandlerOutcome) {
        now = monotonicNanoseconds()
        let index = Int(fd)
        guard index < connections.count, let connection = connections[index], connection.id == connectionID else { return }
        connection.handlerFinished(sequence: sequence, outcome: outcome)
    }

    // MARK: Helpers for connections

    /// The IMF-fixdate of the current second (cached per second).
    func httpDate() -> String {
        let seconds = Int(time(nil))
        if seconds != dateSecond {
            dateSecond = seconds
            dateValue = HTTPDate.imfFixdate(epochSeconds: seconds)
        }
        return dateValue
    }

    // MARK: Shutdown steps (each runs on the loop thread via `execute`)

    func closeListener() {
        guard let listener else { return }
        if listenerArmed {
            control(LinuxSyscalls.epollCtlDel, fd: listener.fd, events: 0, key: Self.listenerKey)
        }
        listener.close()
        self.listener = nil
        listenerArmed = false
    }

    /// Idle connections close now; busy ones close after their current response.
    func beginDrain() {
        draining = true
        now = monotonicNanoseconds()
        for case let connection? in connections { connection.beginDrain() }
    }

    /// Grace period over: answer requests still being handled with 503 and close everything.
    func forceClose() {
        now = monotonicNanoseconds()
        for case let connection? in connections { connection.forceClose() }
    }

    func stop() {
        running = false
    }
}
