import Correspondence
import DINOv2
import Features
import Foundation
import Imaging
import Kernels
import Runtime
import SPair
import SphereMap

package enum EvaluationError: Error, CustomStringConvertible {
    case data(file: String, detail: String)
    case config(String)
    package var description: String {
        switch self {
        case let .data(f, d): "\(f): \(d)"
        case let .config(d): d
        }
    }
}

package enum MetricSelection: String, Sendable, CaseIterable {
    case pck, kap, both
    var pck: Bool { self != .kap }
    var kap: Bool { self != .pck }
}

package struct EvaluationOptions: Sendable {
    package var data: String
    package var split: SPairSplit = .test
    package var alphas: [Double] = [0.2]
    package var metric: MetricSelection = .both
    package var resolution = 840
    package var categories: [String]?
    /// Pairs per category drawn with replacement (seeded); nil: all pairs.
    package var sample: Int?
    package var seed: UInt64 = 42
    package var cacheDirectory: String?
    package var skipInvalid = false
    package var plotsDirectory: String?
    package var plotPairsPerCategory = 2
    package var progress = true
    /// Only this part of the pairs (`--shard K/N`); the report then carries what merge-reports needs.
    package var shard: Shard?
    /// Sub-patch refinement of the PCK predictions (issue #14); `.none` is the paper's protocol. KAP scores
    /// the similarity maps and does not depend on it.
    package var refine: Refinement = .none
    /// Also score the forward–backward visibility check (issue #14) against the target-invisible keypoints.
    package var visibility = false
    package init(data: String) { self.data = data }
}

/// Scores of one category for one α of the matching blend.
package struct CategoryResult: Sendable {
    package var category: String
    package var pairs: Int
    package var pckKeypoints: Int
    package var pck: [Double]?
    package var kap: [Double]?
    /// "Not visible" predictions (cycle error > 0.1·R) against target-invisible labels, source-visible rows.
    package var visibility: VisibilityScore? = nil
    /// The cycle score as a confidence (its outputs, so that shards merge exactly).
    package var cycle: CycleConfidence? = nil
    /// KAP of the cycle score as a confidence, per PCK α (nil entries: no positive).
    package var cycleKAP: [Double?]? { cycle?.kap }

    /// What the scores were computed from, kept so that shards can be merged exactly.
    package var pckState: PCKAccumulator?
    package var kapState: KAPAccumulator?

    package init(category: String, pck: PCKAccumulator?, kap: KAPAccumulator?, visibility: VisibilityScore? = nil,
                 cycle: CycleConfidence? = nil) {
        self.category = category
        self.visibility = visibility; self.cycle = cycle
        pairs = pck?.pairs ?? kap?.pairs ?? 0
        pckKeypoints = pck?.evaluated ?? 0
        self.pck = pck?.scores
        self.kap = kap?.scores
        pckState = pck; kapState = kap
    }
}

package struct AlphaRun: Sendable {
    package var alpha: Double
    package var categories: [CategoryResult]
}

package struct EvaluationResult: Sendable {
    package var runs: [AlphaRun]
    package var thresholds: [Float]
    package var skipped: [String]
    package var pairsEvaluated: Int
    /// Pairs of the whole run: pairsEvaluated, or more for one shard of it.
    package var pairsTotal: Int
    package var imagesEmbedded: Int
    package var cacheHits: Int
    package var seconds: Double
    package var backbone: String
    package var bundle: String?
    package var weighting: CategoryWeighting
    /// The patch grid the keypoints were matched on (the backbone's patch and stride at the resolution).
    package var grid: PatchGrid
    /// The sub-patch refinement of the PCK predictions (`.none`: the paper's protocol).
    package var refine: Refinement = .none
}

