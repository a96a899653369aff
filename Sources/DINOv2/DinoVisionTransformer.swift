import Foundation
import Kernels
import TensorFiles
import Transformer

// Letters: B = batch, T = 1 + R + N tokens ([CLS, registers, patches row-major]), N = Gh·Gw patches,
// R = registers, D = embed dim, F = FFN hidden, P = 3·p·p pixels per patch (588 for DINOv2's p = 14).
// Names follow the torch-hub checkpoint (facebookresearch/dinov2 vision_transformer.py; DINOv1's
// facebookresearch/dino checkpoints use the same names without LayerScale, mask and register tokens).

// The block's weights and forward are the shared `Transformer.BlockWeights`; here they are read by checkpoint name.
extension LayerNormWeights {
    init(_ r: WeightReader, _ prefix: String, dim: Int) throws {
        self.init(weight: try r.take("\(prefix).weight", shape: [dim]), bias: try r.take("\(prefix).bias", shape: [dim]))
    }
}

extension LinearWeights {
    /// Reordered for oneDNN's matmul at load (the `auto` kernels): the backbone runs each layer many times.
    init(_ r: WeightReader, _ prefix: String, in i: Int, out o: Int) throws {
        self.init(weight: try r.take("\(prefix).weight", shape: [o, i]), bias: try r.take("\(prefix).bias", shape: [o]), reordered: true)
    }
}

extension BlockWeights {
    /// blocks.i: norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1/fc2 (swiglu: mlp.w12/w3), ls2.gamma. DINOv1 has
    /// no LayerScale.
    init(_ r: WeightReader, index i: Int, config c: DinoConfig) throws {
        let p = "blocks.\(i)", d = c.embedDim, f = c.ffnHidden
        let norm1 = try LayerNormWeights(r, "\(p).norm1", dim: d)
        let qkv = try LinearWeights(r, "\(p).attn.qkv", in: d, out: 3 * d)
        let proj = try LinearWeights(r, "\(p).attn.proj", in: d, out: d)
        let ls1 = c.layerScale ? try r.take("\(p).ls1.gamma", shape: [d]) : nil
        let norm2 = try LayerNormWeights(r, "\(p).norm2", dim: d)
        let ffn = switch c.ffn {
        case .mlp: FeedForwardWeights(.mlp, fc1: try LinearWeights(r, "\(p).mlp.fc1", in: d, out: f), fc2: try LinearWeights(r, "\(p).mlp.fc2", in: f, out: d))
        case .swiglu: FeedForwardWeights(.swiglu, fc1: try LinearWeights(r, "\(p).mlp.w12", in: d, out: 2 * f), fc2: try LinearWeights(r, "\(p).mlp.w3", in: f, out: d))
        }
        let ls2 = c.layerScale ? try r.take("\(p).ls2.gamma", shape: [d]) : nil
        self.init(norm1: norm1, qkv: qkv, proj: proj, ls1: ls1, norm2: norm2, ffn: ffn, ls2: ls2)
    }
}

/// What a forward pass returns. Buffers are row-major and owned.
package struct DinoOutput: Sendable {
    package var batch: Int
    package var gridHeight: Int
    package var gridWidth: Int
    package var dim: Int
    /// [B, N, D]: what the method matches. DINOv2: the last block's output before the final norm, CLS and registers
    /// removed. DINOv1: the keys of block `keyBlock`, CLS removed, channels in the reference's (head dim, head) order.
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
    /// nil: the process-wide choice (`Precision.current`). bf16 runs with the `auto` kernels only.
    package var precision: Precision? = nil
    package init(cls: Bool = false, normed: Bool = false, kernels: KernelFamily? = nil, precision: Precision? = nil) {
        self.cls = cls; self.normed = normed; self.kernels = kernels; self.precision = precision
    }
}

