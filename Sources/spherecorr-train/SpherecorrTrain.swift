import ArgumentParser
import Kernels
import Runtime

@main
struct SpherecorrTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spherecorr-train",
        abstract: "Offline SphereCorr tools: DINOv2 features, sphere maps, PCK/KAP evaluation, benchmarks.",
        subcommands: [Features.self, Sphere.self, Evaluate.self, MergeReports.self, Bench.self, Fit.self, BenchTrain.self])

    static func main() {
        BLASCore.reexecWithSuitableCoreIfNeeded()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// Engine options shared by the subcommands that run the backbone.
struct EngineOptions: ParsableArguments {
    @Option(help: "Worker threads (default: online cores).")
    var threads: Int?

    @Option(help: "Kernels: auto (default: oneDNN matmul for linear layers, hand-written AVX2 attention), avx2 (all hand-written) or portable (library GEMM).")
    var kernels: String?

    @Option(help: "Backbone arithmetic: fp32 (default, the reference) or bf16 (bf16 weights and activations, fp32 accumulation; needs AVX512_BF16 or AMX).")
    var precision: String = "fp32"

    @Option(help: "GEMM library of the portable kernels: onednn or openblas.")
    var gemm: String = "onednn"

    func configure(verbose: Bool) throws {
        guard let backend = GEMMBackend(rawValue: gemm) else {
            throw ValidationError("--gemm must be one of \(GEMMBackend.allCases.map(\.rawValue).joined(separator: ", ")); got '\(gemm)'")
        }
        let family = try kernels.map { k in
            try KernelFamily.named(k).mapError { ValidationError("--kernels \($0.message)") }.get()
        }
        let p = try Precision.named(precision).mapError { ValidationError("--precision \($0.message)") }.get()
        if let why = Threading.incompatibility(kernels: family, precision: p) { throw ValidationError(why) }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1; got \(t)") }
        let lines = Threading.configure(workers: threads, backend: backend, kernels: family, precision: p)
        if verbose { lines.forEach { logToStderr("spherecorr-train: \($0)") } }
    }
}

/// A failure that names the file and what was wrong; exits non-zero.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
