import Foundation
import Kernels
import SphereMap
import TensorFiles

// The training API of issue #11: one optimiser step of f_S and S_Z on a batch of frozen DINOv2 features
// (METHOD §3, §4). The data side (SPair, crops, masks, the view cache) and `spherecorr-train fit` call only
// what is in this file.
//
// Letters: B = batch, N = patch tokens per image (Gh·Gw), D = backbone width, C = categories.

/// The weights of the four losses in the total (METHOD §4.6). Defaults are the paper's (`configs/SPair.yaml`).
package struct LossWeights: Sendable, Equatable, CustomStringConvertible {
    /// Reconstruction through the prototypes S_Z (METHOD §4.2).
    package var rec: Float = 1
    /// Relative-distance triplets (METHOD §4.4).
    package var rd: Float = 0.3
    /// Orientation triplets (METHOD §4.5).
    package var o: Float = 0.3
    /// Relative viewpoint (METHOD §4.3).
    package var vp: Float = 0.1

    package init(rec: Float = 1, rd: Float = 0.3, o: Float = 0.3, vp: Float = 0.1) {
        self.rec = rec; self.rd = rd; self.o = o; self.vp = vp
    }

    package enum ParseError: Error, CustomStringConvertible, Equatable {
        case unknownKey(String)
        case badValue(key: String, value: String)
        case malformed(String)
        case duplicate(String)
        package var description: String {
            switch self {
            case let .unknownKey(k): "unknown loss '\(k)' in --weights (known: rec, rd, o, vp)"
            case let .badValue(k, v): "--weights \(k)=\(v): the weight must be a finite number ≥ 0"
            case let .malformed(s): "--weights entry '\(s)' is not of the form key=value"
            case let .duplicate(k): "--weights names '\(k)' twice"
            }
        }
    }

    /// Parses `"rec=1,rd=0.3,o=0.3,vp=0.1"`. Any subset may be given (`"vp=0"` turns the viewpoint loss off,
    /// the ablations of the paper's Table 4); keys not named keep the paper's default. Errors name the bad key.
    package init(parsing text: String) throws(ParseError) {
        self.init()
        var seen = Set<String>()
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else { throw .malformed(String(part)) }
            let key = kv[0].trimmingCharacters(in: .whitespaces), raw = kv[1].trimmingCharacters(in: .whitespaces)
            guard ["rec", "rd", "o", "vp"].contains(key) else { throw .unknownKey(key) }
            guard seen.insert(key).inserted else { throw .duplicate(key) }
            guard let v = Float(raw), v.isFinite, v >= 0 else { throw .badValue(key: key, value: raw) }
            switch key {
            case "rec": rec = v
            case "rd": rd = v
            case "o": o = v
            default: vp = v
            }
        }
    }

    /// The canonical text form, parseable by `init(parsing:)`.
    package var description: String { "rec=\(rec),rd=\(rd),o=\(o),vp=\(vp)" }
}

/// One batch of training inputs, already on the patch grid (METHOD §2.1).
package struct TrainingBatch: Sendable {
    /// Frozen backbone features: the last block's pre-norm patch tokens `x_prenorm[:, 1:]` (H12).   [B·N·D]
    package var features: [Float]
    /// The 448² mask resampled to the grid by nearest at the patch's top-left pixel (H8): non-binary, with
    /// exact zeros on background, ringing negatives and values slightly above 1 (H6, H18).   [B·N]
    package var mask: [Float]
    /// Category id per image, the one-hot condition of S_Z (METHOD §3.4).   [B], each in 0..<C
    package var categories: [Int]
    /// Azimuth bin per image (`azimuth_id`, METHOD §4.3).   [B], each in 0..<vpBins
    package var viewpoints: [Int]
    package var batch: Int
    /// N = gridHeight · gridWidth (1024 at 448²).
    package var tokens: Int
    package var gridHeight: Int
    package var gridWidth: Int
    /// D, the backbone width.
    package var width: Int

    package init(features: [Float], mask: [Float], categories: [Int], viewpoints: [Int],
                 batch: Int, gridHeight: Int, gridWidth: Int, width: Int) {
        self.features = features; self.mask = mask; self.categories = categories; self.viewpoints = viewpoints
        self.batch = batch; self.gridHeight = gridHeight; self.gridWidth = gridWidth; self.tokens = gridHeight * gridWidth
        self.width = width
    }
}

/// The losses of one step, before the optimiser update (what the reference logs per iteration).
package struct StepLosses: Sendable, Equatable {
    /// 1.0·rec + 0.3·rd + 0.3·o + 0.1·vp with the trainer's weights (METHOD §4.6).
    package var total: Float
    package var rec: Float
    package var rd: Float
    package var o: Float
    package var vp: Float
    package init(total: Float, rec: Float, rd: Float, o: Float, vp: Float) {
        self.total = total; self.rec = rec; self.rd = rd; self.o = o; self.vp = vp
    }
}

