import Kernels
import SphereMap

// One training iteration in the reference's order (train_sph.py train_epoch, METHOD §4.1): forward, vp, rec,
// o (draws its triplets first), rd, the weighted total, backward. Every loss accumulates its weighted gradient
// with respect to sph into one buffer, so f_S's backward runs once.

extension SphereTrainer {
    var mapperHeadCount: Int { config.mapperHeads ?? SphereMapper.heads(width: config.width / 2) }

    /// Zeroes the gradients, runs forward, the four losses and backward, and leaves ∂L/∂θ in `parameters.grads`.
    func computeGradients(_ batch: TrainingBatch) -> StepLosses {
        let p = parameters, w = config.weights
        let b = batch.batch, n = batch.tokens, d = config.width, rows = b * n
        p.grads.pointer.update(repeating: 0, count: p.count)
        let mapper = MapperParams(p), protos = PrototypeParams(p)

        // f_S, then sph = normalize(s_raw)·mask (the mask after normalising, H18).
        let acts = batch.features.withUnsafeBufferPointer {
            mapperForward(mapper, features: $0.baseAddress!, batch: b, tokens: n, d: d, heads: mapperHeadCount)
        }
        let unit = FloatStorage(count: rows * 3, zeroed: false)
        unit.pointer.update(from: acts.sRaw.pointer, count: rows * 3)
        normalizeRows(unit.pointer, rows: rows, cols: 3, eps: 1e-12)
        let sph = FloatStorage(count: rows * 3, zeroed: false)
        for r in 0..<rows { for c in 0..<3 { sph.pointer[r * 3 + c] = unit.pointer[r * 3 + c] * batch.mask[r] } }
        let dSph = FloatStorage(count: rows * 3)

        let vp = viewpointLoss(sphere: sph.pointer, viewpoints: batch.viewpoints, bins: config.vpBins, batch: b, tokens: n,
                               weight: w.vp, dSphere: dSph.pointer)
        // Foreground for the reconstruction: ‖sph‖ ≠ 0, any non-zero mask value (H19).
        let foreground = (0..<rows).filter { r in
            let s = sph.pointer + r * 3
            return (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).squareRoot() != 0
        }
        let rowCategory = (0..<rows).map { batch.categories[$0 / n] }
        let rec = batch.features.withUnsafeBufferPointer {
            reconstructionLoss(protos, sphere: sph.pointer, features: $0.baseAddress!, rowCategory: rowCategory, foreground: foreground,
                               width: d, categories: config.categories.count, weight: w.rec, dSphere: dSph.pointer)
        }
        let valid = validTokens(sphere: sph.pointer, batch: b, tokens: n)
        let grid = GridCoordinates(height: batch.gridHeight, width: batch.gridWidth)
        let oTriplets = drawTriplets(valid: valid, tokens: n, perImage: config.triplets, draw: nextDraw)
        let o = orientationLoss(sphere: sph.pointer, triplets: oTriplets, grid: grid, threshold: config.orientationThreshold,
                                weight: w.o, dSphere: dSph.pointer).loss
        let rdTriplets = drawTriplets(valid: valid, tokens: n, perImage: config.triplets, draw: nextDraw)
        let rd = distanceLoss(sphere: sph.pointer, triplets: rdTriplets, grid: grid, margin: config.distanceMargin, weight: w.rd,
                              dSphere: dSph.pointer)
        // loss = vp·w + o·w + rd·w + rec·w, in train_sph.py's order of additions.
        let total = ((w.vp * vp + w.o * o) + w.rd * rd) + w.rec * rec

        // sph = unit·mask → ∂/∂unit = mask·∂/∂sph → ∂/∂s_raw through the normalisation.
        for r in 0..<rows { for c in 0..<3 { dSph.pointer[r * 3 + c] *= batch.mask[r] } }
        let dRaw = FloatStorage(count: rows * 3, zeroed: false)
        normalizeRowsBackward(dRaw.pointer, dy: dSph.pointer, x: acts.sRaw.pointer, rows: rows, cols: 3, eps: 1e-12)
        batch.features.withUnsafeBufferPointer {
            mapperBackward(mapper, acts, dsRaw: dRaw.pointer, features: $0.baseAddress!, batch: b, tokens: n)
        }
        return StepLosses(total: total, rec: rec, rd: rd, o: o, vp: vp)
    }

    /// `random.choices(range(n), k)`: ⌊u·n⌋ per draw, u uniform in [0, 1) with 53 bits; or the next fixed list.
    func nextDraw(_ n: Int, _ k: Int) -> [Int] {
        switch tripletDraws {
        case .seeded:
            return (0..<k).map { _ in Int(Double(rng.next() >> 11) * 0x1p-53 * Double(n)) }
        case var .fixed(lists):
            precondition(!lists.isEmpty, "fixed triplet draws exhausted")
            let first = lists.removeFirst()
            tripletDraws = .fixed(lists)
            return first
        }
    }
}
