#if canImport(Glibc)
import Glibc
#endif

/// Timing and memory figures for benchmarks and progress lines (never for tests).
package enum Measure {
    /// Monotonic seconds.
    package static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Peak resident set size of this process in bytes (VmHWM).
    package static func peakResidentBytes() -> Int { ProcFS.statusBytes("VmHWM:") }
    /// Current resident set size in bytes (VmRSS).
    package static func residentBytes() -> Int { ProcFS.statusBytes("VmRSS:") }
}
