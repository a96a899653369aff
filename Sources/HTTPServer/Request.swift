import HTTP1
import Synchronization

/// One `name=value` pair of the query string, percent-decoded (`+` is a space).
package struct QueryItem: Hashable, Sendable {
    package var name: String
    package var value: String

    package init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Splits `a=1&b=two%20words&flag` into items. Malformed escapes are kept literally.
    package static func parse(_ query: some StringProtocol) -> [QueryItem] {
        var items: [QueryItem] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = pair.firstIndex(of: "=") {
                items.append(QueryItem(name: decode(pair[..<eq]), value: decode(pair[pair.index(after: eq)...])))
            } else {
                items.append(QueryItem(name: decode(pair), value: ""))
            }
        }
        return items
    }

    private static func decode(_ s: some StringProtocol) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20)
                i += 1
            } else if b == UInt8(ascii: "%"), i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

/// Whether the client of a request is still there. Shared between the connection's event loop (which
/// sets it) and the handler (which reads it), so slow work for a client that has gone can be dropped.
package final class ClientLink: Sendable {
    private let flags = Atomic<UInt8>(0)

    static let inputClosedFlag: UInt8 = 1
    static let resetFlag: UInt8 = 2
    static let closedByServerFlag: UInt8 = 4

    package init() {}

    /// False once the client closed its side (FIN), reset the connection, or the server closed it
    /// (deadline, shutdown). A client that only half-closes after sending its request (rare) also reads
    /// as disconnected here, although it still receives the response.
    package var isConnected: Bool { flags.load(ordering: .acquiring) == 0 }
    /// The client sent FIN (it closed, or half-closed, its side).
    package var inputClosed: Bool { flags.load(ordering: .acquiring) & Self.inputClosedFlag != 0 }
    /// The connection was reset or failed; nothing can be sent any more.
    package var wasReset: Bool { flags.load(ordering: .acquiring) & Self.resetFlag != 0 }
    /// No response can reach the client any more: it reset the connection, or the server closed it
    /// (deadline, shutdown). Unlike `isConnected`, a half-closed client is not gone.
    package var isGone: Bool { flags.load(ordering: .acquiring) & (Self.resetFlag | Self.closedByServerFlag) != 0 }

    func set(_ flag: UInt8) {
        flags.bitwiseOr(flag, ordering: .acquiringAndReleasing)
    }
}

/// A complete request as a handler sees it.
package struct Request: Sendable {
    /// The parsed request line and fields (duplicates kept, original order).
    package var head: RequestHead
    /// The normalized, percent-decoded path that was routed (SERVICE-NOTES S11).
    package var path: String
    /// The path template of the matched route (for metrics labels).
    package var route: String
    package var queryItems: [QueryItem]
    /// The whole body, de-chunked; at most the route's body limit.
    package var body: [UInt8]
    /// The incoming `X-Request-Id` when valid, else a generated one. Echoed on the response.
    package var id: String
    package var peer: SocketAddress
    /// When the server stops waiting for the handler (`ServerLimits.requestDeadline` after the
    /// request's first byte).
    package var deadline: ContinuousClock.Instant
    /// The connection state seen by the event loop.
    package var client: ClientLink

    package init(
        head: RequestHead, path: String, route: String, queryItems: [QueryItem] = [], body: [UInt8] = [],
        id: String = "test", peer: SocketAddress = .unknown,
        deadline: ContinuousClock.Instant = .now + .seconds(120), client: ClientLink = ClientLink()
    ) {
        self.head = head
        self.path = path
        self.route = route
        self.queryItems = queryItems
        self.body = body
        self.id = id
        self.peer = peer
        self.deadline = deadline
        self.client = client
    }

    package var method: HTTPMethod { head.method }
    package var headers: HTTPHeaders { head.headers }
    package var version: HTTPVersion { head.version }
    /// The first query item named `name`.
    package func query(_ name: String) -> String? { queryItems.first { $0.name == name }?.value }
    /// Whether the client is still connected (see `ClientLink.isConnected`).
    package var isClientConnected: Bool { client.isConnected }
}

extension Response {
    /// A `text/plain; charset=utf-8` response.
    package static func text(_ text: String, status: HTTPStatus = .ok, headers: HTTPHeaders = [:]) -> Response {
        var fields = headers
        fields.replaceOrAdd(name: "Content-Type", value: "text/plain; charset=utf-8")
        return Response(status: status, headers: fields, body: Array(text.utf8))
    }

    /// An `application/json` response from already-encoded bytes.
    package static func json(_ body: [UInt8], status: HTTPStatus = .ok, headers: HTTPHeaders = [:]) -> Response {
        var fields = headers
        fields.replaceOrAdd(name: "Content-Type", value: "application/json")
        return Response(status: status, headers: fields, body: body)
    }
}
