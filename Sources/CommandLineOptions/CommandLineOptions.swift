import ArgumentParser
import DINOv2
import Kernels
import Runtime

// The flags spherecorr-train's commands and spherecorr-server share, in swift-argument-parser's idiom: a choice is an
// enum (ArgumentParser checks it and --help lists its values), a default is quoted from the code that owns it.

extension DinoConfig.Variant: ExpressibleByArgument {}
extension GEMMBackend: ExpressibleByArgument {}
extension KernelFamily: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}

/// `--backbone`, `--variant` and `--patch-stride`: which backbone runs (DINOv2 or DINOv1, inferred from the files).
package struct BackboneOptions: ParsableArguments {
    @Option(help: """
        Backbone: a Hugging Face directory (config.json + model.safetensors), or a torch-hub-named .safetensors file or \
        official .pth checkpoint (DINOv2 or DINOv1 hub files, DINOv1 'teacher' checkpoints). \
        Required by spherecorr-train; spherecorr-server without it runs a built-in demo model (random weights).
        """)
    package var backbone: String?

    @Option(help: "Variant of a torch-hub file. Default: inferred from the weights' shapes.")
    package var variant: DinoConfig.Variant?

    @Option(help: """
        DINOv1 only: patch-embedding stride, a divisor of the patch size, for a denser grid (the reference's \
        ViTExtractor stride, e.g. 4 for dino-vits8). Default: the patch size.
        """)
    package var patchStride: Int?

    package init() {}

    /// The backbone path of the commands that cannot run without one.
    package func requiredPath() throws -> String {
        guard let backbone else { throw ValidationError("--backbone is required: a Hugging Face directory or a torch-hub .safetensors or .pth file") }
        return backbone
    }

    /// The backbone's configuration, read without its weights; a bad file is a failure naming it.
    package func peekConfig() throws -> DinoConfig {
        let path = try requiredPath()
        do { return try DinoVisionTransformer.peekConfig(path: path, variant: variant, stride: patchStride) } catch { throw CommandFailure("\(error)") }
    }

    /// Refuses an input side (`flag`'s value) that does not tile the backbone's own patch grid: 14 for DINOv2, the
    /// DINOv1 patch size and stride (METHOD §1.5). Checked before the weights are loaded.
    package func checkSide(_ side: Int, flag: String) throws {
        let config = try peekConfig()
        if let why = config.invalidSideReason(side) { throw CommandFailure("\(flag) \(why) (the patch grid of \(config.displayName))") }
    }

    /// Loads the backbone; a bad file is a failure naming it.
    package func load() throws -> DinoVisionTransformer {
        let path = try requiredPath()
        do { return try DinoVisionTransformer.load(path: path, variant: variant, stride: patchStride) } catch { throw CommandFailure("\(error)") }
    }
}

/// `--threads`, `--kernels`, `--gemm`: how the engine computes. nil everywhere means the engine's own default.
package struct EngineOptions: ParsableArguments {
    @Option(help: "Worker threads. Default: online cores.")
    package var threads: Int?

    @Option(help: """
        Kernels: auto (linear layers through oneDNN's matmul at the CPU's best ISA, hand-written AVX-512 attention \
        where the CPU has it, else AVX2), avx2 (all hand-written AVX2/FMA) or portable (library GEMM). Default: auto.
        """)
    package var kernels: KernelFamily?

    @Option(help: """
        Backbone arithmetic: fp32 (the reference) or bf16 (bf16 weights and activations, fp32 accumulation; needs \
        AVX512_BF16 or AMX and the auto kernels). Default: \(Precision.fp32.rawValue).
        """)
    package var precision: Precision?

    @Option(help: "GEMM library of the portable kernels. Default: \(GEMMBackend.default.rawValue).")
    package var gemm: GEMMBackend?

    package init() {}

    package func validate() throws {
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1; got \(t)") }
        if let why = kernels?.unavailableReason { throw ValidationError("--kernels \(why)") }
        if let why = precision?.unavailableReason { throw ValidationError("--precision \(why)") }
        if let p = precision, let why = Threading.incompatibility(kernels: kernels, precision: p) { throw ValidationError("--\(why)") }
    }

    /// Applies the options; the lines say what the engine runs (threads, kernels, BLAS core), also on stderr
    /// after `logPrefix` when one is given.
    @discardableResult
    package func configure(logPrefix: String? = nil) -> [String] {
        let lines = Threading.configure(workers: threads, backend: gemm, kernels: kernels, precision: precision)
        // One kernel family for the whole process: with `auto` the fp32 linear weights are never read after oneDNN's
        // reorders, so backbones loaded from here on release them (about the weights' size less resident memory).
        DinoVisionTransformer.keepsReferenceWeightsByDefault = KernelFamily.current != .auto
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
