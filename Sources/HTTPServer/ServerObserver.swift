import HTTP1

/// One answered request, as reported to `ServerObserver.requestCompleted` and the access log.
package struct RequestCompletion: Sendable, Hashable {
    package var requestID: String
    /// The method, or "-" when the request line could not be parsed.
    package var method: String
    /// The normalized path, or "-" when unknown. High cardinality: logs only, never a metric label.
    package var path: String
    /// The matched route template, or nil when no route matched (404, 405, parser rejections...).
    /// Low cardinality: safe as a metric label.
    package var route: String?
    package var status: Int
    /// Request body bytes received.
    package var requestBodyBytes: Int
    /// Response body bytes sent (0 for HEAD).
    package var responseBodyBytes: Int
    /// From the request's first byte to the response being queued for writing.
    package var duration: Duration
    package var peer: SocketAddress
}

/// Why the server refused or cut short a request or a connection (low-cardinality labels).
package enum RejectionReason: Hashable, Sendable, CustomStringConvertible {
    /// The parser refused the request (framing, syntax, size). `kind` is the `ParseError.Code`.
    case parseError(ParseError.Code)
    /// The request head did not arrive within `headerReadTimeout`.
    case headerTimeout
    /// The body stalled for `bodyIdleTimeout`.
    case bodyTimeout
    /// The client did not read the response within `responseWriteTimeout`.
    case writeTimeout
    /// The handler did not finish within `requestDeadline`.
    case deadlineExceeded
    /// Above `maxConnections`.
    case connectionLimit
    /// Content-Length above the route's limit (answered before reading the body).
    case bodyTooLarge
    /// `Expect` other than 100-continue.
    case expectationFailed
    /// Cut short by `Server.shutdown(grace:)` running out of time.
    case shutdown
    /// `accept` failed with EMFILE/ENFILE/ENOBUFS/ENOMEM; the accept loop backs off.
    case acceptResourceExhausted

    /// A stable label for metrics (`spherecorr_http_parse_errors_total{kind=...}` and the like).
    package var label: String {
        switch self {
        case .parseError(let code): code.rawValue
        case .headerTimeout: "header_timeout"
        case .bodyTimeout: "body_timeout"
        case .writeTimeout: "write_timeout"
        case .deadlineExceeded: "deadline_exceeded"
        case .connectionLimit: "connection_limit"
        case .bodyTooLarge: "body_too_large"
        case .expectationFailed: "expectation_failed"
        case .shutdown: "shutdown"
        case .acceptResourceExhausted: "accept_resource_exhausted"
        }
    }

    package var description: String { label }
}

/// Hooks for metrics, without a metrics dependency. Every method has an empty default. Calls come
/// from event-loop threads: keep them short and non-blocking (increment counters, observe histograms).
package protocol ServerObserver: Sendable {
    /// A connection was accepted and is being served.
    func connectionOpened(peer: SocketAddress)
    /// A served connection was closed after `requests` responses.
    func connectionClosed(peer: SocketAddress, requests: Int)
    /// A response was queued (every response, including problems).
    func requestCompleted(_ completion: RequestCompletion)
    /// The server refused or cut short a request or connection. `status` is the status sent, if any.
    func requestRejected(_ reason: RejectionReason, status: Int?, peer: SocketAddress)
    /// A TLS handshake failed (or timed out); the connection was closed without a request.
    func tlsHandshakeFailed(_ reason: TLSHandshakeFailure, peer: SocketAddress)
}

extension ServerObserver {
    package func connectionOpened(peer: SocketAddress) {}
    package func connectionClosed(peer: SocketAddress, requests: Int) {}
    package func requestCompleted(_ completion: RequestCompletion) {}
    package func requestRejected(_ reason: RejectionReason, status: Int?, peer: SocketAddress) {}
    package func tlsHandshakeFailed(_ reason: TLSHandshakeFailure, peer: SocketAddress) {}
}

/// Observes nothing.
package struct NoOpServerObserver: ServerObserver {
    package init() {}
}