/// The paper's evaluation (METHOD §2.3, §5, §6): letterbox to R, the backbone's features (last-block DINOv2, or
/// DINOv1 keys on its own patch grid, METHOD §1.5), optional sphere,
/// blended cosine, PCK (mutual visibility, strict <) and KAP (source visibility, min–max scores, sklearn AP).
package final class Evaluator {
    let options: EvaluationOptions
    let backbone: DinoVisionTransformer
    let bundle: SphereBundle?
    let backboneKey: String
    var log: (String) -> Void = { logToStderr($0) }

    package init(options: EvaluationOptions, backbone: DinoVisionTransformer, backboneKey: String, bundle: SphereBundle?) throws {
        let c = backbone.config
        if let why = PatchGrid.invalidReason(resolution: options.resolution, patch: c.patchSize) {
            throw EvaluationError.config("--resolution \(why) (the patch size of \(c.displayName))")
        }
        if let grid = PatchGrid(resolution: options.resolution, patch: c.patchSize, stride: c.patchStride) {
            do { try options.refine.check(gridRows: grid.side, gridColumns: grid.side) } catch {
                throw EvaluationError.config("--\(error) (at --resolution \(options.resolution))")
            }
        }
        if options.alphas.contains(where: { $0 > 0 }) && bundle == nil {
            throw EvaluationError.config("alpha > 0 blends in the sphere similarity and needs --bundle")
        }
        if let b = bundle, b.backboneDim != backbone.config.embedDim {
            throw EvaluationError.config("\(b.path ?? "bundle"): trained for a backbone of width \(b.backboneDim); this backbone has width \(backbone.config.embedDim)")
        }
        self.options = options; self.backbone = backbone; self.bundle = bundle; self.backboneKey = backboneKey
    }

    package func run() throws -> EvaluationResult {
        let t0 = Measure.now()
        let dataset: SPairDataset
        do { dataset = try SPairDataset(root: URL(fileURLWithPath: options.data)) } catch { throw EvaluationError.config("\(error)") }
        var categories: [String]
        do { categories = try dataset.categories() } catch { throw EvaluationError.config("\(error)") }
        if let only = options.categories {
            for c in only where !categories.contains(c) {
                throw EvaluationError.config("category '\(c)' is not in \(options.data)/ImageAnnotation (found: \(categories.joined(separator: ", ")))")
            }
            categories = categories.filter { only.contains($0) }
        }
        guard let grid = PatchGrid(resolution: options.resolution, patch: backbone.config.patchSize, stride: backbone.config.patchStride) else {
            throw EvaluationError.config("bad resolution")
        }
        let store = FeatureStore(backbone: backbone, backboneKey: backboneKey, resolution: options.resolution,
                                 cacheDirectory: options.cacheDirectory.map { URL(fileURLWithPath: $0) })
        // Load and validate every pair first: the denominators must be known before any score.
        var perCategory: [(String, [LoadedPair])] = []
        var skipped: [String] = []
        for c in categories {
            let v: Validated<LoadedPair>
            do { v = try dataset.loadPairs(split: options.split, category: c) } catch { throw EvaluationError.config("\(error)") }
            if !v.invalid.isEmpty {
                if !options.skipInvalid {
                    throw EvaluationError.config("\(v.invalid.count) invalid pair(s) in category \(c); first: \(v.invalid[0]) (use --skip-invalid to continue and count them)")
                }
                skipped += v.invalid.map { "\($0)" }
            }
            var pairs = v.items
            if let n = options.sample, !pairs.isEmpty {
                var rng = SplitMix64(seed: options.seed &+ UInt64(perCategory.count))
                pairs = (0..<n).map { _ in pairs[Int(rng.next() % UInt64(pairs.count))] }
            }
            perCategory.append((c, pairs))
        }
        // A shard takes a contiguous range of all pairs in category order, so a category's images mostly stay in one
        // shard's memory; the pairs keep their index in the category (plots name the category's first pairs).
        let all = perCategory.reduce(0) { $0 + $1.1.count }
        let wanted = options.shard?.range(total: all) ?? 0..<all
        var offset = 0
        let work: [(String, [(index: Int, pair: LoadedPair)])] = perCategory.map { c, pairs in
            defer { offset += pairs.count }
            return (c, pairs.enumerated().filter { wanted.contains(offset + $0.offset) }.map { (index: $0.offset, pair: $0.element) })
        }
        let total = wanted.count
        var done = 0
        var results = options.alphas.map { AlphaRun(alpha: $0, categories: []) }
        var progress = Progress(total: total, enabled: options.progress, log: log)
        for (category, pairs) in work {
            var pck = options.alphas.map { _ in PCKAccumulator() }
            var kap = options.alphas.map { _ in KAPAccumulator(grid: grid) }
            var vis = options.alphas.map { _ in VisibilityScore() }
            var conf = options.alphas.map { _ in CycleConfidence() }
            var descriptors: [String: ImageDescriptors] = [:]
            var spheres: [String: [Float]] = [:]
            for (pi, pair) in pairs {
                let paths = [pair.sourceImagePath, pair.targetImagePath].map { dataset.url($0).path }
                let feats = try store.features(paths)
                for (path, f) in zip(paths, feats) where descriptors[path] == nil {
                    var s: [Float]? = nil
                    if let bundle {
                        let sph = f.withUnsafeBufferPointer { bundle.mapper.sphere(features: $0.baseAddress!, batch: 1, tokens: grid.count) }
                        s = sph.array
                        spheres[path] = s
                    }
                    do {
                        descriptors[path] = try ImageDescriptors(features: f, sphere: s, tokens: grid.count, featureDimension: backbone.config.embedDim)
                    } catch { throw EvaluationError.data(file: path, detail: "\(error)") }
                }
                let (ks, kt, thr) = pair.letterboxed(resolution: options.resolution, grid: grid)
                // Every keypoint row (invisible ones sit at patch 0 and are masked by the metrics), METHOD §5 step 4.
                let rows = (0..<ks.count).map { grid.index(x: ks.x($0), y: ks.y($0)) }
                for (a, alpha) in options.alphas.enumerated() {
                    let sim: SimilarityMatrix
                    do {
                        sim = try Matching.similarity(source: descriptors[paths[0]]!, target: descriptors[paths[1]]!, sourceRows: rows, alpha: alpha)
                        if options.metric.pck {
                            try pck[a].add(sourceKeypoints: ks.values, targetKeypoints: kt.values, similarity: sim, threshold: thr, grid: grid,
                                          refinement: options.refine)
                        }
                        if options.metric.kap {
                            try kap[a].add(sourceKeypoints: ks.values, targetKeypoints: kt.values, similarity: sim, threshold: thr)
                        }
                        if options.visibility {
                            try Evaluator.scoreVisibility(&vis[a], &conf[a], threshold: thr, similarity: sim, rows: rows, source: descriptors[paths[0]]!,
                                                          target: descriptors[paths[1]]!, alpha: alpha, ks: ks.values, kt: kt.values, grid: grid)
                        }
                    } catch { throw EvaluationError.data(file: pair.file, detail: "\(error)") }
                    if pi < options.plotPairsPerCategory, let dir = options.plotsDirectory {
                        try Plots.pair(directory: dir, category: category, index: pi, alpha: alpha, pair: pair, dataset: dataset,
                                       similarity: sim, grid: grid, threshold: thr,
                                       spheres: bundle == nil ? nil : (spheres[paths[0]]!, spheres[paths[1]]!))
                    }
                }
                done += 1
                progress.update(done, note: category)
            }
            store.clearMemory()
            for a in options.alphas.indices {
                results[a].categories.append(CategoryResult(category: category, pck: options.metric.pck ? pck[a] : nil,
                                                            kap: options.metric.kap ? kap[a] : nil,
                                                            visibility: options.visibility ? vis[a] : nil,
                                                            cycle: options.visibility ? conf[a] : nil))
            }
        }
        var weighting = CategoryWeighting.automatic(for: categories, fixed: .spairTestPairCounts)
        if options.split != .test || options.sample != nil { weighting = options.sample != nil ? .uniform : .pairCounts }
        return EvaluationResult(runs: results, thresholds: defaultPCKAlphas, skipped: skipped, pairsEvaluated: total, pairsTotal: all,
                                imagesEmbedded: store.embedded, cacheHits: store.diskHits, seconds: Measure.now() - t0,
                                backbone: backbone.config.displayName, bundle: bundle?.path, weighting: weighting, grid: grid, refine: options.refine)
    }
}

