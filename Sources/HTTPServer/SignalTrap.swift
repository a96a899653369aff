import Dispatch
import Glibc
import Synchronization

/// Write end of the self-pipe that the C signal handler writes the signal number to (-1: none yet).
/// An atomic so the async-signal-safe handler can read it without locks.
private let signalPipeWriteFD = Atomic<Int32>(-1)

/// Turns SIGTERM/SIGINT into a callback on a Dispatch queue, also when the process is PID 1 in a
/// container (SERVICE-NOTES §4.4, G3, G4).
///
/// The first signal calls `onSignal`; any later one calls `onRepeat` (by default: exit immediately with
/// status 128 + signal, SERVICE-NOTES G4).
///
/// How: a real `sigaction` handler (so the kernel's default action — which PID 1 does not get anyway —
/// is replaced) writes the signal number to a pipe, and a `DispatchSourceRead` on the pipe runs the
/// callback. Measured on this machine: a plain `DispatchSource.makeSignalSource` with `SIG_IGN` lost
/// 1 SIGTERM in 6 when other threads did not block the signal (the kernel drops an ignored signal
/// delivered to such a thread), while the pipe lost none in 16, also as PID 1 under
/// `unshare --pid --fork`.
///
/// Keep the returned trap alive (e.g. in a local of `main`) for as long as signals should be handled.
package final class SignalTrap {
    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    private let source: any DispatchSourceRead
    private let counter: Counter

    private init(source: any DispatchSourceRead, counter: Counter) {
        self.source = source
        self.counter = counter
    }

    /// Installs the trap. Call once per process, early (before the server starts).
    /// - Parameters:
    ///   - signals: the signals to trap.
    ///   - queue: where `onSignal` runs. It may block (a graceful shutdown does): later signals are
    ///     read on a separate internal queue, so a second signal still exits at once.
    ///   - onSignal: the first signal, e.g. `server.shutdown(grace:)`.
    ///   - onRepeat: every later signal, on the internal queue; defaults to `_exit(128 + signal)`.
    package static func install(
        signals: [Int32] = [SIGTERM, SIGINT],
        queue: DispatchQueue = DispatchQueue(label: "HTTPServer.signals"),
        onRepeat: (@Sendable (Int32) -> Void)? = nil,
        onSignal: @escaping @Sendable (Int32) -> Void
    ) -> SignalTrap {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fatalError("SignalTrap: pipe failed: \(SocketError.last("pipe"))") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        let readFD = fds[0]
        let previous = signalPipeWriteFD.exchange(fds[1], ordering: .acquiringAndReleasing)
        if previous >= 0 { Glibc.close(previous) }

        let source = DispatchSource.makeReadSource(fileDescriptor: readFD, queue: DispatchQueue(label: "HTTPServer.signal-pipe"))
        let counter = Counter()
        let trap = SignalTrap(source: source, counter: counter)
        source.setEventHandler {
            var byte: UInt8 = 0
            while Glibc.read(readFD, &byte, 1) == 1 {
                let signal = Int32(byte)
                let seen = counter.value.wrappingAdd(1, ordering: .relaxed).newValue
                if seen == 1 {
                    queue.async { onSignal(signal) }
                } else if let onRepeat {
                    onRepeat(signal)
                } else {
                    _exit(128 + signal)
                }
            }
        }
        source.resume()

        for signal in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in
                // Async-signal-safe: an atomic load and write(2).
                var byte = UInt8(truncatingIfNeeded: signal)
                let fd = signalPipeWriteFD.load(ordering: .acquiring)
                if fd >= 0 { _ = Glibc.write(fd, &byte, 1) }
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            _ = sigaction(signal, &action, nil)
        }
        return trap
    }

    /// How many trapped signals arrived.
    package var signalsReceived: Int { counter.value.load(ordering: .relaxed) }
}
