import Dispatch
import Foundation
import Synchronization

/// Threads that run `.pooled` handlers. Threads are started on demand up to `maxThreads` and then
/// kept; jobs beyond that wait in FIFO order.
///
/// Why not a Dispatch concurrent queue: on Linux, libdispatch adds threads to its pool slowly when
/// work items block (measured here: 40 jobs sleeping 0.5 s on a concurrent queue took 4.5 s, about
/// four threads), so seconds-long blocking handlers would queue behind each other.
final class HandlerPool: Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        /// Threads parked on `wakeup` that no submitter has claimed yet.
        var idle = 0
        var threads = 0
        var stopped = false

        mutating func pop() -> (@Sendable () -> Void)? {
            guard head < jobs.count else { return nil }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)
    private let exited = DispatchGroup()
    let maxThreads: Int
    private let name: String

    init(maxThreads: Int, name: String = "http-handler") {
        self.maxThreads = max(1, maxThreads)
        self.name = name
    }

    /// Queues `job`. Returns false when the pool is stopped (the job is not run).
    @discardableResult
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        enum Action { case none, wake, spawn(Int), refuse }
        let action: Action = state.withLock { s in
            if s.stopped { return .refuse }
            s.jobs.append(job)
            if s.idle > 0 {
                s.idle -= 1
                return .wake
            }
            if s.threads < maxThreads {
                s.threads += 1
                return .spawn(s.threads)
            }
            return .none
        }
        switch action {
        case .refuse: return false
        case .none: break
        case .wake: wakeup.signal()
        case .spawn(let number):
            exited.enter()
            let thread = Thread { [self] in
                self.work()
                self.exited.leave()
            }
            thread.name = "\(name)-\(number)"
            thread.start()
        }
        return true
    }

    private func work() {
        while true {
            enum Next { case run(@Sendable () -> Void), park, exit }
            let next: Next = state.withLock { s in
                if let job = s.pop() { return .run(job) }
                if s.stopped { return .exit }
                s.idle += 1
                return .park
            }
            switch next {
            case .run(let job): job()
            case .park: wakeup.wait()
            case .exit: return
            }
        }
    }

    /// Stops taking jobs; threads finish the queued ones and exit. Waits for them up to `timeout`.
    func stop(timeout: DispatchTime) {
        let parked: Int = state.withLock { s in
            s.stopped = true
            let n = s.idle
            s.idle = 0
            return n
        }
        for _ in 0..<parked { wakeup.signal() }
        _ = exited.wait(timeout: timeout)
    }
}
