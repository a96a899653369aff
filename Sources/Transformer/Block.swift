import Kernels

// The pre-norm transformer block of timm and facebookresearch/dinov2 (METHOD §1.2, §3.1), shared by the DINO
// backbones and the sphere mapper, and its feed-forward half, shared with the prototypes' CABlock (METHOD §3.3).
// Weights only: each model names them as its checkpoint does and decides its own eps and heads.
//
// Letters: R = rows (B·T tokens), D = block width, F = FFN hidden width.

/// How a pass runs its layers: the kernel family, and for layers with reordered weights under `auto` the precision
/// (bf16 rounds the matmul inputs; LayerNorm, attention and the residual stream stay fp32).
package struct LayerKernels: Sendable {
    package var family: KernelFamily
    package var precision: Precision
    package init(family: KernelFamily = KernelFamily.current, precision: Precision = .fp32) {
        precondition(precision == .fp32 || family == .auto, "bf16 runs with the auto kernels (oneDNN matmul)")
        self.family = family; self.precision = precision
    }
}

/// nn.LayerNorm's affine parameters.   weight, bias: [D]
package struct LayerNormWeights: Sendable {
    package var weight: Parameter
    package var bias: Parameter
    package init(weight: Parameter, bias: Parameter) { self.weight = weight; self.bias = bias }

    /// out = LayerNorm(x).   out, x: [R, D]
    package func forward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, eps: Float) {
        layerNormForward(out, x, weight: weight.pointer, bias: bias.pointer, rows: rows, cols: weight.count, eps: eps)
    }
}

/// nn.Linear's parameters: weight [O, I] (or any shape whose first axis is O, e.g. a conv's [O, 3, p, p]), bias [O].
package struct LinearWeights: Sendable {
    /// [O, I] as in the checkpoint: the hand-written and portable kernels' operand, and the source of the matmul
    /// reorders. A backbone whose process runs only the `auto` kernels releases it once reordered (`releaseReference`).
    package var weight: Parameter { didSet { if matmul != nil && hasReference { matmul = Self.reordered(weight) } } }
    package var bias: Parameter?
    /// The same weights for oneDNN's matmul, reordered once per precision: for layers a model runs many times (the
    /// backbone). nil: the `auto` kernels use the weights in place (`linearForward`).
    package private(set) var matmul: MatmulWeights?
    /// false once `releaseReference` dropped the fp32 [O, I] copy (`weight` is then empty; the reorders remain).
    package private(set) var hasReference = true
    package var outFeatures: Int { hasReference ? weight.shape[0] : matmul!.outFeatures }
    package var inFeatures: Int { hasReference ? weight.count / weight.shape[0] : matmul!.inFeatures }

    package init(weight: Parameter, bias: Parameter?, reordered: Bool = false) {
        self.weight = weight; self.bias = bias
        matmul = reordered ? Self.reordered(weight) : nil
    }

    /// Drops the fp32 copy; only the matmul reorders already made remain (they own their memory).
    package mutating func releaseReference() {
        precondition(matmul != nil, "only a reordered layer can release its reference weights")
        hasReference = false
        weight = Parameter([], shape: [0])
    }

    private static func reordered(_ w: Parameter) -> MatmulWeights {
        MatmulWeights(weight: w.pointer, inFeatures: w.count / w.shape[0], outFeatures: w.shape[0], owner: nil)  // `weight` keeps them alive
    }

    /// out[R, O] = epilogue(x[R, I]·Wᵀ + b) by the family's kernel. Under bf16 a reordered layer may read (`input`) and
    /// write (`output`) bf16 activations; under fp32 both are fp32.
    package func forward(_ out: UnsafeMutableRawPointer, output: Matmul.Activation = .f32, _ x: UnsafeRawPointer,
                         input: Matmul.Activation = .f32, rows: Int, epilogue: LinearEpilogue = .bias, kernels k: LayerKernels) {
        if k.family == .auto, let m = matmul {
            let fp32 = k.precision == .fp32
            Matmul.linear(out, output: fp32 ? .f32 : output, x, input: fp32 ? .f32 : input, weights: m, bias: bias?.pointer, rows: rows,
                          epilogue: epilogue, precision: k.precision)
        } else {
            precondition(hasReference, "the fp32 weights of this layer were released after oneDNN's reorders")
            linearForward(out.assumingMemoryBound(to: Float.self), x.assumingMemoryBound(to: Float.self), weight: weight.pointer,
                          bias: bias?.pointer, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, epilogue: epilogue, family: k.family)
        }
    }
}

