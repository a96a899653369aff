// Inference matching (METHOD §5): cosine similarities of DINOv2 descriptors, optionally blended
// with cosine similarities of sphere vectors, argmax with first-index ties (H30); and dense
// mutual nearest neighbours for the service.
//
// Cosine similarity follows torch 2.x `F.cosine_similarity` / `nn.CosineSimilarity(eps=1e-8)`
// (aten/src/ATen/native/Distance.cpp since 1.12): each vector is divided by its own norm clamped
// from below, `x / max(‖x‖, eps)`, and the normalised vectors are multiplied and summed. (The
// documented formula `x·y / max(‖x‖·‖y‖, eps)` is the pre-1.12 implementation; the two differ
// only for vectors of norm below eps.) We normalise each row once and take all dot products with
// one GEMM, so a row of similarities costs a matrix product, not a loop over targets. Sums are
// therefore accumulated in a different order than PyTorch's elementwise product and reduction:
// values agree to float32 rounding (~1e-7), which can flip an argmax only between near-exact ties.

import Kernels

/// Rows of descriptors each divided by `max(‖row‖₂, eps)` (float32; the norm is accumulated in
/// float64 and rounded).
package struct NormalizedDescriptors: Sendable {
    package let rows: Int
    package let dimension: Int
    /// `[rows, dimension]`, row-major.
    let storage: FloatStorage
    /// The rows as the right-hand side of a product `A · selfᵀ`: reordered into the GEMM's layout on first use and
    /// kept, so that matching many queries against one image (a transfer, a warm cache) reorders it once.
    let operand: MatmulWeights

    package var values: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: rows * dimension)) }
    /// Bytes of the rows (the reordered copy, made when they are multiplied, as much again).
    package var bytes: Int { rows * dimension * MemoryLayout<Float>.stride }

    /// torch's default eps for `CosineSimilarity`.
    package static let defaultEpsilon: Float = 1e-8

    package init(_ values: [Float], rows: Int, dimension: Int, eps: Float = NormalizedDescriptors.defaultEpsilon) throws(CorrespondenceError) {
        guard rows >= 0, dimension > 0 else { throw .invalidArgument("descriptors need rows >= 0 and dimension > 0, got \(rows)×\(dimension)") }
        guard values.count == rows * dimension else {
            throw .shape("\(values.count) descriptor values for \(rows) rows of dimension \(dimension)")
        }
        let out = FloatStorage(count: max(values.count, 1), zeroed: false)  // never empty: the GEMM gets a valid pointer
        values.withUnsafeBufferPointer { if let v = $0.baseAddress { out.pointer.initialize(from: v, count: values.count) } }
        for r in 0..<rows {
            let row = out.pointer + r * dimension
            var s = 0.0
            for i in 0..<dimension { s += Double(row[i]) * Double(row[i]) }
            let norm = max(Float(s.squareRoot()), eps)
            for i in 0..<dimension { row[i] /= norm }
        }
        self.rows = rows
        self.dimension = dimension
        self.storage = out
        operand = MatmulWeights(weight: out.pointer, inFeatures: dimension, outFeatures: max(rows, 1), owner: out)
    }
}

/// Descriptors of one image for matching: DINOv2 features and, for the blended score, the unit
/// sphere vectors of the same tokens.
package struct ImageDescriptors: Sendable {
    package let features: NormalizedDescriptors
    package let sphere: NormalizedDescriptors?

    package var tokens: Int { features.rows }

    /// `features`: `[tokens, D]`; `sphere`: `[tokens, 3]` (any width accepted) or nil.
    package init(features: [Float], sphere: [Float]? = nil, tokens: Int, featureDimension: Int, sphereDimension: Int = 3) throws(CorrespondenceError) {
        self.features = try NormalizedDescriptors(features, rows: tokens, dimension: featureDimension)
        self.sphere = try sphere.map { s throws(CorrespondenceError) in try NormalizedDescriptors(s, rows: tokens, dimension: sphereDimension) }
    }

    package init(features: NormalizedDescriptors, sphere: NormalizedDescriptors? = nil) throws(CorrespondenceError) {
        if let sphere, sphere.rows != features.rows {
            throw .shape("\(features.rows) feature rows but \(sphere.rows) sphere rows")
        }
        self.features = features
        self.sphere = sphere
    }
}

