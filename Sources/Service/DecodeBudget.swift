import Foundation
import Kernels
import Runtime
import Synchronization

/// Admission of image decodes by memory (issue #16). Decodes run on the handler threads, before a request
/// reaches the inference queue, so neither `--queue-size` nor the thread count bounds them: a 0.3 MB PNG can cost
/// 430 MB to decode. Each decode declares its cost (from the image header, before any pixel exists) and starts
/// only while the bytes in flight stay within `capacity`.
///
/// Like `InferenceQueue`: first come, first served (a large decode is not starved by small ones); requests wait in
/// the places of the `WaitingRoom` they share with it (`--queue-size`), beyond that `overloaded`; a request whose deadline passes while waiting gets
/// `deadlineExceeded`; one whose client went away is dropped. One cost above the whole capacity can never start:
/// `tooLarge`, at once.
package final class DecodeBudget: Sendable {
    package enum Rejection: Error, Equatable, Sendable {
        case tooLarge(bytes: Int, capacity: Int)
        case overloaded(waiting: Int)
        case deadlineExceeded
        case cancelled
    }

    private struct State {
        var inFlight = 0
        var waiting = 0
        var nextTicket = 0
        var serving = 0              // the ticket allowed to start next
        var abandoned: Set<Int> = []
        var refused: [String: Int] = ["overloaded": 0, "deadline": 0, "too_large": 0]
        var waitEWMA = 0.0           // seconds, for Retry-After
    }

    package let capacity: Int
    private let room: WaitingRoom
    private let state = Mutex(State())
    private let condition = NSCondition()

    /// `room`: the waiting places, shared with the inference queue (`--queue-size` bounds both waits together).
    package init(capacity: Int, room: WaitingRoom) {
        self.capacity = max(1, capacity)
        self.room = room
    }

    /// Places for waiting requests (shared with the inference queue).
    package var maxWaiting: Int { room.capacity }

    /// Bytes of decodes admitted and not yet released.
    package var inFlight: Int { state.withLock { $0.inFlight } }
    /// Requests waiting for room.
    package var waiting: Int { state.withLock { $0.waiting } }
    /// Refusals so far by reason: overloaded, deadline, too_large.
    package var refused: [String: Int] { state.withLock { $0.refused } }
    /// Seconds a refused client should wait before retrying (at least 1).
    package var retryAfterSeconds: Int { max(1, Int(state.withLock { $0.waitEWMA }.rounded(.up))) }

    /// Waits until `bytes` fit, then counts them in flight; the caller must `release` them (all, or in parts).
    /// `isCancelled` is polled while waiting. Returns the seconds waited.
    @discardableResult
    package func acquire(_ bytes: Int, deadline: ContinuousClock.Instant, isCancelled: () -> Bool) throws(Rejection) -> Double {
        let t0 = Measure.now()
        let admitted: Result<Int?, Rejection> = state.withLock { s in
            if bytes > capacity {
                s.refused["too_large", default: 0] += 1
                return .failure(.tooLarge(bytes: bytes, capacity: capacity))
            }
            // Nobody ahead and room now: start without queueing.
            if s.waiting == 0 && s.serving == s.nextTicket && s.inFlight + bytes <= capacity {
                s.inFlight += bytes
                s.nextTicket += 1
                s.serving += 1
                return .success(nil)
            }
            guard room.enter() else {
                s.refused["overloaded", default: 0] += 1
                return .failure(.overloaded(waiting: room.occupied))
            }
            let t = s.nextTicket
            s.nextTicket += 1
            s.waiting += 1
            return .success(t)
        }
        guard let ticket = try admitted.get() else { return 0 }
        defer { room.leave() }
        condition.lock()
        defer { condition.unlock() }
        while true {
            let started = state.withLock { s -> Bool in
                while s.abandoned.contains(s.serving) { s.abandoned.remove(s.serving); s.serving += 1 }
                guard s.serving == ticket, s.inFlight + bytes <= capacity else { return false }
                s.inFlight += bytes
                s.waiting -= 1
                s.serving += 1
                return true
            }
            if started {
                let waited = Measure.now() - t0
                state.withLock { $0.waitEWMA = 0.8 * $0.waitEWMA + 0.2 * waited }
                condition.broadcast()  // the next ticket may fit too
                return waited
            }
            let stop: Rejection? = isCancelled() ? .cancelled : (ContinuousClock.now >= deadline ? .deadlineExceeded : nil)
            if let stop {
                state.withLock { s in
                    s.waiting -= 1
                    if s.serving == ticket { s.serving += 1 } else { s.abandoned.insert(ticket) }
                    if stop == .deadlineExceeded { s.refused["deadline", default: 0] += 1 }
                }
                condition.broadcast()
                throw stop
            }
            _ = condition.wait(until: Date().addingTimeInterval(0.05))
        }
    }

    /// Returns `bytes` of an earlier `acquire` (a decode finished, or shrank to what it keeps).
    package func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        state.withLock { s in
            precondition(s.inFlight >= bytes, "released more decode bytes than acquired")
            s.inFlight -= bytes
        }
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// A default capacity: a quarter of the memory this process may use (the cgroup limit when there is one,
    /// else physical memory), at least 256 MiB. The rest is for the model, the feature cache, the buffers of
    /// inference and the request bodies.
    package static func defaultCapacity() -> Int {
        var memory = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
           let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
            memory = min(memory, limit)
        }
        return max(256 << 20, memory / 4)
    }
}
