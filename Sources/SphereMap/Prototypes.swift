import Kernels
import Transformer

/// S_Z = prototypes: ConditionalPrototypes(bloc_dim = D, cond_dim = C, heads = D/64, depth 2, cond_bottleneck 0)
/// (METHOD §3.3). The two CABlocks are one module applied twice (shared weights, H16). Used by the training loss only.
package struct Prototypes: Sendable {
    package var projWeight, projBias: Parameter    // proj: [D, 3], [D]
    package var block: CABlock                  // blocks.0 ≡ blocks.1

    package var width: Int { projWeight.shape[0] }
    package var categories: Int { block.kWeight.shape[1] }

    /// r [B, N, D] = CABlock(CABlock(proj(sph), cond), cond) for sph [B, N, 3], cond one-hot categories [B].
    package func reconstruct(sphere: UnsafePointer<Float>, categories cats: [Int], tokens n: Int) -> FloatStorage {
        let b = cats.count, d = width
        let z = FloatStorage(count: b * n * d, zeroed: false)
        linearForward(z.pointer, sphere, weight: projWeight.pointer, bias: projBias.pointer, rows: b * n, inFeatures: 3, outFeatures: d)
        for _ in 0..<2 { block.forward(z.pointer, categories: cats, tokens: n) }
        return z
    }
}

/// CABlock (METHOD §3.3): x ← x + CrossAttn(norm1(x), cond); x ← x + mlp(norm2(x)); LayerNorm eps 1e-5. The MLP half
/// is the transformer block's (`FeedForwardWeights.addResidual`).
package struct CABlock: Sendable {
    package var norm1: LayerNormWeights             // [D]
    package var qWeight: Parameter                  // attn.q: [D, D], no bias
    package var kWeight: Parameter                  // attn.k: [D, C], no bias
    package var vWeight: Parameter                  // attn.v: [D, C], no bias
    package var proj: LinearWeights                 // attn.proj: [D, D], [D]
    package var norm2: LayerNormWeights             // [D]
    package var mlp: FeedForwardWeights             // mlp.fc1: [4D, D], [4D]; mlp.fc2: [D, 4D], [D]

    /// The cross-attention output for one category: with a single condition token the softmax over it is exactly 1,
    /// so every query receives v = Wv·onehot(c), then proj. q and k cannot change the result (they exist in the
    /// checkpoint and get zero gradient).   → [D]
    func crossAttentionOutput(category c: Int) -> [Float] {
        let d = norm1.weight.shape[0], nc = kWeight.shape[1]
        var v = [Float](repeating: 0, count: d)
        for i in 0..<d { v[i] = vWeight.pointer[i * nc + c] }  // Wv · onehot(c) = column c
        var out = [Float](repeating: 0, count: d)
        linearForward(&out, v, weight: proj.weight.pointer, bias: proj.bias?.pointer, rows: 1, inFeatures: d, outFeatures: d)
        return out
    }

    /// x: [B, N, D] in place; cats[b] is image b's category.
    func forward(_ x: UnsafeMutablePointer<Float>, categories cats: [Int], tokens n: Int) {
        let d = norm1.weight.shape[0], b = cats.count, rows = b * n
        // norm1 only feeds q, which cannot change the output (see crossAttentionOutput); the residual adds the constant.
        for (bi, c) in cats.enumerated() {
            let a = crossAttentionOutput(category: c)
            for t in 0..<n {
                let row = x + (bi * n + t) * d
                for j in 0..<d { row[j] += a[j] }
            }
        }
        let xn = FloatStorage(count: rows * d, zeroed: false)
        let hidden = FloatStorage(count: rows * mlp.fc1.outFeatures, zeroed: false)
        mlp.addResidual(x, norm: norm2, scale: nil, rows: rows, eps: headLayerNormEps, kernels: LayerKernels(), xn: xn.pointer, hidden: hidden.pointer)
    }
}
