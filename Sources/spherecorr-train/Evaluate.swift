import ArgumentParser
import CommandLineOptions
import Correspondence
import DINOv2
import Evaluation
import Features
import Foundation
import Hashing
import Imaging
import SPair
import SphereMap
import TensorFiles

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "PCK and KAP on SPair-71k-format data, exactly as the paper's evaluation code computes them.")

    @OptionGroup var pairs: PairsOptions
    @OptionGroup var backboneOptions: BackboneOptions
    @Option(help: "Sphere bundle (.safetensors); needed for alpha > 0.")
    var bundle: String?
    @Option(help: "Weight of the sphere similarity: 0 = DINOv2 baseline, 0.2 = the paper, 1 = sphere only; comma-separated for several runs sharing the features.")
    var alpha: String = "0.2"
    @Option(help: "Metrics to compute.")
    var metric: MetricSelection = .both
    @Option(help: "Letterbox side, a multiple of the backbone's patch size: 14 for DINOv2 (the paper: 840), 8 or 16 for DINOv1.")
    var resolution: Int = 840
    @Option(help: "Pairs per category, drawn with replacement (seeded); categories then weigh equally.")
    var sample: Int?
    @Option(help: "Seed for --sample.")
    var seed: UInt64 = 42
    @Option(help: "Directory for the persistent feature cache (safetensors keyed by image content, backbone and resolution).")
    var cache: String?
    @Option(help: ArgumentHelp("Evaluate only the K-th of N disjoint parts of the pairs (K from 0) and write a partial report; merge-reports combines the N into the unsharded run's report.",
                               valueName: "K/N"), transform: Shard.init(parsing:))
    var shard: Shard?
    @Option(help: "Write the report (JSON) here.")
    var report: String
    @Option(help: "Also write the tables in the layout of the paper's Tables 1 and 2 (Markdown).")
    var markdown: String?
    @Option(help: "Write pictures here: matches and sphere maps of the first pairs of each category, PCK/KAP charts.")
    var plots: String?
    @Flag(help: "No progress bar.")
    var quiet = false
    @OptionGroup var refinementOptions: RefinementOptions
    @Flag(help: "Also report precision, recall and F1 of the forward–backward 'not visible' check against the target-invisible keypoints.")
    var visibility = false
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        _ = try backboneOptions.requiredPath()
        // The grid depends on the backbone's patch size and stride: Evaluator checks --resolution and the
        // refinement against it once the backbone is loaded.
        guard resolution > 0 else { throw ValidationError("--resolution must be positive; got \(resolution)") }
        _ = try alphas()
        if let s = sample, s < 1 { throw ValidationError("--sample must be at least 1; got \(s)") }
    }

    func alphas() throws -> [Double] {
        let parts = alpha.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap(Double.init)
        guard !parts.isEmpty, values.count == parts.count, values.allSatisfy({ (0...1).contains($0) }) else {
            throw ValidationError("--alpha takes numbers in [0, 1], comma-separated; got '\(alpha)'")
        }
        return values
    }

    func run() throws {
        engine.configure()
        let backbone = try backboneOptions.requiredPath()
        let model = try backboneOptions.load()
        let b: SphereBundle?
        do { b = try bundle.map { try SphereBundle.load(path: $0) } } catch { throw CommandFailure("\(error)") }
        let data = pairs.data, split = pairs.split
        var o = EvaluationOptions(data: data)
        o.split = split
        o.alphas = try alphas()
        o.metric = metric
        o.resolution = resolution
        o.categories = pairs.only
        o.sample = sample
        o.seed = seed
        o.cacheDirectory = cache
        o.skipInvalid = pairs.skipInvalid
        o.plotsDirectory = plots
        o.progress = !quiet
        o.shard = shard
        o.refine = try refinementOptions.refinement()
        o.visibility = visibility
        let result: EvaluationResult
        do {
            let evaluator = try Evaluator(options: o, backbone: model, backboneKey: BackboneIdentity.key(model, path: backbone), bundle: b)
            result = try evaluator.run()
        } catch { throw CommandFailure("\(error)") }
        let config: [String: Any] = [
            "data": data, "split": split.rawValue, "backbone": backbone, "backbone_variant": model.config.displayName, "bundle": bundle ?? NSNull(),
            "alphas": o.alphas, "metric": metric.rawValue, "resolution": resolution, "categories": result.runs.first?.categories.map(\.category) ?? [],
            "sample": sample ?? NSNull(), "seed": seed, "thresholds": [0.1, 0.05, 0.01], "refine": o.refine.record,
        ]
        do {
            var out: [String: Any]
            if let s = o.shard {
                // The shard's own scores, plus what merge-reports needs to rebuild the whole run's.
                out = Report.json(result, config: config.merging(["shard": s.description]) { $1 })
                out["shard"] = ShardReport.json(result, shard: s, resolution: resolution, config: config)
            } else {
                out = Report.json(result, config: config)
            }
            let json = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys, .prettyPrinted])
            try AtomicFile.write([UInt8](json), to: URL(fileURLWithPath: report))
            if let markdown {
                try AtomicFile.write(Array(Report.markdown(result, title: "SphereCorr evaluation on \(URL(fileURLWithPath: data).lastPathComponent) (\(split.rawValue))").utf8),
                                     to: URL(fileURLWithPath: markdown))
            }
            if let plots { try Plots.charts(directory: plots, result: result) }
        } catch { throw CommandFailure("\(error)") }
        if !quiet {
            print(Report.markdown(result, title: "SphereCorr evaluation"))
            print(String(format: "%d pairs in %.1f s (%.2f pairs/s); %d images embedded, %d from the feature cache",
                         result.pairsEvaluated, result.seconds, Double(result.pairsEvaluated) / max(result.seconds, 1e-9),
                         result.imagesEmbedded, result.cacheHits))
        }
    }
}
