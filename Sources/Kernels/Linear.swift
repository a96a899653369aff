import CKernels

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

/// out[R, O] = epilogue(x[R, I] · W[O, I]ᵀ + b[O]). The packed AVX2 kernel (CKernels/linear.c) when the
/// CPU has it, the library GEMM with a tiled epilogue otherwise.
package func linearForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures i: Int, outFeatures o: Int,
    epilogue: LinearEpilogue = .bias, family: KernelFamily = KernelFamily.current, backend: GEMMBackend = GEMM.backend
) {
    precondition(rows >= 0 && i > 0 && o > 0)
    if rows == 0 { return }
    if family.runsAVX2 {
        packedLinearForward(out, x, weight: weight, bias: bias, rows: rows, inFeatures: i, outFeatures: o, epilogue: epilogue)
    } else {
        libraryLinearForward(out, x, weight: weight, bias: bias, rows: rows, inFeatures: i, outFeatures: o, epilogue: epilogue,
                             backend: backend)
    }
}

/// The AVX2 path. Workers split the output features when there are enough 16-feature panels (each packs
/// only its own slice of W, once per call), the rows otherwise (each packs all of W).
package func packedLinearForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures i: Int, outFeatures o: Int,
    epilogue: LinearEpilogue = .bias
) {
    precondition(KernelFamily.avx2Supported)
    let code: Int32
    var gamma: UnsafePointer<Float>? = nil
    switch epilogue {
    case .bias: code = Int32(CK_LINEAR_BIAS)
    case .biasGELU: code = Int32(CK_LINEAR_BIAS_GELU)
    case .biasAddInto: code = Int32(CK_LINEAR_BIAS_ADD)
    case let .biasScaleAddInto(g): code = Int32(CK_LINEAR_BIAS_SCALE_ADD); gamma = g
    }
    let xs = Shared(x), ws = Shared(weight), os = Shared(out)
    let bs = bias.map { Shared($0) }, gs = gamma.map { Shared($0) }
    let panels = (o + 15) / 16
    if panels >= 4 * Parallel.workers {
        Parallel.forRanges(panels) { r in
            let col0 = r.lowerBound * 16, columns = min(o, r.upperBound * 16) - col0
            let wp = FloatStorage(count: ck_linear_packed_count(i, columns), zeroed: false)
            ck_linear_pack_weight(wp.pointer, ws.base, i, col0, columns)
            ck_linear(os.base + col0, o, xs.base, wp.pointer, bs.map { $0.base + col0 }, gs.map { $0.base + col0 }, rows, i, columns, code)
            withExtendedLifetime(wp) {}
        }
    } else {
        Parallel.forRanges(rows, minChunk: 6) { r in
            let wp = FloatStorage(count: ck_linear_packed_count(i, o), zeroed: false)
            ck_linear_pack_weight(wp.pointer, ws.base, i, 0, o)
            ck_linear(os.base + r.lowerBound * o, o, xs.base + r.lowerBound * i, wp.pointer, bs?.base, gs?.base, r.count, i, o, code)
            withExtendedLifetime(wp) {}
        }
    }
}

/// The portable path: library GEMM on row tiles split over the workers, the epilogue on each tile while warm.
package func libraryLinearForward(
    _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inFeatures i: Int, outFeatures o: Int,
    epilogue: LinearEpilogue = .bias, backend: GEMMBackend = GEMM.backend
) {
    let xs = Shared(x), ws = Shared(weight), os = Shared(out)
    let bs = bias.map { Shared($0) }
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
                if gelu { geluInPlace(row, count: o, family: .portable) }
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

// MARK: backward (METHOD §4; docs/ARCHITECTURE.md §5: each backward beside its forward)

/// Backward of `linearForward` with the `.bias` epilogue, y[R, O] = x[R, I]·W[O, I]ᵀ + b[O]:
///   dW[O, I] += dyᵀ·x,   db[O] += Σ_r dy[r, :],   dx[R, I] = dy·W (or += when `accumulateInput`).
/// Any of dx, dWeight, dBias may be nil. Deterministic for a fixed worker count (each output element is summed
/// by one worker in a fixed order). The GEMMs go to the library backend (oneDNN by default), split over workers.
package func linearBackward(
    dx: UnsafeMutablePointer<Float>?, accumulateInput: Bool = false,
    dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?,
    dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
    rows: Int, inFeatures i: Int, outFeatures o: Int
) {
    precondition(rows >= 0 && i > 0 && o > 0)
    if rows == 0 { return }
    let backend = GEMM.backend
    let dys = Shared(dy), xs = Shared(x)
    if let dWeight {
        // dW[O, I] += dyᵀ[O, R] · x[R, I]: split the larger of O and I over the workers.
        let dws = Shared(dWeight)
        if o >= i {
            Parallel.forRanges(o, minChunk: 16) { r in
                GEMM.sgemm(m: r.count, n: i, k: rows, a: dys.base + r.lowerBound, lda: o, b: xs.base, ldb: i, bTransposed: false,
                           c: dws.base + r.lowerBound * i, ldc: i, beta: 1, aTransposed: true, backend: backend)
            }
        } else {
            Parallel.forRanges(i, minChunk: 16) { r in
                GEMM.sgemm(m: o, n: r.count, k: rows, a: dys.base, lda: o, b: xs.base + r.lowerBound, ldb: i, bTransposed: false,
                           c: dws.base + r.lowerBound, ldc: i, beta: 1, aTransposed: true, backend: backend)
            }
        }
    }
    if let dBias { columnSumsAdd(dBias, dy, rows: rows, cols: o) }
    if let dx {
        // dx[R, I] = dy[R, O] · W[O, I]
        let dxs = Shared(dx), ws = Shared(weight)
        let beta: Float = accumulateInput ? 1 : 0
        Parallel.forRanges(rows, minChunk: 32) { r in
            GEMM.sgemm(m: r.count, n: i, k: o, a: dys.base + r.lowerBound * o, lda: o, b: ws.base, ldb: i, bTransposed: false,
                       c: dxs.base + r.lowerBound * i, ldc: i, beta: beta, backend: backend)
        }
    }
}

/// out[c] += Σ_r x[r, c], columns split over the workers, rows summed in order (deterministic for any worker count).
///   x: [R, C]; out: [C]
package func columnSumsAdd(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, cols c: Int) {
    let xs = Shared(x), os = Shared(out)
    Parallel.forRanges(c, minChunk: 64) { range in
        for r in 0..<rows {
            let row = xs.base + r * c
            for j in range { os.base[j] += row[j] }
        }
    }
}
