import Foundation
import Testing
import Kernels
import SphereMap
import TensorFiles
@testable import Training

@Suite(.serialized) struct ShortcutTests {
    init() { Threading.configure(workers: 2) }

    /// S_Z on all tokens with the general cross-attention (norm1 → q, k = Wk·onehot, softmax over the condition
    /// tokens, v = Wv·onehot, proj), twice, then the reconstruction loss over tokens with ‖sph‖ ≠ 0 selected from all:
    /// the plain formula of dino_mapper.py. Returns the loss and the reconstruction of every token.
    func plainReconstruction(_ p: ParameterSet, sphere: [Float], features: [Float], categories: [Int], tokens n: Int,
                             width d: Int, nc: Int) -> (Float, [Float]) {
        let rows = categories.count * n, heads = d / 64, dh = d / heads
        let b = "prototypes.blocks.0"
        var z = [Float](repeating: 0, count: rows * d)
        linearForward(&z, sphere, weight: p.pointer("prototypes.proj.weight"), bias: p.pointer("prototypes.proj.bias"),
                      rows: rows, inFeatures: 3, outFeatures: d)
        for _ in 0..<2 {
            var xn = [Float](repeating: 0, count: rows * d), q = xn, att = xn
            layerNormForward(&xn, z, weight: p.pointer("\(b).norm1.weight"), bias: p.pointer("\(b).norm1.bias"), rows: rows, cols: d, eps: 1e-5)
            linearForward(&q, xn, weight: p.pointer("\(b).attn.q.weight"), bias: nil, rows: rows, inFeatures: d, outFeatures: d)
            for r in 0..<rows {
                let c = categories[r / n]
                var onehot = [Float](repeating: 0, count: nc); onehot[c] = 1
                var k = [Float](repeating: 0, count: d), v = k
                linearForward(&k, onehot, weight: p.pointer("\(b).attn.k.weight"), bias: nil, rows: 1, inFeatures: nc, outFeatures: d)
                linearForward(&v, onehot, weight: p.pointer("\(b).attn.v.weight"), bias: nil, rows: 1, inFeatures: nc, outFeatures: d)
                for h in 0..<heads {
                    var s: Float = 0
                    for j in 0..<dh { s += q[r * d + h * dh + j] * k[h * dh + j] }
                    var scores = [s / Float(dh).squareRoot()]  // one condition token
                    softmaxRowsInPlace(&scores, rows: 1, cols: 1)
                    for j in 0..<dh { att[r * d + h * dh + j] = scores[0] * v[h * dh + j] }
                }
            }
            linearForward(&z, att, weight: p.pointer("\(b).attn.proj.weight"), bias: p.pointer("\(b).attn.proj.bias"),
                          rows: rows, inFeatures: d, outFeatures: d, epilogue: .biasAddInto)
            var hidden = [Float](repeating: 0, count: rows * 4 * d)
            layerNormForward(&xn, z, weight: p.pointer("\(b).norm2.weight"), bias: p.pointer("\(b).norm2.bias"), rows: rows, cols: d, eps: 1e-5)
            linearForward(&hidden, xn, weight: p.pointer("\(b).mlp.fc1.weight"), bias: p.pointer("\(b).mlp.fc1.bias"),
                          rows: rows, inFeatures: d, outFeatures: 4 * d, epilogue: .biasGELU)
            linearForward(&z, hidden, weight: p.pointer("\(b).mlp.fc2.weight"), bias: p.pointer("\(b).mlp.fc2.bias"),
                          rows: rows, inFeatures: 4 * d, outFeatures: d, epilogue: .biasAddInto)
        }
        var sum = 0.0, count = 0
        for r in 0..<rows {
            let s = sphere[(r * 3)..<(r * 3 + 3)]
            guard s.map({ $0 * $0 }).reduce(0, +).squareRoot() != 0 else { continue }
            var ff: Float = 0, rr: Float = 0, fr: Float = 0
            for j in 0..<d { let f = features[r * d + j], x = z[r * d + j]; ff += f * f; rr += x * x; fr += f * x }
            sum += Double(1 - fr / (max(ff.squareRoot(), 1e-8) * max(rr.squareRoot(), 1e-8)))
            count += 1
        }
        return (Float(sum / Double(count)), z)
    }

