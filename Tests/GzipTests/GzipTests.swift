import Foundation
import Gzip
import Testing

@Suite("gzip through zlib")
struct GzipTests {
    /// A JSON-like body: what the server compresses most.
    static func jsonBody(count: Int) -> [UInt8] {
        var text = "{\"matches\":["
        for i in 0..<count { text += "{\"source\":[\(i % 97).5,\(i % 31).25],\"target\":[\(i % 53).75,\(i % 89)],\"score\":0.\(i % 1000)}," }
        text += "{}]}"
        return Array(text.utf8)
    }

    @Test("round trip: empty, one byte, JSON, random bytes, 4 MB", arguments: [0, 1, 1000, 5000, 4 << 20])
    func roundTrip(size: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let input: [UInt8] = size == 5000 ? (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            : Array(Self.jsonBody(count: max(1, size / 60)).prefix(size))
        let compressed = try Gzip.compress(input)
        #expect(try Gzip.decompress(compressed) == input)
    }

    @Test("the output is a gzip member (RFC 1952): magic, deflate, trailer with CRC-32 and length")
    func format() throws {
        let input = Self.jsonBody(count: 200)
        let out = try Gzip.compress(input)
        #expect(Array(out.prefix(3)) == [0x1F, 0x8B, 0x08])
        let isize = out.suffix(4).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(isize == input.count)
        #expect(out.count < input.count / 4, "JSON compresses several-fold: \(input.count) → \(out.count)")
    }

    @Test("every level 1...9 round-trips; level 9 is no larger than level 1")
    func levels() throws {
        let input = Self.jsonBody(count: 500)
        var sizes: [Int] = []
        for level in Int32(1)...9 {
            let out = try Gzip.compress(input, level: level)
            #expect(try Gzip.decompress(out) == input)
            sizes.append(out.count)
        }
        #expect(sizes.last! <= sizes.first!)
    }

    @Test("two concatenated members decode to both payloads")
    func members() throws {
        let a = Array("first ".utf8), b = Array("second".utf8)
        #expect(try Gzip.decompress(Gzip.compress(a) + Gzip.compress(b)) == a + b)
    }

    @Test("a bad level, a truncated stream, corrupt data and an output cap are errors, never crashes")
    func errors() throws {
        #expect(throws: GzipError.self) { try Gzip.compress([1, 2, 3], level: 42) }
        let good = try Gzip.compress(Self.jsonBody(count: 100))
        #expect(throws: GzipError.self) { try Gzip.decompress(Array(good.prefix(good.count / 2))) }
        var corrupt = good
        corrupt[20] ^= 0xFF
        corrupt[21] ^= 0xFF
        #expect(throws: GzipError.self) { try Gzip.decompress(corrupt) }
        #expect(throws: GzipError.self) { try Gzip.decompress(Array("not gzip at all".utf8)) }
        #expect(throws: GzipError.self) { try Gzip.decompress(good, maxOutputBytes: 100) }
    }
}
