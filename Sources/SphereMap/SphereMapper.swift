import Kernels
import TensorFiles

// Letters: B = batch, N = patch tokens, D = backbone width, H = D/2 mapper width, C = categories.
// Names follow the reference checkpoint (VICO-UoE/SphericalMaps dino_mapper.py; METHOD §3).

/// timm-style Block used by f_S (METHOD §3.1): no LayerScale, LayerNorm eps 1e-5, qkv without bias.
package struct MapperBlock: Sendable {
    package var norm1Weight, norm1Bias: Parameter  // [H]
    package var qkvWeight: Parameter                // [3H, H], no bias (H17)
    package var projWeight, projBias: Parameter     // [H, H], [H]
    package var norm2Weight, norm2Bias: Parameter   // [H]
    package var fc1Weight, fc1Bias: Parameter       // [4H, H], [4H]
    package var fc2Weight, fc2Bias: Parameter       // [H, 4H], [H]
    package var width: Int { norm1Weight.shape[0] }
    package var heads: Int { max(1, width / 64) }
}

/// f_S = sphere_mapper: Linear(D → H) → GELU → Block(H, H/64 heads) → Linear(H → 3) (METHOD §3.2).
package struct SphereMapper: Sendable {
    package var inWeight, inBias: Parameter     // sphere_mapper.0: [H, D], [H]
    package var block: MapperBlock          // sphere_mapper.2
    package var outWeight, outBias: Parameter   // sphere_mapper.3: [3, H], [3]

    package var inputDim: Int { inWeight.shape[1] }
    package var width: Int { inWeight.shape[0] }

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
        block.forward(x.pointer, batch: b, tokens: n)
        let out = FloatStorage(count: rows * 3, zeroed: false)
        linearForward(out.pointer, x.pointer, weight: outWeight.pointer, bias: outBias.pointer, rows: rows, inFeatures: h, outFeatures: 3)
        return out
    }
}

extension MapperBlock {
    /// x ← x + attn(norm1(x)); x ← x + mlp(norm2(x)), in place.   x: [B, N, H]
    func forward(_ x: UnsafeMutablePointer<Float>, batch b: Int, tokens n: Int) {
        let h = width, rows = b * n
        let xn = FloatStorage(count: rows * h, zeroed: false)
        let qkv = FloatStorage(count: rows * 3 * h, zeroed: false)
        let attn = FloatStorage(count: rows * h, zeroed: false)
        let hidden = FloatStorage(count: rows * 4 * h, zeroed: false)
        layerNormForward(xn.pointer, x, weight: norm1Weight.pointer, bias: norm1Bias.pointer, rows: rows, cols: h, eps: 1e-5)
        linearForward(qkv.pointer, xn.pointer, weight: qkvWeight.pointer, bias: nil, rows: rows, inFeatures: h, outFeatures: 3 * h)
        attentionForward(attn.pointer, qkv: qkv.pointer, batch: b, tokens: n, heads: heads, headDim: h / heads,
                         scale: 1 / Float(h / heads).squareRoot())
        linearForward(x, attn.pointer, weight: projWeight.pointer, bias: projBias.pointer, rows: rows, inFeatures: h, outFeatures: h,
                      epilogue: .biasAddInto)
        layerNormForward(xn.pointer, x, weight: norm2Weight.pointer, bias: norm2Bias.pointer, rows: rows, cols: h, eps: 1e-5)
        linearForward(hidden.pointer, xn.pointer, weight: fc1Weight.pointer, bias: fc1Bias.pointer, rows: rows, inFeatures: h,
                      outFeatures: 4 * h, epilogue: .biasGELU)
        linearForward(x, hidden.pointer, weight: fc2Weight.pointer, bias: fc2Bias.pointer, rows: rows, inFeatures: 4 * h, outFeatures: h,
                      epilogue: .biasAddInto)
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
