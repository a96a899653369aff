import COpenBLAS
import CDNNL
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

// Letters: M = rows of the output, N = columns of the output, K = reduction length.
// All matrices are row-major. Linear layers keep PyTorch's (out, in) weight layout.

/// Which library computes the single-threaded GEMMs our workers issue. Chosen by measurement
/// (README, `spherecorr-train bench`); OpenBLAS stays available as the product owner listed it.
package enum GEMMBackend: String, Sendable, CaseIterable {
    case openblas
    case onednn
}

package enum GEMM {
    nonisolated(unsafe) private static var _backend: GEMMBackend = .onednn
    private static let lock = DispatchQueue(label: "spherecorr.gemm.config")

    package static var backend: GEMMBackend {
        get { lock.sync { _backend } }
        set { lock.sync { _backend = newValue } }
    }

    /// Pins both BLAS libraries to one thread: our Dispatch workers are the threading owner.
    package static func pinLibraryThreads() {
        openblas_set_num_threads(1)
        omp_set_num_threads(1)
    }

    /// C[M,N] = alpha · A[M,K] · op(B) + beta · C, where op(B) = Bᵀ for B stored [N,K] (`bTransposed`)
    /// or B for B stored [K,N]. Single call into the backend, no threading of our own.
    package static func sgemm(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        alpha: Float = 1, beta: Float = 0,
        aTransposed: Bool = false,
        backend: GEMMBackend = GEMM.backend
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0)
        if m == 0 || n == 0 { return }
        switch backend {
        case .openblas:
            cblas_sgemm(CblasRowMajor, aTransposed ? CblasTrans : CblasNoTrans, bTransposed ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        case .onednn:
            // OpenMP's thread count is a per-thread setting: pin it on the calling worker, or oneDNN would start
            // a team of its own inside each of our workers (two threading owners at once).
            omp_set_num_threads(1)
            let t = CChar(UInt8(ascii: "T")), nn = CChar(UInt8(ascii: "N"))
            let status = dnnl_sgemm(aTransposed ? t : nn, bTransposed ? t : nn, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda),
                                    b, Int64(ldb), beta, c, Int64(ldc))
            precondition(status == dnnl_success, "dnnl_sgemm failed with status \(status.rawValue)")
        }
    }

    /// Same product, rows of A and C split over the workers.
    package static func sgemmParallel(
        m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        beta: Float = 0
    ) {
        let sa = Shared(a), sb = Shared(b), sc = Shared(c)
        let backend = GEMM.backend
        Parallel.forRanges(m, minChunk: 32) { r in
            sgemm(m: r.count, n: n, k: k, a: sa.base + r.lowerBound * lda, lda: lda, b: sb.base, ldb: ldb,
                  bTransposed: bTransposed, c: sc.base + r.lowerBound * ldc, ldc: ldc, beta: beta, backend: backend)
        }
    }
}

/// OpenBLAS picks its kernels when the library loads. Debian's 0.3.21 does not know some recent CPUs
/// and falls back to Prescott kernels (4–6× slower). We detect that and choose a core for it.
package enum BLASCore {
    package static var name: String { String(cString: openblas_get_corename()) }

    /// CPU feature flags from /proc/cpuinfo (Linux).
    package static func cpuFlags() -> Set<String> {
        guard let f = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            if s.hasPrefix("flags") {
                return Set(s.split(separator: ":").last.map { $0.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } } ?? [])
            }
        }
        return []
    }

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
}

private extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        String(self.drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

private extension Set where Element == Character {
    static var whitespacesAndNewlines: Set<Character> { [" ", "\t", "\n", "\r"] }
}