package enum TrainingError: Error, CustomStringConvertible, Equatable {
    case badBatch(String)
    case badState(file: String, detail: String)
    package var description: String {
        switch self {
        case let .badBatch(s): "training batch: \(s)"
        case let .badState(f, d): "\(f): \(d)"
        }
    }
}

/// Everything that fixes the model's shapes and the objective; saved with the state.
package struct TrainerConfig: Sendable, Equatable {
    /// D: backbone width (768 for dinov2_vitb14). f_S is D → D/2 → 3; S_Z is 3 → D with D/64 heads.
    package var width: Int
    /// Category names; their order is the one-hot index (SPAIR: alphabetical, METHOD §2.1).
    package var categories: [String]
    /// Azimuth bins of the viewpoint loss (8 for SPair; Table A3 of the paper varies it).
    package var vpBins: Int = 8
    /// Triplets per image per triplet loss (`n_triplets` = 32); 3× as many indices are drawn.
    package var triplets: Int = 32
    /// Adam learning rate (1e-3). β = (0.9, 0.999), eps 1e-8, no weight decay (METHOD §4.1).
    package var learningRate: Float = 1e-3
    package var weights: LossWeights = LossWeights()
    /// Seed of the initial parameters and of the triplet draws.
    package var seed: UInt64 = 0
    /// Heads of f_S's Block. The reference has width/64 (6 at D = 768); parity fixtures use a tiny width with
    /// more heads. Bundles read back with width/64, so keep the default for anything the server loads.
    package var mapperHeads: Int? = nil

    /// `rd_margin` (METHOD §4.4) and `o_thresh` (§4.5) of `configs/SPair.yaml`.
    package var distanceMargin: Float = 0.5
    package var orientationThreshold: Float = 1

    package init(width: Int, categories: [String], vpBins: Int = 8, triplets: Int = 32, learningRate: Float = 1e-3,
                 weights: LossWeights = LossWeights(), seed: UInt64 = 0, mapperHeads: Int? = nil) {
        self.width = width; self.categories = categories; self.vpBins = vpBins; self.triplets = triplets
        self.learningRate = learningRate; self.weights = weights; self.seed = seed; self.mapperHeads = mapperHeads
    }
}

/// Where the triplet losses take their random indices from.
package enum TripletDraws: Sendable {
    /// `random.choices` with the trainer's SplitMix64: each draw is ⌊u·n_valid⌋ with u uniform in [0, 1) (53 bits).
    case seeded
    /// Parity tests: the index lists the reference drew, one list of 3·triplets indices into the valid set per
    /// call, consumed in the reference's order (per step: orientation for each qualifying image, then distance).
    case fixed([[Int]])
}

