import Foundation
import Glibc
import HTTP1
import HTTPServer
import Logging
import Synchronization
import Testing

// MARK: - Counters and observers

final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { value.wrappingAdd(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Records every observer call.
final class RecordingObserver: ServerObserver {
    let opened = Counter()
    let closed = Counter()
    private let completions = Mutex<[RequestCompletion]>([])
    private let rejections = Mutex<[(RejectionReason, Int?)]>([])

    func connectionOpened(peer: SocketAddress) { opened.increment() }
    func connectionClosed(peer: SocketAddress, requests: Int) { closed.increment() }
    func requestCompleted(_ completion: RequestCompletion) { completions.withLock { $0.append(completion) } }
    func requestRejected(_ reason: RejectionReason, status: Int?, peer: SocketAddress) {
        rejections.withLock { $0.append((reason, status)) }
    }
    private let tls = Mutex<[TLSHandshakeFailure]>([])
    func tlsHandshakeFailed(_ reason: TLSHandshakeFailure, peer: SocketAddress) { tls.withLock { $0.append(reason) } }
    var tlsFailures: [TLSHandshakeFailure] { tls.withLock { $0 } }

    var completed: [RequestCompletion] { completions.withLock { $0 } }
    var rejected: [RejectionReason] { rejections.withLock { $0.map(\.0) } }
}

// MARK: - A server on loopback

/// A server on 127.0.0.1 (or ::1) port 0 with the standard test routes:
/// - `GET /livez` (event loop) → "ok"
/// - `GET /hello` → "hello <query name>"; `GET /a`, `GET /b` → "a", "b"
/// - `POST /echo` (limit 64 KiB) → the body, counted in `echoCalls`
/// - `POST /upload` (limit 4 MiB) → "<bytes> bytes"
/// - `POST /small` (limit 16 bytes) → "small"
/// - `GET /slow?ms=N` → sleeps N ms, then "slow"; counted in `slowCalls`
/// - `GET /fail` → throws an `HTTPError` 422; `GET /crash` → throws another error (500)
/// - `GET /big?kb=N` → N KiB of "x"
/// - `POST /secure` → head check refuses without `Authorization`
final class TestServer: Sendable {
    let server: Server
    let port: Int
    let host: String
    let calls = Counter()
    let echoCalls = Counter()
    let slowCalls = Counter()
    let slowFinished = Counter()
    let observer = RecordingObserver()

    init(host: String = "127.0.0.1", configure: (inout ServerConfiguration) -> Void = { _ in },
         extraRoutes: (inout Router) -> Void = { _ in }) throws {
        var configuration = ServerConfiguration(host: host, port: 0)
        configuration.eventLoopCount = 2
        configuration.accessLogFormat = .off
        configure(&configuration)
        var router = Router()
        let calls = self.calls, echoCalls = self.echoCalls, slowCalls = self.slowCalls, slowFinished = self.slowFinished
        router.get("/livez", execution: .eventLoop) { _ in
            calls.increment()
            return .text("ok")
        }
        router.get("/hello") { request in
            calls.increment()
            return .text("hello \(request.query("name") ?? "world")")
        }
        router.get("/a") { _ in calls.increment(); return .text("a") }
        router.get("/b") { _ in calls.increment(); return .text("b") }
        router.post("/echo", maxBodyBytes: 64 * 1024) { request in
            calls.increment()
            echoCalls.increment()
            return Response(status: .ok, headers: ["Content-Type": "application/octet-stream"], body: request.body)
        }
        router.post("/upload", maxBodyBytes: 4 << 20) { request in
            calls.increment()
            return .text("\(request.body.count) bytes")
        }
        router.post("/small", maxBodyBytes: 16) { _ in calls.increment(); return .text("small") }
        router.get("/slow") { request in
            calls.increment()
            slowCalls.increment()
            let ms = Int(request.query("ms") ?? "500") ?? 500
            usleep(UInt32(ms * 1000))
            slowFinished.increment()
            return .text("slow")
        }
        router.get("/fail") { _ in
            throw HTTPError(status: .unprocessableContent, code: "invalid_parameter", title: "Invalid parameter",
                            detail: "top_k must be positive", extensions: ["pointer": .string("/top_k")])
        }
        router.get("/crash") { _ in
            struct Boom: Error {}
            throw Boom()
        }
        router.get("/big") { request in
            let kb = Int(request.query("kb") ?? "1") ?? 1
            return Response(status: .ok, headers: ["Content-Type": "text/plain"], body: [UInt8](repeating: UInt8(ascii: "x"), count: kb * 1024))
        }
        router.post("/secure", headCheck: { head in
            head.headers["authorization"] == nil
                ? HTTPError(status: .unauthorized, code: "unauthorized", detail: "missing bearer token") : nil
        }) { _ in calls.increment(); return .text("secret") }
        extraRoutes(&router)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        server = Server(configuration: configuration, router: router, logger: logger, observer: observer,
                        responseHook: { _, response in response.headers.replaceOrAdd(name: "X-Model-Version", value: "test-1") })
        try server.start()
        self.host = host
        port = server.localAddress!.port
    }

    func stop(grace: Duration = .seconds(2)) { server.shutdown(grace: grace) }

    var baseURL: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }
}

// MARK: - Raw client

struct TestResponse: CustomStringConvertible {
    var status: Int
    var reason: String
    var headers: [(String, String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    func headerCount(_ name: String) -> Int { headers.filter { $0.0.lowercased() == name.lowercased() }.count }

    var text: String { String(decoding: body, as: UTF8.self) }

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    var description: String { "\(status) \(reason) \(headers) \(text.prefix(300))" }
}

enum RawClientError: Error { case connect(Int32), timeout, malformed(String) }

/// A blocking TCP client with receive/send timeouts, for sending exact bytes.
final class RawConnection {
    let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var sawEOF = false

    init(port: Int, host: String = "127.0.0.1", timeout: Double = 5) throws {
        let v6 = host.contains(":")
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var result: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &addr.sin6_addr)
            result = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &addr.sin_addr)
            result = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if result != 0 {
            let error = errno
            Glibc.close(fd)
            throw RawClientError.connect(error)
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Sends FIN both ways now (the descriptor itself is closed on deinit).
    func closeNow() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    /// Closes with SO_LINGER 0: the kernel sends RST.
    func reset() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Receives more bytes into the buffer; false on EOF, error or timeout.
    @discardableResult
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        if n == 0 { sawEOF = true }
        return false
    }

    /// Reads one response (skipping 1xx unless `keepInterim`); nil when the connection ends first.
    func readResponse(keepInterim: Bool = false, headRequest: Bool = false) -> TestResponse? {
        while true {
            guard let end = headerEnd() else {
                if !fill() { return nil }
                continue
            }
            let headText = String(decoding: buffer[0..<end], as: UTF8.self)
            var lines = headText.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst()
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
            let headers: [(String, String)] = lines.filter { !$0.isEmpty }.map { line in
                let colon = line.firstIndex(of: ":")!
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            let bodyStart = end + 4
            if status < 200 {
                buffer.removeFirst(bodyStart)
                if keepInterim { return TestResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: []) }
                continue
            }
            var length = Int(headers.first { $0.0.lowercased() == "content-length" }?.1 ?? "0") ?? 0
            if headRequest || status == 204 || status == 304 { length = 0 }
            while buffer.count < bodyStart + length {
                if !fill() { return nil }
            }
            let body = Array(buffer[bodyStart..<(bodyStart + length)])
            buffer.removeFirst(bodyStart + length)
            return TestResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: body)
        }
    }

    private func headerEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// True when the server closes the connection (EOF or reset) within the receive timeout, with no
    /// further bytes (anything received is returned in `extra`).
    func waitForClose() -> (closed: Bool, extra: [UInt8]) {
        while fill() {}
        let extra = buffer
        buffer = []
        return (sawEOF || errno == ECONNRESET, extra)
    }

    /// Bytes buffered but not yet consumed by `readResponse`.
    var leftover: [UInt8] { buffer }
}

/// Sends `request` on a fresh connection and reads one response.
func exchange(_ port: Int, _ request: String, host: String = "127.0.0.1", timeout: Double = 5) throws -> TestResponse? {
    let connection = try RawConnection(port: port, host: host, timeout: timeout)
    connection.send(request)
    return connection.readResponse(headRequest: request.hasPrefix("HEAD "))
}

// MARK: - External tools

struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable` with `arguments`, killing it after `timeout` seconds.
func runTool(_ executable: String, _ arguments: [String], timeout: Double = 20) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    // Read concurrently so a full pipe cannot block the tool.
    let outData = Mutex(Data())
    let errData = Mutex(Data())
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        let d = out.fileHandleForReading.readDataToEndOfFile()
        outData.withLock { $0 = d }
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        let d = err.fileHandleForReading.readDataToEndOfFile()
        errData.withLock { $0 = d }
        group.leave()
    }
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        process.terminate()
    }
    process.waitUntilExit()
    _ = group.wait(timeout: .now() + 5)
    return ToolResult(status: process.terminationStatus,
                      stdout: String(decoding: outData.withLock { $0 }, as: UTF8.self),
                      stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self))
}

func toolPath(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Polls `condition` every 10 ms for up to `seconds`.
func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Monotonic seconds since an arbitrary origin.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Whether a problem+json response has the RFC 9457 shape with our members.
func isProblem(_ response: TestResponse, status: Int, code: String? = nil) -> Bool {
    let json = response.json
    guard response.status == status,
        response.header("Content-Type") == "application/problem+json",
        json["status"] as? Int == status,
        json["type"] is String, json["title"] is String, json["detail"] is String,
        let requestID = json["request_id"] as? String, requestID == response.header("X-Request-Id")
    else { return false }
    if let code { return json["code"] as? String == code }
    return json["code"] is String
}
