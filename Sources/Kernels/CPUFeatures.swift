import CKernels
import Dispatch

/// Which kernel family runs: the hand-written AVX2/FMA kernels (CKernels) when the CPU has them, the
/// portable Swift + library-GEMM kernels otherwise (`--kernels`, `SPHERECORR_KERNELS` for the server).
package enum KernelFamily: String, Sendable, CaseIterable {
    case avx2
    case portable

    /// Whether this CPU can run the hand-written kernels (asking for `.avx2` elsewhere falls back to portable).
    package static let avx2Supported = ck_cpu_has_avx2_fma() != 0

    nonisolated(unsafe) private static var _current: KernelFamily = avx2Supported ? .avx2 : .portable
    private static let lock = DispatchQueue(label: "spherecorr.kernels.config")

    package static var current: KernelFamily {
        get { lock.sync { _current } }
        set { lock.sync { _current = newValue == .avx2 && !avx2Supported ? .portable : newValue } }
    }

    /// Whether a call asked to run this family takes the hand-written path (falls back on CPUs without AVX2+FMA).
    package var runsAVX2: Bool { self == .avx2 && Self.avx2Supported }

    /// What the engine runs, for logs, /v1/info and benchmarks: "avx2" or "portable (onednn)".
    package static var summary: String {
        current == .avx2 ? "avx2" : "portable (\(GEMM.backend.rawValue))"
    }

    /// Why this CPU cannot run the family asked for on the command line or in the environment; nil when it can.
    package var unavailableReason: String? {
        self == .avx2 && !Self.avx2Supported ? "avx2: this CPU has no AVX2+FMA" : nil
    }
}