    /// Shortcuts 1 and 2 of Reconstruction.swift: foreground rows only, per-category constant for the cross-attention.
    @Test func reconstructionShortcutsEqualPlainFormula() throws {
        let fx = try StepFixture()
        let t = try fx.trainer()
        let b = fx.batch, n = b.tokens, d = b.width
        let sph = try fx.file.floats("sph")
        let (plain, _) = plainReconstruction(t.parameters, sphere: sph, features: b.features, categories: b.categories, tokens: n, width: d, nc: 3)
        let fg = (0..<(b.batch * n)).filter { (r: Int) -> Bool in
            let x: Float = sph[r * 3], y: Float = sph[r * 3 + 1], z: Float = sph[r * 3 + 2]
            return (x * x + y * y + z * z).squareRoot() != 0
        }
        #expect(fg.count < b.batch * n, "the fixture has background tokens")
        var dS = [Float](repeating: 0, count: sph.count)
        let short = b.features.withUnsafeBufferPointer { f in
            reconstructionLoss(PrototypeParams(t.parameters), sphere: sph, features: f.baseAddress!,
                               rowCategory: (0..<(b.batch * n)).map { b.categories[$0 / n] }, foreground: fg, width: d, categories: 3,
                               weight: 1, dSphere: &dS)
        }
        #expect(abs(short - plain) <= 2e-6, "shortcut \(short) vs plain \(plain)")
        // Background rows get no gradient from the reconstruction (they are not in the loss).
        let fgSet = Set(fg)
        let leaked = (0..<(b.batch * n)).filter { (r: Int) -> Bool in !fgSet.contains(r) && (dS[r * 3] != 0 || dS[r * 3 + 1] != 0 || dS[r * 3 + 2] != 0) }
        #expect(leaked.isEmpty)
        // And against the reference's own loss value (PyTorch, plain formula over all tokens) at step 1.
        #expect(abs(short - fx.losses[0][1]) <= 1e-5, "rec \(short) vs reference \(fx.losses[0][1])")
    }
}

@Suite(.serialized) struct GuardTests {
    init() { Threading.configure(workers: 2) }

    func batch(mask: [Float], gridHeight: Int = 4, gridWidth: Int = 4, width: Int = 128, seed: UInt64 = 9) -> TrainingBatch {
        var r = Rand(seed)
        let b = mask.count / (gridHeight * gridWidth)
        return TrainingBatch(features: r.floats(mask.count * width), mask: mask, categories: (0..<b).map { $0 % 2 },
                             viewpoints: (0..<b).map { $0 % 8 }, batch: b, gridHeight: gridHeight, gridWidth: gridWidth, width: width)
    }

    func allFinite(_ t: SphereTrainer) -> Bool { t.parameters.grads.buffer.allSatisfy(\.isFinite) && t.parameters.values.buffer.allSatisfy(\.isFinite) }

    /// No foreground at all: the reference's mean over no tokens would be NaN; here rec = 0 and so are the triplet losses.
    @Test func noForeground() throws {
        let t = SphereTrainer(width: 128, categories: ["a", "b"])
        let l = try t.step(batch(mask: [Float](repeating: 0, count: 32)))
        #expect(l.rec == 0 && l.rd == 0 && l.o == 0)
        #expect(l.vp.isFinite && l.total.isFinite)
        #expect(allFinite(t))
    }

    /// Foreground but no valid token (‖sph‖ ≤ 0.99 everywhere): rd and o are 0 (the reference returns 0), rec is not.
    @Test func noValidToken() throws {
        let t = SphereTrainer(width: 128, categories: ["a", "b"])
        let l = try t.step(batch(mask: [Float](repeating: 0.5, count: 32)))
        #expect(l.rd == 0 && l.o == 0 && l.rec > 0)
        #expect(allFinite(t))
    }

