import Foundation
import Kernels
import TensorFiles

// Letters: B = batch, T = 1 + R + N tokens ([CLS, registers, patches row-major]), N = Gh·Gw patches,
// R = registers, D = embed dim, F = FFN hidden, P = 3·14·14 = 588 pixels per patch.
// Names follow the torch-hub checkpoint (facebookresearch/dinov2 vision_transformer.py).

struct LayerNormWeights {
    var weight: Parameter  // [D]
    var bias: Parameter    // [D]
    init(_ r: WeightReader, _ prefix: String, dim: Int) throws {
        weight = try r.take("\(prefix).weight", shape: [dim])
        bias = try r.take("\(prefix).bias", shape: [dim])
    }
}

struct LinearWeights {
    var weight: Parameter  // [O, I]
    var bias: Parameter    // [O]
    init(weight: Parameter, bias: Parameter) { self.weight = weight; self.bias = bias }
    init(_ r: WeightReader, _ prefix: String, in i: Int, out o: Int) throws {
        weight = try r.take("\(prefix).weight", shape: [o, i])
        bias = try r.take("\(prefix).bias", shape: [o])
    }
}

/// blocks.i: x ← x + ls1 ⊙ attn(norm1(x)); x ← x + ls2 ⊙ mlp(norm2(x)).
struct BlockWeights {
    var norm1: LayerNormWeights
    var qkv: LinearWeights       // [3D, D], rows q | k | v
    var proj: LinearWeights      // [D, D]
    var ls1: Parameter              // [D]
    var norm2: LayerNormWeights
    var fc1: LinearWeights       // mlp: fc1 [F, D]; swiglu: w12 [2F, D]
    var fc2: LinearWeights       // mlp: fc2 [D, F]; swiglu: w3 [D, F]
    var ls2: Parameter              // [D]

    init(_ r: WeightReader, index i: Int, config c: DinoConfig) throws {
        let p = "blocks.\(i)", d = c.embedDim, f = c.ffnHidden
        norm1 = try LayerNormWeights(r, "\(p).norm1", dim: d)
        qkv = try LinearWeights(r, "\(p).attn.qkv", in: d, out: 3 * d)
        proj = try LinearWeights(r, "\(p).attn.proj", in: d, out: d)
        ls1 = try r.take("\(p).ls1.gamma", shape: [d])
        norm2 = try LayerNormWeights(r, "\(p).norm2", dim: d)
        switch c.ffn {
        case .mlp:
            fc1 = try LinearWeights(r, "\(p).mlp.fc1", in: d, out: f)
            fc2 = try LinearWeights(r, "\(p).mlp.fc2", in: f, out: d)
        case .swiglu:
            fc1 = try LinearWeights(r, "\(p).mlp.w12", in: d, out: 2 * f)
            fc2 = try LinearWeights(r, "\(p).mlp.w3", in: f, out: d)
        }
        ls2 = try r.take("\(p).ls2.gamma", shape: [d])
    }
}

/// What a forward pass returns. Buffers are row-major and owned.
package struct DinoOutput: Sendable {
    package var batch: Int
    package var gridHeight: Int
    package var gridWidth: Int
    package var dim: Int
    /// [B, N, D]: last block output before the final norm, CLS and registers removed (what the method uses).
    package var features: FloatStorage
    /// [B, D]: the normed CLS token.
    package var cls: FloatStorage?
    /// [B, T, D]: every token after the final norm.
    package var normed: FloatStorage?
    package var patches: Int { gridHeight * gridWidth }
}

package struct ForwardOptions: Sendable {
    package var cls = false
    package var normed = false
    /// nil: the process-wide choice (`KernelFamily.current`); tests pin one to check each against the reference.
    package var kernels: KernelFamily? = nil
    package init(cls: Bool = false, normed: Bool = false, kernels: KernelFamily? = nil) {
        self.cls = cls; self.normed = normed; self.kernels = kernels
    }
}

