import Glibc
import HTTP1
import Logging

/// What a handler produced.
enum HandlerOutcome: Sendable {
    case response(Response)
    case problem(HTTPError)
    /// Any other error: answered 500 `internal`; the description is logged, never sent.
    case failure(String)

    /// Runs the handler and, on the same thread (a pooled one for slow routes, so the event loop never
    /// compresses a large body), gzips its response when `compression` and the request allow it.
    static func run(_ handler: Handler, _ request: Request, compression: CompressionPolicy?) -> HandlerOutcome {
        do {
            var response = try handler(request)
            if let compression {
                let accepted = request.headers.values(for: "Accept-Encoding")
                compression.apply(acceptEncoding: accepted.isEmpty ? nil : accepted.joined(separator: ", "), to: &response)
            }
            return .response(response)
        } catch let error as HTTPError {
            return .problem(error)
        } catch {
            return .failure(String(describing: error))
        }
    }
}

/// One client connection: a state machine driven by its event loop.
///
/// Confinement: a `Connection` is created, used and released only on its `EventLoop`'s thread. It is
/// not `Sendable`; other threads refer to it by (fd, id, sequence) through `EventLoop.execute`.
///
/// Phases of one exchange (RFC 9112 §9.3, requests answered strictly in order):
/// `idle` (keep-alive wait) → `head` (first byte seen; header timeout) → `body` (body idle timeout) →
/// `handling` (request deadline) → `writing` (write timeout) → `idle` again, or `lingering` (FIN sent,
/// input discarded) → closed.
///
/// With TLS the bytes go through `tls` (OpenSSL, non-blocking): a fresh connection first completes the
/// handshake within the header timeout (still `idle`), and reads and writes may each wait for the other
/// direction (`TLSSession.readWantsWrite` / `writeWantsRead`), which `updateInterest` turns into epoll interest.
final class Connection {
    enum Phase { case idle, head, body, handling, writing, lingering }

    /// A response decided from the head alone, sent once the (empty) request is complete.
    private enum EarlyAnswer {
        case response(Response, route: String?)
        case problem(HTTPError)
    }

    let socket: Socket
    /// Nil on a plain-TCP listener.
    private var tls: TLSSession?
    /// The handshake waits for the socket to become writable.
    private var handshakeWantsWrite = false
    let peer: SocketAddress
    let id: UInt64
    unowned let loop: EventLoop
    private let core: ServerCore

    private var parser: RequestParser
    private(set) var phase: Phase = .idle
    private(set) var closed = false
    /// Current epoll interest.
    private(set) var interest: UInt32

    // Buffers.
    private var input: [UInt8] = []
    private var inputStart = 0
    private var output: [UInt8] = []
    private var outputStart = 0

    // Deadlines (monotonic ns; 0 = none).
    private var phaseDeadline: UInt64
    private var writeDeadline: UInt64 = 0

    // Connection state.
    private var inputClosed = false
    private var closeAfterResponse = false
    private var keepAliveAfterWrite = false
    private var requestsServed = 0
    private var lingerDiscarded = 0

    // Current exchange.
    private var sequence: UInt64 = 0
    private var requestStart: UInt64 = 0
    private var head: RequestHead?
    private var route: Route?
    private var path: String?
    private var requestID: String?
    private var body: [UInt8] = []
    private var bodyBytes = 0
    private var client = ClientLink()
    private var earlyAnswer: EarlyAnswer?

    init(socket: Socket, tls: TLSSession?, peer: SocketAddress, id: UInt64, loop: EventLoop) {
        self.socket = socket
        self.tls = tls
        self.peer = peer
        self.id = id
        self.loop = loop
        self.core = loop.core
        var limits = loop.core.configuration.limits.parser
        limits.maxBodySize = loop.core.configuration.limits.maxBodyBytes
        parser = RequestParser(limits: limits, options: loop.core.configuration.parserOptions)
        interest = LinuxSyscalls.epollIn | LinuxSyscalls.epollRdHup
        // A fresh connection gets the header timeout to send its first byte (with TLS: to finish the handshake).
        phaseDeadline = loop.now + loop.core.headerReadTimeout
    }