/// A `[rows, columns]` float32 score matrix, row-major: row k = one source query, column j = one
/// target token.
package struct SimilarityMatrix: Sendable, Equatable {
    package let rows: Int
    package let columns: Int
    package var values: [Float]

    package init(rows: Int, columns: Int, values: [Float]) throws(CorrespondenceError) {
        guard rows >= 0, columns >= 0, values.count == rows * columns else {
            throw .shape("\(values.count) similarity values for \(rows)×\(columns)")
        }
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    package subscript(row: Int, column: Int) -> Float { values[row * columns + column] }

    package func row(_ r: Int) -> ArraySlice<Float> { values[(r * columns)..<((r + 1) * columns)] }

    /// Index of the largest value of each row, the first one on ties (`torch.argmax`, H30).
    /// NaN never wins.
    package func argmaxPerRow() -> [Int] {
        (0..<rows).map { r in firstArgmax(values, from: r * columns, count: columns).index }
    }
}

/// One match: a source token, its target token and the blended score.
package struct PatchMatch: Sendable, Equatable {
    package var source: Int
    package var target: Int
    package var score: Float
}

/// First maximum of `count` values (strict `>`, so ties keep the first). NaN never wins; an
/// all-NaN row gives index 0 and NaN.
@inline(__always)
func firstArgmax(_ v: UnsafePointer<Float>, count: Int) -> (index: Int, value: Float) {
    var best = -1
    var bestValue = Float.nan
    for j in 0..<count {
        let x = v[j]
        if x.isNaN { continue }
        if best < 0 || x > bestValue { best = j; bestValue = x }
    }
    return (max(best, 0), bestValue)
}

func firstArgmax(_ values: [Float], from start: Int, count: Int) -> (index: Int, value: Float) {
    values.withUnsafeBufferPointer { firstArgmax($0.baseAddress! + start, count: count) }
}

package enum Matching {
    /// The weights of the blend: `(1 − α)` on the feature cosine and `α` on the sphere cosine,
    /// each rounded to float32 as PyTorch multiplies a float32 tensor by a Python float
    /// (α = 0.2 gives float32(0.8) and float32(0.2), the reference's `mixing_ratio`).
    package static func blendWeights(alpha: Double) -> (features: Float, sphere: Float) {
        (Float(1 - alpha), Float(alpha))
    }

    /// `sim[k, j] = (1 − α)·cos(F₁[rows[k]], F₂[j]) + α·cos(S₁[rows[k]], S₂[j])` (METHOD §5), each
    /// product rounded to float32 and then added. With α = 0 the feature cosine is returned as
    /// is (the reference without `--SPH`) and spheres are not needed.
    package static func similarity(source: ImageDescriptors, target: ImageDescriptors, sourceRows: [Int],
                                   alpha: Double = 0) throws(CorrespondenceError) -> SimilarityMatrix {
        try checkPair(source, target, alpha: alpha)
        for r in sourceRows where r < 0 || r >= source.tokens {
            throw .invalidArgument("source row \(r) outside 0..<\(source.tokens)")
        }
        var out = [Float](repeating: 0, count: sourceRows.count * target.tokens)
        out.withUnsafeMutableBufferPointer { c in
            blendedBlock(source: source, target: target, rows: sourceRows, alpha: alpha, into: c.baseAddress!)
        }
        return try SimilarityMatrix(rows: sourceRows.count, columns: target.tokens, values: out)
    }

    /// For each source row, the target token with the highest blended score (first on ties) and
    /// that score.
    package static func nearestNeighbours(source: ImageDescriptors, target: ImageDescriptors, sourceRows: [Int],
                                          alpha: Double = 0) throws(CorrespondenceError) -> [PatchMatch] {
        let sim = try similarity(source: source, target: target, sourceRows: sourceRows, alpha: alpha)
        return sim.values.withUnsafeBufferPointer { p in
            sourceRows.enumerated().map { k, row in
                let best = firstArgmax(p.baseAddress! + k * sim.columns, count: sim.columns)
                return PatchMatch(source: row, target: best.index, score: best.value)
            }
        }
    }

    /// Dense mutual nearest neighbours over all source tokens: `(i, j)` with j the best target of
    /// i, i the best source of j (first index on ties both ways) and score ≥ `minScore`, in
    /// source order. Computed in row blocks, so memory stays O(block · target tokens).
    package static func mutualNearestNeighbours(source: ImageDescriptors, target: ImageDescriptors, alpha: Double = 0,
                                                minScore: Float = -.infinity, blockRows: Int = 256) throws(CorrespondenceError) -> [PatchMatch] {
        try checkPair(source, target, alpha: alpha)
        let n1 = source.tokens, n2 = target.tokens
        guard n1 > 0, n2 > 0 else { return [] }
        let block = max(1, blockRows)
        var rowBest = [Int](repeating: 0, count: n1)
        var rowScore = [Float](repeating: .nan, count: n1)
        var colBest = [Int](repeating: -1, count: n2)
        var colScore = [Float](repeating: -.infinity, count: n2)
        var buffer = [Float](repeating: 0, count: block * n2)
        var start = 0
        while start < n1 {
            let rows = Array(start..<min(start + block, n1))
            buffer.withUnsafeMutableBufferPointer { c in
                let base = c.baseAddress!
                blendedBlock(source: source, target: target, rows: rows, alpha: alpha, into: base)
                for (k, i) in rows.enumerated() {
                    let row = base + k * n2
                    let best = firstArgmax(row, count: n2)
                    rowBest[i] = best.index
                    rowScore[i] = best.value
                    for j in 0..<n2 where row[j] > colScore[j] || (colBest[j] < 0 && !row[j].isNaN) {
                        colScore[j] = row[j]
                        colBest[j] = i
                    }
                }
            }
            start += block
        }
        var matches: [PatchMatch] = []
        for i in 0..<n1 {
            let j = rowBest[i]
            if colBest[j] == i, rowScore[i] >= minScore { matches.append(PatchMatch(source: i, target: j, score: rowScore[i])) }
        }
        return matches
    }

    private static func checkPair(_ source: ImageDescriptors, _ target: ImageDescriptors, alpha: Double) throws(CorrespondenceError) {
        guard alpha.isFinite else { throw .invalidArgument("alpha must be finite, got \(alpha)") }
        guard source.features.dimension == target.features.dimension else {
            throw .shape("source features have dimension \(source.features.dimension), target \(target.features.dimension)")
        }
        if alpha != 0 {
            guard let s1 = source.sphere, let s2 = target.sphere else { throw .missingSphere }
            guard s1.dimension == s2.dimension else { throw .shape("sphere dimensions \(s1.dimension) and \(s2.dimension)") }
        }
    }

    /// Scores of `rows` of the source against every target token into `c` (`[rows.count, N2]`).
    private static func blendedBlock(source: ImageDescriptors, target: ImageDescriptors, rows: [Int], alpha: Double,
                                     into c: UnsafeMutablePointer<Float>) {
        let n2 = target.tokens, m = rows.count
        guard m > 0, n2 > 0 else { return }
        let f1 = source.features, f2 = target.features
        gatherAndMultiply(f1, rows: rows, f2, into: c)
        guard alpha != 0, let s1 = source.sphere, let s2 = target.sphere else { return }
        let (wf, ws) = blendWeights(alpha: alpha)
        let sd = s1.dimension
        let a = s1.storage.pointer, b = s2.storage.pointer
        for (k, i) in rows.enumerated() {
            let q = a + i * sd
            let out = c + k * n2
            if sd == 3 {
                // The sphere's own width unrolled: the same products and sums in the same order as below.
                let (q0, q1, q2) = (q[0], q[1], q[2])
                var t = b
                for j in 0..<n2 {
                    var dot: Float = 0
                    dot += q0 * t[0]; dot += q1 * t[1]; dot += q2 * t[2]
                    out[j] = wf * out[j] + ws * dot
                    t += 3
                }
                continue
            }
            for j in 0..<n2 {
                let t = b + j * sd
                var dot: Float = 0
                for e in 0..<sd { dot += q[e] * t[e] }
                out[j] = wf * out[j] + ws * dot
            }
        }
    }

    /// c[k, j] = ⟨A[rows[k]], B[j]⟩ with one GEMM (rows split over the workers when there are many).
    private static func gatherAndMultiply(_ a: NormalizedDescriptors, rows: [Int], _ b: NormalizedDescriptors,
                                          into c: UnsafeMutablePointer<Float>) {
        let m = rows.count, n = b.rows, k = a.dimension
        let contiguous = rows.enumerated().allSatisfy { $0.element == rows[0] + $0.offset }
        var gathered: FloatStorage? = nil
        if !contiguous {
            let g = FloatStorage(count: m * k, zeroed: false)
            for (r, i) in rows.enumerated() { (g.pointer + r * k).update(from: a.storage.pointer + i * k, count: k) }
            gathered = g
        }
        let x = gathered?.pointer ?? (a.storage.pointer + rows[0] * k)
        // c[M, N] = A[M, K] · B[N, K]ᵀ: the engine's linear path with B as the weights. On the default kernels, B is
        // reordered once per image and kept (`operand`): the matmul with B as given reorders all of it on every call,
        // most of the time of a few query rows against a grid, the service's case (issue #14).
        if KernelFamily.current == .auto {
            Matmul.linear(UnsafeMutableRawPointer(c), UnsafeRawPointer(x), weights: b.operand, packed: true, bias: nil, rows: m)
        } else {
            linearForward(c, x, weight: b.storage.pointer, bias: nil, rows: m, inFeatures: k, outFeatures: n)
        }
        withExtendedLifetime(gathered) {}
    }
}