/// The feed-forward network of a block: `mlp` fc1 → GELU → fc2, or `swiglu` (DINOv2 giant) w12 → SiLU(x₁)·x₂ → w3.
package enum FeedForward: String, Sendable, Codable { case mlp, swiglu }

/// The feed-forward half's layers.
package struct FeedForwardWeights: Sendable {
    package var kind: FeedForward
    package var fc1: LinearWeights  // mlp.fc1 [F, D] | mlp.w12 [2F, D]
    package var fc2: LinearWeights  // mlp.fc2 [D, F] | mlp.w3 [D, F]
    package init(_ kind: FeedForward, fc1: LinearWeights, fc2: LinearWeights) { self.kind = kind; self.fc1 = fc1; self.fc2 = fc2 }

    /// x ← x + scale ⊙ ffn(norm(x)), in place: the second half of a block, and CABlock's MLP. Under bf16 the MLP's hidden
    /// activations are written and read as bf16 (half the memory traffic).
    ///   x, xn: [R, D]; hidden: [R, F] (mlp) or [R, 2F] (swiglu); gate: [R, F] (swiglu only)
    package func addResidual(_ x: UnsafeMutablePointer<Float>, norm: LayerNormWeights, scale: Parameter?, rows: Int, eps: Float,
                             kernels k: LayerKernels, xn: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>,
                             gate: UnsafeMutablePointer<Float>? = nil) {
        norm.forward(xn, x, rows: rows, eps: eps)
        switch kind {
        case .mlp:
            fc1.forward(hidden, output: .bf16, xn, rows: rows, epilogue: .biasGELU, kernels: k)
            fc2.forward(x, hidden, input: .bf16, rows: rows, epilogue: residual(scale), kernels: k)
        case .swiglu:
            guard let gate else { preconditionFailure("swiglu needs its gate buffer") }
            fc1.forward(hidden, xn, rows: rows, kernels: k)
            swigluForward(gate, hidden, rows: rows, hidden: fc2.inFeatures)
            fc2.forward(x, gate, rows: rows, epilogue: residual(scale), kernels: k)
        }
    }
}

/// What a block is run with besides its weights: the attention heads and the LayerNorm eps (1e-6 in DINOv2,
/// nn.LayerNorm's default 1e-5 in the mapper, METHOD §3.1).
package struct BlockConfig: Sendable {
    package var heads: Int
    package var eps: Float
    package init(heads: Int, eps: Float) { self.heads = heads; self.eps = eps }
}