    private var isParsing: Bool { phase == .idle || phase == .head || phase == .body }
    private var bufferedInput: Int { input.count - inputStart }
    private var outputPending: Bool { outputStart < output.count }

    // MARK: Events

    func handle(events: UInt32) {
        if events & LinuxSyscalls.epollErr != 0 {
            client.set(ClientLink.resetFlag)
            close()
            return
        }
        if let tls, !tls.established, phase != .lingering {
            continueHandshake()
            // Application data may have come with the client's Finished: read on once established.
            if closed || !tls.established { return }
        }
        let readable = LinuxSyscalls.epollIn | LinuxSyscalls.epollRdHup | LinuxSyscalls.epollHup
        if events & LinuxSyscalls.epollOut != 0 || (tls?.writeWantsRead == true && events & readable != 0) {
            flush()
        }
        if !closed, events & readable != 0 || (tls?.readWantsWrite == true && events & LinuxSyscalls.epollOut != 0) {
            self.readable()
        }
        if !closed, events & LinuxSyscalls.epollHup != 0 {
            // Both directions are shut (reset, or FIN after our own FIN): nothing more can be sent.
            if phase != .lingering { client.set(ClientLink.resetFlag) }
            close()
            return
        }
        pump()
    }

    /// Drives the TLS handshake one step. A failure is counted by reason and the connection closed with a FIN
    /// after a bounded drain (`startLingeringClose`), so a client that sent plain HTTP reads a clean close.
    private func continueHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .done:
            handshakeWantsWrite = false
            // The first request gets the whole header timeout of its own.
            phaseDeadline = loop.now + core.headerReadTimeout
            updateInterest()
        case .wantRead:
            handshakeWantsWrite = false
            updateInterest()
        case .wantWrite:
            handshakeWantsWrite = true
            updateInterest()
        case .failed(let reason, let detail):
            core.observer?.tlsHandshakeFailed(reason, peer: peer)
            core.logger.debug("TLS handshake failed", metadata: [
                "peer": .string(peer.description), "reason": .string(reason.rawValue), "error": .string(detail),
            ])
            handshakeWantsWrite = false
            startLingeringClose()
            if !closed { updateInterest() }
        }
    }

    /// One read from the connection, through TLS when the listener has it; nil after a socket error, which has
    /// reset the connection.
    private func receive(into buffer: UnsafeMutableRawBufferPointer) -> IOOutcome? {
        resettingOnError { () throws(SocketError) in
            if let tls { return try tls.read(into: buffer) }
            return try socket.receive(into: buffer)
        }
    }

    /// One write, as `receive` reads.
    private func send(_ bytes: UnsafeRawBufferPointer) -> IOOutcome? {
        resettingOnError { () throws(SocketError) in
            if let tls { return try tls.write(bytes) }
            return try socket.send(bytes)
        }
    }

    private func resettingOnError(_ io: () throws(SocketError) -> IOOutcome) -> IOOutcome? {
        do { return try io() } catch {
            client.set(ClientLink.resetFlag)
            close()
            return nil
        }
    }

    private func readable() {
        let buffer = loop.readBuffer
        for _ in 0..<8 {
            if closed { return }
            if phase == .lingering {
                discardLingeringInput()
                return
            }
            if inputClosed { return }
            // While a request is in flight, buffer at most `maxPipelinedBytes` of what follows.
            if !isParsing, bufferedInput >= core.configuration.limits.maxPipelinedBytes { return }
            guard let outcome = receive(into: buffer) else { return }
            switch outcome {
            case .transferred(let n):
                let received = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                if isParsing && bufferedInput == 0 {
                    // Fast path: parse straight from the receive buffer, keep only the rest.
                    let used = consume(received)
                    if !closed, used < n { appendInput(UnsafeRawBufferPointer(rebasing: received[used...])) }
                } else {
                    appendInput(received)
                    if isParsing { consumeBuffered() }
                }
                // A short plain read emptied the socket. TLS returns one record per read: read on until it
                // would block (epoll cannot see what OpenSSL has buffered).
                if tls == nil && n < buffer.count { return }
            case .wouldBlock:
                return
            case .endOfFile:
                endOfInput()
                return
            }
        }
    }

    private func appendInput(_ bytes: UnsafeRawBufferPointer) {
        if inputStart > 0 && inputStart == input.count {
            input.removeAll(keepingCapacity: true)
            inputStart = 0
        }
        input.append(contentsOf: bytes)
    }

    /// The client sent FIN.
    private func endOfInput() {
        inputClosed = true
        client.set(ClientLink.inputClosedFlag)
        switch phase {
        case .idle:
            if bufferedInput == 0 { close() }
        case .head, .body:
            // Truncated request (SERVICE-NOTES F12): no answer is due.
            close()
        case .handling, .writing:
            // Half-close after a complete request (SERVICE-NOTES C7): still answer it and any complete
            // requests pipelined before the FIN; the last response says `Connection: close`.
            break
        case .lingering:
            close()
        }
    }

    /// Runs the parser over buffered input and finishes written exchanges, until nothing moves.
    /// Iterative, so a long pipeline of inline-handled requests does not recurse.
    private func pump() {
        while !closed {
            if phase == .writing && !outputPending {
                finishExchange()
                continue
            }
            if isParsing && bufferedInput > 0 {
                // Progress is what was used up: `inputStart` itself returns to 0 when the buffer empties, so
                // comparing it would miss a last pipelined request consumed whole (its exchange never finished).
                let before = bufferedInput
                consumeBuffered()
                if bufferedInput != before && !closed { continue }
            }
            if let tls, tls.pending > 0, isParsing, !inputClosed {
                // Decrypted input left inside OpenSSL (the read loop stopped early): no epoll event will come.
                readable()
                if !closed { continue }
            }
            if isParsing && inputClosed && bufferedInput == 0 && !closed {
                // The client sent FIN and what it sent is used up: nothing more can arrive. A request
                // still incomplete here is truncated (F12): no answer is due.
                close()
            }
            break
        }
        if !closed { updateInterest() }
    }

    private func consumeBuffered() {
        let start = inputStart
        let used = input.withUnsafeBytes { raw in consume(UnsafeRawBufferPointer(rebasing: raw[start...])) }
        if closed { return }
        inputStart += used
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 64 * 1024)
            inputStart = 0
        } else if inputStart >= 16 * 1024 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    /// Feeds `bytes` to the parser while the connection is reading a request. Returns the bytes used.
    private func consume(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while isParsing && !closed {
            let step = parser.next(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            offset += step.consumed
            if phase == .idle && !parser.isIdle { beginRequest() }
            guard let event = step.event else { break }
            switch event {
            case .head(let head):
                onHead(head)
            case .body(let piece):
                bodyBytes += piece.count
                if earlyAnswer == nil { body.append(contentsOf: piece) }
                phaseDeadline = loop.now + core.bodyIdleTimeout
            case .end:
                onEnd()
            case .error(let error):
                onParseError(error)
            }
        }
        return offset
    }

    // MARK: Request stages

    private func beginRequest() {
        phase = .head
        requestStart = loop.now
        phaseDeadline = loop.now + core.headerReadTimeout
    }

    private func onHead(_ head: RequestHead) {
        sequence &+= 1
        self.head = head
        client = ClientLink()
        if inputClosed { client.set(ClientLink.inputClosedFlag) }
        requestID = RequestID.incoming(head.headers) ?? loop.requestIDs.next()
        phase = .body
        phaseDeadline = loop.now + core.bodyIdleTimeout

        switch core.router.admit(head, defaultBodyLimit: core.configuration.limits.maxBodyBytes) {
        case .accept(let route, let path, let bodyLimit, let sendContinue):
            self.route = route
            self.path = path
            if let error = parser.setBodyLimit(bodyLimit) {
                onParseError(error)
                return
            }
            if let length = head.contentLength, length > 0 { body.reserveCapacity(length) }
            if sendContinue {
                // RFC 9110 §10.1.1: the route, method, checks and Content-Length limit all passed.
                queueOutput(ResponseSerializer.continueResponse)
                flush()
            }
        case .respond(let response):
            path = Router.normalize(head.path)
            answerEarly(.response(response, route: nil), hasClose: false)
        case .reject(let problem):
            path = Router.normalize(head.path)
            // A route's own head check refused it: count the answer under that route.
            route = path.flatMap { core.router.route(head.method, $0) }
            switch problem.status.code {
            case 413: core.observer?.requestRejected(.bodyTooLarge, status: 413, peer: peer)
            case 417: core.observer?.requestRejected(.expectationFailed, status: 417, peer: peer)
            default: break
            }
            answerEarly(.problem(problem), hasClose: problem.closeConnection)
        }
    }

    /// A response decided from the head. Without a body the request completes at once and the
    /// connection can stay open; with a body (never read) the answer goes out now and the connection
    /// closes (RFC 9110 §10.1.1 for 100-continue clients, and no guessing where the next request starts).
    private func answerEarly(_ answer: EarlyAnswer, hasClose: Bool) {
        let hasBody: Bool
        switch head?.framing {
        case .contentLength(let n)?: hasBody = n > 0
        case .chunked?: hasBody = true
        default: hasBody = false
        }
        if hasBody || hasClose {
            switch answer {
            case .response(let response, let route): respond(response, route: route, forceClose: true)
            case .problem(let problem): respondProblem(problem, forceClose: true)
            }
        } else {
            earlyAnswer = answer
        }
    }

    private func onEnd() {
        if let answer = earlyAnswer {
            earlyAnswer = nil
            switch answer {
            case .response(let response, let route): respond(response, route: route, forceClose: false)
            case .problem(let problem): respondProblem(problem, forceClose: false)
            }
            return
        }
        guard let head, let route, let path, let requestID else {
            preconditionFailure("Internal inconsistency: request end without an admitted head")
        }
        phase = .handling
        phaseDeadline = requestStart + core.requestDeadline
        let remaining = Int64(phaseDeadline) - Int64(loop.now)
        let request = Request(
            head: head, path: path, route: route.path, queryItems: head.query.map(QueryItem.parse) ?? [],
            body: body, id: requestID, peer: peer, deadline: .now + .nanoseconds(max(0, remaining)), client: client)
        body = []
        switch route.execution {
        case .eventLoop:
            complete(HandlerOutcome.run(route.handler, request, compression: core.configuration.compression))
        case .pooled:
            let loop = self.loop
            let fd = socket.fd, connectionID = id, sequence = self.sequence
            let handler = route.handler
            let compression = core.configuration.compression
            let accepted = core.pool.submit {
                // Queued work whose connection is already gone (reset, deadline, shutdown) is dropped.
                if request.client.isGone { return }
                let outcome = HandlerOutcome.run(handler, request, compression: compression)
                loop.execute { loop in
                    loop.deliver(fd: fd, connectionID: connectionID, sequence: sequence, outcome: outcome)
                }
            }
            if !accepted {
                respondProblem(.serviceUnavailable(code: "draining", detail: "the server is shutting down", closeConnection: true),
                               forceClose: true)
            }
        }
    }

    /// A pooled handler's outcome, delivered on the loop thread.
    func handlerFinished(sequence: UInt64, outcome: HandlerOutcome) {
        guard !closed, phase == .handling, sequence == self.sequence else { return }
        complete(outcome)
        pump()
    }

    private func complete(_ outcome: HandlerOutcome) {
        switch outcome {
        case .response(let response):
            respond(response, route: route?.path, forceClose: false)
        case .problem(let problem):
            respondProblem(problem, forceClose: false)
        case .failure(let description):
            core.logger.error("handler failed", metadata: [
                "request_id": .string(requestID ?? "-"), "route": .string(route?.path ?? "-"), "error": .string(description),
            ])
            respondProblem(.internalError(), forceClose: false)
        }
    }

    private func onParseError(_ error: ParseError) {
        if error.code == .dataAfterClose {
            // Bytes after a closing request: the connection is closing anyway (not reached in practice:
            // parsing stops at a closing request).
            close()
            return
        }
        core.observer?.requestRejected(error.code == .bodyTooLarge ? .bodyTooLarge : .parseError(error.code),
                                       status: error.status.code, peer: peer)
        if requestID == nil { requestID = loop.requestIDs.next() }
        if phase == .idle { beginRequest() }
        respondProblem(.from(error), forceClose: true)
    }

    // MARK: Responding

    private func respondProblem(_ problem: HTTPError, forceClose: Bool) {
        let id = requestID ?? loop.requestIDs.next()
        requestID = id
        let response = ProblemRenderer.response(for: problem, instance: path, requestID: id,
                                                typeBase: core.configuration.problemTypeBase)
        respond(response, route: problem.status.code == 404 || problem.status.code == 405 ? nil : route?.path,
                forceClose: forceClose || problem.closeConnection)
    }

    /// Decorates, serializes and queues a response; the exchange ends once it is written.
    private func respond(_ original: Response, route routeLabel: String?, forceClose: Bool) {
        guard !closed else { return }
        var response = original
        let id = requestID ?? loop.requestIDs.next()
        for field in core.configuration.defaultHeaders where !response.headers.contains(field.name) {
            response.headers.append(field)
        }
        if let hook = core.responseHook {
            hook(ResponseHookContext(requestID: id, method: head?.method, path: path, route: routeLabel), &response)
        }
        response.headers.replaceOrAdd(name: RequestID.headerName, value: id)

        requestsServed += 1
        // After the client's FIN, stay open only to answer requests it pipelined before it.
        var keepAlive = (head?.keepAlive ?? false) && !forceClose && !closeAfterResponse && !loop.draining
            && (!inputClosed || bufferedInput > 0)
        if let cap = core.configuration.limits.maxRequestsPerConnection, requestsServed >= cap { keepAlive = false }
        if keepAlive, response.headers.contains("connection"), response.headers.containsToken("close", in: "connection") {
            keepAlive = false
        }
        let context = ResponseContext(
            requestMethod: head?.method, requestVersion: head?.version ?? .http1_1, keepAlive: keepAlive,
            date: loop.httpDate())
        let bytes = ResponseSerializer.serialize(response, context: context)
        keepAliveAfterWrite = keepAlive
        phase = .writing
        phaseDeadline = UInt64.max

        let sentBody = (head?.method == .head || !response.status.mayHaveBody) ? 0 : response.body.count
        let completion = RequestCompletion(
            requestID: id, method: head?.method.rawValue ?? "-", path: path ?? "-", route: routeLabel,
            status: response.status.code, requestBodyBytes: bodyBytes, responseBodyBytes: sentBody,
            duration: .nanoseconds(Int64(loop.now &- requestStart)), peer: peer)
        core.logAccess(completion)
        core.observer?.requestCompleted(completion)

        if outputPending {
            output.append(contentsOf: bytes)
        } else {
            output = bytes
            outputStart = 0
        }
        flush()
    }

    private func queueOutput(_ bytes: [UInt8]) {
        if outputPending {
            output.append(contentsOf: bytes)
        } else {
            output = bytes
            outputStart = 0
        }
    }

    /// Writes as much queued output as the socket takes.
    private func flush() {
        while outputPending && !closed {
            let start = outputStart
            guard let outcome = output.withUnsafeBytes({ send(UnsafeRawBufferPointer(rebasing: $0[start...])) }) else { return }
            switch outcome {
            case .transferred(let n):
                outputStart += n
                writeDeadline = loop.now + core.responseWriteTimeout
            case .wouldBlock:
                if writeDeadline == 0 { writeDeadline = loop.now + core.responseWriteTimeout }
                updateInterest()
                return
            case .endOfFile:
                return
            }
        }
        if !outputPending {
            output = []
            outputStart = 0
            writeDeadline = 0
        }
    }

    /// The response is fully written: next request, or close.
    private func finishExchange() {
        head = nil
        route = nil
        path = nil
        requestID = nil
        bodyBytes = 0
        body = []
        earlyAnswer = nil
        if keepAliveAfterWrite && !loop.draining && !closeAfterResponse {
            phase = .idle
            phaseDeadline = loop.now + core.keepAliveIdleTimeout
            if inputClosed && bufferedInput == 0 { close() }
        } else {
            startLingeringClose()
        }
    }

    /// RFC 9112 §9.6: send FIN, then read and discard until the client closes (bounded), so a client
    /// still sending does not get a reset that destroys the response before it reads it.
    private func startLingeringClose() {
        phase = .lingering
        input = []
        inputStart = 0
        if inputClosed {
            close()
            return
        }
        tls?.shutdown()
        socket.shutdownWrite()
        phaseDeadline = loop.now + core.lingeringCloseTimeout
        discardLingeringInput()
    }

    private func discardLingeringInput() {
        let buffer = loop.readBuffer
        while !closed {
            switch try? socket.receive(into: buffer) {
            case .transferred(let n)?:
                lingerDiscarded += n
                if lingerDiscarded > core.configuration.limits.lingeringCloseMaxBytes { close() }
            case .wouldBlock?:
                return
            case .endOfFile?, nil:
                close()
            }
        }
    }

    // MARK: Interest, timeouts, shutdown

    private func updateInterest() {
        guard !closed else { return }
        var wanted: UInt32 = 0
        let reading: Bool
        switch phase {
        case .lingering: reading = true
        case .idle, .head, .body: reading = !inputClosed
        case .handling, .writing:
            reading = !inputClosed && bufferedInput < core.configuration.limits.maxPipelinedBytes
        }
        if reading { wanted |= LinuxSyscalls.epollIn | LinuxSyscalls.epollRdHup }
        if tls?.writeWantsRead == true && phase != .lingering { wanted |= LinuxSyscalls.epollIn | LinuxSyscalls.epollRdHup }
        if outputPending || handshakeWantsWrite || (tls?.readWantsWrite == true && reading) { wanted |= LinuxSyscalls.epollOut }
        if wanted != interest {
            interest = wanted
            loop.control(LinuxSyscalls.epollCtlMod, fd: socket.fd, events: wanted, key: UInt64(socket.fd))
        }
    }

    func checkTimeouts() {
        let now = loop.now
        if writeDeadline != 0, now >= writeDeadline {
            core.observer?.requestRejected(.writeTimeout, status: nil, peer: peer)
            close()
            return
        }
        guard now >= phaseDeadline else { return }
        switch phase {
        case .idle:
            if let tls, !tls.established {
                // A slow or garbage handshake holds a slot no longer than a slow request head would.
                core.observer?.tlsHandshakeFailed(.timeout, peer: peer)
            }
            close()
        case .head:
            // Slowloris (SERVICE-NOTES C1).
            core.observer?.requestRejected(.headerTimeout, status: 408, peer: peer)
            if requestID == nil { requestID = loop.requestIDs.next() }
            respondProblem(.requestTimeout("the request head was not received in time"), forceClose: true)
            pump()
        case .body:
            if earlyAnswer != nil || head == nil {
                close()
                return
            }
            // Slow body (SERVICE-NOTES C2).
            core.observer?.requestRejected(.bodyTimeout, status: 408, peer: peer)
            respondProblem(.requestTimeout("the request body stalled"), forceClose: true)
            pump()
        case .handling:
            core.observer?.requestRejected(.deadlineExceeded, status: 503, peer: peer)
            client.set(ClientLink.closedByServerFlag)
            respondProblem(.serviceUnavailable(code: "deadline_exceeded", detail: "the request took longer than the server allows",
                                               closeConnection: true), forceClose: true)
            pump()
        case .writing:
            phaseDeadline = UInt64.max
        case .lingering:
            close()
        }
    }

    func beginDrain() {
        closeAfterResponse = true
        if phase == .idle && bufferedInput == 0 && !outputPending { close() }
        else { pump() }
    }

    func forceClose() {
        if phase == .handling && !outputPending {
            core.observer?.requestRejected(.shutdown, status: 503, peer: peer)
            client.set(ClientLink.closedByServerFlag)
            respondProblem(.serviceUnavailable(code: "draining", detail: "the server is shutting down", closeConnection: true),
                           forceClose: true)
        }
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        if !client.wasReset { client.set(ClientLink.closedByServerFlag) }
        loop.control(LinuxSyscalls.epollCtlDel, fd: socket.fd, events: 0, key: UInt64(socket.fd))
        tls = nil
        socket.close()
        input = []
        output = []
        body = []
        loop.forget(self)
        core.observer?.connectionClosed(peer: peer, requests: requestsServed)
    }
}
