#if canImport(Glibc)
import Glibc
#endif
import Runtime

/// Start-up configuration of the engine's threads and BLAS kernels, called once by each executable's main.
package enum Threading {
    /// Pins the BLAS libraries to one thread each, sets our worker count (default: online cores),
    /// and chooses the GEMM backend. Returns log lines describing the choice.
    @discardableResult
    package static func configure(workers: Int? = nil, backend: GEMMBackend? = nil, kernels: KernelFamily? = nil,
                                  precision: Precision? = nil) -> [String] {
        GEMM.pinLibraryThreads()
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        Parallel.setWorkers(workers ?? max(1, cores))
        if let backend { GEMM.backend = backend }
        if let kernels { KernelFamily.current = kernels }
        if let precision { Precision.current = precision }
        var lines = ["threads: \(Parallel.workers) Dispatch workers own all threading; BLAS libraries pinned to 1 thread",
                     "kernels: \(KernelFamily.summary)" + (KernelFamily.avx2Supported ? "" : " (this CPU has no AVX2+FMA)"),
                     "precision: \(Precision.current.rawValue)", "cpu: \(CPUTier.modelName); tiers: \(CPUTier.available.map(\.rawValue).joined(separator: ", "))"]
        let core = BLASCore.name
        let userSet = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        lines.append("openblas core: \(core)" + (userSet.map { " (OPENBLAS_CORETYPE=\($0) set by the user)" } ?? ""))
        return lines
    }

    /// Why a kernel family and precision cannot run together (nil when they can): bf16 is oneDNN's matmul.
    package static func incompatibility(kernels: KernelFamily?, precision: Precision) -> String? {
        guard precision == .bf16, let k = kernels, k != .auto else { return nil }
        return "precision bf16 runs on the auto kernels (oneDNN matmul); --kernels \(k.rawValue) is fp32 only"
    }
}
