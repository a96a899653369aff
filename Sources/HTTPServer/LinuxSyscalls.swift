import Glibc

/// The Linux calls that Swift's `Glibc` module does not export (`<sys/epoll.h>`, `<sys/eventfd.h>` and
/// the `_GNU_SOURCE` `accept4`), looked up once with `dlsym` and called through C function pointers.
///
/// A C shim target would be the usual way (SwiftNIO's CNIOLinux, FlyingFox's CSystemLinux), but this
/// module has no C target. The signatures below are the glibc prototypes; `epoll_event` is handled as
/// raw bytes because it is `__attribute__((packed))` on x86_64 (12 bytes) and not on other
/// architectures (16 bytes).
struct LinuxSyscalls: Sendable {
    typealias EpollCreate1 = @convention(c) (Int32) -> Int32
    typealias EpollCtl = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    typealias EpollWait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    typealias EventFD = @convention(c) (UInt32, Int32) -> Int32
    typealias Accept4 = @convention(c) (
        Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32
    ) -> Int32

    let epollCreate1: EpollCreate1
    let epollCtl: EpollCtl
    let epollWait: EpollWait
    let eventfd: EventFD
    let accept4: Accept4

    static let shared: LinuxSyscalls = {
        func symbol<T>(_ name: String, as type: T.Type) -> T {
            guard let pointer = dlsym(nil, name) else {
                fatalError("HTTPServer: libc symbol \(name) not found")
            }
            return unsafeBitCast(pointer, to: type)
        }
        return LinuxSyscalls(
            epollCreate1: symbol("epoll_create1", as: EpollCreate1.self),
            epollCtl: symbol("epoll_ctl", as: EpollCtl.self),
            epollWait: symbol("epoll_wait", as: EpollWait.self),
            eventfd: symbol("eventfd", as: EventFD.self),
            accept4: symbol("accept4", as: Accept4.self)
        )
    }()

    // <sys/epoll.h> constants (the same on every Linux architecture Swift supports).
    static let epollIn: UInt32 = 0x001
    static let epollOut: UInt32 = 0x004
    static let epollErr: UInt32 = 0x008
    static let epollHup: UInt32 = 0x010
    static let epollRdHup: UInt32 = 0x2000
    static let epollCtlAdd: Int32 = 1
    static let epollCtlDel: Int32 = 2
    static let epollCtlMod: Int32 = 3

    #if arch(x86_64)
    /// `sizeof(struct epoll_event)`: packed on x86_64.
    static let epollEventSize = 12
    #else
    static let epollEventSize = 16
    #endif
    /// Offset of `data` in `struct epoll_event`.
    static let epollDataOffset = epollEventSize == 12 ? 4 : 8
}

/// The last `errno`, read at once (it is only meaningful right after a failing call).
@inline(__always)
func currentErrno() -> Int32 { errno }

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

extension Duration {
    /// Whole nanoseconds, clamped to `0...UInt64.max / 4`.
    var nanosecondsClamped: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        if seconds > 1_000_000_000 { return 1_000_000_000 * 1_000_000_000 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// Seconds as a Double.
    var secondsDouble: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
