import Kernels
import SphereMap

// S_Z = prototypes (METHOD §3.3) and the reconstruction loss (METHOD §4.2), forward and backward together, in chunks of
// foreground tokens. Two exact shortcuts (proven equal to the plain formula in TrainingTests/ShortcutTests):
//  1. Only foreground tokens (‖sph‖ ≠ 0) enter the loss, and S_Z is per token (its only token mixing is the
//     cross-attention over the single condition token), so S_Z runs on foreground rows only.
//  2. With one condition token the softmax over it is exactly 1: each CABlock adds the per-category constant
//     a_c = attn.proj(Wv·onehot(c)) to every token; norm1, q and k do not reach the output (zero gradient).
// Being per token, S_Z's forward and backward run chunk by chunk: activations never exist for the whole batch.
//
// Letters: F = foreground tokens of the batch, K = tokens of a chunk, D = width, C = categories.

/// prototypes.proj and the shared CABlock (blocks.0 ≡ blocks.1, H16), named as the checkpoint.
struct PrototypeParams {
    let proj: LinearParams      // prototypes.proj: [D, 3], [D]
    let v: LinearParams         // attn.v: [D, C], no bias
    let attnProj: LinearParams  // attn.proj: [D, D], [D]
    let norm2: NormParams       // [D]
    let fc1: LinearParams       // [4D, D], [4D]
    let fc2: LinearParams       // [D, 4D], [D]
    init(_ p: ParameterSet) {
        let b = "prototypes.blocks.0"
        proj = LinearParams(p, "prototypes.proj"); v = LinearParams(p, "\(b).attn.v", bias: false)
        attnProj = LinearParams(p, "\(b).attn.proj"); norm2 = NormParams(p, "\(b).norm2")
        fc1 = LinearParams(p, "\(b).mlp.fc1"); fc2 = LinearParams(p, "\(b).mlp.fc2")
    }
}

