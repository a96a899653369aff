import ArgumentParser
import CommandLineOptions
import Foundation
import Kernels
import Runtime
import SPair
import Training

/// `spherecorr-train bench-train`: times one full optimiser step of the trainer (features given: f_S forward, the four
/// losses, backward, Adam) on random features of the real shapes. `make bench-train` runs it beside the same step in
/// PyTorch (tools/anchors/torch_train_step.py). A benchmark, never a test.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-train",
        abstract: "Time one training step (f_S + S_Z forward, losses, backward, Adam) on random features.")

    @Option(help: "Backbone width D (768 for dinov2_vitb14).")
    var width: Int = 768

    @Option(help: "Patch tokens per image, a square number (1024 = 32×32 at 448²).")
    var tokens: Int = 1024

    @Option(help: "Images per step.")
    var batch: Int = 8

    @Option(help: "Fraction of each image's tokens on the object (mask 1; the rest 0).")
    var foreground: Double = 0.5

    @Option(help: "Timed steps (after one warm-up step).")
    var `repeat`: Int = 3

    @Flag(help: "Print one JSON object.")
    var json = false

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        let side = Int(Double(tokens).squareRoot())
        guard side * side == tokens, side >= 2 else { throw ValidationError("--tokens must be a square number ≥ 4; got \(tokens)") }
        guard width >= 2, width % 2 == 0 else { throw ValidationError("--width must be even; got \(width)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard (0...1).contains(foreground) else { throw ValidationError("--foreground must be in [0, 1]; got \(foreground)") }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        engine.configure(logPrefix: json ? nil : "spherecorr-train")
        let side = Int(Double(tokens).squareRoot())
        var rng = SplitMix64(seed: 1)
        var features = [Float](repeating: 0, count: batch * tokens * width)
        for i in features.indices { features[i] = rng.normal() }
        // The object: the first ⌊F·N⌋ tokens of each image in row-major order (whole rows, then part of one).
        let fgTokens = Int(foreground * Double(tokens))
        var mask = [Float](repeating: 0, count: batch * tokens)
        for b in 0..<batch { for t in 0..<fgTokens { mask[b * tokens + t] = 1 } }
        let trainingBatch = TrainingBatch(features: features, mask: mask, categories: (0..<batch).map { $0 % SPairCategories.all.count },
                                          viewpoints: (0..<batch).map { $0 % 8 }, batch: batch, gridHeight: side, gridWidth: side,
                                          width: width)
        features = []
        let trainer = SphereTrainer(width: width, categories: SPairCategories.all, seed: 0)
        var times: [Double] = []
        var last = StepLosses(total: 0, rec: 0, rd: 0, o: 0, vp: 0)
        for i in 0...`repeat` {
            let t = Measure.now()
            last = try trainer.step(trainingBatch)
            let dt = Measure.now() - t
            if i > 0 { times.append(dt) }  // the first step page-faults every buffer
            if !json { logToStderr(String(format: "step %d: %.3f s, loss %.5f", i, dt, last.total)) }
        }
        guard last.total.isFinite else { throw CommandFailure("the loss is not finite: \(last)") }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let result: [String: Any] = [
            "width": width, "tokens": tokens, "batch": batch, "foreground": foreground, "repeat": `repeat`,
            "step_s": ["min": times.first!, "median": median, "max": times.last!],
            "images_per_s": Double(batch) / median,
            "peak_rss_bytes": Measure.peakResidentBytes(),
            "threads": Parallel.workers,
            "kernels": "kernels \(KernelFamily.summary), GEMM \(GEMM.backend.rawValue)",
            "loss": ["total": last.total, "rec": last.rec, "rd": last.rd, "o": last.o, "vp": last.vp],
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "train step D=%d N=%d batch %d foreground %.2f: median %.3f s (min %.3f, max %.3f), %.2f images/s, peak RSS %.0f MiB",
                         width, tokens, batch, foreground, median, times.first!, times.last!, Double(batch) / median,
                         Double(Measure.peakResidentBytes()) / 1_048_576))
        }
    }
}
