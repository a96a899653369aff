import Kernels

/// How far the bf16 backbone's features are from fp32 ones: per-token cosine similarity of the method's features
/// (last block, before the final norm) on the same input. README and /v1/info quote it.
package struct PrecisionAgreement: Sendable {
    package var meanCosine: Double
    package var minCosine: Double
    package var tokens: Int

    /// Per-token cosine of `a` against `b`, both [N, D].
    package init(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, tokens n: Int, dim d: Int) {
        var sum = 0.0, lo = Double.infinity
        for t in 0..<n {
            var ab = 0.0, aa = 0.0, bb = 0.0
            for j in 0..<d {
                let x = Double(a[t * d + j]), y = Double(b[t * d + j])
                ab += x * y; aa += x * x; bb += y * y
            }
            let c = ab / max((aa * bb).squareRoot(), 1e-30)
            sum += c; lo = min(lo, c)
        }
        meanCosine = n > 0 ? sum / Double(n) : 1; minCosine = n > 0 ? lo : 1; tokens = n
    }
}

extension DinoVisionTransformer {
    /// bf16 features against fp32 features of this model on `images` [B, 3, H, W] (normalised).
    package func bf16Agreement(images: UnsafePointer<Float>, batch: Int, height: Int, width: Int) -> PrecisionAgreement {
        let ref = forward(images: images, batch: batch, height: height, width: width, options: ForwardOptions(kernels: .auto, precision: .fp32))
        let low = forward(images: images, batch: batch, height: height, width: width, options: ForwardOptions(kernels: .auto, precision: .bf16))
        return PrecisionAgreement(low.features.pointer, ref.features.pointer, tokens: batch * ref.patches, dim: ref.dim)
    }

    /// The same on a fixed probe image (smooth colour ramps with a checkerboard, 224², normalised like a photo):
    /// what the server can measure for whatever backbone it loaded.
    package func bf16AgreementOnProbe(side: Int = 224) -> PrecisionAgreement {
        let probe = FloatStorage(count: 3 * side * side, zeroed: false)
        for c in 0..<3 {
            for y in 0..<side {
                for x in 0..<side {
                    let ramp = Float(c == 0 ? x : c == 1 ? y : x + y) / Float(side)
                    let check: Float = ((x / 16 + y / 16) % 2 == 0) ? 0.4 : -0.4
                    probe.pointer[(c * side + y) * side + x] = 2 * ramp - 1 + check
                }
            }
        }
        return bf16Agreement(images: probe.pointer, batch: 1, height: side, width: side)
    }
}
