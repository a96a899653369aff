import Foundation
import Kernels
import Runtime
import Synchronization

/// The bound of `--queue-size`, shared by everything a request can wait for: the decode budget and the inference
/// executor. Waiting requests hold their bodies (up to `--max-body-bytes` each), so one bound covers both waits.
package final class WaitingRoom: Sendable {
    package let capacity: Int
    private let count = Atomic<Int>(0)

    package init(capacity: Int) { self.capacity = max(0, capacity) }

    /// Requests waiting now, in either queue.
    package var occupied: Int { count.load(ordering: .relaxed) }

    /// Takes a place, or false when all `capacity` places are taken.
    package func enter() -> Bool {
        var current = count.load(ordering: .relaxed)
        while current < capacity {
            let (exchanged, original) = count.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    package func leave() { count.subtract(1, ordering: .acquiringAndReleasing) }
}

/// One inference at a time (the backbone already uses every core), behind a bounded FIFO queue.
/// A request that cannot queue is refused at once (503 overloaded); one that waits past its deadline
/// gets 503 deadline_exceeded; one whose client went away is dropped before it runs.
package final class InferenceQueue: Sendable {
    package enum Rejection: Error, Equatable, Sendable {
        case overloaded(queued: Int)
        case deadlineExceeded
        case cancelled
        case draining
    }

    private struct State {
        var nextTicket = 0
        var serving = 0          // the ticket whose turn it is
        var waiting = 0
        var running = false
        var draining = false
        var abandoned: Set<Int> = []
        var waitEWMA = 0.0       // seconds, for Retry-After
    }

    private let state = Mutex(State())
    private let condition = NSCondition()
    package let maxQueue: Int
    private let room: WaitingRoom

    /// `room`: the places shared with other queues (default: `maxQueue` places of this queue's own).
    package init(maxQueue: Int, room: WaitingRoom? = nil) {
        self.maxQueue = max(0, maxQueue)
        self.room = room ?? WaitingRoom(capacity: maxQueue)
    }

    package var depth: Int { state.withLock { $0.waiting } }
    package var inflight: Int { state.withLock { $0.running ? 1 : 0 } }
    /// Seconds a client should wait before retrying, from recent queue waits (at least 1).
    package var retryAfterSeconds: Int { max(1, Int(state.withLock { $0.waitEWMA }.rounded(.up))) }

    /// Stops admitting new work; queued work still runs (the server drains it).
    package func drain() { state.withLock { $0.draining = true } }

    /// Runs `work` when its turn comes. `isCancelled` is polled while waiting.
    /// Returns the seconds spent waiting and the work's result.
    package func run<T>(deadline: ContinuousClock.Instant, isCancelled: @escaping () -> Bool,
                        _ work: () throws -> T) throws -> (wait: Double, value: T) {
        let t0 = Measure.now()
        let admitted: Result<(ticket: Int, entered: Bool), Rejection> = state.withLock { s in
            if s.draining { return .failure(.draining) }
            // Only a request that has to wait takes a place in the waiting room.
            var entered = false
            if s.running || s.waiting > 0 {
                guard room.enter() else { return .failure(.overloaded(queued: s.waiting)) }
                entered = true
            }
            let t = s.nextTicket
            s.nextTicket += 1
            s.waiting += 1
            return .success((t, entered))
        }
        let (ticket, entered) = try admitted.get()
        condition.lock()
        while true {
            let ready = state.withLock { s -> Bool in
                // Skip tickets whose holders gave up.
                while s.abandoned.contains(s.serving) { s.abandoned.remove(s.serving); s.serving += 1 }
                return !s.running && s.serving == ticket
            }
            if ready { break }
            let stop: Rejection? = isCancelled() ? .cancelled : (ContinuousClock.now >= deadline ? .deadlineExceeded : nil)
            if let stop {
                state.withLock { s in
                    s.waiting -= 1
                    if s.serving == ticket { s.serving += 1 } else { s.abandoned.insert(ticket) }
                }
                if entered { room.leave() }
                condition.broadcast()
                condition.unlock()
                throw stop
            }
            _ = condition.wait(until: Date().addingTimeInterval(0.05))
        }
        let waited = Measure.now() - t0
        state.withLock { s in
            s.waiting -= 1
            s.running = true
            s.waitEWMA = 0.8 * s.waitEWMA + 0.2 * waited
        }
        if entered { room.leave() }
        condition.unlock()
        defer {
            state.withLock { s in s.running = false; s.serving += 1 }
            condition.broadcast()
        }
        return (waited, try work())
    }
}
