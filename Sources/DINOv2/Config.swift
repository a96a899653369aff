import Foundation

/// Hyper-parameters of a DINOv2 ViT (METHOD §1.1). Patch size 14 and head dim 64 in every released variant.
package struct DinoConfig: Sendable, Equatable, Codable {
    package enum FFN: String, Sendable, Codable { case mlp, swiglu }

    package var embedDim: Int
    package var depth: Int
    package var heads: Int
    package var ffn: FFN
    /// Hidden width of the FFN: 4·D for the MLP; for SwiGLU the rounded (int(4D·2/3) + 7) // 8 · 8.
    package var ffnHidden: Int
    package var registers: Int
    package var patchSize = 14
    /// Side of the pretraining position grid (518 / 14 = 37).
    package var posGrid = 37
    package var layerNormEps: Float = 1e-6

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

    /// The released variant with these shapes, if any.
    package var variant: Variant? {
        guard let v = Variant(embedDim: embedDim), v.depth == depth, v.heads == heads, v.ffn == ffn else { return nil }
        return v
    }

    package var displayName: String {
        (variant.map { "dinov2-\($0.rawValue)" } ?? "dinov2-custom(D=\(embedDim),L=\(depth))") + (registers > 0 ? "-reg\(registers)" : "")
    }

    /// Multiply–add count ×2 of one forward pass at batch 1 for an H×W input (for GFLOP/s figures).
    package func flops(height: Int, width: Int) -> Double {
        let n = Double((height / patchSize) * (width / patchSize))
        let t = n + 1 + Double(registers)
        let d = Double(embedDim), f = Double(ffnHidden)
        let patch = 2 * n * d * Double(3 * patchSize * patchSize)
        let qkv = 2 * t * d * 3 * d, proj = 2 * t * d * d
        let attn = 2 * 2 * t * t * d
        let mlp = ffn == .mlp ? 2 * t * d * f * 2 : 2 * t * d * 2 * f + 2 * t * f * d
        return patch + Double(depth) * (qkv + proj + attn + mlp)
    }
}

/// Hugging Face `config.json` of Dinov2Model / Dinov2WithRegistersModel (the fields we read).
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

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", mlpRatio = "mlp_ratio", layerNormEps = "layer_norm_eps"
        case patchSize = "patch_size", imageSize = "image_size", useSwigluFfn = "use_swiglu_ffn"
        case numRegisterTokens = "num_register_tokens"
    }
}
