#if canImport(Glibc)
import Glibc
#endif

/// Block sizes of the blocked kernels, chosen by `spherecorr-train bench` on the development machine.
/// SPHERECORR_LINEAR_TILE and SPHERECORR_ATTENTION_QUERY_BLOCK override them for experiments, and
/// SPHERECORR_ATTENTION_KERNEL=avx512|avx2|blocked caps `--kernels auto`'s attention (A/B runs of `make bench`).
package enum Tuning {
    /// Rows per GEMM call in `linearForward`: large enough that packing the weight matrix is amortised.
    package static let linearTile = envInt("SPHERECORR_LINEAR_TILE") ?? 512
    /// Queries per block in `attentionForward`: the block's score rows stay cache-resident between the
    /// two GEMMs and the exponentials.
    package static let attentionQueryBlock = envInt("SPHERECORR_ATTENTION_QUERY_BLOCK") ?? 64

    /// The attention kernel auto may use at most; nil (unset or unknown): the widest the CPU has.
    package static let attentionKernel: AttentionKernel? = getenv("SPHERECORR_ATTENTION_KERNEL").flatMap { AttentionKernel(rawValue: String(cString: $0)) }

    private static func envInt(_ name: String) -> Int? {
        guard let v = getenv(name), let n = Int(String(cString: v)), n > 0 else { return nil }
        return n
    }
}
