import Testing
@testable import Kernels

/// The pool that keeps forward passes' large buffers for the next pass (bounded, exact-size reuse).
/// Each test owns its pool: `BufferPool.shared` is used concurrently by the other suites.
@Suite struct BufferPoolTests {
    @Test func aReturnedBlockServesTheNextRequestOfItsSize() {
        let pool = BufferPool(minimumBytes: 1 << 16, capacityBytes: 1 << 24)
        let a = pool.take(byteCount: 100_000)
        #expect(Int(bitPattern: a) % 64 == 0)
        pool.give(a, byteCount: 100_000)
        #expect(pool.statistics.keptBytes == 102_400)  // rounded up to whole pages
        let b = pool.take(byteCount: 100_000)
        #expect(b == a)
        // Another size in the same page count shares the block; a different size does not.
        pool.give(b, byteCount: 100_000)
        let c = pool.take(byteCount: 99_000)
        #expect(c == a)
        let d = pool.take(byteCount: 200_000)
        #expect(d != a)
        #expect(pool.statistics.hits == 2 && pool.statistics.misses == 2)
        pool.give(c, byteCount: 99_000); pool.give(d, byteCount: 200_000)
    }

    @Test func smallBlocksGoStraightBackToMalloc() {
        let pool = BufferPool(minimumBytes: 1 << 16, capacityBytes: 1 << 24)
        let a = pool.take(byteCount: 1000)
        pool.give(a, byteCount: 1000)
        #expect(pool.statistics.keptBytes == 0)
        #expect(pool.statistics.hits == 0 && pool.statistics.misses == 0)
    }

    @Test func theLeastRecentlyReturnedBlocksMakeRoomWithinTheCapacity() {
        let page = 4096
        let pool = BufferPool(minimumBytes: page, capacityBytes: 10 * page)
        let old = pool.take(byteCount: 4 * page), mid = pool.take(byteCount: 4 * page), new = pool.take(byteCount: 3 * page)
        pool.give(old, byteCount: 4 * page)
        pool.give(mid, byteCount: 4 * page)
        #expect(pool.statistics.keptBytes == 8 * page)
        pool.give(new, byteCount: 3 * page)  // 11 pages > 10: `old` is dropped, not `mid`
        #expect(pool.statistics.keptBytes == 7 * page)
        #expect(pool.take(byteCount: 4 * page) == mid)
        #expect(pool.take(byteCount: 3 * page) == new)
        // A block larger than the whole capacity is never kept.
        let huge = pool.take(byteCount: 11 * page)
        pool.give(huge, byteCount: 11 * page)
        #expect(pool.statistics.keptBytes == 0)
        pool.give(mid, byteCount: 4 * page); pool.give(new, byteCount: 3 * page)
        pool.drain()
        #expect(pool.statistics.keptBytes == 0)
    }

    /// FloatStorage over reused (dirty) blocks: `zeroed` still means zeros.
    @Test func reusedStorageIsZeroedWhenAskedTo() {
        let n = 300_000  // 1.2 MB: through the shared pool
        do {
            let dirty = FloatStorage(count: n, zeroed: false)
            for i in 0..<n { dirty.pointer[i] = 7 }
        }
        let clean = FloatStorage(count: n)
        #expect(clean.buffer.allSatisfy { $0 == 0 })
    }
}
