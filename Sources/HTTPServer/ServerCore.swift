import HTTP1
import Logging
import Synchronization

/// What a response hook knows about the exchange it decorates.
package struct ResponseHookContext: Sendable {
    package var requestID: String
    /// Nil when the request line could not be parsed.
    package var method: HTTPMethod?
    /// The normalized path, when known.
    package var path: String?
    /// The matched route template, when a route matched.
    package var route: String?
}

/// Called on every response (problems included) just before it is serialized, e.g. to add
/// `X-Model-Version`. Runs on an event-loop thread: keep it short. `X-Request-Id`, `Date`, the framing
/// fields and `Connection` are set by the server afterwards and cannot be changed here.
package typealias ResponseHook = @Sendable (ResponseHookContext, inout Response) -> Void

/// The immutable configuration and shared counters every event loop reads.
final class ServerCore: Sendable {
    let configuration: ServerConfiguration
    let router: Router
    let logger: Logger
    let observer: (any ServerObserver)?
    let responseHook: ResponseHook?
    let pool: HandlerPool
    let openConnections = Atomic<Int>(0)

    // Timeouts in nanoseconds.
    let headerReadTimeout: UInt64
    let bodyIdleTimeout: UInt64
    let responseWriteTimeout: UInt64
    let keepAliveIdleTimeout: UInt64
    let requestDeadline: UInt64
    let lingeringCloseTimeout: UInt64
    /// How often each loop checks its connections' deadlines.
    let sweepInterval: UInt64
    let accessLogEnabled: Bool

    init(configuration: ServerConfiguration, router: Router, logger: Logger, observer: (any ServerObserver)?,
         responseHook: ResponseHook?) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.observer = observer
        self.responseHook = responseHook
        self.pool = HandlerPool(maxThreads: configuration.maxHandlerThreads)
        let limits = configuration.limits
        headerReadTimeout = max(1_000_000, limits.headerReadTimeout.nanosecondsClamped)
        bodyIdleTimeout = max(1_000_000, limits.bodyIdleTimeout.nanosecondsClamped)
        responseWriteTimeout = max(1_000_000, limits.responseWriteTimeout.nanosecondsClamped)
        keepAliveIdleTimeout = max(1_000_000, limits.keepAliveIdleTimeout.nanosecondsClamped)
        requestDeadline = max(1_000_000, limits.requestDeadline.nanosecondsClamped)
        lingeringCloseTimeout = max(1_000_000, limits.lingeringCloseTimeout.nanosecondsClamped)
        let shortest = [headerReadTimeout, bodyIdleTimeout, responseWriteTimeout, keepAliveIdleTimeout,
                        requestDeadline, lingeringCloseTimeout].min()!
        // A tenth of the shortest timeout, between 10 ms and 250 ms.
        sweepInterval = min(250_000_000, max(10_000_000, shortest / 10))
        accessLogEnabled = configuration.accessLogFormat != .off && logger.logLevel <= configuration.accessLogLevel
    }

    /// Writes the access-log line of one response.
    func logAccess(_ c: RequestCompletion) {
        guard accessLogEnabled else { return }
        let durationMs = (c.duration.secondsDouble * 1_000_000).rounded() / 1000
        switch configuration.accessLogFormat {
        case .off:
            return
        case .text:
            logger.log(
                level: configuration.accessLogLevel, "\(c.method) \(c.path) \(c.status)",
                metadata: [
                    "request_id": .string(c.requestID),
                    "method": .string(c.method),
                    "path": .string(c.path),
                    "route": .string(c.route ?? "-"),
                    "status": .stringConvertible(c.status),
                    "bytes_in": .stringConvertible(c.requestBodyBytes),
                    "bytes_out": .stringConvertible(c.responseBodyBytes),
                    "duration_ms": .stringConvertible(durationMs),
                    "peer": .string(c.peer.description),
                ])
        case .json:
            var json = JSONWriter()
            json.beginObject()
            json.member("request_id", c.requestID)
            json.member("method", c.method)
            json.member("path", c.path)
            json.member("route", c.route ?? "-")
            json.member("status", c.status)
            json.member("bytes_in", c.requestBodyBytes)
            json.member("bytes_out", c.responseBodyBytes)
            json.member("duration_ms", durationMs)
            json.member("peer", c.peer.description)
            json.endObject()
            logger.log(level: configuration.accessLogLevel, "\(json.string)")
        }
    }
}
