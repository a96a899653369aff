import Glibc

/// A failed socket call: the operation and the `errno` captured right after it failed.
package struct SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    package var operation: String
    package var errno: Int32

    package init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// Captures `errno` now; call it immediately after the failing call.
    static func last(_ operation: String) -> SocketError {
        SocketError(operation: operation, errno: currentErrno())
    }

    package var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// An IPv4 or IPv6 address and port, as given to `bind` or returned by `accept`.
package enum SocketAddress: Hashable, Sendable, CustomStringConvertible {
    case ipv4(host: String, port: Int)
    case ipv6(host: String, port: Int)
    case unknown

    package var host: String {
        switch self {
        case .ipv4(let host, _), .ipv6(let host, _): host
        case .unknown: "?"
        }
    }

    package var port: Int {
        switch self {
        case .ipv4(_, let port), .ipv6(_, let port): port
        case .unknown: 0
        }
    }

    package var description: String {
        switch self {
        case .ipv4(let host, let port): "\(host):\(port)"
        case .ipv6(let host, let port): "[\(host)]:\(port)"
        case .unknown: "unknown"
        }
    }

    /// Reads a `sockaddr_storage` filled by the kernel.
    init(_ storage: UnsafePointer<sockaddr_storage>) {
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            self = storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                .ipv4(host: Self.text(AF_INET, sin.pointee.sin_addr, capacity: Int(INET_ADDRSTRLEN)),
                      port: Int(UInt16(bigEndian: sin.pointee.sin_port)))
            }
        case AF_INET6:
            self = storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                .ipv6(host: Self.text(AF_INET6, sin6.pointee.sin6_addr, capacity: Int(INET6_ADDRSTRLEN)),
                      port: Int(UInt16(bigEndian: sin6.pointee.sin6_port)))
            }
        default:
            self = .unknown
        }
    }

    /// inet_ntop's text of an `in_addr` or `in6_addr` (`capacity`: INET_ADDRSTRLEN or INET6_ADDRSTRLEN).
    private static func text<Address>(_ family: Int32, _ address: Address, capacity: Int) -> String {
        var addr = address
        var text = [CChar](repeating: 0, count: capacity)
        inet_ntop(family, &addr, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self)
    }
}

/// What a non-blocking `recv` or `send` did.
enum IOOutcome: Equatable {
    /// This many bytes were transferred (never 0).
    case transferred(Int)
    /// EAGAIN / EWOULDBLOCK: try again when epoll says so.
    case wouldBlock
    /// `recv` returned 0: the peer shut down its sending side.
    case endOfFile
}

/// A thin wrapper over one socket file descriptor and the Glibc calls the server makes on it.
///
/// Every call retries `EINTR`, captures `errno` at the call site into a `SocketError`, and never raises
/// SIGPIPE (`send` uses `MSG_NOSIGNAL`; the server also ignores SIGPIPE process-wide). The wrapper does
/// not own the descriptor: whoever created it calls `close()` exactly once.
package struct Socket: Hashable, Sendable {
    package let fd: Int32

    package init(fd: Int32) { self.fd = fd }

    // MARK: Listening

    /// A non-blocking listening TCP socket bound to `host` (a numeric IPv4 or IPv6 address such as
    /// "0.0.0.0", "::" or "127.0.0.1"; brackets around IPv6 are allowed) and `port` (0 picks a free port;
    /// read it back with `localAddress()`). `SO_REUSEADDR` is set; "::" is dual-stack (IPV6_V6ONLY off).
    package static func listen(host: String, port: Int, backlog: Int32) throws(SocketError) -> Socket {
        guard (0...65535).contains(port) else { throw SocketError(operation: "bind (port \(port))", errno: EINVAL) }
        var bare = host
        if bare.hasPrefix("["), bare.hasSuffix("]") { bare = String(bare.dropFirst().dropLast()) }

        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 {
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    sin.pointee.sin_family = sa_family_t(AF_INET)
                    sin.pointee.sin_port = UInt16(port).bigEndian
                    sin.pointee.sin_addr = v4
                }
            }
        } else if inet_pton(AF_INET6, bare, &v6) == 1 {
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                    sin6.pointee.sin6_port = UInt16(port).bigEndian
                    sin6.pointee.sin6_addr = v6
                }
            }
        } else {
            throw SocketError(operation: "listen address \"\(host)\" is not a numeric IPv4 or IPv6 address", errno: EINVAL)
        }

        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError.last("socket") }
        let sock = Socket(fd: fd)
        do throws(SocketError) {
            try sock.setOption(SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)")
            if family == AF_INET6 {
                try sock.setOption(Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0, "setsockopt(IPV6_V6ONLY)")
            }
            let bound = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            guard bound == 0 else { throw SocketError.last("bind \(host):\(port)") }
            guard Glibc.listen(fd, backlog) == 0 else { throw SocketError.last("listen") }
        } catch {
            sock.close()
            throw error
        }
        return sock
    }

    /// The address the socket is bound to (`getsockname`).
    package func localAddress() throws(SocketError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { throw SocketError.last("getsockname") }
        return SocketAddress(&storage)
    }

    /// Accepts one connection as a non-blocking, close-on-exec socket. Nil when none is pending.
    /// Throws on real errors, including EMFILE/ENFILE (the caller backs off).
    func accept() throws(SocketError) -> (Socket, SocketAddress)? {
        var storage = sockaddr_storage()
        while true {
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    LinuxSyscalls.shared.accept4(fd, $0, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                }
            }
            if client >= 0 { return (Socket(fd: client), SocketAddress(&storage)) }
            let error = currentErrno()
            switch error {
            case EINTR: continue
            // The peer gave up while queued: nothing to accept, try the next one.
            case ECONNABORTED, EPROTO: continue
            case EAGAIN, EWOULDBLOCK: return nil
            default: throw SocketError(operation: "accept4", errno: error)
            }
        }
    }

    // MARK: Connected sockets

    /// One non-blocking `recv` into `buffer`.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SocketError) -> IOOutcome {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return .transferred(n) }
            if n == 0 { return .endOfFile }
            let error = currentErrno()
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw SocketError(operation: "recv", errno: error)
            }
        }
    }

    /// One non-blocking `send` with `MSG_NOSIGNAL` (a reset peer gives EPIPE/ECONNRESET, never SIGPIPE).
    func send(_ bytes: UnsafeRawBufferPointer) throws(SocketError) -> IOOutcome {
        if bytes.isEmpty { return .transferred(0) }
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return n == 0 ? .wouldBlock : .transferred(n) }
            let error = currentErrno()
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw SocketError(operation: "send", errno: error)
            }
        }
    }

    /// TCP_NODELAY: responses are written whole, so Nagle only adds latency.
    func setNoDelay() {
        try? setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)")
    }

    /// Stops sending (FIN) while still reading: the first half of a lingering close.
    func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Stops reading: wakes a thread blocked in `accept` on this socket.
    func shutdownRead() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RD))
    }

    package func close() {
        // Linux closes the descriptor even when close(2) reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    private func setOption(_ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws(SocketError) {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketError.last(what)
        }
    }
}

/// Ignores SIGPIPE for the whole process (idempotent). A write to a reset socket then fails with
/// EPIPE instead of killing the process; `MSG_NOSIGNAL` covers `send`, this covers everything else.
package func ignoreSIGPIPE() {
    _ = signal(SIGPIPE, SIG_IGN)
}
