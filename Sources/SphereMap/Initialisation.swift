import Kernels

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
        let mapper = SphereMapper(
            inWeight: linear(h, d), inBias: bias(h, fanIn: d),
            block: MapperBlock(norm1Weight: ones(h), norm1Bias: zeros(h), qkvWeight: linear(3 * h, h),
                               projWeight: linear(h, h), projBias: bias(h, fanIn: h), norm2Weight: ones(h), norm2Bias: zeros(h),
                               fc1Weight: linear(4 * h, h), fc1Bias: bias(4 * h, fanIn: h),
                               fc2Weight: linear(h, 4 * h), fc2Bias: bias(h, fanIn: 4 * h)),
            outWeight: linear(3, h), outBias: bias(3, fanIn: h))
        let block = CABlock(norm1Weight: ones(d), norm1Bias: zeros(d), qWeight: linear(d, d), kWeight: linear(d, nc), vWeight: linear(d, nc),
                            projWeight: linear(d, d), projBias: bias(d, fanIn: d), norm2Weight: ones(d), norm2Bias: zeros(d),
                            fc1Weight: linear(4 * d, d), fc1Bias: bias(4 * d, fanIn: d), fc2Weight: linear(d, 4 * d), fc2Bias: bias(d, fanIn: 4 * d))
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

