import Dispatch

/// A raw pointer handed to parallel workers. Workers touch disjoint ranges and the storage outlives
/// the call. This is the one place where the Swift 6 Sendable check is waived for kernel buffers.
package struct Shared<T>: @unchecked Sendable {
    package let base: UnsafeMutablePointer<T>
    package init(_ base: UnsafeMutablePointer<T>) { self.base = base }
    package init(_ base: UnsafePointer<T>) { self.base = UnsafeMutablePointer(mutating: base) }
}

/// The single threading owner of the engine: our Dispatch workers. BLAS libraries are pinned to one
/// thread (`GEMM.pinLibraryThreads`), and each worker calls them on its own slab of rows.
package enum Parallel {
    nonisolated(unsafe) private static var _workers = 1
    private static let lock = DispatchQueue(label: "spherecorr.parallel.config")

    /// Number of workers. Set once at start-up by the executable (`Threading.configure`).
    package static var workers: Int { lock.sync { _workers } }
    package static func setWorkers(_ n: Int) { lock.sync { _workers = max(1, n) } }

    /// Splits `0..<count` into at most `workers` contiguous ranges (each at least `minChunk` long)
    /// and runs `body` on them concurrently. Runs inline when one range suffices.
    package static func forRanges(_ count: Int, minChunk: Int = 1, _ body: @Sendable (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let w = min(workers, max(1, count / max(1, minChunk)))
        if w == 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: w) { i in
            let lo = count * i / w, hi = count * (i + 1) / w
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(i)` for i in 0..<count, distributing indices over the workers.
    package static func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        guard count > 0 else { return }
        if workers == 1 || count == 1 { for i in 0..<count { body(i) }; return }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}
