#if canImport(Glibc)
import Glibc
#endif

/// Start-up configuration of the engine's threads and BLAS kernels, called once by each executable's main.
package enum Threading {
    /// Pins the BLAS libraries to one thread each, sets our worker count (default: online cores),
    /// and chooses the GEMM backend. Returns log lines describing the choice.
    @discardableResult
    package static func configure(workers: Int? = nil, backend: GEMMBackend? = nil, kernels: KernelFamily? = nil) -> [String] {
        GEMM.pinLibraryThreads()
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        Parallel.setWorkers(workers ?? max(1, cores))
        if let backend { GEMM.backend = backend }
        if let kernels { KernelFamily.current = kernels }
        var lines = ["threads: \(Parallel.workers) Dispatch workers own all threading; BLAS libraries pinned to 1 thread",
                     "kernels: \(KernelFamily.summary)" + (KernelFamily.avx2Supported ? "" : " (this CPU has no AVX2+FMA)")]
        let core = BLASCore.name
        let userSet = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        lines.append("openblas core: \(core)" + (userSet.map { " (OPENBLAS_CORETYPE=\($0) set by the user)" } ?? ""))
        return lines
    }

    /// If OpenBLAS fell back to a generic core on a CPU it does not know, and the user has not chosen one,
    /// re-executes this process with OPENBLAS_CORETYPE set (the variable is read when the library loads).
    /// Never overrides a value the user set. Returns only when no re-exec is needed or it failed.
    package static func reexecWithSuitableBLASCoreIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("SPHERECORR_NO_REEXEC") == nil else { return }
        guard let core = BLASCore.suggestedCore(detected: BLASCore.name, flags: BLASCore.cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("SPHERECORR_NO_REEXEC", "1", 1)  // one attempt only
        logToStderr("spherecorr: OpenBLAS selected the generic \(BLASCore.name) core on this CPU; restarting with OPENBLAS_CORETYPE=\(core)")
        var args = CommandLine.arguments.map { strdup($0) }
        args.append(nil)
        execv("/proc/self/exe", &args)
        // execv only returns on failure: carry on with the slow core.
        logToStderr("spherecorr: re-exec failed (\(String(cString: strerror(errno)))); continuing with \(BLASCore.name)")
    }
}

/// glibc malloc for a long-running server: arenas capped at 2 unless the user set MALLOC_ARENA_MAX.
/// glibc gives each allocating thread its own arena (up to 8 per core); in a server whose request threads come
/// and go, each keeps its own high-water mark of freed buffers. Measured: RSS grew from 937 MiB after 100 ViT-S
/// matches to 1,122 MiB after 1,000; with 2 arenas, 351 → 380 MiB (and with `BufferPool` keeping the forward
/// passes' large buffers out of malloc, see the README). Returns log lines for what was set.
package func configureServerMalloc(arenas: Int32 = 2) -> [String] {
    #if canImport(Glibc)
    if getenv("MALLOC_ARENA_MAX") != nil { return ["malloc arenas: MALLOC_ARENA_MAX set by the user"] }
    guard glibcMallopt(-8 /* M_ARENA_MAX, malloc.h */, arenas) == 1 else { return [] }
    return ["malloc arenas: at most \(arenas) (bounded memory across request threads)"]
    #else
    return []
    #endif
}

#if canImport(Glibc)
/// glibc's mallopt (malloc.h is not part of the Glibc module).
@_silgen_name("mallopt") private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif

/// Writes one line to standard error (fd 2) without touching the C `stderr` global.
package func logToStderr(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