/// Trains f_S (sphere mapper) and S_Z (prototypes) with Adam, one batch per `step` (METHOD §4).
///
/// Deterministic: the same seed, batches and `Parallel.workers` give bit-identical losses and parameters, and
/// `saveState`/`init(restoringFrom:)` carry the parameters, Adam moments and step, and the triplet RNG, so a
/// resumed run continues bit-identically.
///
/// Not thread-safe: one step at a time (each step uses every worker).
package final class SphereTrainer {
    package let config: TrainerConfig
    /// Optimiser steps taken.
    package private(set) var stepCount: Int = 0
    /// The trainable tensors (f_S, S_Z with the shared CABlock once), Adam's moments and the gradient buffer.
    package let parameters: ParameterSet
    package var tripletDraws: TripletDraws = .seeded
    var rng: SplitMix64
    /// `sphere.weight` [1024, 3]: carried into bundles untouched (METHOD §3.5).
    var unusedSphere: [Float]
    let adam: Adam
    /// Extra metadata restored from a state file (the caller's epoch, data order…), nil for a fresh trainer.
    package private(set) var restoredMetadata: [String: String] = [:]

    /// A fresh trainer: PyTorch-default initialisation from `config.seed` (METHOD §3.6, `SphereBundle.initialised`).
    package init(config: TrainerConfig) {
        precondition(config.width >= 2 && config.width % 2 == 0, "width must be even")
        precondition(!config.categories.isEmpty && config.vpBins >= 1 && config.triplets >= 1)
        self.config = config
        let bundle = SphereBundle.initialised(backboneDim: config.width, categories: config.categories, seed: config.seed)
        parameters = ParameterSet(bundle: bundle)
        unusedSphere = bundle.unusedSphere?.values ?? []
        // The triplet stream is independent of the initialisation stream (a different seed of the same generator).
        rng = SplitMix64(seed: config.seed ^ 0x7472_6970_6C65_7473)  // "triplets"
        adam = Adam(count: parameters.count)
    }

    /// Convenience with the argument names.
    package convenience init(width: Int, categories: [String], vpBins: Int = 8, triplets: Int = 32, learningRate: Float = 1e-3,
                             weights: LossWeights = LossWeights(), seed: UInt64 = 0) {
        self.init(config: TrainerConfig(width: width, categories: categories, vpBins: vpBins, triplets: triplets,
                                        learningRate: learningRate, weights: weights, seed: seed))
    }

    /// One optimiser step: forward f_S, the four losses in the reference's order (vp, rec, o, rd: the triplet
    /// draws of o come before those of rd), backward, Adam. Returns the losses before the update.
    package func step(_ batch: TrainingBatch) throws -> StepLosses {
        try validate(batch)
        let losses = computeGradients(batch)
        adam.update(parameters, learningRate: config.learningRate)
        stepCount += 1
        return losses
    }

    /// The current parameters as a sphere bundle (reference tensor names, shared block written twice, METHOD §3.6),
    /// readable by `SphereBundle.load` and the server. `metadata` is added to the bundle's own.
    package func bundle(metadata: [String: String] = [:]) -> SphereBundle {
        var meta = metadata
        meta["format"] = SphereBundle.format
        meta["version"] = SphereBundle.version
        meta["backbone_embed_dim"] = String(config.width)
        meta["categories"] = config.categories.joined(separator: ",")
        var w = SafeTensorsWriter(metadata: meta)
        if !unusedSphere.isEmpty { w.add("sphere.weight", shape: [unusedSphere.count / 3, 3], floats: unusedSphere) }
        for slot in parameters.slots {
            let values = parameters.buffer(slot.name)
            w.add(slot.name, shape: slot.shape, floats: values)
            if slot.name.hasPrefix(ParameterSet.sharedBlockPrefix) {
                // The reference's state_dict holds the shared CABlock under both indices (H16).
                w.add(ParameterSet.sharedBlockTwin(slot.name), shape: slot.shape, floats: values)
            }
        }
        do { return try SphereBundle.load(file: SafeTensorsFile(bytes: w.encoded(), name: "<trainer>")) } catch {
            preconditionFailure("the trainer wrote a bundle its own loader rejects: \(error)")
        }
    }

    /// Writes parameters, Adam moments and step count, the triplet RNG state and the config (safetensors,
    /// atomically). `metadata` (e.g. the caller's epoch and data-order state) comes back as `restoredMetadata`.
    package func saveState(to url: URL, metadata: [String: String] = [:]) throws {
        try TrainerState.write(self, to: url, extra: metadata)
    }

    /// Resumes from `saveState`: the next `step` gives exactly what the uninterrupted trainer would have.
    package convenience init(restoringFrom url: URL) throws {
        let s = try TrainerState.read(url)
        self.init(config: s.config)
        try s.apply(to: self)
        restoredMetadata = s.extra
    }

    // MARK: internals shared with the other files of the module

    func restore(step: Int, rngState: UInt64) {
        stepCount = step
        rng = SplitMix64(seed: rngState)
    }

    func validate(_ b: TrainingBatch) throws {
        let n = b.gridHeight * b.gridWidth
        guard b.batch >= 1, b.tokens == n, n >= 1 else { throw TrainingError.badBatch("batch \(b.batch), grid \(b.gridHeight)×\(b.gridWidth), tokens \(b.tokens)") }
        guard b.width == config.width else { throw TrainingError.badBatch("features have width \(b.width), the model \(config.width)") }
        guard b.features.count == b.batch * n * b.width else { throw TrainingError.badBatch("features hold \(b.features.count) values, expected B·N·D = \(b.batch * n * b.width)") }
        guard b.mask.count == b.batch * n else { throw TrainingError.badBatch("mask holds \(b.mask.count) values, expected B·N = \(b.batch * n)") }
        guard b.categories.count == b.batch, b.viewpoints.count == b.batch else { throw TrainingError.badBatch("categories/viewpoints must have B = \(b.batch) entries") }
        if let c = b.categories.first(where: { $0 < 0 || $0 >= config.categories.count }) { throw TrainingError.badBatch("category id \(c) outside 0..<\(config.categories.count)") }
        if let v = b.viewpoints.first(where: { $0 < 0 || $0 >= config.vpBins }) { throw TrainingError.badBatch("viewpoint bin \(v) outside 0..<\(config.vpBins)") }
        if let i = b.features.firstIndex(where: { !$0.isFinite }) { throw TrainingError.badBatch("feature value \(i) is not finite") }
        if let i = b.mask.firstIndex(where: { !$0.isFinite }) { throw TrainingError.badBatch("mask value \(i) is not finite") }
    }
}
