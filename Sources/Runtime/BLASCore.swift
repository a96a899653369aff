import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS picks its kernels when the library loads. Debian's 0.3.21 does not know some recent CPUs
/// and falls back to Prescott kernels (4–6× slower). We detect that and choose a core for it.
package enum BLASCore {
    package static var name: String { String(cString: openblas_get_corename()) }

    /// CPU feature flags (/proc/cpuinfo).
    package static func cpuFlags() -> Set<String> { ProcFS.cpuFlags() }

    /// The core OpenBLAS should use on this CPU when its own detection fell back to a generic one,
    /// or nil when its choice is fine.
    package static func suggestedCore(detected: String, flags: Set<String>) -> String? {
        let generic: Set<String> = ["prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai",
                                    "coppermine", "northwood", "banias", "unknown", "sandybridge"]
        guard generic.contains(detected.lowercased()) else { return nil }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        if flags.contains("avx") && detected.lowercased() != "sandybridge" { return "SandyBridge" }
        return nil
    }

    /// If OpenBLAS fell back to a generic core on a CPU it does not know, and the user has not chosen one,
    /// re-executes this process with OPENBLAS_CORETYPE set (the variable is read when the library loads).
    /// Never overrides a value the user set. Returns only when no re-exec is needed or it failed.
    package static func reexecWithSuitableCoreIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("SPHERECORR_NO_REEXEC") == nil else { return }
        guard let core = suggestedCore(detected: name, flags: cpuFlags()) else { return }
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