/// The DINOv2 ViT, immutable after load (safe to share; each forward allocates its own activations).
package final class DinoVisionTransformer: @unchecked Sendable {
    package let config: DinoConfig
    /// Where the weights came from (for /v1/info and logs).
    package let source: String
    let patchEmbed: LinearWeights   // weight viewed as [D, P] (conv weight [D, 3, 14, 14] flattened)
    let clsToken: Parameter            // [D]
    let posEmbed: Parameter            // [1 + 37·37, D]
    let registerTokens: Parameter?     // [R, D]
    let blocks: [BlockWeights]
    let norm: LayerNormWeights
    let maskToken: Parameter           // [1, D], training-only; kept so a checkpoint round-trips
    private let named: [(String, Parameter)]

    init(config c: DinoConfig, reader r: WeightReader, source: String) throws {
        config = c
        self.source = source
        let d = c.embedDim, ps = c.patchSize
        let convW = try r.take("patch_embed.proj.weight", shape: [d, 3, ps, ps])
        patchEmbed = LinearWeights(weight: convW, bias: try r.take("patch_embed.proj.bias", shape: [d]))
        clsToken = try r.take("cls_token", shape: [1, 1, d])
        maskToken = try r.take("mask_token", shape: [1, d])  // training-only, present in every checkpoint
        posEmbed = try r.take("pos_embed", shape: [1, 1 + c.posGrid * c.posGrid, d])
        registerTokens = c.registers > 0 ? try r.take("register_tokens", shape: [1, c.registers, d]) : nil
        blocks = try (0..<c.depth).map { try BlockWeights(r, index: $0, config: c) }
        norm = try LayerNormWeights(r, "norm", dim: d)
        try r.finish()
        named = r.handedOut
    }

    /// Every tensor under its torch-hub name, with its checkpoint shape (for writing a checkpoint): the names the
    /// model was loaded with (`WeightReader` records them).
    package func namedWeights() -> [(String, Parameter)] { named }

    /// Forward pass over normalised images. images: [B, 3, H, W], H and W multiples of 14.
    /// `onBlock(i, x)` sees each block's output [B, T, D] (for parity tests).
    package func forward(
        images: UnsafePointer<Float>, batch b: Int, height h: Int, width w: Int,
        options: ForwardOptions = ForwardOptions(),
        onBlock: ((Int, UnsafeBufferPointer<Float>) -> Void)? = nil
    ) -> DinoOutput {
        let c = config, d = c.embedDim, ps = c.patchSize, r = c.registers
        precondition(b > 0 && h % ps == 0 && w % ps == 0 && h > 0 && w > 0, "input must be a positive multiple of the patch size")
        let gh = h / ps, gw = w / ps, n = gh * gw, t = 1 + r + n, p = 3 * ps * ps
        let k = options.kernels ?? KernelFamily.current

        // Patch embedding: im2col [B·N, P] (c, ky, kx order), then x·Wᵀ + b → [B·N, D].
        let cols = FloatStorage(count: b * n * p, zeroed: false)
        im2col(cols.pointer, images, batch: b, height: h, width: w, patch: ps)
        let patches = FloatStorage(count: b * n * d, zeroed: false)
        linearForward(patches.pointer, cols.pointer, weight: patchEmbed.weight.pointer, bias: patchEmbed.bias.pointer,
                      rows: b * n, inFeatures: p, outFeatures: d, family: k)

        // Tokens: [CLS + pos0, registers, patches + pos] (registers get no position; METHOD §1.2).
        let pos = interpolatedPositions(gridHeight: gh, gridWidth: gw)  // [1 + N, D]
        let x = FloatStorage(count: b * t * d, zeroed: false)
        for bi in 0..<b {
            let xb = x.pointer + bi * t * d
            for j in 0..<d { xb[j] = clsToken.pointer[j] + pos.pointer[j] }
            if let reg = registerTokens { (xb + d).update(from: reg.pointer, count: r * d) }
            for i in 0..<n {
                let dst = xb + (1 + r + i) * d, src = patches.pointer + (bi * n + i) * d, pe = pos.pointer + (1 + i) * d
                for j in 0..<d { dst[j] = src[j] + pe[j] }
            }
        }

        let xn = FloatStorage(count: b * t * d, zeroed: false)
        let qkv = FloatStorage(count: b * t * 3 * d, zeroed: false)
        let attn = FloatStorage(count: b * t * d, zeroed: false)
        let hiddenWidth = c.ffn == .mlp ? c.ffnHidden : 2 * c.ffnHidden
        let hidden = FloatStorage(count: b * t * hiddenWidth, zeroed: false)
        let gate = c.ffn == .swiglu ? FloatStorage(count: b * t * c.ffnHidden, zeroed: false) : nil
        let rows = b * t
        for (i, blk) in blocks.enumerated() {
            layerNormForward(xn.pointer, x.pointer, weight: blk.norm1.weight.pointer, bias: blk.norm1.bias.pointer,
                             rows: rows, cols: d, eps: c.layerNormEps)
            linearForward(qkv.pointer, xn.pointer, weight: blk.qkv.weight.pointer, bias: blk.qkv.bias.pointer,
                          rows: rows, inFeatures: d, outFeatures: 3 * d, family: k)
            attentionForward(attn.pointer, qkv: qkv.pointer, batch: b, tokens: t, heads: c.heads, headDim: c.headDim,
                             scale: 1 / Float(c.headDim).squareRoot(), family: k)
            linearForward(x.pointer, attn.pointer, weight: blk.proj.weight.pointer, bias: blk.proj.bias.pointer,
                          rows: rows, inFeatures: d, outFeatures: d, epilogue: .biasScaleAddInto(gamma: blk.ls1.pointer), family: k)
            layerNormForward(xn.pointer, x.pointer, weight: blk.norm2.weight.pointer, bias: blk.norm2.bias.pointer,
                             rows: rows, cols: d, eps: c.layerNormEps)
            switch c.ffn {
            case .mlp:
                linearForward(hidden.pointer, xn.pointer, weight: blk.fc1.weight.pointer, bias: blk.fc1.bias.pointer,
                              rows: rows, inFeatures: d, outFeatures: c.ffnHidden, epilogue: .biasGELU, family: k)
                linearForward(x.pointer, hidden.pointer, weight: blk.fc2.weight.pointer, bias: blk.fc2.bias.pointer,
                              rows: rows, inFeatures: c.ffnHidden, outFeatures: d, epilogue: .biasScaleAddInto(gamma: blk.ls2.pointer), family: k)
            case .swiglu:
                linearForward(hidden.pointer, xn.pointer, weight: blk.fc1.weight.pointer, bias: blk.fc1.bias.pointer,
                              rows: rows, inFeatures: d, outFeatures: 2 * c.ffnHidden, family: k)
                swigluForward(gate!.pointer, hidden.pointer, rows: rows, hidden: c.ffnHidden)
                linearForward(x.pointer, gate!.pointer, weight: blk.fc2.weight.pointer, bias: blk.fc2.bias.pointer,
                              rows: rows, inFeatures: c.ffnHidden, outFeatures: d, epilogue: .biasScaleAddInto(gamma: blk.ls2.pointer), family: k)
            }
            onBlock?(i, UnsafeBufferPointer(start: x.pointer, count: rows * d))
        }

        // Features: x_prenorm[:, 1+R:].
        let features = FloatStorage(count: b * n * d, zeroed: false)
        for bi in 0..<b {
            features.pointer.advanced(by: bi * n * d).update(from: x.pointer + (bi * t + 1 + r) * d, count: n * d)
        }
        var out = DinoOutput(batch: b, gridHeight: gh, gridWidth: gw, dim: d, features: features)
        if options.normed || options.cls {
            layerNormForward(xn.pointer, x.pointer, weight: norm.weight.pointer, bias: norm.bias.pointer,
                             rows: rows, cols: d, eps: c.layerNormEps)
            if options.cls {
                let cls = FloatStorage(count: b * d, zeroed: false)
                for bi in 0..<b { (cls.pointer + bi * d).update(from: xn.pointer + bi * t * d, count: d) }
                out.cls = cls
            }
            if options.normed { out.normed = xn }
        }
        return out
    }

    /// interpolate_pos_encoding (METHOD §1.3): [1 + Gh·Gw, D]. The 37×37 grid is returned unchanged only for 518×518.
    package func interpolatedPositions(gridHeight gh: Int, gridWidth gw: Int) -> FloatStorage {
        let c = config, d = c.embedDim, m = c.posGrid
        let out = FloatStorage(count: (1 + gh * gw) * d, zeroed: false)
        out.pointer.update(from: posEmbed.pointer, count: d)
        if gh == m && gw == m {
            (out.pointer + d).update(from: posEmbed.pointer + d, count: m * m * d)
            return out
        }
        // PyTorch's kernels work on planar [C, H, W]: transpose the [37·37, D] grid in and the result out.
        let planar = FloatStorage(count: d * m * m, zeroed: false)
        for t in 0..<(m * m) { for c in 0..<d { planar.pointer[c * m * m + t] = posEmbed.pointer[(1 + t) * d + c] } }
        let resized = FloatStorage(count: d * gh * gw, zeroed: false)
        let src = UnsafeBufferPointer(planar.buffer), dst = resized.buffer
        if c.interpolateAntialias {
            bicubicAAResize(dst, src, channels: d, inHeight: m, inWidth: m, outHeight: gh, outWidth: gw)
        } else {
            // The code's "w0" is the image height: sy scales rows, sx columns (METHOD §1.3, dinov2 issue #456).
            bicubicResize(dst, src, channels: d, inHeight: m, inWidth: m, outHeight: gh, outWidth: gw,
                          scaleH: (Double(gh) + c.interpolateOffset) / Double(m), scaleW: (Double(gw) + c.interpolateOffset) / Double(m))
        }
        for t in 0..<(gh * gw) { for ch in 0..<d { out.pointer[(1 + t) * d + ch] = resized.pointer[ch * gh * gw + t] } }
        return out
    }
}

/// [B, 3, H, W] → [B·N, 3·p·p] with each patch flattened in (channel, ky, kx) order, patches row-major.
func im2col(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch b: Int, height h: Int, width w: Int, patch p: Int) {
    let gh = h / p, gw = w / p, k = 3 * p * p
    for bi in 0..<b {
        for py in 0..<gh {
            for px in 0..<gw {
                var dst = out + ((bi * gh + py) * gw + px) * k
                for ch in 0..<3 {
                    for ky in 0..<p {
                        let src = x + ((bi * 3 + ch) * h + py * p + ky) * w + px * p
                        dst.update(from: src, count: p)
                        dst += p
                    }
                }
            }
        }
    }
}
