// Letters: R = rows (tokens), I = input features, O = output features.

/// What happens to each GEMM tile after the product, while it is still warm: the fused epilogues
/// that save PyTorch's separate passes over memory.
package enum LinearEpilogue {
    /// out = x·Wᵀ + b
    case bias
    /// out = gelu(x·Wᵀ + b), exact erf GELU
    case biasGELU
    /// out += gamma ⊙ (x·Wᵀ + b): LayerScale and the residual add of a transformer block.
    case biasScaleAddInto(gamma: UnsafePointer<Float>)
    /// out += x·Wᵀ + b: the residual add of a block without LayerScale.
    case biasAddInto
}

/// out[R, O] = epilogue(x[R, I] · W[O, I]ᵀ + b[O]), rows split over the workers.
package func linearForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures i: Int, outFeatures o: Int,
    epilogue: LinearEpilogue = .bias
) {
    precondition(rows >= 0 && i > 0 && o > 0)
    let xs = Shared(x), ws = Shared(weight), os = Shared(out)
    let bs = bias.map { Shared($0) }
    let backend = GEMM.backend, family = KernelFamily.current
    let gamma: Shared<Float>? = if case let .biasScaleAddInto(g) = epilogue { Shared(g) } else { nil }
    let gelu: Bool = if case .biasGELU = epilogue { true } else { false }
    let accumulate: Bool = switch epilogue { case .biasScaleAddInto, .biasAddInto: true; default: false }
    Parallel.forRanges(rows, minChunk: 32) { range in
        // Tiles of rows keep each tile's product in cache for its epilogue.
        let tile = Tuning.linearTile
        let scratch: UnsafeMutablePointer<Float>? = accumulate ? .allocate(capacity: min(tile, range.count) * o) : nil
        defer { scratch?.deallocate() }
        var r0 = range.lowerBound
        while r0 < range.upperBound {
            let n = min(tile, range.upperBound - r0)
            let dst = scratch ?? (os.base + r0 * o)
            GEMM.sgemm(m: n, n: o, k: i, a: xs.base + r0 * i, lda: i, b: ws.base, ldb: i, bTransposed: true,
                       c: dst, ldc: o, backend: backend)
            for r in 0..<n {
                let row = dst + r * o
                if let bs { addInPlace(row, bs.base, count: o) }
                if gelu { geluInPlace(row, count: o, family: family) }
                if accumulate {
                    let res = os.base + (r0 + r) * o
                    if let gamma { multiplyAddInPlace(res, gamma.base, row, count: o) } else { addInPlace(res, row, count: o) }
                }
            }
            r0 += n
        }
    }
}

/// y[j] += x[j].   y, x: [n]
@inline(__always)
package func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    let yr = UnsafeMutableRawPointer(y), xr = UnsafeRawPointer(x)
    var j = 0
    while j + 8 <= n {
        yr.storeBytes(of: yr.loadUnaligned(fromByteOffset: j * 4, as: F8.self) + xr.loadUnaligned(fromByteOffset: j * 4, as: F8.self),
                      toByteOffset: j * 4, as: F8.self)
        j += 8
    }
    while j < n { y[j] += x[j]; j += 1 }
}

/// y[j] += a[j] · b[j].   y, a, b: [n]
@inline(__always)
package func multiplyAddInPlace(_ y: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) {
    let yr = UnsafeMutableRawPointer(y), ar = UnsafeRawPointer(a), br = UnsafeRawPointer(b)
    var j = 0
    while j + 8 <= n {
        let v = yr.loadUnaligned(fromByteOffset: j * 4, as: F8.self)
            + ar.loadUnaligned(fromByteOffset: j * 4, as: F8.self) * br.loadUnaligned(fromByteOffset: j * 4, as: F8.self)
        yr.storeBytes(of: v, toByteOffset: j * 4, as: F8.self)
        j += 8
    }
    while j < n { y[j] += a[j] * b[j]; j += 1 }
}
