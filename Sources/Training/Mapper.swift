import Kernels
import SphereMap
import Transformer

// f_S = sphere_mapper (METHOD §3.2) for training: the forward keeps what its backward needs, the backward runs the
// layers in reverse. The block's attention half is the inference block's (`BlockWeights.addAttention`); its MLP half
// keeps fc1's output before GELU for GELU's backward, where inference fuses the GELU into fc1. Each backward is the
// Kernels function beside its forward.
//
// Letters: R = B·N rows (tokens of the batch), D = backbone width, H = D/2 mapper width, 3 = sphere.

/// Pointers to one Linear's weight and bias and to their gradients.
struct LinearParams {
    let w, dw: UnsafeMutablePointer<Float>
    let b, db: UnsafeMutablePointer<Float>?
    init(_ p: ParameterSet, _ prefix: String, bias: Bool = true) {
        w = p.pointer(prefix + ".weight"); dw = p.gradient(prefix + ".weight")
        b = bias ? p.pointer(prefix + ".bias") : nil; db = bias ? p.gradient(prefix + ".bias") : nil
    }
}

/// LayerNorm γ, β and their gradients.
struct NormParams {
    let w, dw, b, db: UnsafeMutablePointer<Float>
    init(_ p: ParameterSet, _ prefix: String) {
        w = p.pointer(prefix + ".weight"); dw = p.gradient(prefix + ".weight")
        b = p.pointer(prefix + ".bias"); db = p.gradient(prefix + ".bias")
    }
}

/// sphere_mapper.{0, 2, 3}, named as the checkpoint: values and gradients for the backward, and the block's values as
/// the shared `BlockWeights` for its forward.
struct MapperParams {
    let input: LinearParams        // sphere_mapper.0: [H, D], [H]
    let norm1: NormParams          // sphere_mapper.2.norm1: [H]
    let qkv: LinearParams          // sphere_mapper.2.attn.qkv: [3H, H], no bias (H17)
    let proj: LinearParams         // sphere_mapper.2.attn.proj: [H, H], [H]
    let norm2: NormParams          // sphere_mapper.2.norm2: [H]
    let fc1: LinearParams          // sphere_mapper.2.mlp.fc1: [4H, H], [4H]
    let fc2: LinearParams          // sphere_mapper.2.mlp.fc2: [H, 4H], [H]
    let output: LinearParams       // sphere_mapper.3: [3, H], [3]
    let block: BlockWeights        // sphere_mapper.2, viewing the same values
    init(_ p: ParameterSet) {
        let s = "sphere_mapper"
        block = p.bundleView().mapper.block
        input = LinearParams(p, "\(s).0"); norm1 = NormParams(p, "\(s).2.norm1")
        qkv = LinearParams(p, "\(s).2.attn.qkv", bias: false); proj = LinearParams(p, "\(s).2.attn.proj")
        norm2 = NormParams(p, "\(s).2.norm2"); fc1 = LinearParams(p, "\(s).2.mlp.fc1"); fc2 = LinearParams(p, "\(s).2.mlp.fc2")
        output = LinearParams(p, "\(s).3")
    }
}

/// What the mapper's backward reads, from one forward over a batch.
final class MapperActivations {
    let rows, d, h, heads: Int
    let u0: FloatStorage    // sphere_mapper.0 output before GELU   [R, H]
    let x0: FloatStorage    // GELU(u0): the Block's input          [R, H]
    let xn1: FloatStorage   // norm1(x0)                             [R, H]
    let qkv: FloatStorage   // attn.qkv(xn1)                         [R, 3H]
    let attn: FloatStorage  // softmax(q·kᵀ·scale)·v, heads merged   [R, H]
    let x1: FloatStorage    // x0 + attn.proj(attn)                  [R, H]
    let xn2: FloatStorage   // norm2(x1)                             [R, H]
    let hidden: FloatStorage // mlp.fc1(xn2) before GELU             [R, 4H]
    let x2: FloatStorage    // x1 + mlp.fc2(GELU(hidden))            [R, H]
    let sRaw: FloatStorage  // sphere_mapper.3(x2)                   [R, 3]
    init(rows: Int, d: Int, h: Int, heads: Int) {
        self.rows = rows; self.d = d; self.h = h; self.heads = heads
        u0 = FloatStorage(count: rows * h, zeroed: false); x0 = FloatStorage(count: rows * h, zeroed: false)
        xn1 = FloatStorage(count: rows * h, zeroed: false); qkv = FloatStorage(count: rows * 3 * h, zeroed: false)
        attn = FloatStorage(count: rows * h, zeroed: false); x1 = FloatStorage(count: rows * h, zeroed: false)
        xn2 = FloatStorage(count: rows * h, zeroed: false); hidden = FloatStorage(count: rows * 4 * h, zeroed: false)
        x2 = FloatStorage(count: rows * h, zeroed: false); sRaw = FloatStorage(count: rows * 3, zeroed: false)
    }
}

