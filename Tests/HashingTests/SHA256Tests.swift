import Testing
import Hashing

/// FIPS 180-2 vectors, and streaming: any split of the input gives the one-shot digest.
@Suite struct SHA256Tests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func nistVectors(input: String, digest: String) {
        #expect(SHA256.hex(Array(input.utf8)) == digest)
    }

    @Test func millionAs() {
        #expect(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func updatesInPiecesEqualOneShot() {
        let input = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for cut in [0, 1, 55, 56, 63, 64, 65, 999, 1000] {
            var h = SHA256()
            h.update(Array(input[..<cut]))
            h.update([])
            h.update(Array(input[cut...]))
            #expect(hex(h.finalize()) == hex(oneShot(input)), "split at \(cut)")
        }
    }

    private func oneShot(_ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    private func hex(_ d: [UInt8]) -> String { d.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}
