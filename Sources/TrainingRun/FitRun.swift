// `spherecorr-train fit`: the epoch loop of `train_sph.py` (METHOD §4.1) around `SphereTrainer.step`, with what a
// CPU user needs around it: checked data, the view cache, atomic bundle publishing, resume after an interruption,
// a log per epoch, a loss chart and optional PCK.
//
// Files in --out:
//   sphere-e000010.safetensors   bundle after epoch 10 (names sort in publication order; the server loads the last)
//   sphere-e000010.state         trainer state beside it (parameters, Adam moments, RNG, data position)
//   resume.state                 the latest state: every epoch end, and where a SIGINT/SIGTERM stopped the run
//   train.jsonl                  one object per epoch: epoch, loss, rec, vp, rd, o, seconds (+ pck, pck_weighted)
//   losses.png                   with --plot
// State files are safetensors but not named *.safetensors, so the server never mistakes them for bundles.
//
// Reproducibility: the data order of epoch e, the crop of the item at position p of epoch e (`--views 0`) and the
// cached view it uses (`--views K`) come from generators seeded by (seed, e, p); the triplet draws are the
// trainer's. So a run stopped at any batch boundary and resumed gives the same bundles, bit for bit, with the
// same thread count.

import DINOv2
import Evaluation
import Foundation
import Imaging
import Kernels
import Runtime
import SPair
import SphereMap
import Synchronization
import TensorFiles
import Training
import TrainingData
import Visualization
#if canImport(Glibc)
import Glibc
#endif

/// Everything `fit` is asked to do. Defaults are the paper's configuration (`configs/SPair.yaml`, `train_sph.py`).
package struct FitOptions: Sendable {
    package enum Data: Sendable, Equatable {
        case spair(root: String, split: SPairSplit)
        case fcars(root: String)
    }
    package var data: Data
    package var out: String
    package var epochs = 200
    package var batchSize = 64
    package var learningRate: Float = 1e-3
    package var replications = 10
    package var triplets = 32
    package var weights = LossWeights()
    package var vpBins = 8
    /// 0: a fresh crop every epoch (the reference); K: K cached views per image.
    package var views = 0
    package var cacheDirectory: String?
    package var cachePrecision: CachePrecision = .float16
    /// Build (or complete) the view cache of `views` views per image and stop: nothing is trained or written to `out`
    /// (scripts/reproduce-paper's cache step, so that step can run, be skipped or be resumed on its own).
    package var cacheOnly = false
    package var saveEvery = 10
    package var seed: UInt64 = 0
    package var resume = false
    package var plot = false
    package var skipInvalid = false
    /// Training image side (448 in the paper: 32×32 tokens).
    package var resolution = 448
    package var evalData: String?
    package var evalSplit: SPairSplit = .test
    package var evalResolution = 840
    package var progress: ProgressStyle = .automatic
    /// Tests: behave as if SIGTERM arrived after this many optimiser steps of this invocation.
    package var stopAfterSteps: Int?

    package init(data: Data, out: String) { self.data = data; self.out = out }
}

package enum ProgressStyle: Sendable { case automatic, bar, lines, none }

/// A run that stopped on a signal after saving its state.
package struct FitInterrupted: Error, CustomStringConvertible {
    package var signal: Int32
    package var epoch: Int
    package var batch: Int
    package var stateFile: String
    package var description: String {
        "interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM") in epoch \(epoch + 1) before batch \(batch + 1): state saved to \(stateFile); continue with --resume"
    }
}

/// A problem that stops `fit`, naming the file.
package struct FitError: Error, CustomStringConvertible {
    package var description: String
    /// Set when a signal ended the run (the command exits with 128 + signal).
    package var signal: Int32?
    package init(_ d: String, signal: Int32? = nil) { description = d; self.signal = signal }
}

/// What a finished run produced.
package struct FitSummary: Sendable {
    package var bundles: [String]
    package var epochs: Int
    package var skipped: Int
    package var lastLoss: Double?
}

