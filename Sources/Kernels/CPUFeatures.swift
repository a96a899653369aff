import CKernels
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Which kernels run (`--kernels`, `SPHERECORR_KERNELS` for the server).
/// - auto: the fastest measured on this machine. Linear layers (backbone, sphere mapper, matching similarities)
///   through oneDNN's matmul primitive, which picks its own ISA kernel at run time (AVX2, AVX-512, AVX512_BF16,
///   AMX; ONEDNN_MAX_CPU_ISA caps it), GELU and the other epilogues as its post-ops; attention through the
///   hand-written fused kernel, AVX-512 when the CPU has it, else AVX2/FMA, else the portable one.
/// - avx2: every kernel hand-written for AVX2/FMA (CKernels), linear layers included (weights packed per call), and
///   attention on the AVX2 kernel even on an AVX-512 CPU (the lower tier, forced).
/// - portable: Swift SIMD kernels and the library sgemm (`--gemm`) with the epilogues applied per tile.
package enum KernelFamily: String, Sendable, CaseIterable {
    case auto
    case avx2
    case portable

    /// Whether this CPU can run the hand-written kernels (asking for `.avx2` elsewhere falls back to portable).
    package static let avx2Supported = ck_cpu_has_avx2_fma() != 0

    nonisolated(unsafe) private static var _current: KernelFamily = .auto
    private static let lock = DispatchQueue(label: "spherecorr.kernels.config")

    package static var current: KernelFamily {
        get { lock.sync { _current } }
        set { lock.sync { _current = newValue == .avx2 && !avx2Supported ? .portable : newValue } }
    }

    /// Whether attention and GELU take a hand-written path (auto and avx2 on a CPU with AVX2+FMA; auto's attention
    /// goes wider where it can, `AttentionKernel.chosen`).
    package var runsAVX2: Bool { self != .portable && Self.avx2Supported }

    /// What the engine runs, for logs and benchmarks.
    package static var summary: String {
        switch current {
        case .auto: "auto (linear, GELU: oneDNN matmul on \(OneDNN.effectiveISA); attention: \(AttentionKernel.chosen(family: .auto, precision: Precision.current).rawValue))"
        case .avx2: "avx2"
        case .portable: "portable (\(GEMM.backend.rawValue))"
        }
    }

    /// Why this CPU cannot run the family asked for on the command line or in the environment; nil when it can.
    package var unavailableReason: String? {
        self == .avx2 && !Self.avx2Supported ? "avx2: this CPU has no AVX2+FMA" : nil
    }
}

/// The x86 ISA tiers the engine tells apart, what this CPU has, and what each kernel runs on it.
package enum CPUTier: String, Sendable, CaseIterable {
    case avx2, avx512, avx512_bf16, amx

    package var present: Bool {
        switch self {
        case .avx2: KernelFamily.avx2Supported
        case .avx512: ck_cpu_has_avx512() != 0
        case .avx512_bf16: ck_cpu_has_avx512_bf16() != 0
        case .amx: ck_cpu_has_amx_bf16() != 0
        }
    }

    /// The tiers this CPU has, lowest first.
    package static var available: [CPUTier] { allCases.filter(\.present) }

    /// The CPU's model name with its family and model numbers (/proc/cpuinfo; a VM may show only "AMD EPYC"),
    /// "unknown" where it is not readable.
    package static var modelName: String {
        guard let f = fopen("/proc/cpuinfo", "r") else { return "unknown" }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil, cap = 0
        defer { free(line) }
        var fields: [String: String] = [:]
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            if s == "\n" { break }  // the first processor's block is enough
            if let colon = s.firstIndex(of: ":") {
                fields[s[..<colon].trimmingCharacters(in: " \t")] = s[s.index(after: colon)...].trimmingCharacters(in: " \t\n")
            }
        }
        guard let name = fields["model name"] else { return "unknown" }
        guard let family = fields["cpu family"], let model = fields["model"] else { return name }
        return "\(name) (family \(family) model \(model))"
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}

/// What each kernel runs on this machine for a family and precision: /v1/info `engine`, logs and benchmarks.
package enum EngineReport {
    package static func kernels(family: KernelFamily = .current, precision: Precision = .current, width: Int = 768) -> [String: String] {
        let hand = family.runsAVX2 ? "hand-written avx2+fma" : "portable Swift SIMD"
        switch family {
        case .auto:
            let impl = Matmul.implementation(inFeatures: width, outFeatures: 4 * width, precision: precision)
            let attention = switch AttentionKernel.chosen(family: .auto, precision: precision) {
            case .avx512_bf16: "hand-written avx512_bf16 fused online-softmax (bf16 products, fp32 softmax and sums)"
            case .avx512: "hand-written avx512 fused online-softmax (fp32)"
            case .avx2: "hand-written avx2+fma fused online-softmax (fp32)"
            case .blocked: "two library GEMMs per query block (fp32)"
            }
            return ["linear": "oneDNN matmul \(impl) on \(OneDNN.effectiveISA) (\(precision.rawValue), bias/GELU/LayerScale/residual as post-ops)",
                    "attention": attention, "layer_norm": "portable Swift SIMD",
                    "gelu": "oneDNN eltwise gelu_erf post-op in the matmul", "similarity": "oneDNN matmul \(Matmul.implementation(inFeatures: width, outFeatures: 4 * width, packed: false)) (fp32)"]
        case .avx2, .portable:
            let gemm = family == .avx2 ? "hand-written avx2+fma packed GEMM with fused epilogue" : "library sgemm (\(GEMM.backend.rawValue)) + Swift epilogue"
            return ["linear": gemm, "attention": family == .avx2 ? "\(hand) fused online-softmax" : "two library GEMMs per query block",
                    "layer_norm": "portable Swift SIMD", "gelu": family == .avx2 ? hand : "portable Swift SIMD",
                    "similarity": "library sgemm (\(GEMM.backend.rawValue))"]
        }
    }
}
