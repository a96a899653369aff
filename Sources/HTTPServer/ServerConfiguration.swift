import Foundation
import HTTP1
import Logging

/// Timeouts and size limits of the server (SERVICE-NOTES §4.1 items 3–5). Every value is configurable;
/// the defaults are those of SERVICE-NOTES §4.1.
package struct ServerLimits: Sendable, Hashable {
    /// From the first byte of a request until its field section is complete (also the wait for the
    /// first byte on a fresh connection). On expiry: 408 problem + close (or a silent close when no byte
    /// of a request has arrived). Slowloris protection.
    package var headerReadTimeout: Duration = .seconds(15)
    /// Longest gap between two pieces of a request body. On expiry: 408 problem + close.
    package var bodyIdleTimeout: Duration = .seconds(30)
    /// Longest time a queued response may make no progress (the client does not read). On expiry the
    /// connection is closed.
    package var responseWriteTimeout: Duration = .seconds(30)
    /// How long a kept-alive connection may sit idle between requests. Above nginx's default upstream
    /// `keepalive_timeout` of 60 s, so the proxy always closes first (SERVICE-NOTES C4).
    package var keepAliveIdleTimeout: Duration = .seconds(75)
    /// Longest time from a request's first byte until its handler returns. On expiry: 503
    /// `deadline_exceeded` + close; the handler's late result is dropped. Handlers can read it as
    /// `Request.deadline`.
    package var requestDeadline: Duration = .seconds(120)
    /// After a response that closes the connection, the server stops sending (FIN) and reads and
    /// discards what the client still sends for at most this long before closing, so that the client
    /// reads the response instead of a reset.
    /// 5 s, nginx's lingering_timeout.
    package var lingeringCloseTimeout: Duration = .seconds(5)
    /// Bytes read and discarded during a lingering close before giving up. Large enough to drain a whole
    /// upload that a proxy (nginx buffers and forwards up to its client_max_body_size) is still sending after
    /// an early 413: closing with unread data would reset the connection and the proxy would answer 502.
    package var lingeringCloseMaxBytes: Int = 64 << 20
    /// Open connections. An accepted connection above the limit gets an immediate 503 problem
    /// (`code: overloaded`, `Retry-After: 1`) and is closed, rather than waiting unseen in the backlog.
    package var maxConnections: Int = 1024
    /// Requests served on one connection before the server says `Connection: close` (nginx
    /// `keepalive_requests`). Nil: no limit.
    package var maxRequestsPerConnection: Int? = 10_000
    /// Bytes of pipelined input buffered while a request is being handled; beyond it the server stops
    /// reading that connection until the response is written.
    package var maxPipelinedBytes: Int = 64 * 1024
    /// Parser limits: request line (414), header line / section / count (431), chunk extensions and
    /// trailers (400). `parser.maxBodySize` is `maxBodyBytes`.
    package var parser: ParserLimits = ParserLimits()
    /// First wait after `accept` fails with EMFILE/ENFILE/ENOBUFS/ENOMEM; doubles up to
    /// `acceptBackoffMax` while the error persists.
    package var acceptBackoffInitial: Duration = .milliseconds(10)
    package var acceptBackoffMax: Duration = .seconds(1)

    package init() {}

    /// Default body limit of every route (routes may set their own, smaller or larger). A larger
    /// Content-Length is answered 413 before any body byte is read.
    package var maxBodyBytes: Int {
        get { parser.maxBodySize }
        set { parser.maxBodySize = newValue }
    }
}

/// How the access log (one line per response) is written.
package enum AccessLogFormat: String, Sendable, Hashable, CaseIterable {
    /// Message `GET /v1/match 200`, every field as swift-log metadata (`request_id`, `method`, `path`,
    /// `route`, `status`, `bytes_in`, `bytes_out`, `duration_ms`, `peer`).
    case text
    /// The message is one JSON object with the same fields and no metadata.
    case json
    /// No access log.
    case off
}

/// Everything about how the server listens and behaves, apart from its routes.
package struct ServerConfiguration: Sendable {
    /// Numeric listen address: "0.0.0.0", "::" (dual-stack), "127.0.0.1", "::1".
    package var host: String = "0.0.0.0"
    /// 0 picks a free port (tests); read it back from `Server.localAddress`.
    package var port: Int = 8080
    package var backlog: Int32 = 1024
    /// Event-loop threads (epoll), each owning a share of the connections.
    /// Half the cores: the rest is for the handlers (inference) and, on a loopback benchmark, the client.
    /// Measured on 2 cores (make bench-http): 1 loop served 57.7k req/s at p99 1.4 ms; 2 loops 48.3k at 4.0 ms.
    package var eventLoopCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
    /// Most threads running `.pooled` handlers at once (threads are started on demand). Requests beyond
    /// it wait for a free thread; admission control belongs to the service.
    package var maxHandlerThreads: Int = 64
    package var limits: ServerLimits = ServerLimits()
    package var parserOptions: ParserOptions = ParserOptions()
    package var accessLogFormat: AccessLogFormat = .text
    package var accessLogLevel: Logger.Level = .info
    /// Prefix of the problem+json `type` member: `type = problemTypeBase + code`. Point it at the
    /// service's error documentation, e.g. "https://docs.example.com/errors/".
    package var problemTypeBase: String = "/problems/"
    /// Added to every response (a field the handler or the response hook set wins).
    package var defaultHeaders: HTTPHeaders = [:]

    package init() {}

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}
