/// The K-th of N disjoint, deterministic parts of an ordered list (K from 0): `evaluate --shard K/N` over pairs,
/// `cache-features --shard K/N` over images, `fit --shard K/N` over the view cache's images. Running all N covers
/// the list exactly once, so N machines (a Kubernetes Indexed Job: K = JOB_COMPLETION_INDEX) do the work of one run.
package struct Shard: Sendable, Equatable, CustomStringConvertible {
    package let index: Int
    package let count: Int

    package init(index: Int, count: Int) throws(ShardError) {
        guard count >= 1, (0..<count).contains(index) else {
            throw ShardError(message: "--shard K/N needs N ≥ 1 and 0 ≤ K < N (K counts from 0); got \(index)/\(count)")
        }
        self.index = index; self.count = count
    }

    /// "K/N".
    package init(parsing text: String) throws(ShardError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardError(message: "--shard takes K/N (e.g. 0/4 … 3/4); got '\(text)'")
        }
        try self.init(index: k, count: n)
    }

    package var description: String { "\(index)/\(count)" }

    /// Items ⌊total·K/N⌋ ..< ⌊total·(K+1)/N⌋: contiguous (neighbours, such as a category's images, mostly stay in one
    /// shard) and sizes within one of each other.
    package func range(total: Int) -> Range<Int> { total * index / count ..< total * (index + 1) / count }
}

package struct ShardError: Error, Equatable, CustomStringConvertible {
    package var message: String
    package var description: String { message }
}