/// blocks.i / sphere_mapper.2: x ← x + ls1 ⊙ attn(norm1(x)); x ← x + ls2 ⊙ ffn(norm2(x)). Without LayerScale
/// (DINOv1, the mapper) ls1 = ls2 = 1; the mapper's qkv has no bias.
package struct BlockWeights: Sendable {
    package var norm1: LayerNormWeights
    package var qkv: LinearWeights     // attn.qkv: [3D, D], rows q | k | v
    package var proj: LinearWeights    // attn.proj: [D, D]
    package var ls1: Parameter?        // ls1.gamma: [D], nil without LayerScale
    package var norm2: LayerNormWeights
    package var ffn: FeedForwardWeights
    package var ls2: Parameter?        // ls2.gamma: [D], nil without LayerScale

    package init(norm1: LayerNormWeights, qkv: LinearWeights, proj: LinearWeights, ls1: Parameter? = nil,
                 norm2: LayerNormWeights, ffn: FeedForwardWeights, ls2: Parameter? = nil) {
        self.norm1 = norm1; self.qkv = qkv; self.proj = proj; self.ls1 = ls1; self.norm2 = norm2; self.ffn = ffn; self.ls2 = ls2
    }

    package var width: Int { norm1.weight.count }
    /// The linear layers, for reordering them all at load.
    package var linears: [LinearWeights] { [qkv, proj, ffn.fc1, ffn.fc2] }

    /// Releases every linear layer's fp32 copy once reordered (`LinearWeights.releaseReference`).
    package mutating func releaseReferenceWeights() {
        qkv.releaseReference(); proj.releaseReference(); ffn.fc1.releaseReference(); ffn.fc2.releaseReference()
    }

    /// x ← x + ls1 ⊙ proj(attention(qkv(norm1(x)))), in place. Attention is global over each image's T tokens.
    ///   x, xn, attn: [B, T, D]; qkv: [B, T, 3D]
    package func addAttention(_ x: UnsafeMutablePointer<Float>, batch b: Int, tokens t: Int, config c: BlockConfig, kernels k: LayerKernels,
                              xn: UnsafeMutablePointer<Float>, qkv qkvOut: UnsafeMutablePointer<Float>, attn: UnsafeMutablePointer<Float>) {
        let rows = b * t, headDim = width / c.heads
        norm1.forward(xn, x, rows: rows, eps: c.eps)
        qkv.forward(qkvOut, xn, rows: rows, kernels: k)
        attentionForward(attn, qkv: qkvOut, batch: b, tokens: t, heads: c.heads, headDim: headDim, scale: 1 / Float(headDim).squareRoot(),
                         family: k.family, precision: k.precision)
        proj.forward(x, attn, rows: rows, epilogue: residual(ls1), kernels: k)
    }

    /// The whole block, in place.   x: [B, T, D]. Afterwards `scratch.qkv` holds this block's q | k | v.
    package func forward(_ x: UnsafeMutablePointer<Float>, batch b: Int, tokens t: Int, config c: BlockConfig, kernels k: LayerKernels,
                         scratch s: BlockScratch) {
        addAttention(x, batch: b, tokens: t, config: c, kernels: k, xn: s.xn.pointer, qkv: s.qkv.pointer, attn: s.attn.pointer)
        ffn.addResidual(x, norm: norm2, scale: ls2, rows: b * t, eps: c.eps, kernels: k, xn: s.xn.pointer, hidden: s.hidden.pointer,
                        gate: s.gate?.pointer)
    }
}

/// The activations of block passes over R rows, allocated once and reused block after block.
package final class BlockScratch {
    package let xn: FloatStorage      // norm1(x), then norm2(x)          [R, D]
    package let qkv: FloatStorage     // the last pass's q | k | v         [R, 3D]
    package let attn: FloatStorage    // attention output, heads merged    [R, D]
    package let hidden: FloatStorage  // fc1 output                        [R, F] (mlp) | [R, 2F] (swiglu)
    package let gate: FloatStorage?   // SiLU(x₁)·x₂                       [R, F] (swiglu)

    /// Room for `block`'s pass over `rows` rows (every block of a model has the same shapes).
    package init(rows: Int, block: BlockWeights) {
        let d = block.width, f = block.ffn.fc1.outFeatures
        xn = FloatStorage(count: rows * d, zeroed: false)
        qkv = FloatStorage(count: rows * 3 * d, zeroed: false)
        attn = FloatStorage(count: rows * d, zeroed: false)
        hidden = FloatStorage(count: rows * f, zeroed: false)
        gate = block.ffn.kind == .swiglu ? FloatStorage(count: rows * block.ffn.fc2.inFeatures, zeroed: false) : nil
    }
}

/// The residual add of a block half: with its LayerScale gamma (DINOv2), or plain.
func residual(_ gamma: Parameter?) -> LinearEpilogue {
    gamma.map { .biasScaleAddInto(gamma: $0.pointer) } ?? .biasAddInto
}
