import ArgumentParser
import DINOv2
import Kernels
import Runtime

// The flags spherecorr-train's commands and spherecorr-server share, in swift-argument-parser's idiom: a choice is an
// enum (ArgumentParser checks it and --help lists its values), a default is quoted from the code that owns it.

extension DinoConfig.Variant: ExpressibleByArgument {}
extension GEMMBackend: ExpressibleByArgument {}
extension KernelFamily: ExpressibleByArgument {}

/// `--backbone` and `--variant`: which DINOv2 runs.
package struct BackboneOptions: ParsableArguments {
    @Option(help: """
        Backbone: a Hugging Face directory (config.json + model.safetensors) or a torch-hub-named .safetensors file. \
        Required by spherecorr-train; spherecorr-server without it runs a built-in demo model (random weights).
        """)
    package var backbone: String?

    @Option(help: "Variant of a torch-hub file. Default: inferred from the weights' shapes.")
    package var variant: DinoConfig.Variant?

    package init() {}

    /// The backbone path of the commands that cannot run without one.
    package func requiredPath() throws -> String {
        guard let backbone else { throw ValidationError("--backbone is required: a Hugging Face directory or a torch-hub .safetensors file") }
        return backbone
    }

    /// Loads the backbone; a bad file is a failure naming it.
    package func load() throws -> DinoVisionTransformer {
        let path = try requiredPath()
        do { return try DinoVisionTransformer.load(path: path, variant: variant) } catch { throw CommandFailure("\(error)") }
    }
}

/// `--threads`, `--kernels`, `--gemm`: how the engine computes. nil everywhere means the engine's own default.
package struct EngineOptions: ParsableArguments {
    @Option(help: "Worker threads. Default: online cores.")
    package var threads: Int?

    @Option(help: "Kernels: avx2 (hand-written AVX2/FMA) or portable (library GEMM). Default: avx2 when the CPU has AVX2+FMA.")
    package var kernels: KernelFamily?

    @Option(help: "GEMM library of the portable kernels. Default: \(GEMMBackend.default.rawValue).")
    package var gemm: GEMMBackend?

    package init() {}

    package func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1; got \(t)") }
        if let why = kernels?.unavailableReason { throw ValidationError("--kernels \(why)") }
    }

    /// Applies the options; the lines say what the engine runs (threads, kernels, BLAS core), also on stderr
    /// after `logPrefix` when one is given.
    @discardableResult
    package func configure(logPrefix: String? = nil) -> [String] {
        let lines = Threading.configure(workers: threads, backend: gemm, kernels: kernels)
        if let logPrefix { lines.forEach { logToStderr("\(logPrefix): \($0)") } }
        return lines
    }
}

/// A failure that names the file and what was wrong; exits non-zero with the message.
package struct CommandFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

extension ParsableCommand {
    /// Parse and run, after the OpenBLAS core check that may re-exec the process (BLASCore explains why).
    package static func mainCheckingBLASCore() {
        BLASCore.reexecWithSuitableCoreIfNeeded()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}
