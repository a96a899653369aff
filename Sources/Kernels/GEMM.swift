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

    /// The backend when none is chosen (flags and ServiceOptions quote it).
    package static let `default` = GEMMBackend.onednn
}

package enum GEMM {
    nonisolated(unsafe) private static var _backend: GEMMBackend = .default
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