/// The reconstruction loss and its gradient.
/// - sphere: sph = normalize(s_raw)·mask   [R, 3]
/// - features: f = x_prenorm patch tokens   [R, D]
/// - rowCategory: category of each row      [R]
/// - foreground: rows with ‖sph‖ ≠ 0, increasing
/// - dSphere: receives `weight`·∂L_rec/∂sph on foreground rows (accumulated)   [R, 3]
/// Returns L_rec = mean over foreground of 1 − cos(f, r) (METHOD §4.2), 0 when there is no foreground (guard:
/// the reference would return NaN), in which case nothing is accumulated.
func reconstructionLoss(_ p: PrototypeParams, sphere: UnsafePointer<Float>, features: UnsafePointer<Float>, rowCategory: [Int],
                        foreground: [Int], width d: Int, categories nc: Int, weight: Float,
                        dSphere: UnsafeMutablePointer<Float>) -> Float {
    let total = foreground.count
    if total == 0 { return 0 }
    // a_c = attn.proj(Wv[:, c]) + b for every category: [C, D]. v_c is column c of Wv [D, C].
    var vcols = [Float](repeating: 0, count: nc * d)
    for c in 0..<nc { for i in 0..<d { vcols[c * d + i] = p.v.w[i * nc + c] } }
    let consts = FloatStorage(count: nc * d, zeroed: false)
    linearForward(consts.pointer, vcols, weight: p.attnProj.w, bias: p.attnProj.b, rows: nc, inFeatures: d, outFeatures: d)
    let dConsts = FloatStorage(count: nc * d)  // Σ over both applications and all rows of category c of ∂L/∂y

    let chunk = min(total, 1024)
    let sphC = FloatStorage(count: chunk * 3, zeroed: false), featC = FloatStorage(count: chunk * d, zeroed: false)
    let z = FloatStorage(count: chunk * d, zeroed: false), dz = FloatStorage(count: chunk * d, zeroed: false)
    let y = (0..<2).map { _ in FloatStorage(count: chunk * d, zeroed: false) }       // block input + a_c
    let yn = (0..<2).map { _ in FloatStorage(count: chunk * d, zeroed: false) }      // norm2(y)
    let hid = (0..<2).map { _ in FloatStorage(count: chunk * 4 * d, zeroed: false) } // fc1(yn), before GELU
    let dsC = FloatStorage(count: chunk * 3, zeroed: false), dyn = FloatStorage(count: chunk * d, zeroed: false)
    var lossSum = 0.0
    let scale = weight / Float(total)
    var start = 0
    while start < total {
        let k = min(chunk, total - start)
        let rows = Array(foreground[start..<(start + k)])
        let cats = rows.map { rowCategory[$0] }
        for (j, r) in rows.enumerated() {
            for c in 0..<3 { sphC.pointer[j * 3 + c] = sphere[r * 3 + c] }
            (featC.pointer + j * d).update(from: features + r * d, count: d)
        }
        // z = proj(sph); then twice: y = z + a_c; z = y + mlp(norm2(y)).
        linearForward(z.pointer, sphC.pointer, weight: p.proj.w, bias: p.proj.b, rows: k, inFeatures: 3, outFeatures: d)
        for app in 0..<2 {
            for j in 0..<k {
                let dst = y[app].pointer + j * d, src = z.pointer + j * d, a = consts.pointer + cats[j] * d
                for i in 0..<d { dst[i] = src[i] + a[i] }
            }
            layerNormForward(yn[app].pointer, y[app].pointer, weight: p.norm2.w, bias: p.norm2.b, rows: k, cols: d, eps: headLayerNormEps)
            linearForward(hid[app].pointer, yn[app].pointer, weight: p.fc1.w, bias: p.fc1.b, rows: k, inFeatures: d, outFeatures: 4 * d)
            z.pointer.update(from: y[app].pointer, count: k * d)
            mlpSecondHalf(z.pointer, hidden: hid[app].pointer, fc2: p.fc2, rows: k, width: d)
        }
        // 1 − cos(f, r) per row; ∂/∂r = −(f̂ − cos·r̂)/max(‖r‖, eps) (F.cosine_similarity, eps 1e-8).
        for j in 0..<k {
            let f = featC.pointer + j * d, r = z.pointer + j * d, g = dz.pointer + j * d
            var ff: Float = 0, rr: Float = 0
            for i in 0..<d { ff += f[i] * f[i]; rr += r[i] * r[i] }
            let nf = max(ff.squareRoot(), 1e-8), nr = max(rr.squareRoot(), 1e-8)
            var cos: Float = 0
            for i in 0..<d { cos += (f[i] / nf) * (r[i] / nr) }
            lossSum += Double(1 - cos)
            let s = -scale / nr
            for i in 0..<d { g[i] = s * (f[i] / nf - cos * r[i] / nr) }
        }
        // Backward through the two applications of the shared block (gradients of shared tensors add).
        for app in [1, 0] {
            // dz holds ∂L/∂(block output); the output is y + mlp(norm2(y)).
            mlpBackward(dxn: dyn.pointer, dOut: dz.pointer, xn: yn[app].pointer, hidden: hid[app].pointer,
                        fc1: p.fc1, fc2: p.fc2, rows: k, width: d)
            layerNormBackward(dx: dz.pointer, dWeight: p.norm2.dw, dBias: p.norm2.db, dy: dyn.pointer, x: y[app].pointer,
                              weight: p.norm2.w, rows: k, cols: d, eps: headLayerNormEps)
            // y = z + a_c: ∂L/∂z = ∂L/∂y, and ∂L/∂a_c collects the rows of category c.
            for j in 0..<k {
                let g = dz.pointer + j * d, acc = dConsts.pointer + cats[j] * d
                for i in 0..<d { acc[i] += g[i] }
            }
        }
        // z = proj(sph)
        linearBackward(dx: dsC.pointer, dWeight: p.proj.dw, dBias: p.proj.db, dy: dz.pointer, x: sphC.pointer, weight: p.proj.w,
                       rows: k, inFeatures: 3, outFeatures: d)
        for (j, r) in rows.enumerated() { for c in 0..<3 { dSphere[r * 3 + c] += dsC.pointer[j * 3 + c] } }
        start += k
    }
    // a_c = attn.proj(v_c) + b, v_c = Wv[:, c]: attn.proj and Wv receive the per-category sums.
    let dv = FloatStorage(count: nc * d, zeroed: false)
    linearBackward(dx: dv.pointer, dWeight: p.attnProj.dw, dBias: p.attnProj.db, dy: dConsts.pointer, x: vcols, weight: p.attnProj.w,
                   rows: nc, inFeatures: d, outFeatures: d)
    for c in 0..<nc { for i in 0..<d { p.v.dw[i * nc + c] += dv.pointer[c * d + i] } }
    return Float(lossSum / Double(total))
}