/// s_raw = f_S(features), keeping the activations.   features: [B, N, D]
func mapperForward(_ p: MapperParams, features: UnsafePointer<Float>, batch b: Int, tokens n: Int, d: Int, heads: Int) -> MapperActivations {
    let h = d / 2, rows = b * n
    let a = MapperActivations(rows: rows, d: d, h: h, heads: heads)
    // sphere_mapper.0 + .1 (exact GELU, H13); the pre-activation is kept for GELU's backward.
    linearForward(a.u0.pointer, features, weight: p.input.w, bias: p.input.b, rows: rows, inFeatures: d, outFeatures: h)
    geluForward(a.x0.pointer, a.u0.pointer, count: rows * h)
    // sphere_mapper.2: x ← x + attn(norm1(x)), x1 starting as a copy of x0 (kept for norm1's backward).
    a.x1.pointer.update(from: a.x0.pointer, count: rows * h)
    p.block.addAttention(a.x1.pointer, batch: b, tokens: n, config: BlockConfig(heads: heads, eps: headLayerNormEps), kernels: LayerKernels(),
                         xn: a.xn1.pointer, qkv: a.qkv.pointer, attn: a.attn.pointer)
    // x ← x + mlp(norm2(x)); GELU(hidden) is recomputed by the backward rather than kept ([R, 4H]).
    p.block.norm2.forward(a.xn2.pointer, a.x1.pointer, rows: rows, eps: headLayerNormEps)
    p.block.ffn.fc1.forward(a.hidden.pointer, a.xn2.pointer, rows: rows, kernels: LayerKernels())
    a.x2.pointer.update(from: a.x1.pointer, count: rows * h)
    mlpSecondHalf(a.x2.pointer, hidden: a.hidden.pointer, fc2: p.fc2, rows: rows, width: h)
    // sphere_mapper.3
    linearForward(a.sRaw.pointer, a.x2.pointer, weight: p.output.w, bias: p.output.b, rows: rows, inFeatures: h, outFeatures: 3)
    return a
}

/// x += fc2(GELU(hidden)) in row chunks, so GELU(hidden) never exists whole.   x: [R, W]; hidden: [R, 4W]
func mlpSecondHalf(_ x: UnsafeMutablePointer<Float>, hidden: UnsafePointer<Float>, fc2: LinearParams, rows: Int, width w: Int) {
    let chunk = max(64, min(rows, 4096))
    let g = FloatStorage(count: chunk * 4 * w, zeroed: false)
    var r0 = 0
    while r0 < rows {
        let m = min(chunk, rows - r0)
        geluForward(g.pointer, hidden + r0 * 4 * w, count: m * 4 * w)
        linearForward(x + r0 * w, g.pointer, weight: fc2.w, bias: fc2.b, rows: m, inFeatures: 4 * w, outFeatures: w, epilogue: .biasAddInto)
        r0 += m
    }
}