extension Evaluator {
    /// Forward–backward check of the source-visible rows in the R×R frame: query patch → argmax target patch →
    /// its argmax source patch; hidden when the patch centres are more than 0.1·R apart (the service's default,
    /// 0.1 × the longer side). Labels: the target does not see the keypoint.
    static func scoreVisibility(_ score: inout VisibilityScore, _ confidence: inout CycleConfidence, threshold thr: Double,
                                similarity sim: SimilarityMatrix, rows: [Int],
                                source: ImageDescriptors, target: ImageDescriptors, alpha: Double,
                                ks: [Float], kt: [Float], grid: PatchGrid) throws(CorrespondenceError) {
        let forward = sim.argmaxPerRow()
        let back = try Matching.nearestNeighbours(source: target, target: source, sourceRows: forward, alpha: alpha)
        let threshold = CycleCheck.defaultFraction * Double(grid.resolution)
        for k in rows.indices where ks[3 * k + 2] > 0 {
            let a = grid.centre(of: rows[k]), b = grid.centre(of: back[k].target)
            let e = CycleCheck.error(from: (Double(a.x), Double(a.y)), back: (Double(b.x), Double(b.y)))
            let seen = kt[3 * k + 2] > 0
            score.add(predictedHidden: !CycleCheck.visible(error: e, threshold: threshold), hidden: !seen)
            let err = PCK.error(predicted: grid.centre(of: forward[k]), groundTruth: (kt[3 * k], kt[3 * k + 1]))
            confidence.add(cycleError: e, correct: confidence.alphas.map { seen && PCK.isCorrect(error: err, alpha: $0, threshold: thr) })
        }
    }
}

/// A progress line with ETA on standard error.
package struct Progress {
    let total: Int
    let enabled: Bool
    let unit: String
    let log: (String) -> Void
    let start = Measure.now()
    var last = 0.0
    package init(total: Int, enabled: Bool, unit: String = "pairs", log: @escaping (String) -> Void) {
        self.total = total; self.enabled = enabled; self.unit = unit; self.log = log
    }

    package mutating func update(_ done: Int, note: String) {
        guard enabled else { return }
        let now = Measure.now()
        guard now - last > 1 || done == total else { return }
        last = now
        let elapsed = now - start
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let width = 30, filled = total > 0 ? width * done / total : width
        log(String(format: "[%@%@] %d/%d %@  %.1f %@/s  ETA %@  (%@)", String(repeating: "#", count: filled),
                   String(repeating: ".", count: width - filled), done, total, unit, Double(done) / max(elapsed, 1e-9), unit, format(eta), note))
    }

    func format(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}

extension CategoryWeighting {
    /// The reference's "Weighted" line: SPair-71k test-pair counts (METHOD §6.2, H27).
    package static var spairTestPairCounts: CategoryWeighting {
        .fixed(name: "spairTestPairCounts", weights: SPairCategories.testPairCountByName.mapValues(Double.init))
    }
}