    /// Valid tokens on a single grid row: every image triangle is flat (det = 0), so no orientation triplet survives
    /// the |det| > 0.7 filter (the reference's mean would be NaN): o = 0, rd still counts.
    @Test func noSurvivingTriplet() throws {
        let t = SphereTrainer(width: 128, categories: ["a", "b"])
        let l = try t.step(batch(mask: [Float](repeating: 1, count: 16), gridHeight: 1, gridWidth: 8))
        #expect(l.o == 0 && l.rd > 0 && l.rec > 0)
        #expect(allFinite(t))
    }

    @Test func badBatchesAreRejected() {
        let t = SphereTrainer(width: 128, categories: ["a", "b"])
        var b = batch(mask: [Float](repeating: 1, count: 32))
        b.categories[0] = 5
        #expect(throws: TrainingError.self) { try t.step(b) }
        b = batch(mask: [Float](repeating: 1, count: 32)); b.mask.removeLast()
        #expect(throws: TrainingError.self) { try t.step(b) }
        b = batch(mask: [Float](repeating: 1, count: 32)); b.features[3] = .nan
        #expect(throws: TrainingError.self) { try t.step(b) }
        #expect(t.stepCount == 0)
    }
}

@Suite(.serialized) struct ReproducibilityTests {
    init() { Threading.configure(workers: 2) }

    func batches() throws -> TrainingBatch { try StepFixture().batch }

    /// Same seed, data and worker count: bit-identical losses and parameters; a different seed differs.
    @Test func sameSeedSameBits() throws {
        let b = try batches()
        func run(_ seed: UInt64) throws -> ([StepLosses], [Float]) {
            let t = SphereTrainer(config: TrainerConfig(width: 128, categories: ["car", "chair", "dog"], seed: seed))
            let l = try (0..<3).map { _ in try t.step(b) }
            return (l, t.parameters.values.array)
        }
        let (l1, p1) = try run(4), (l2, p2) = try run(4), (l3, _) = try run(5)
        #expect(l1 == l2)
        #expect(p1 == p2)
        #expect(l1 != l3)
    }

    /// Save after two steps, restore in a new trainer, three more steps: bit-identical to five uninterrupted steps
    /// (parameters, Adam moments and step, triplet RNG); the caller's metadata comes back.
    @Test func resumeIsBitIdentical() throws {
        let b = try batches()
        let config = TrainerConfig(width: 128, categories: ["car", "chair", "dog"], weights: LossWeights(vp: 0.2), seed: 11)
        let straight = SphereTrainer(config: config)
        let ls = try (0..<5).map { _ in try straight.step(b) }
        let first = SphereTrainer(config: config)
        _ = try (0..<2).map { _ in try first.step(b) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UInt32.random(in: 0...UInt32.max)).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try first.saveState(to: url, metadata: ["epoch": "7"])
        let resumed = try SphereTrainer(restoringFrom: url)
        #expect(resumed.config == config)
        #expect(resumed.stepCount == 2)
        #expect(resumed.restoredMetadata == ["epoch": "7"])
        let lr = try (0..<3).map { _ in try resumed.step(b) }
        #expect(Array(ls[2...]) == lr)
        #expect(resumed.parameters.values.array == straight.parameters.values.array)
        // The bundle of the resumed run is the bundle of the uninterrupted run.
        let b1 = resumed.bundle().namedTensors(), b2 = straight.bundle().namedTensors()
        #expect(b1.map(\.0) == b2.map(\.0))
        #expect(zip(b1, b2).allSatisfy { $0.1.values == $1.1.values })
    }

    @Test func corruptStateIsRejected() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-state-\(UInt32.random(in: 0...UInt32.max)).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SphereTrainer(width: 128, categories: ["a"]).bundle().write(to: url)
        #expect(throws: TrainingError.self) { try SphereTrainer(restoringFrom: url) }
    }

    /// The loss falls when training on one batch (a smoke test of the whole loop).
    @Test func lossFalls() throws {
        let b = try batches()
        let t = SphereTrainer(config: TrainerConfig(width: 128, categories: ["car", "chair", "dog"], seed: 1))
        let l = try (0..<25).map { _ in try t.step(b).total }
        let late: Float = l.suffix(5).reduce(0, +), early: Float = l.prefix(5).reduce(0, +)
        #expect(late < 0.9 * early, "losses \(l)")
    }
}
