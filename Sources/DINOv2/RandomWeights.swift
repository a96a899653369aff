import Kernels

/// Deterministic random weights of a config's real shapes, built in memory (benchmarks, the demo model).
/// Scales keep activations O(1) through any depth: N(0, 0.02) matrices, LayerScale 0.1, unit LayerNorms.
extension DinoVisionTransformer {
    package static func random(config: DinoConfig, seed: UInt64, source: String? = nil) -> DinoVisionTransformer {
        var rng = SplitMix64(seed: seed)
        let reader = WeightReader(generator: { name, shape in
            let n = shape.reduce(1, *)
            let s = FloatStorage(count: n, zeroed: false)
            let p = s.pointer
            if name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name == "norm.weight" {
                for i in 0..<n { p[i] = 1 + 0.05 * rng.normal() }
            } else if name.hasSuffix(".gamma") {
                for i in 0..<n { p[i] = 0.1 + 0.02 * rng.normal() }
            } else if name.hasSuffix("bias") {
                for i in 0..<n { p[i] = 0.02 * rng.normal() }
            } else if name == "pos_embed" || name == "cls_token" || name == "register_tokens" || name == "mask_token" {
                for i in 0..<n { p[i] = 0.5 * rng.normal() }
            } else {
                for i in 0..<n { p[i] = 0.02 * rng.normal() }
            }
            return Weight(storage: s, shape: shape)
        })
        // The generator cannot fail.
        return try! DinoVisionTransformer(config: config, reader: reader, source: source ?? "random(seed: \(seed))")
    }
}

/// SplitMix64: small, fast, reproducible across platforms.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
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
    /// Standard normal (Box–Muller).
    package mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
#endif
