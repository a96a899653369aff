import Kernels
import TensorFiles
import Transformer

// Letters: B = batch, N = patch tokens, D = backbone width, H = D/2 mapper width, C = categories.
// Names follow the reference checkpoint (VICO-UoE/SphericalMaps dino_mapper.py; METHOD §3).

/// LayerNorm eps of the mapper's block and the prototypes: nn.LayerNorm's default 1e-5, not DINOv2's 1e-6 (H11).
package let headLayerNormEps: Float = 1e-5

/// f_S = sphere_mapper: Linear(D → H) → GELU → Block(H, H/64 heads) → Linear(H → 3) (METHOD §3.2).
package struct SphereMapper: Sendable {
    package var inWeight, inBias: Parameter     // sphere_mapper.0: [H, D], [H]
    /// sphere_mapper.2, the timm Block of METHOD §3.1: no LayerScale, LayerNorm eps 1e-5, qkv without bias (H17).
    package var block: BlockWeights             // norm1 [H], attn.qkv [3H, H], attn.proj [H, H], norm2 [H], mlp.fc1 [4H, H], mlp.fc2 [H, 4H]
    package var outWeight, outBias: Parameter   // sphere_mapper.3: [3, H], [3]

    package var inputDim: Int { inWeight.shape[1] }
    package var width: Int { inWeight.shape[0] }
    package var heads: Int { Self.heads(width: width) }
    /// H/64 heads, at least one (METHOD §3.1).
    package static func heads(width h: Int) -> Int { max(1, h / 64) }

    /// Unit sphere vectors [B, N, 3] = normalize(f_S(features)) for features [B, N, D]. Attention in the block is
    /// global over each image's N tokens (3600 at 840², H31). No mask at inference (H18).
    package func sphere(features: UnsafePointer<Float>, batch b: Int, tokens n: Int) -> FloatStorage {
        let raw = forwardRaw(features: features, batch: b, tokens: n)
        normalizeRows(raw.pointer, rows: b * n, cols: 3, eps: 1e-12)
        return raw
    }

    /// s_raw [B, N, 3] before normalisation.
    package func forwardRaw(features: UnsafePointer<Float>, batch b: Int, tokens n: Int) -> FloatStorage {
        let d = inputDim, h = width, rows = b * n
        let x = FloatStorage(count: rows * h, zeroed: false)
        linearForward(x.pointer, features, weight: inWeight.pointer, bias: inBias.pointer, rows: rows, inFeatures: d, outFeatures: h,
                      epilogue: .biasGELU)
        block.forward(x.pointer, batch: b, tokens: n, config: BlockConfig(heads: heads, eps: headLayerNormEps), kernels: LayerKernels(),
                      scratch: BlockScratch(rows: rows, block: block))
        let out = FloatStorage(count: rows * 3, zeroed: false)
        linearForward(out.pointer, x.pointer, weight: outWeight.pointer, bias: outBias.pointer, rows: rows, inFeatures: h, outFeatures: 3)
        return out
    }
}

/// v ← v / max(‖v‖₂, eps) per row (F.normalize).   x: [rows, cols]
package func normalizeRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, eps: Float) {
    for r in 0..<rows {
        let v = x + r * cols
        var s: Float = 0
        for j in 0..<cols { s += v[j] * v[j] }
        let inv = 1 / max(s.squareRoot(), eps)
        for j in 0..<cols { v[j] *= inv }
    }
}

/// Backward of `normalizeRows` (F.normalize): with n = ‖x‖ and y = x/n, dx = (dy − y·(y·dy))/n; where n ≤ eps
/// the forward divided by the constant eps, so dx = dy/eps (PyTorch's clamp_min passes no gradient to n).
///   dx, dy, x: [rows, cols]; x is the forward's input. dx is overwritten.
package func normalizeRowsBackward(_ dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                   rows: Int, cols: Int, eps: Float) {
    for r in 0..<rows {
        let v = x + r * cols, g = dy + r * cols, out = dx + r * cols
        var s: Float = 0
        for j in 0..<cols { s += v[j] * v[j] }
        let n = s.squareRoot()
        if n <= eps {
            for j in 0..<cols { out[j] = g[j] / eps }
            continue
        }
        let inv = 1 / n
        var yg: Float = 0
        for j in 0..<cols { yg += v[j] * inv * g[j] }
        for j in 0..<cols { out[j] = (g[j] - v[j] * inv * yg) * inv }
    }
}
