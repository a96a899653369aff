import Kernels
#if canImport(Glibc)
import Glibc
#endif

/// Deterministic random weights of a config's real shapes, built in memory (benchmarks, the demo model).
/// Scales keep activations O(1) through any depth: N(0, 0.02) matrices, LayerScale 0.1, unit LayerNorms.
extension DinoVisionTransformer {
    package static func random(config: DinoConfig, seed: UInt64, source: String? = nil,
                               keepsReferenceWeights: Bool = keepsReferenceWeightsByDefault) -> DinoVisionTransformer {
        var rng = SplitMix64(seed: seed)
        let reader = WeightReader(generator: { name, shape in
            let n = shape.reduce(1, *)
            let s = WeightMemory(count: n)
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
            return Parameter(pointer: s.pointer, shape: shape, owner: s)
        })
        // The generator cannot fail.
        return try! DinoVisionTransformer(config: config, reader: reader, source: source ?? "random(seed: \(seed))",
                                          keepsReferenceWeights: keepsReferenceWeights)
    }
}
