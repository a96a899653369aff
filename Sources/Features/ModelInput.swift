import DINOv2
import Imaging
import Kernels

/// An image as the backbone sees it (METHOD §2.3): letterboxed to R × R (LANCZOS, aspect kept, zero padding) and
/// normalised with the ImageNet mean and deviation, [3, R, R]. Evaluation, the server and `features`/`sphere` go
/// through here; the trainer's crops (METHOD §2.1) normalise the same way after their own resize.
package enum ModelInput {
    /// [3, R, R] of a decoded image.
    package static func tensor(_ image: RGBImage, resolution r: Int) throws -> [Float] {
        toNormalizedTensor(try letterbox(image, resolution: r))
    }

    /// The same written into `out` (3·R·R floats), for a slot of a batch.
    package static func write(_ image: RGBImage, resolution r: Int, into out: UnsafeMutableBufferPointer<Float>) throws {
        let boxed = try letterbox(image, resolution: r)
        boxed.pixels.withUnsafeBufferPointer { px in normalizeToTensor(out, px, width: boxed.width, height: boxed.height) }
    }

    /// Decodes an image file's bytes and prepares it.
    package static func tensor(bytes: [UInt8], resolution r: Int) throws -> [Float] {
        try tensor(try decodeImage(bytes), resolution: r)
    }
}

extension DinoVisionTransformer {
    /// Patch features [B, N, D] of `count` prepared images [B, 3, S, S], `chunk` images per forward pass to bound the
    /// activations' memory, appended to `out`.
    package func features(of inputs: UnsafeBufferPointer<Float>, count: Int, side s: Int, chunk: Int, into out: inout [Float]) {
        precondition(inputs.count == count * 3 * s * s && chunk >= 1)
        let plane = 3 * s * s
        var i = 0
        while i < count {
            let n = min(chunk, count - i)
            let f = forward(images: inputs.baseAddress! + i * plane, batch: n, height: s, width: s)
            out += UnsafeBufferPointer(start: f.features.pointer, count: n * f.patches * f.dim)
            i += n
        }
    }
}
