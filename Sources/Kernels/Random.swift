#if canImport(Glibc)
import Glibc
#endif

/// SplitMix64: small, fast, reproducible across platforms.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The whole generator state: `SplitMix64(seed: state)` continues this stream exactly (trainer resume).
    package private(set) var state: UInt64
    package init(seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 24 bits.
    package mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216) }
    /// Uniform in [lo, hi).
    package mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * uniform() }
    /// Standard normal (Box–Muller).
    package mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}

