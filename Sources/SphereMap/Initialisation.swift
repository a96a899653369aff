import Kernels
import Transformer

/// PyTorch's default initialisation (METHOD §3.6): Linear W, b ~ U(−1/√fan_in, 1/√fan_in); LayerNorm γ = 1, β = 0.
/// `sphere.weight` = normalize(randn(1024, 3)). Deterministic in `seed`; bit parity with torch's RNG is not possible.
extension SphereBundle {
    package static func initialised(backboneDim d: Int, categories: [String], seed: UInt64,
                                    metadata extra: [String: String] = [:]) -> SphereBundle {
        precondition(d % 2 == 0 && !categories.isEmpty)
        var rng = SplitMix64(seed: seed)
        let h = d / 2, nc = categories.count
        func linear(_ o: Int, _ i: Int) -> Parameter {
            let bound = 1 / Float(i).squareRoot()
            return Parameter((0..<(o * i)).map { _ in rng.uniform(-bound, bound) }, shape: [o, i])
        }
        func bias(_ o: Int, fanIn i: Int) -> Parameter {
            let bound = 1 / Float(i).squareRoot()
            return Parameter((0..<o).map { _ in rng.uniform(-bound, bound) }, shape: [o])
        }
        func ones(_ n: Int) -> Parameter { Parameter([Float](repeating: 1, count: n), shape: [n]) }
        func zeros(_ n: Int) -> Parameter { Parameter([Float](repeating: 0, count: n), shape: [n]) }
        func norm(_ n: Int) -> LayerNormWeights { LayerNormWeights(weight: ones(n), bias: zeros(n)) }
        func mlp(_ w: Int) -> FeedForwardWeights {
            let fc1 = LinearWeights(weight: linear(4 * w, w), bias: bias(4 * w, fanIn: w))
            return FeedForwardWeights(.mlp, fc1: fc1, fc2: LinearWeights(weight: linear(w, 4 * w), bias: bias(w, fanIn: 4 * w)))
        }
        let mapper = SphereMapper(
            inWeight: linear(h, d), inBias: bias(h, fanIn: d),
            block: BlockWeights(norm1: norm(h), qkv: LinearWeights(weight: linear(3 * h, h), bias: nil),
                                proj: LinearWeights(weight: linear(h, h), bias: bias(h, fanIn: h)), norm2: norm(h),
                                ffn: mlp(h)),
            outWeight: linear(3, h), outBias: bias(3, fanIn: h))
        let block = CABlock(norm1: norm(d), qWeight: linear(d, d), kWeight: linear(d, nc), vWeight: linear(d, nc),
                            proj: LinearWeights(weight: linear(d, d), bias: bias(d, fanIn: d)), norm2: norm(d), mlp: mlp(d))
        let protos = Prototypes(projWeight: linear(d, 3), projBias: bias(d, fanIn: 3), block: block)
        var sphere = (0..<(1024 * 3)).map { _ in rng.normal() }
        sphere.withUnsafeMutableBufferPointer { normalizeRows($0.baseAddress!, rows: 1024, cols: 3, eps: 1e-12) }
        var meta = extra
        meta["format"] = format
        meta["version"] = version
        meta["backbone_embed_dim"] = String(d)
        meta["categories"] = categories.joined(separator: ",")
        return SphereBundle(mapper: mapper, prototypes: protos, unusedSphere: Parameter(sphere, shape: [1024, 3]), metadata: meta, path: nil)
    }
}

