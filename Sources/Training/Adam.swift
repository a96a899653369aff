import Kernels

/// Adam as torch.optim.Adam with its defaults (METHOD §4.1): β = (0.9, 0.999), eps 1e-8, no weight decay, no AMSGrad.
/// One flat loop over every trainable value: the shared CABlock is one set of tensors, so it is updated once.
/// Order of operations as torch/optim/adam.py (`_single_tensor_adam`, what CPU tensors get; `_multi_tensor_adam`
/// does the same operations per tensor list):
///   m ← m + (1−β1)·(g − m)            (lerp)
///   v ← β2·v + (1−β2)·g²
///   p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + eps)
/// with the bias corrections in double, as Python computes them, and every tensor op in float.
final class Adam: @unchecked Sendable {
    static let beta1 = 0.9, beta2 = 0.999, eps: Float = 1e-8
    /// First and second moments.   [P]
    let m: FloatStorage
    let v: FloatStorage
    var step = 0

    init(count: Int) {
        m = FloatStorage(count: count)
        v = FloatStorage(count: count)
    }

    func update(_ p: ParameterSet, learningRate lr: Float) {
        step += 1
        let t = Double(step)
        let stepSize = Float(Double(lr) / (1 - pow(Adam.beta1, t)))
        let bc2Sqrt = Float((1 - pow(Adam.beta2, t)).squareRoot())
        let b1 = Float(1 - Adam.beta1), b2 = Float(Adam.beta2), oneMinusB2 = Float(1 - Adam.beta2), eps = Adam.eps
        let ps = Shared(p.values.pointer), gs = Shared(p.grads.pointer), ms = Shared(m.pointer), vs = Shared(v.pointer)
        Parallel.forRanges(p.count, minChunk: 1 << 14) { r in
            for i in r {
                let g = gs.base[i]
                let mi = ms.base[i] + b1 * (g - ms.base[i])
                let vi = vs.base[i] * b2 + oneMinusB2 * g * g
                ms.base[i] = mi; vs.base[i] = vi
                ps.base[i] -= stepSize * (mi / (vi.squareRoot() / bc2Sqrt + eps))
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