/// Backward of x_out = x_in + fc2(GELU(fc1(xn))) given dOut = ∂L/∂x_out: accumulates fc1/fc2 gradients and writes
/// dxn = ∂L/∂xn. GELU(hidden) is recomputed in row chunks.   dOut, dxn: [R, W]; xn: [R, W]; hidden: [R, 4W]
func mlpBackward(dxn: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, xn: UnsafePointer<Float>, hidden: UnsafePointer<Float>,
                 fc1: LinearParams, fc2: LinearParams, rows: Int, width w: Int) {
    let chunk = max(64, min(rows, 4096))
    let g = FloatStorage(count: chunk * 4 * w, zeroed: false)
    var r0 = 0
    while r0 < rows {
        let m = min(chunk, rows - r0)
        let hid = hidden + r0 * 4 * w, dy = dOut + r0 * w
        geluForward(g.pointer, hid, count: m * 4 * w)
        linearBackward(dx: nil, dWeight: fc2.dw, dBias: fc2.db, dy: dy, x: g.pointer, weight: fc2.w, rows: m, inFeatures: 4 * w, outFeatures: w)
        linearBackward(dx: g.pointer, dWeight: nil, dBias: nil, dy: dy, x: g.pointer, weight: fc2.w, rows: m, inFeatures: 4 * w, outFeatures: w)
        geluBackwardInPlace(g.pointer, preActivation: hid, count: m * 4 * w)
        linearBackward(dx: dxn + r0 * w, dWeight: fc1.dw, dBias: fc1.db, dy: g.pointer, x: xn + r0 * w, weight: fc1.w,
                       rows: m, inFeatures: w, outFeatures: 4 * w)
        r0 += m
    }
}

/// Backward of `mapperForward` from dsRaw = ∂L/∂s_raw, accumulating every f_S gradient.   dsRaw: [R, 3]
func mapperBackward(_ p: MapperParams, _ a: MapperActivations, dsRaw: UnsafePointer<Float>, features: UnsafePointer<Float>, batch b: Int, tokens n: Int) {
    let rows = a.rows, h = a.h, d = a.d
    // dx: the residual stream's gradient, x2 → x1 → x0 in place.
    let dx = FloatStorage(count: rows * h, zeroed: false)
    let dxn = FloatStorage(count: rows * h, zeroed: false)
    linearBackward(dx: dx.pointer, dWeight: p.output.dw, dBias: p.output.db, dy: dsRaw, x: a.x2.pointer, weight: p.output.w,
                   rows: rows, inFeatures: h, outFeatures: 3)
    // x2 = x1 + mlp(norm2(x1))
    mlpBackward(dxn: dxn.pointer, dOut: dx.pointer, xn: a.xn2.pointer, hidden: a.hidden.pointer, fc1: p.fc1, fc2: p.fc2, rows: rows, width: h)
    layerNormBackward(dx: dx.pointer, dWeight: p.norm2.dw, dBias: p.norm2.db, dy: dxn.pointer, x: a.x1.pointer, weight: p.norm2.w,
                      rows: rows, cols: h, eps: headLayerNormEps)
    // x1 = x0 + proj(attention(qkv(norm1(x0))))
    let dattn = FloatStorage(count: rows * h, zeroed: false)
    linearBackward(dx: dattn.pointer, dWeight: p.proj.dw, dBias: p.proj.db, dy: dx.pointer, x: a.attn.pointer, weight: p.proj.w,
                   rows: rows, inFeatures: h, outFeatures: h)
    let dqkv = FloatStorage(count: rows * 3 * h, zeroed: false)
    attentionBackward(dqkv: dqkv.pointer, dOut: dattn.pointer, qkv: a.qkv.pointer, out: a.attn.pointer, batch: b, tokens: n,
                      heads: a.heads, headDim: h / a.heads, scale: 1 / Float(h / a.heads).squareRoot())
    linearBackward(dx: dxn.pointer, dWeight: p.qkv.dw, dBias: nil, dy: dqkv.pointer, x: a.xn1.pointer, weight: p.qkv.w,
                   rows: rows, inFeatures: h, outFeatures: 3 * h)
    layerNormBackward(dx: dx.pointer, dWeight: p.norm1.dw, dBias: p.norm1.db, dy: dxn.pointer, x: a.x0.pointer, weight: p.norm1.w,
                      rows: rows, cols: h, eps: headLayerNormEps)
    // x0 = GELU(u0), u0 = sphere_mapper.0(features); the features are frozen (no gradient).
    geluBackwardInPlace(dx.pointer, preActivation: a.u0.pointer, count: rows * h)
    linearBackward(dx: nil, dWeight: p.input.dw, dBias: p.input.db, dy: dx.pointer, x: features, weight: p.input.w,
                   rows: rows, inFeatures: d, outFeatures: h)
}
