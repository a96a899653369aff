import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Which kernel family runs: the hand-written AVX2/FMA kernels (CKernels) when the CPU has them, the
/// portable Swift + library-GEMM kernels otherwise. SPHERECORR_PORTABLE_KERNELS=1 forces the portable ones
/// (tests run both; a user can rule the hand-written ones out).
package enum KernelFamily: String, Sendable, CaseIterable {
    case avx2
    case portable

    /// Whether this CPU can run the hand-written kernels (asking for `.avx2` elsewhere falls back to portable).
    package static let avx2Supported = ck_cpu_has_avx2_fma() != 0

    nonisolated(unsafe) private static var _current: KernelFamily = detect()
    private static let lock = NSLockish()

    package static var current: KernelFamily {
        get { lock.withLock { _current } }
        set { lock.withLock { _current = newValue == .avx2 && !avx2Supported ? .portable : newValue } }
    }

    /// What the engine runs, for logs, /v1/info and benchmarks: "avx2" or "portable (onednn)".
    package static var summary: String {
        current == .avx2 ? "avx2" : "portable (\(GEMM.backend.rawValue))"
    }

    private static func detect() -> KernelFamily {
        if let v = getenv("SPHERECORR_PORTABLE_KERNELS"), String(cString: v) == "1" { return .portable }
        return avx2Supported ? .avx2 : .portable
    }
}

/// A pthread mutex (Kernels does not import Foundation).
final class NSLockish: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func withLock<T>(_ body: () -> T) -> T { pthread_mutex_lock(&m); defer { pthread_mutex_unlock(&m) }; return body() }
}
