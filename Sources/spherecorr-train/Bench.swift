import ArgumentParser
import CommandLineOptions
import DINOv2
import Foundation
import Imaging
import Kernels
import Runtime
import SphereMap
import TensorFiles
import SPair

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the DINOv2 forward pass with random weights of a variant's real shapes (built in memory, no files).")

    @Option(help: "Which released shapes.")
    var variant: DinoConfig.Variant

    @Flag(help: "The with-registers variant.")
    var registers = false

    @Option(help: "Square input side, a multiple of 14.")
    var resolution: Int = 448

    @Option(help: "Images per forward pass.")
    var batch: Int = 1

    @Option(help: "Timed repetitions (after one warm-up).")
    var `repeat`: Int = 5

    @Flag(help: "Print one JSON object.")
    var json = false

    @Option(help: "Also write the random backbone as a torch-hub-named .safetensors file (for evaluation and service benchmarks).")
    var writeWeights: String?

    @Option(help: "Also write a random sphere bundle for this backbone's width (18 SPair categories).")
    var writeBundle: String?

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        if let why = PatchGrid.invalidReason(resolution: resolution) { throw ValidationError("--resolution \(why)") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        engine.configure(logPrefix: json ? nil : "spherecorr-train")
        let config = DinoConfig.variant(variant, registers: registers)
        // Writing the weights needs the fp32 matrices; otherwise they go once reordered, as in every run.
        let model = DinoVisionTransformer.random(config: config, seed: 0,
                                                 keepsReferenceWeights: writeWeights != nil || DinoVisionTransformer.keepsReferenceWeightsByDefault)
        let bundle = SphereBundle.initialised(backboneDim: config.embedDim, categories: SPairCategories.all, seed: 0,
                                              metadata: ["backbone_variant": "random " + config.displayName])
        if let path = writeWeights {
            var w = SafeTensorsWriter(metadata: ["format": "pt", "note": "random weights of \(config.displayName) shapes (spherecorr-train bench)"])
            for (name, t) in model.namedWeights() { w.add(name, shape: t.shape, floats: UnsafeBufferPointer(start: t.pointer, count: t.count)) }
            do { try w.write(to: URL(fileURLWithPath: path)) } catch { throw CommandFailure("\(error)") }
        }
        if let path = writeBundle {
            do { try bundle.write(to: URL(fileURLWithPath: path)) } catch { throw CommandFailure("\(error)") }
        }
        var rng = SplitMix64(seed: 1)
        let n = batch * 3 * resolution * resolution
        let input = FloatStorage(count: n, zeroed: false)
        for i in 0..<n { input.pointer[i] = rng.normal() }
        var times: [Double] = []
        for i in 0...`repeat` {
            let t = Measure.now()
            let out = model.forward(images: input.pointer, batch: batch, height: resolution, width: resolution)
            let dt = Measure.now() - t
            precondition(out.features.pointer[0].isFinite)
            if i > 0 { times.append(dt) }  // the first pass warms caches and page-faults weights
        }
        // The sphere mapper on one image's features, and the paper's Table 5 measure: descriptors of one pair
        // (both images through the backbone and the mapper).
        let one = model.forward(images: input.pointer, batch: 1, height: resolution, width: resolution)
        var sphereTimes: [Double] = []
        for _ in 0...max(1, `repeat` / 2) {
            let t = Measure.now()
            _ = bundle.mapper.sphere(features: one.features.pointer, batch: 1, tokens: one.patches)
            sphereTimes.append(Measure.now() - t)
        }
        let sortedSphere = sphereTimes.dropFirst().sorted()  // the first call warms up
        let sphere = sortedSphere[sortedSphere.count / 2]
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let gflop = config.flops(height: resolution, width: resolution) * Double(batch) / 1e9
        let tokens = batch * ((resolution / 14) * (resolution / 14) + 1 + config.registers)
        let sgemm = Measure.sgemmGFLOPS(m: tokens, n: 4 * config.embedDim, k: config.embedDim)
        let result: [String: Any] = [
            "variant": variant.rawValue + (registers ? "-reg" : ""), "resolution": resolution, "batch": batch,
            "latency_s": ["min": times.first!, "median": median, "max": times.last!],
            "gflop": gflop, "gflops": gflop / median, "sgemm_gflops": sgemm,
            "blas_core": "kernels \(KernelFamily.summary), portable GEMM \(GEMM.backend.rawValue), openblas core \(BLASCore.name)",
            "precision": Precision.current.rawValue, "cpu": CPUTier.modelName, "cpu_tiers": CPUTier.available.map(\.rawValue),
            "onednn_isa": OneDNN.effectiveISA, "kernel_paths": EngineReport.kernels(width: config.embedDim),
            "threads": Parallel.workers, "peak_rss_bytes": Measure.peakResidentBytes(),
            "sphere_mapper_s": sphere,
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%@ %@ %d² batch %d: median %.3f s (min %.3f, max %.3f), %.1f GFLOP, %.1f GFLOP/s = %.0f%% of sgemm %.1f GFLOP/s, peak RSS %.0f MiB",
                         Precision.current.rawValue, variant.rawValue, resolution, batch, median, times.first!, times.last!, gflop, gflop / median,
                         100 * gflop / median / sgemm, sgemm, Double(Measure.peakResidentBytes()) / 1_048_576))
        }
    }
}
