import Testing
import Features

/// `--shard K/N`: the N ranges partition the list (pairs or images) (disjoint, covering, in order, sizes within one), for any total.
@Suite struct ShardTests {
    @Test func rangesPartitionThePairs() throws {
        for n in 1...7 {
            for total in [0, 1, 2, 5, 6, 90, 12_234] {
                let ranges = try (0..<n).map { try Shard(index: $0, count: n).range(total: total) }
                #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == total, "n \(n), total \(total)")
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "n \(n), total \(total)")
                let sizes = ranges.map(\.count)
                #expect(sizes.max()! - sizes.min()! <= 1, "n \(n), total \(total): \(sizes)")
            }
        }
    }

    @Test func parsesKOverNFromZero() throws {
        let s = try Shard(parsing: "3/4")
        #expect(s.index == 3 && s.count == 4 && s.description == "3/4")
        for bad in ["4/4", "-1/4", "0/0", "1", "1/2/3", "a/4", ""] {
            #expect(throws: ShardError.self, "\(bad)") { try Shard(parsing: bad) }
        }
    }
}