// MARK: - Signals

private let stopSignal = Atomic<Int32>(0)

/// SIGINT/SIGTERM ask the loop to stop at the next batch boundary (state saved); a second one exits at once.
private func installStopHandlers() {
    // A parent may start us with these signals blocked (the mask is inherited across exec): unblock them, or they
    // would stay pending and the run would never stop.
    var mask = sigset_t()
    sigemptyset(&mask)
    sigaddset(&mask, SIGINT)
    sigaddset(&mask, SIGTERM)
    pthread_sigmask(SIG_UNBLOCK, &mask, nil)
    for s in [SIGINT, SIGTERM] {
        signal(s) { sig in
            if stopSignal.exchange(sig, ordering: .relaxed) != 0 { _exit(128 + sig) }
        }
    }
}

// MARK: - Run

package final class FitRun {
    let o: FitOptions
    let backbone: DinoVisionTransformer
    let backboneKey: String
    let log: (String) -> Void
    let outDir: URL
    var set: TrainingSet!
    var fingerprints: [String] = []
    var dataFingerprint = ""
    var cache: ViewCache?
    let embedder: ViewEmbedder
    let crop: RandomResizedCrop
    var stepsThisRun = 0

    /// `log` receives human-readable lines (stdout in the command).
    package init(options: FitOptions, backbone: DinoVisionTransformer, backboneKey: String, log: @escaping (String) -> Void) throws {
        o = options
        self.backbone = backbone
        self.backboneKey = backboneKey
        self.log = log
        outDir = URL(fileURLWithPath: options.out)
        crop = RandomResizedCrop(size: options.resolution)
        embedder = ViewEmbedder(backbone: backbone, crop: crop)
        guard options.resolution % backbone.config.patchSize == 0 else {
            throw FitError("--resolution \(options.resolution) is not a multiple of the patch size \(backbone.config.patchSize)")
        }
    }

    var grid: Int { o.resolution / backbone.config.patchSize }
    var resumeURL: URL { outDir.appendingPathComponent("resume.state") }
    var journalURL: URL { outDir.appendingPathComponent("train.jsonl") }

    /// The configuration that must match for `--resume` (not --epochs, --save-every, --plot, --eval-*, --threads).
    var fixedConfig: [String: String] {
        let data: String = switch o.data {
        case let .spair(root, split): "spair:\(URL(fileURLWithPath: root).standardizedFileURL.path):\(split.rawValue)"
        case let .fcars(root): "fcars:\(URL(fileURLWithPath: root).standardizedFileURL.path)"
        }
        return ["data": data, "batch_size": String(o.batchSize), "lr": String(o.learningRate), "replications": String(o.replications),
                "triplets": String(o.triplets), "weights": o.weights.description, "vp_bins": String(o.vpBins), "views": String(o.views),
                "cache_precision": o.cachePrecision.rawValue, "seed": String(o.seed), "resolution": String(o.resolution),
                "backbone": backboneKey, "skip_invalid": String(o.skipInvalid)]
    }

    package func run() throws -> FitSummary {
        installStopHandlers()
        if o.cacheOnly {
            guard o.views > 0 else { throw FitError("--cache-only builds the view cache of --views K: give K ≥ 1") }
            try loadData()
            try buildCache()
            return FitSummary(bundles: [], epochs: 0, skipped: set.skipped.count, lastLoss: nil)
        }
        try prepareOutput()
        try loadData()
        let trainer = try makeTrainer()
        var position = try startPosition(trainer)
        // A state from the start: the journal is written before each epoch's state, so a run killed right after its
        // first journal line still has a state to --resume from (it redoes that epoch).
        if !o.resume { try saveResume(trainer, position) }
        if o.views > 0 { try buildCache() }
        var published: [String] = []
        var lastLoss: Double?
        let batches = (set.count + o.batchSize - 1) / o.batchSize
        log("training \(set.count) items per epoch (\(set.images.count) images × \(set.replications)), \(batches) batches of up to \(o.batchSize), epochs \(position.epoch + 1)…\(o.epochs)")
        var bar = ProgressBar(style: o.progress, total: batches, log: log)
        while position.epoch < o.epochs {
            let e = position.epoch
            let order = epochOrder(e)
            let started = Measure.now()
            bar.startEpoch(e, of: o.epochs)
            while position.batch < batches {
                if let sig = stopRequested() {
                    let file = try saveResume(trainer, position)
                    throw FitInterrupted(signal: sig, epoch: e, batch: position.batch, stateFile: file.path)
                }
                let b = position.batch
                let items = Array(order[(b * o.batchSize)..<min((b + 1) * o.batchSize, order.count)])
                let batch = try assemble(items: items, epoch: e, firstPosition: b * o.batchSize)
                let l = try trainer.step(batch)
                stepsThisRun += 1
                position.add(l)
                position.batch += 1
                bar.update(batch: position.batch, images: items.count, sums: position)
            }
            position.seconds += Measure.now() - started
            let record = position.record(epoch: e + 1)
            lastLoss = record.loss
            position = FitPosition(epoch: e + 1)
            let save = (e + 1) % o.saveEvery == 0 || e + 1 == o.epochs
            var pck: (macro: Double, weighted: Double)?
            if save {
                let name = String(format: "sphere-e%06d", e + 1)
                let bundle = trainer.bundle(metadata: bundleMetadata(epoch: e + 1, record: record))
                // State first, then the bundle: a server never sees a bundle without its state beside it.
                try trainer.saveState(to: outDir.appendingPathComponent(name + ".state"), metadata: stateMetadata(position))
                do { try bundle.write(to: outDir.appendingPathComponent(name + ".safetensors")) } catch {
                    throw FitError("\(outDir.path)/\(name).safetensors: cannot publish the bundle: \(error)")
                }
                published.append(name + ".safetensors")
                if o.evalData != nil { pck = try evaluate(bundle) }
            }
            try appendJournal(record, pck: pck)
            _ = try saveResume(trainer, position)
            bar.endEpoch(record, published: save ? published.last : nil, pck: pck?.macro)
            if o.plot { try plot() }
        }
        return FitSummary(bundles: published, epochs: o.epochs, skipped: set.skipped.count, lastLoss: lastLoss)
    }

    func stopRequested() -> Int32? {
        if let n = o.stopAfterSteps, stepsThisRun >= n { return SIGTERM }
        return signalReceived()
    }

    func signalReceived() -> Int32? {
        let s = stopSignal.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    // MARK: Output directory

    func prepareOutput() throws {
        let fm = FileManager.default
        do { try fm.createDirectory(at: outDir, withIntermediateDirectories: true) } catch {
            throw FitError("\(outDir.path): cannot create the output directory: \(error.localizedDescription)")
        }
        let existing = (try? fm.contentsOfDirectory(atPath: outDir.path)) ?? []
        let ours = existing.filter { $0 == "train.jsonl" || $0 == "resume.state" || ($0.hasPrefix("sphere-e") && !$0.hasPrefix(".")) }
        if !o.resume && !ours.isEmpty {
            throw FitError("\(outDir.path) already holds a training run (\(ours.sorted().prefix(3).joined(separator: ", "))…): continue it with --resume or choose another --out")
        }
        if o.resume && !fm.fileExists(atPath: resumeURL.path) {
            throw FitError("\(resumeURL.path) is missing: there is no run to resume in \(outDir.path)")
        }
    }

    // MARK: Data

    func loadData() throws {
        let t0 = Measure.now()
        var s: TrainingSet
        do {
            switch o.data {
            case let .spair(root, split):
                s = try TrainingSet.spair(root: URL(fileURLWithPath: root), split: split, replications: o.replications, vpBins: o.vpBins)
            case let .fcars(root):
                s = try TrainingSet.freiburgCars(root: URL(fileURLWithPath: root), vpBins: o.vpBins)
            }
            if !o.skipInvalid { _ = try s.requireValid(skipInvalid: false) }
        } catch { throw FitError(dataMessage(error)) }
        let listed = s.images.count
        fingerprints = s.validatePixels()
        do { _ = try s.requireValid(skipInvalid: o.skipInvalid) } catch { throw FitError(dataMessage(error)) }
        guard !s.images.isEmpty else { throw FitError("no usable training image in \(s.root.path) (\(s.skipped.count) skipped)") }
        set = s
        dataFingerprint = s.fingerprint(contents: fingerprints)
        log(String(format: "data: %d images checked in %.1f s, %d skipped as invalid%@", listed, Measure.now() - t0, s.skipped.count,
                   s.skipped.isEmpty ? "" : ":"))
        for e in s.skipped { log("  skipped: \(e)") }
    }

    func dataMessage(_ e: any Error) -> String {
        guard let e = e as? SPairError else { return "\(e)" }
        let root: String = switch o.data { case let .spair(r, _): r; case let .fcars(r): r }
        let full = e.file.hasPrefix("/") ? e.file : URL(fileURLWithPath: root).appendingPathComponent(e.file).path
        return (e.field.map { "\(full): field '\($0)' \(e.detail)" } ?? "\(full): \(e.detail)") + " (use --skip-invalid to skip bad images)"
    }

    // MARK: Trainer and resume

    func makeTrainer() throws -> SphereTrainer {
        let config = TrainerConfig(width: backbone.config.embedDim, categories: set.categories, vpBins: o.vpBins, triplets: o.triplets,
                                   learningRate: o.learningRate, weights: o.weights, seed: o.seed)
        guard o.resume else { return SphereTrainer(config: config) }
        let t: SphereTrainer
        do { t = try SphereTrainer(restoringFrom: resumeURL) } catch { throw FitError("\(resumeURL.path): cannot resume: \(error)") }
        let saved = t.restoredMetadata
        if saved["data_fingerprint"] != dataFingerprint {
            throw FitError("\(resumeURL.path): the training data changed since the run started (data fingerprint differs); start a new run in another --out")
        }
        for (k, v) in fixedConfig where saved["config." + k] != v {
            throw FitError("\(resumeURL.path): --resume needs the run's own settings: \(k) was '\(saved["config." + k] ?? "?")', now '\(v)'")
        }
        guard t.config == config else { throw FitError("\(resumeURL.path): the trainer configuration differs from this command's") }
        return t
    }

    func startPosition(_ t: SphereTrainer) throws -> FitPosition {
        guard o.resume else { return FitPosition(epoch: 0) }
        guard let p = FitPosition(metadata: t.restoredMetadata) else { throw FitError("\(resumeURL.path): the data position is missing or malformed") }
        try truncateJournal(toEpochs: p.epoch)
        log("resuming at epoch \(p.epoch + 1), batch \(p.batch + 1) (optimiser step \(t.stepCount))")
        return p
    }

    func stateMetadata(_ p: FitPosition) -> [String: String] {
        var m = p.metadata
        m["data_fingerprint"] = dataFingerprint
        for (k, v) in fixedConfig { m["config." + k] = v }
        return m
    }

    @discardableResult
    func saveResume(_ t: SphereTrainer, _ p: FitPosition) throws -> URL {
        do { try t.saveState(to: resumeURL, metadata: stateMetadata(p)) } catch {
            throw FitError("\(resumeURL.path): cannot save the training state: \(error)")
        }
        return resumeURL
    }

    // MARK: Batches

    /// The epoch's permutation of the replicated list (DataLoader shuffle=True; drop_last=False keeps the tail).
    func epochOrder(_ e: Int) -> [Int] {
        var rng = SplitMix64(seed: derivedSeed(o.seed, 0x6F72_6465_72, UInt64(e)))  // "order"
        var order = Array(0..<set.count)
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return order
    }

    func assemble(items: [Int], epoch e: Int, firstPosition: Int) throws -> TrainingBatch {
        let n = grid * grid, d = backbone.config.embedDim
        var features: [Float] = [], mask: [Float] = []
        features.reserveCapacity(items.count * n * d)
        mask.reserveCapacity(items.count * n)
        var views: [AugmentedView] = []
        for (k, item) in items.enumerated() {
            let i = set.image(at: item), p = firstPosition + k
            if let cache {
                var pick = SplitMix64(seed: derivedSeed(o.seed, 0x7069_636B, UInt64(e), UInt64(p)))  // "pick"
                let v = Int(pick.next() % UInt64(o.views))
                guard let shard = cache.shard(fingerprint: fingerprints[i], tokens: n, width: d) else {
                    throw FitError("\(cache.url(fingerprint: fingerprints[i]).path): view cache entry of \(set.images[i].imagePath) is missing or damaged")
                }
                let (f, m) = try cache.read(shard, view: v)
                features += f
                mask += m
            } else {
                let img: LoadedImage
                do { img = try set.load(i) } catch { throw FitError(dataMessage(error)) }
                var draws = SplitMix64(seed: derivedSeed(o.seed, 0x6372_6F70, UInt64(e), UInt64(p)))  // "crop"
                let view = img.pixels.randomView(crop, draws: &draws)
                views.append(view)
                mask += view.maskGrid
            }
        }
        if !views.isEmpty { embedder.embed(views, into: &features) }
        return TrainingBatch(features: features, mask: mask, categories: items.map { set.images[set.image(at: $0)].category },
                             viewpoints: items.map { set.images[set.image(at: $0)].viewpoint },
                             batch: items.count, gridHeight: grid, gridWidth: grid, width: d)
    }

    func buildCache() throws {
        let dir = o.cacheDirectory.map { URL(fileURLWithPath: $0) } ?? FitRun.defaultCacheDirectory()
        let c = ViewCache(directory: dir, backboneKey: backboneKey, size: o.resolution, seed: o.seed, views: o.views, precision: o.cachePrecision)
        let t0 = Measure.now()
        var bar = ProgressBar(style: o.progress, total: set.images.count, log: log)
        bar.unit = "images"
        var lastDone = 0
        let embedded: Int
        do {
            embedded = try c.build(set, fingerprints: fingerprints, embedder: embedder, stop: { self.signalReceived() != nil }) { done, total, _ in
                bar.update(batch: done, images: done - lastDone, sums: nil, title: "view cache (\(self.o.views) views per image) \(done)/\(total)")
                lastDone = done
            }
        } catch let e as ViewCacheStopped {
            throw FitError("interrupted: \(e) (every finished image is kept; continue with --resume)", signal: signalReceived() ?? SIGTERM)
        } catch { throw FitError(dataMessage(error)) }
        let dt = Measure.now() - t0
        log(String(format: "view cache %@: %d of %d images embedded now (%d views each, %.1f s, %.2f images/s), the rest reused",
                   dir.path, embedded, set.images.count, o.views, dt, embedded > 0 ? Double(embedded) / dt : 0))
        cache = c
    }

    /// `$XDG_CACHE_HOME/spherecorr/views`, else `~/.cache/spherecorr/views`.
    package static func defaultCacheDirectory() -> URL {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("spherecorr/views")
    }

    // MARK: Outputs

    func bundleMetadata(epoch: Int, record: EpochRecord) -> [String: String] {
        var m: [String: String] = [
            "backbone_variant": backbone.config.displayName, "backbone_key": backboneKey,
            "trained_by": "spherecorr-train fit", "epoch": String(epoch), "epochs": String(o.epochs),
            "data_fingerprint": dataFingerprint, "data_images": String(set.images.count), "data_skipped": String(set.skipped.count),
            "loss": String(record.loss), "rec": String(record.rec), "vp": String(record.vp), "rd": String(record.rd), "o": String(record.o),
        ]
        for (k, v) in fixedConfig { m["train." + k] = v }
        return m
    }

    func appendJournal(_ r: EpochRecord, pck: (macro: Double, weighted: Double)?) throws {
        var line = "{\"epoch\": \(r.epoch), \"loss\": \(json(r.loss)), \"rec\": \(json(r.rec)), \"vp\": \(json(r.vp)), \"rd\": \(json(r.rd)), \"o\": \(json(r.o)), \"seconds\": \(json(r.seconds))"
        if let pck { line += ", \"pck\": \(json(pck.macro)), \"pck_weighted\": \(json(pck.weighted))" }
        line += "}\n"
        var text = (try? String(contentsOf: journalURL, encoding: .utf8)) ?? ""
        text += line
        do { try AtomicFile.write(Array(text.utf8), to: journalURL) } catch { throw FitError("\(journalURL.path): cannot write: \(error)") }
    }

    func json(_ v: Double) -> String { v.isFinite ? "\(v)" : "null" }

    /// Keeps the journal's first `n` epochs (a run killed after writing a line but before saving its state redoes it).
    func truncateJournal(toEpochs n: Int) throws {
        guard let text = try? String(contentsOf: journalURL, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").prefix(n).map { $0 + "\n" }.joined()
        do { try AtomicFile.write(Array(kept.utf8), to: journalURL) } catch { throw FitError("\(journalURL.path): cannot write: \(error)") }
    }

    /// losses.png: total (blue), rec (orange), vp (green), rd (red), o (purple) per epoch, from train.jsonl.
    func plot() throws {
        guard let text = try? String(contentsOf: journalURL, encoding: .utf8) else { return }
        var series = [[Double]](repeating: [], count: 5)
        for line in text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            for (i, k) in ["loss", "rec", "vp", "rd", "o"].enumerated() { series[i].append((obj[k] as? Double) ?? .nan) }
        }
        let img = Rendering.lineChart(series: series)
        let url = outDir.appendingPathComponent("losses.png")
        do { try AtomicFile.write(encodePNG(img), to: url) } catch { throw FitError("\(url.path): cannot write: \(error)") }
    }

    /// PCK@0.1 of the evaluation module with this bundle (α = 0.2, the paper's mix), macro and pair-weighted.
    func evaluate(_ bundle: SphereBundle) throws -> (macro: Double, weighted: Double) {
        var e = EvaluationOptions(data: o.evalData!)
        e.split = o.evalSplit
        e.alphas = [0.2]
        e.metric = .pck
        e.resolution = o.evalResolution
        e.progress = false
        let r: EvaluationResult
        do { r = try Evaluator(options: e, backbone: backbone, backboneKey: backboneKey, bundle: bundle).run() } catch {
            throw FitError("--eval-data \(o.evalData!): \(error)")
        }
        let cats = r.runs.first?.categories.filter { $0.pck != nil } ?? []
        guard !cats.isEmpty else { throw FitError("--eval-data \(o.evalData!): no pair was evaluated") }
        let macro = cats.map { $0.pck![0] }.reduce(0, +) / Double(cats.count)
        let pairs = cats.map { Double($0.pairs) }.reduce(0, +)
        let weighted = cats.map { $0.pck![0] * Double($0.pairs) }.reduce(0, +) / max(pairs, 1)
        return (macro, weighted)
    }
}

// MARK: - Position in the run

/// One epoch's line of train.jsonl. Each loss is the mean over the epoch's batches, as the reference logs it.
package struct EpochRecord: Sendable, Equatable {
    package var epoch: Int
    package var loss, rec, vp, rd, o: Double
    package var seconds: Double
}

/// Where the run is: epochs done, the next batch of the current epoch, the epoch's running loss sums.
struct FitPosition {
    var epoch: Int
    var batch = 0
    var sums = [Double](repeating: 0, count: 5)  // total, rec, vp, rd, o
    var seconds = 0.0

    init(epoch: Int) { self.epoch = epoch }

    mutating func add(_ l: StepLosses) {
        for (i, v) in [l.total, l.rec, l.vp, l.rd, l.o].enumerated() { sums[i] += Double(v) }
    }

    func record(epoch: Int) -> EpochRecord {
        let n = Double(max(batch, 1))
        return EpochRecord(epoch: epoch, loss: sums[0] / n, rec: sums[1] / n, vp: sums[2] / n, rd: sums[3] / n, o: sums[4] / n, seconds: seconds)
    }

    var metadata: [String: String] {
        ["epoch": String(epoch), "batch": String(batch), "sums": sums.map { String($0.bitPattern) }.joined(separator: ","),
         "seconds": String(seconds)]
    }

    init?(metadata m: [String: String]) {
        guard let e = m["epoch"].flatMap(Int.init), let b = m["batch"].flatMap(Int.init), e >= 0, b >= 0 else { return nil }
        let s = (m["sums"] ?? "").split(separator: ",").compactMap { UInt64($0) }.map(Double.init(bitPattern:))
        guard s.count == 5 else { return nil }
        epoch = e; batch = b; sums = s; seconds = m["seconds"].flatMap(Double.init) ?? 0
    }
}

// MARK: - Progress

/// A progress bar on a terminal (epoch, batch, images/s, ETA, running losses), plain lines otherwise.
struct ProgressBar {
    let tty: Bool
    let enabled: Bool
    let total: Int
    let log: (String) -> Void
    var unit = "img"
    var epoch = 0, epochs = 0
    var start = Measure.now(), last = 0.0, images = 0

    init(style: ProgressStyle, total: Int, log: @escaping (String) -> Void) {
        self.total = total; self.log = log
        enabled = style != .none
        tty = style == .bar || (style == .automatic && isatty(STDERR_FILENO) == 1)
    }

    mutating func startEpoch(_ e: Int, of n: Int) { epoch = e; epochs = n; start = Measure.now(); images = 0 }

    mutating func update(batch: Int, images n: Int, sums: FitPosition?, title: String? = nil) {
        images += n
        guard enabled else { return }
        if !tty {
            // Plain lines: one at each tenth of a long loop (a full SPair epoch can take hours).
            guard total >= 20, batch * 10 / total > (batch - 1) * 10 / total, batch < total else { return }
            let elapsed = Measure.now() - start
            var s = (title ?? "epoch \(epoch + 1)/\(epochs) batch \(batch)/\(total)")
            s += String(format: ": %.1f %@/s, ETA %@", Double(images) / max(elapsed, 1e-9), unit,
                        format(elapsed / Double(batch) * Double(total - batch)))
            if let p = sums, p.batch > 0 { s += String(format: ", loss %.4f", p.record(epoch: 0).loss) }
            log(s)
            return
        }
        let now = Measure.now()
        guard now - last > 0.5 || batch == total else { return }
        last = now
        let elapsed = now - start, rate = Double(images) / max(elapsed, 1e-9)
        let eta = batch > 0 ? elapsed / Double(batch) * Double(total - batch) : 0
        let width = 24, filled = total > 0 ? width * batch / total : width
        var s = "\r" + (title ?? "epoch \(epoch + 1)/\(epochs) batch \(batch)/\(total)")
        s += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        s += String(format: " %.1f %@/s ETA %@", rate, unit, format(eta))
        if let p = sums, p.batch > 0 {
            let r = p.record(epoch: 0)
            s += String(format: " loss %.4f rec %.4f vp %.4f rd %.4f o %.4f", r.loss, r.rec, r.vp, r.rd, r.o)
        }
        FileHandle.standardError.write(Data((s + "\u{1B}[K").utf8))
    }

    func endEpoch(_ r: EpochRecord, published: String?, pck: Double?) {
        guard enabled else { return }
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        var s = String(format: "epoch %d/%d: loss %.5f (rec %.5f, vp %.5f, rd %.5f, o %.5f) in %.1f s", r.epoch, epochs, r.loss, r.rec, r.vp, r.rd, r.o, r.seconds)
        if let pck { s += String(format: ", PCK@0.1 %.2f", 100 * pck) }
        if let published { s += "; published \(published)" }
        log(s)
    }

    func format(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
