import Synchronization

/// Owned, 64-byte aligned Float storage for activations. Freed in deinit (large blocks back to `BufferPool`).
/// Not thread-safe by itself: the model hands disjoint slices to workers.
package final class FloatStorage: @unchecked Sendable {
    package let pointer: UnsafeMutablePointer<Float>
    package let count: Int
    private let byteCount: Int

    package init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0)
        byteCount = max(count, 1) * 4
        pointer = BufferPool.shared.take(byteCount: byteCount).bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        if zeroed { pointer.initialize(repeating: 0, count: count) }
    }

    package convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: values.count) }
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(pointer), byteCount: byteCount) }

    package var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    package var array: [Float] { Array(buffer) }
}

/// One model parameter: read-only float32 values and their checkpoint shape, either a zero-copy view into a
/// memory-mapped weight file or owned storage (converted from F16/BF16, fused, trained, random); `owner` keeps the
/// memory alive. The one parameter type of DINOv2 and the sphere bundles.
package struct Parameter: @unchecked Sendable {
    package let pointer: UnsafePointer<Float>
    package let shape: [Int]
    private let owner: AnyObject
    package var count: Int { shape.reduce(1, *) }
    package var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// A view of memory that `owner` keeps alive (a mapped file).
    package init(pointer: UnsafePointer<Float>, shape: [Int], owner: AnyObject) {
        self.pointer = pointer; self.shape = shape; self.owner = owner
    }

    package init(_ values: [Float], shape: [Int]) {
        self.init(storage: FloatStorage(values), shape: shape)
    }

    package init(storage: FloatStorage, shape: [Int]) {
        precondition(storage.count == shape.reduce(1, *), "\(storage.count) values for shape \(shape)")
        self.init(pointer: UnsafePointer(storage.pointer), shape: shape, owner: storage)
    }
}

/// Keeps the large buffers of forward passes for the next pass instead of handing them back to malloc.
///
/// Why: a forward pass allocates tens of MB of activations (and per-call weight and K/V packs) and frees them
/// at the end. Through malloc those blocks interleave with a server's small, long-lived allocations, the heap
/// fragments and resident memory creeps up request after request; returned to the kernel instead (mmap), every
/// pass pays ~10k page faults (measured: 8–25 % slower). Every pass of a model at one resolution asks for the
/// same sizes, so exact-size reuse serves them all after the first pass, and the memory is the working set of
/// one pass. Blocks under `minimumBytes` stay with malloc (its bins serve them well); at most `capacityBytes`
/// are kept, the least recently returned dropped first.
package final class BufferPool: Sendable {
    /// The pool behind `FloatStorage`.
    package static let shared = BufferPool(minimumBytes: 256 << 10, capacityBytes: 768 << 20)
    package let minimumBytes: Int
    package let capacityBytes: Int
    private static let pageBytes = 4096

    private struct State {
        var free: [Int: [(block: UInt, stamp: Int)]] = [:]  // rounded size → block addresses (Sendable)
        var keptBytes = 0
        var clock = 0
        var hits = 0, misses = 0
    }
    private let state = Mutex(State())

    package init(minimumBytes: Int, capacityBytes: Int) {
        self.minimumBytes = minimumBytes; self.capacityBytes = capacityBytes
    }

    deinit { drain() }

    /// A block of at least `byteCount` bytes, 64-byte aligned.
    package func take(byteCount: Int) -> UnsafeMutableRawPointer {
        guard byteCount >= minimumBytes else { return .allocate(byteCount: byteCount, alignment: 64) }
        let size = Self.rounded(byteCount)
        let reused: UInt? = state.withLock { s in
            guard let last = s.free[size]?.popLast() else { s.misses += 1; return nil }
            if s.free[size]!.isEmpty { s.free[size] = nil }
            s.keptBytes -= size
            s.hits += 1
            return last.block
        }
        return UnsafeMutableRawPointer(bitPattern: reused ?? 0) ?? .allocate(byteCount: size, alignment: 64)
    }

    /// Returns a block from `take(byteCount:)` (same `byteCount`).
    package func give(_ block: UnsafeMutableRawPointer, byteCount: Int) {
        guard byteCount >= minimumBytes else { block.deallocate(); return }
        let size = Self.rounded(byteCount)
        guard size <= capacityBytes else { block.deallocate(); return }
        let address = UInt(bitPattern: block), capacity = capacityBytes
        let evicted: [UInt] = state.withLock { s in
            // Make room by dropping the least recently returned blocks (other resolutions, other models).
            var out: [UInt] = []
            while s.keptBytes + size > capacity, let (key, index) = Self.oldest(s.free) {
                out.append(s.free[key]!.remove(at: index).block)
                if s.free[key]!.isEmpty { s.free[key] = nil }
                s.keptBytes -= key
            }
            s.clock += 1
            s.free[size, default: []].append((address, s.clock))
            s.keptBytes += size
            return out
        }
        for e in evicted { UnsafeMutableRawPointer(bitPattern: e)?.deallocate() }
    }

    /// Bytes held for reuse, and how many large requests were served from the pool or from malloc.
    package var statistics: (keptBytes: Int, hits: Int, misses: Int) {
        state.withLock { ($0.keptBytes, $0.hits, $0.misses) }
    }

    /// Frees every kept block.
    package func drain() {
        let blocks = state.withLock { s -> [UInt] in
            let all = s.free.values.flatMap { $0.map(\.block) }
            s.free = [:]; s.keptBytes = 0
            return all
        }
        for b in blocks { UnsafeMutableRawPointer(bitPattern: b)?.deallocate() }
    }

    private static func rounded(_ n: Int) -> Int { (n + pageBytes - 1) / pageBytes * pageBytes }

    private static func oldest(_ free: [Int: [(block: UInt, stamp: Int)]]) -> (Int, Int)? {
        var best: (key: Int, index: Int, stamp: Int)?
        for (key, blocks) in free {
            for (i, b) in blocks.enumerated() where best == nil || b.stamp < best!.stamp { best = (key, i, b.stamp) }
        }
        return best.map { ($0.key, $0.index) }
    }
}
