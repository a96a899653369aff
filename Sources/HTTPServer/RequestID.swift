import HTTP1

/// Request ids (SERVICE-NOTES M8): an incoming `X-Request-Id` is kept when it is 1...128 bytes of a safe
/// charset (letters, digits and `-_.:+/=@~`, which covers UUIDs, nginx's `$request_id`, base64 and
/// trace ids); otherwise it is replaced by a generated one, never rejected.
package enum RequestID {
    package static let headerName = "X-Request-Id"
    package static let maxLength = 128

    package static func isValid(_ value: some StringProtocol) -> Bool {
        let utf8 = value.utf8
        guard !utf8.isEmpty, utf8.count <= maxLength else { return false }
        return utf8.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "+"),
                UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "@"), UInt8(ascii: "~"):
                true
            default:
                false
            }
        }
    }

    /// The first valid `X-Request-Id` of `headers`, if any.
    package static func incoming(_ headers: HTTPHeaders) -> String? {
        for field in headers where asciiCaseInsensitiveEquals(field.name, headerName) && isValid(field.value) {
            return field.value
        }
        return nil
    }
}

/// Generates 16-hex-digit ids from a per-event-loop xorshift generator seeded from the system's
/// random source: unique in practice, cheap, not secret.
struct RequestIDGenerator {
    private var state: UInt64

    init() {
        var seed: UInt64 = 0
        while seed == 0 { seed = UInt64.random(in: 1...UInt64.max) }
        state = seed
    }

    private static let hex = Array("0123456789abcdef".utf8)

    mutating func next() -> String {
        // xorshift64* (Vigna).
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        let value = state &* 0x2545_F491_4F6C_DD1D
        return String(unsafeUninitializedCapacity: 16) { buffer in
            for i in 0..<16 {
                buffer[i] = Self.hex[Int((value >> UInt64(60 - 4 * i)) & 0xF)]
            }
            return 16
        }
    }
}