/// The DINO ViT (v2, or v1 per `config.family`), immutable after load (safe to share; each forward allocates its own activations).
package final class DinoVisionTransformer: @unchecked Sendable {
    package let config: DinoConfig
    /// Where the weights came from (for /v1/info and logs).
    package let source: String
    let patchEmbed: LinearWeights   // weight viewed as [D, P] (conv weight [D, 3, p, p] flattened)
    let clsToken: Parameter            // [D]
    let posEmbed: Parameter            // [1 + M·M, D], M = posGrid
    let registerTokens: Parameter?     // [R, D]
    let blocks: [BlockWeights]
    let norm: LayerNormWeights
    let maskToken: Parameter?          // [1, D], DINOv2's training-only token; kept so a checkpoint round-trips
    private let named: [(String, Parameter)]
    /// false: the fp32 [O, I] copies of the linear layers were released after oneDNN's reorders for `precisions`
    /// (about the weights' size less resident memory); forwards then run the `auto` kernels at those precisions only.
    package let keepsReferenceWeights: Bool
    /// The precisions whose reorders exist when the reference weights are released.
    let precisions: Set<Precision>

    /// Whether models keep their fp32 linear weights when the caller does not say: true (tests pin kernel families per
    /// forward); an executable whose kernels are `auto` for its whole life sets false before loading.
    nonisolated(unsafe) package static var keepsReferenceWeightsByDefault = true

    init(config c: DinoConfig, reader r: WeightReader, source: String, keepsReferenceWeights keep: Bool = keepsReferenceWeightsByDefault) throws {
        config = c
        self.source = source
        let d = c.embedDim, ps = c.patchSize
        let convW = try r.take("patch_embed.proj.weight", shape: [d, 3, ps, ps])
        var patchEmbed = LinearWeights(weight: convW, bias: try r.take("patch_embed.proj.bias", shape: [d]), reordered: true)
        clsToken = try r.take("cls_token", shape: [1, 1, d])
        maskToken = c.family == .dinov2 ? try r.take("mask_token", shape: [1, d]) : nil  // in every DINOv2 checkpoint
        posEmbed = try r.take("pos_embed", shape: [1, 1 + c.posGrid * c.posGrid, d])
        registerTokens = c.registers > 0 ? try r.take("register_tokens", shape: [1, c.registers, d]) : nil
        let keeps = keep || KernelFamily.current != .auto
        keepsReferenceWeights = keeps
        // A bf16 process also runs fp32 forwards (the /v1/info agreement probe): both reorders are kept.
        let precisions: Set<Precision> = Precision.current == .bf16 ? [.bf16, .fp32] : [.fp32]
        self.precisions = precisions
        // Without the reference weights, each block's fp32 matrices go as soon as they are reordered, so that the
        // peak holds the reorders and one block's matrices, not both copies of every layer.
        var blocks: [BlockWeights] = []
        for i in 0..<c.depth {
            var b = try BlockWeights(r, index: i, config: c)
            if !keeps {
                for p in precisions { Self.prepare([b], nil, p) }
                r.release(b.linears.map(\.weight))
                b.releaseReferenceWeights()
            }
            blocks.append(b)
        }
        norm = try LayerNormWeights(r, "norm", dim: d)
        try r.finish()
        if keeps {
            if KernelFamily.current == .auto { Self.prepare(blocks, patchEmbed, Precision.current) }
        } else {
            Self.prepare([], patchEmbed, .fp32)
            r.release([patchEmbed.weight])
            patchEmbed.releaseReference()
        }
        // What the reader still holds is what the model kept (released names were dropped from its list).
        named = r.handedOut
        self.blocks = blocks
        self.patchEmbed = patchEmbed
    }

    /// The same weights under another choice of patch stride or key block (the shapes must agree).
    package init(sharing other: DinoVisionTransformer, config c: DinoConfig) {
        var same = c
        same.patchStride = other.config.patchStride
        same.keyBlock = other.config.keyBlock
        precondition(same == other.config, "only the patch stride and the key block may differ")
        precondition(c.keyBlock.map { (0..<c.depth).contains($0) } ?? true && c.invalidStrideReason(c.patchStride) == nil)
        config = c
        source = other.source
        patchEmbed = other.patchEmbed; clsToken = other.clsToken; posEmbed = other.posEmbed
        registerTokens = other.registerTokens; blocks = other.blocks; norm = other.norm; maskToken = other.maskToken
        named = other.named
        keepsReferenceWeights = other.keepsReferenceWeights; precisions = other.precisions
    }

    /// Reorders every linear layer's weights for oneDNN's matmul at `precision` now rather than on first use.
    package func prepare(_ precision: Precision) {
        precondition(keepsReferenceWeights || precisions.contains(precision), "the fp32 weights were released: no new reorders")
        Self.prepare(blocks, patchEmbed, precision)
    }

    private static func prepare(_ blocks: [BlockWeights], _ patchEmbed: LinearWeights?, _ precision: Precision) {
        let layers = blocks.flatMap(\.linears).compactMap(\.matmul)
        Parallel.forEach(layers.count) { layers[$0].prepare(precision) }
        patchEmbed?.matmul?.prepare(.fp32)  // the patch embedding always runs fp32
    }

    /// Every tensor under its torch-hub name, with its checkpoint shape (for writing a checkpoint): the names the
    /// model was loaded with (`WeightReader` records them). Needs the reference weights.
    package func namedWeights() -> [(String, Parameter)] {
        precondition(keepsReferenceWeights, "\(source): loaded without its fp32 linear weights (keepsReferenceWeights false)")
        return named
    }

    /// Forward pass over normalised images. images: [B, 3, H, W], each side p + stride·k (a multiple of 14 for DINOv2).
    /// `onBlock(i, x)` sees each block's output [B, T, D] (for parity tests). DINOv1 stops after `keyBlock` unless the
    /// normed tokens, the CLS token or `onBlock` are asked for (the later blocks do not touch the keys).
    package func forward(
        images: UnsafePointer<Float>, batch b: Int, height h: Int, width w: Int,
        options: ForwardOptions = ForwardOptions(),
        onBlock: ((Int, UnsafeBufferPointer<Float>) -> Void)? = nil
    ) -> DinoOutput {
        let c = config, d = c.embedDim, ps = c.patchSize, r = c.registers
        precondition(b > 0 && c.invalidSideReason(h) == nil && c.invalidSideReason(w) == nil, "input must tile the patch grid")
        let gh = c.gridSide(h), gw = c.gridSide(w), n = gh * gw, t = 1 + r + n, p = 3 * ps * ps
        let k = LayerKernels(family: options.kernels ?? KernelFamily.current, precision: options.precision ?? Precision.current)
        precondition(keepsReferenceWeights || (k.family == .auto && precisions.contains(k.precision)),
                     "\(source): loaded without its fp32 linear weights; only the auto kernels at \(precisions.map(\.rawValue).sorted()) run")

        // Patch embedding: im2col [B·N, P] (c, ky, kx order), then x·Wᵀ + b → [B·N, D].
        let cols = FloatStorage(count: b * n * p, zeroed: false)
        im2col(cols.pointer, images, batch: b, height: h, width: w, patch: ps, stride: c.patchStride)
        let patches = FloatStorage(count: b * n * d, zeroed: false)
        patchEmbed.forward(patches.pointer, cols.pointer, rows: b * n, kernels: LayerKernels(family: k.family))

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

        let rows = b * t
        let scratch = BlockScratch(rows: rows, block: blocks[0])
        let features = FloatStorage(count: b * n * d, zeroed: false)
        let blockConfig = BlockConfig(heads: c.heads, eps: c.layerNormEps)
        let lastBlock = c.keyBlock.map { options.normed || options.cls || onBlock != nil ? c.depth - 1 : $0 } ?? c.depth - 1
        for (i, blk) in blocks.enumerated() where i <= lastBlock {
            blk.forward(x.pointer, batch: b, tokens: t, config: blockConfig, kernels: k, scratch: scratch)
            if i == c.keyBlock { keyDescriptors(features.pointer, qkv: scratch.qkv.pointer, batch: b, tokens: t, patches: n) }
            onBlock?(i, UnsafeBufferPointer(start: x.pointer, count: rows * d))
        }

        // Features: DINOv2 x_prenorm[:, 1+R:]; DINOv1's keys were taken in their block.
        if c.keyBlock == nil {
            for bi in 0..<b {
                features.pointer.advanced(by: bi * n * d).update(from: x.pointer + (bi * t + 1 + r) * d, count: n * d)
            }
        }
        var out = DinoOutput(batch: b, gridHeight: gh, gridWidth: gw, dim: d, features: features)
        if options.normed || options.cls {
            let xn = scratch.xn
            norm.forward(xn.pointer, x.pointer, rows: rows, eps: c.layerNormEps)
            if options.cls {
                let cls = FloatStorage(count: b * d, zeroed: false)
                for bi in 0..<b { (cls.pointer + bi * d).update(from: xn.pointer + bi * t * d, count: d) }
                out.cls = cls
            }
            if options.normed { out.normed = xn }
        }
        return out
    }

    /// The reference's DINOv1 descriptor (METHOD §1.5): facet 'key' of the patch tokens, [B, N, D] with channel
    /// c = j·H + h for head h, head-dim index j (`keys.permute(0, 2, 3, 1).flatten(-2)` of [B, H, T, d]).
    /// qkv: [B, T, 3D], each row q | k | v, each D = H blocks of d.
    private func keyDescriptors(_ out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, batch b: Int, tokens t: Int, patches n: Int) {
        let d = config.embedDim, heads = config.heads, hd = config.headDim
        for bi in 0..<b {
            for i in 0..<n {
                let key = qkv + (bi * t + 1 + i) * 3 * d + d, dst = out + (bi * n + i) * d
                for h in 0..<heads { for j in 0..<hd { dst[j * heads + h] = key[h * hd + j] } }
            }
        }
    }

    /// interpolate_pos_encoding (METHOD §1.3, §1.5): [1 + Gh·Gw, D]. The M×M grid is returned unchanged only for a
    /// square input of M×M patches (518×518 for DINOv2, 224×224 for DINOv1 without a stride).
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

/// [B, 3, H, W] → [B·N, 3·p·p] with each patch flattened in (channel, ky, kx) order, patches row-major, patch
/// origins `stride` apart (the conv's stride; overlapping patches when stride < p).
func im2col(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch b: Int, height h: Int, width w: Int,
            patch p: Int, stride s: Int) {
    let gh = 1 + (h - p) / s, gw = 1 + (w - p) / s, k = 3 * p * p
    for bi in 0..<b {
        for py in 0..<gh {
            for px in 0..<gw {
                var dst = out + ((bi * gh + py) * gw + px) * k
                for ch in 0..<3 {
                    for ky in 0..<p {
                        let src = x + ((bi * 3 + ch) * h + py * s + ky) * w + px * s
                        dst.update(from: src, count: p)
                        dst += p
                    }
                }
            }
        }
    }
}
