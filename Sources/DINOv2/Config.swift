import Foundation
import Transformer

/// Hyper-parameters of a DINO ViT: DINOv2 (METHOD §1.1; patch 14, LayerScale) or DINOv1 (METHOD §1.5; patch 8
/// or 16, no LayerScale, the reference's key descriptors). Head dim 64 in every released variant.
package struct DinoConfig: Sendable, Equatable, Codable {
    package typealias FFN = FeedForward
    package enum Family: String, Sendable, Codable { case dinov2, dinov1 }

    package var embedDim: Int
    package var depth: Int
    package var heads: Int
    package var ffn: FFN
    /// Hidden width of the FFN: 4·D for the MLP; for SwiGLU the rounded (int(4D·2/3) + 7) // 8 · 8.
    package var ffnHidden: Int
    package var registers: Int
    package var family = Family.dinov2
    package var patchSize = 14
    /// Stride of the patch embedding: the patch size, or (DINOv1, the reference's `ViTExtractor(stride:)`) a divisor
    /// of it for a denser grid (METHOD §1.5).
    package var patchStride = 14
    /// Side of the pretraining position grid (518 / 14 = 37; DINOv1 224 / p).
    package var posGrid = 37
    package var layerNormEps: Float = 1e-6
    /// DINOv1: the features are the keys of this block (facet 'key', METHOD §1.5); nil for DINOv2 (x_prenorm).
    package var keyBlock: Int?

    /// LayerScale gammas in every block (DINOv2 only).
    package var layerScale: Bool { family == .dinov2 }

    /// facebookresearch/dinov2's interpolation rule: registers models use the size-based antialiased form
    /// (offset 0), the others scale_factor = (g + 0.1)/37 without antialias (METHOD §1.3).
    package var interpolateOffset: Double { registers > 0 ? 0 : 0.1 }
    package var interpolateAntialias: Bool { registers > 0 }
    package var headDim: Int { embedDim / heads }

    package init(embedDim: Int, depth: Int, heads: Int, ffn: FFN, registers: Int) {
        self.embedDim = embedDim
        self.depth = depth
        self.heads = heads
        self.ffn = ffn
        self.ffnHidden = ffn == .mlp ? 4 * embedDim : DinoConfig.swigluHidden(embedDim)
        self.registers = registers
    }

    /// A DINOv1 ViT (facebookresearch/dino vit_small / vit_base): GELU MLP, no registers, 224/p position grid, features
    /// the keys of block 9 for the 12-block released models (the paper's evaluation code), of the last block otherwise.
    package static func dinoV1(embedDim: Int, depth: Int, heads: Int, patchSize: Int, stride: Int? = nil) -> DinoConfig {
        var c = DinoConfig(embedDim: embedDim, depth: depth, heads: heads, ffn: .mlp, registers: 0)
        c.family = .dinov1
        c.patchSize = patchSize
        c.patchStride = stride ?? patchSize
        c.posGrid = 224 / patchSize
        c.keyBlock = depth == 12 ? 9 : depth - 1
        return c
    }

    /// Patches along a side of `pixels` (the conv's `1 + (pixels − p) // stride`).
    package func gridSide(_ pixels: Int) -> Int { 1 + (pixels - patchSize) / patchStride }

    /// Why a side of `pixels` does not tile the patch grid exactly, nil when it does.
    package func invalidSideReason(_ pixels: Int) -> String? {
        guard pixels < patchSize || (pixels - patchSize) % patchStride != 0 else { return nil }
        return patchStride == patchSize ? "must be a positive multiple of \(patchSize); got \(pixels)"
            : "must be \(patchSize) + \(patchStride)·k (patch \(patchSize), stride \(patchStride)); got \(pixels)"
    }

    /// Why a patch stride is not usable with this backbone, nil when it is.
    package func invalidStrideReason(_ stride: Int) -> String? {
        if stride == patchSize { return nil }
        guard family == .dinov1 else { return "a patch stride other than the patch size \(patchSize) is a DINOv1 option; got \(stride)" }
        guard stride > 0, patchSize % stride == 0 else { return "the patch stride must divide the patch size \(patchSize); got \(stride)" }
        return nil
    }

    package static func swigluHidden(_ d: Int) -> Int { (Int(Double(4 * d) * 2 / 3) + 7) / 8 * 8 }

    /// The released variants (METHOD §1.1).
    package enum Variant: String, Sendable, CaseIterable, Codable {
        case small, base, large, giant
        package var embedDim: Int { [.small: 384, .base: 768, .large: 1024, .giant: 1536][self]! }
        package var depth: Int { [.small: 12, .base: 12, .large: 24, .giant: 40][self]! }
        package var heads: Int { embedDim / 64 }
        package var ffn: FFN { self == .giant ? .swiglu : .mlp }
        package var hubName: String { "dinov2_vit\(rawValue.prefix(1))14" }
        package init?(embedDim: Int) {
            guard let v = Variant.allCases.first(where: { $0.embedDim == embedDim }) else { return nil }
            self = v
        }
    }

    package static func variant(_ v: Variant, registers: Bool) -> DinoConfig {
        DinoConfig(embedDim: v.embedDim, depth: v.depth, heads: v.heads, ffn: v.ffn, registers: registers ? 4 : 0)
    }

    /// The released DINOv2 variant with these shapes, if any.
    package var variant: Variant? {
        guard family == .dinov2, let v = Variant(embedDim: embedDim), v.depth == depth, v.heads == heads, v.ffn == ffn else { return nil }
        return v
    }

    package var displayName: String {
        if family == .dinov1 {
            let size = [384: "s", 768: "b"][embedDim].flatMap { depth == 12 && heads == embedDim / 64 ? $0 : nil }
            let name = size.map { "dino-vit\($0)\(patchSize)" } ?? "dino-custom(D=\(embedDim),L=\(depth),p=\(patchSize))"
            return name + (patchStride != patchSize ? "-stride\(patchStride)" : "")
        }
        return (variant.map { "dinov2-\($0.rawValue)" } ?? "dinov2-custom(D=\(embedDim),L=\(depth))") + (registers > 0 ? "-reg\(registers)" : "")
    }

    /// Multiply–add count ×2 of one forward pass at batch 1 for an H×W input (for GFLOP/s figures).
    package func flops(height: Int, width: Int) -> Double {
        let n = Double(gridSide(height) * gridSide(width))
        let t = n + 1 + Double(registers)
        let d = Double(embedDim), f = Double(ffnHidden)
        let patch = 2 * n * d * Double(3 * patchSize * patchSize)
        let qkv = 2 * t * d * 3 * d, proj = 2 * t * d * d
        let attn = 2 * 2 * t * t * d
        let mlp = ffn == .mlp ? 2 * t * d * f * 2 : 2 * t * d * 2 * f + 2 * t * f * d
        return patch + Double(depth) * (qkv + proj + attn + mlp)
    }
}

/// Hugging Face `config.json` of Dinov2Model / Dinov2WithRegistersModel / ViTModel (the fields we read).
struct HFConfig: Decodable {
    var modelType: String?
    var hiddenSize: Int
    var numHiddenLayers: Int
    var numAttentionHeads: Int
    var mlpRatio: Double?
    var layerNormEps: Double?
    var patchSize: Int?
    var imageSize: Int?
    var useSwigluFfn: Bool?
    var numRegisterTokens: Int?
    var intermediateSize: Int?
    var qkvBias: Bool?
    var hiddenAct: String?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", mlpRatio = "mlp_ratio", layerNormEps = "layer_norm_eps"
        case patchSize = "patch_size", imageSize = "image_size", useSwigluFfn = "use_swiglu_ffn"
        case numRegisterTokens = "num_register_tokens", intermediateSize = "intermediate_size", qkvBias = "qkv_bias"
        case hiddenAct = "hidden_act"
    }
}
