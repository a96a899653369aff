import ArgumentParser
import CommandLineOptions
import DINOv2
import Foundation
import Imaging
import Kernels
import Runtime
import SPair
import Training
import TrainingData
import TrainingRun

struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a sphere bundle (f_S and S_Z) on frozen DINOv2 features, as the paper does; publishes bundles into --out.",
        discussion: """
        Defaults are the paper's configuration (METHOD §4.1). Bundles appear in --out as sphere-eNNNNNN.safetensors every \
        --save-every epochs and at the end (a running `spherecorr-server --bundles DIR` picks them up); train.jsonl gets one \
        line per epoch. SIGINT/SIGTERM stop at the next batch with the state saved: continue with --resume.
        """)

    @Option(help: "SPair-71k-format dataset root (JPEGImages, ImageAnnotation, PairAnnotation, Segmentation).")
    var data: String?
    @Option(help: "Train on Freiburg Static Cars instead (images/, annotations/, instance_masks/).")
    var fcars: String?
    @OptionGroup var backboneOptions: BackboneOptions
    @Option(help: "Output directory for bundles, train.jsonl and the training state.")
    var out: String
    @Option(help: "SPair split whose pairs give the training images.")
    var split: SPairSplit = .trn
    @Option(help: "Epochs.")
    var epochs: Int = 200
    @Option(help: "Images per optimiser step (the last batch of an epoch may be smaller).")
    var batchSize: Int = 64
    @Option(help: "Adam learning rate.")
    var lr: Float = 1e-3
    @Option(help: "Copies of the unique source images per epoch (SPair; Freiburg Cars ignores it, as the reference).")
    var replications: Int = 10
    @Option(help: "Triplets per image of each triplet loss.")
    var triplets: Int = 32
    @Option(help: "Loss weights, any subset: rec=1,rd=0.3,o=0.3,vp=0.1 (vp=0 turns the viewpoint loss off).")
    var weights: String = "rec=1,rd=0.3,o=0.3,vp=0.1"
    @Option(help: "Viewpoint bins of the viewpoint loss (Freiburg Cars: azimuth bins; SPair: its 45° bins rebinned).")
    var vpBins: Int = 8
    @Option(help: "Precomputed augmented views per image (0: a fresh crop every epoch, as the reference).")
    var views: Int = 0
    @Option(help: "View cache directory (default $XDG_CACHE_HOME/spherecorr/views or ~/.cache/spherecorr/views).")
    var cache: String?
    @Option(help: "Cached feature format.")
    var cachePrecision: CachePrecision = .float16
    @Flag(help: "Only build (or complete) the view cache of --views K, then exit: no training, nothing written to --out.")
    var cacheOnly = false
    @Option(help: "Publish a bundle every N epochs (and at the end).")
    var saveEvery: Int = 10
    @Option(help: "Seed of the initialisation, data order, crops and triplets.")
    var seed: UInt64 = 0
    @Flag(help: "Continue the run in --out from its last saved state.")
    var resume = false
    @Flag(help: "Write --out/losses.png after each epoch.")
    var plot = false
    @Flag(help: "Skip images whose files or annotations are bad (counted and listed) instead of stopping.")
    var skipInvalid = false
    @Option(help: "Training image side, a multiple of 14 (the paper: 448).")
    var resolution: Int = 448
    @Option(help: "After each published bundle, PCK@0.1 on this SPair-format dataset (logged as pck in train.jsonl).")
    var evalData: String?
    @Option(help: "Split of --eval-data.")
    var evalSplit: SPairSplit = .test
    @Option(help: "Letterbox side of the evaluation (the paper: 840).")
    var evalResolution: Int = 840
    @Flag(help: "No progress bar or per-epoch lines.")
    var quiet = false
    @Option(help: .hidden)
    var stopAfterSteps: Int?
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard (data == nil) != (fcars == nil) else { throw ValidationError("give exactly one of --data (SPair-71k format) or --fcars (Freiburg Cars)") }
        _ = try backboneOptions.requiredPath()
        for (name, v) in [("--epochs", epochs), ("--batch-size", batchSize), ("--replications", replications), ("--triplets", triplets),
                          ("--vp-bins", vpBins), ("--save-every", saveEvery)] where v < 1 {
            throw ValidationError("\(name) must be at least 1; got \(v)")
        }
        guard views >= 0 else { throw ValidationError("--views must be 0 (fresh crops) or a positive count; got \(views)") }
        if cacheOnly && views == 0 { throw ValidationError("--cache-only builds the view cache of --views K: give K ≥ 1") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number; got \(lr)") }
        if let why = PatchGrid.invalidReason(resolution: resolution) { throw ValidationError("--resolution \(why)") }
        if let why = PatchGrid.invalidReason(resolution: evalResolution) { throw ValidationError("--eval-resolution \(why)") }
        do { _ = try LossWeights(parsing: weights) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        engine.configure(logPrefix: quiet ? nil : "spherecorr-train")
        let backbone = try backboneOptions.requiredPath()
        let model = try backboneOptions.load()
        var o = FitOptions(data: data.map { .spair(root: $0, split: split) } ?? .fcars(root: fcars!), out: out)
        o.epochs = epochs
        o.batchSize = batchSize
        o.learningRate = lr
        o.replications = replications
        o.triplets = triplets
        o.weights = try LossWeights(parsing: weights)
        o.vpBins = vpBins
        o.views = views
        o.cacheDirectory = cache
        o.cachePrecision = cachePrecision
        o.cacheOnly = cacheOnly
        o.saveEvery = saveEvery
        o.seed = seed
        o.resume = resume
        o.plot = plot
        o.skipInvalid = skipInvalid
        o.resolution = resolution
        o.evalData = evalData
        o.evalSplit = evalSplit
        o.evalResolution = evalResolution
        o.progress = quiet ? .none : .automatic
        o.stopAfterSteps = stopAfterSteps
        let quiet = self.quiet
        let summary: FitSummary
        do {
            let run = try FitRun(options: o, backbone: model, backboneKey: ImageInput.backboneKey(model, path: backbone)) { line in
                if !quiet { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
            }
            summary = try run.run()
        } catch let e as FitInterrupted {
            logToStderr("spherecorr-train fit: \(e)")
            Foundation.exit(128 + e.signal)
        } catch let e as FitError where e.signal != nil {
            logToStderr("spherecorr-train fit: \(e)")
            Foundation.exit(128 + e.signal!)
        } catch { throw CommandFailure("\(error)") }
        if cacheOnly {
            if !quiet { print("done: view cache of \(views) views per image ready" + (summary.skipped > 0 ? ", \(summary.skipped) invalid images skipped" : "")) }
            return
        }
        if !quiet {
            print("done: \(summary.epochs) epochs, \(summary.bundles.count) bundles published in \(out)" +
                  (summary.skipped > 0 ? ", \(summary.skipped) invalid images skipped" : ""))
        }
    }
}
