#ifndef SPHERECORR_CKERNELS_H
#define SPHERECORR_CKERNELS_H

// Hand-written AVX2/FMA kernels (and AVX-512 twins where they measurably win) for the shapes where a library GEMM
// call is the wrong tool. Every function is compiled for its ISA with a target attribute; call them only when
// ck_cpu_has_avx2_fma() (ck_cpu_has_avx512() for the _avx512 ones) is true (the Swift side keeps a portable path
// for other CPUs).
// Letters: B = batch, T = tokens, H = heads, Dh = head dim, C = H·Dh.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU (and OS) support AVX2 and FMA.
int ck_cpu_has_avx2_fma(void);
/// 1 when the CPU has AVX-512 F/DQ/BW/VL and the OS saves the ZMM state.
int ck_cpu_has_avx512(void);
/// 1 when the CPU has AVX512_BF16 (dot products of bf16 pairs into fp32).
int ck_cpu_has_avx512_bf16(void);
/// 1 when the CPU has AMX tiles with bf16 (AMX-TILE and AMX-BF16).
int ck_cpu_has_amx_bf16(void);

/// dst[i] = bf16(src[i]), round to nearest even.   dst, src: [n]
void ck_f32_to_bf16(unsigned short *dst, const float *src, long n);
/// dst[i] = float(src[i]) (exact).   dst, src: [n]
void ck_bf16_to_f32(float *dst, const unsigned short *src, long n);

/// Keys per block of the fused attention and the padding unit of the packed layouts.
#define CK_ATTENTION_KEY_PANEL 16

/// Floats needed by each of the two packed buffers of ck_attention_pack: B·H·Tpad·Dh, Tpad = T rounded up to 16.
size_t ck_attention_packed_count(long batch, long tokens, long heads, long head_dim);

/// Packs K and V of the (b, h) pairs in [begin, end) (index b·H + h) from qkv [B, T, 3C] (q | k | v):
///   kp[bh][p][d][j] = K[b, 16p + j, h, d]   (Kᵀ in panels of 16 keys; zero past T)
///   vp[bh][q][s][j] = V[b, s, h, 16q + j]    (V in panels of 16 columns; zero rows past T)
void ck_attention_pack(float *kp, float *vp, const float *qkv,
                       long batch, long tokens, long heads, long head_dim, long begin, long end);

/// Queries per task of ck_attention_tasks.
long ck_attention_query_block(void);

/// Fused attention (online softmax, the score matrix never leaves cache) for tasks [begin, end),
/// task = (b·H + h)·Qblocks + qblock, Qblocks = ceil(T / query_block):
///   out[b, t, h·Dh + d] = Σ_s softmax_s(scale · q_t · k_s) · v_s[d].
/// out: [B, T, C]; qkv: [B, T, 3C]; kp, vp from ck_attention_pack. head_dim must be a multiple of 16.
void ck_attention_tasks(float *out, const float *qkv, const float *kp, const float *vp,
                        long batch, long tokens, long heads, long head_dim, float scale, long begin, long end);

/// ck_attention_tasks with AVX-512 (16-wide, 12×32 register tiles), same contract and packed inputs; call it only
/// when ck_cpu_has_avx512() is true.
void ck_attention_tasks_avx512(float *out, const float *qkv, const float *kp, const float *vp,
                               long batch, long tokens, long heads, long head_dim, float scale, long begin, long end);

/// Packs K and V of (b, h) pairs [begin, end) as ck_attention_pack, in bf16 pairs along the reduced dimension
/// (B·H·Tpad·Dh elements each, from ck_attention_packed_count):
///   kp[bh][p][d2][j][e] = bf16(K[b, 16p + j, h, 2·d2 + e]),   vp[bh][q][s2][j][e] = bf16(V[b, 2·s2 + e, h, 16q + j]).
void ck_attention_pack_bf16(unsigned short *kp, unsigned short *vp, const float *qkv,
                            long batch, long tokens, long heads, long head_dim, long begin, long end);

/// ck_attention_tasks with both products in bf16 (vdpbf16ps, fp32 sums; softmax and output fp32) on kp, vp from
/// ck_attention_pack_bf16; call it only when ck_cpu_has_avx512_bf16() is true.
void ck_attention_tasks_avx512_bf16(float *out, const float *qkv, const unsigned short *kp, const unsigned short *vp,
                                    long batch, long tokens, long heads, long head_dim, float scale, long begin, long end);

/// Epilogues of ck_linear, applied to each output tile in registers.
enum {
    CK_LINEAR_BIAS = 0,            ///< out = x·Wᵀ + b
    CK_LINEAR_BIAS_GELU = 1,       ///< out = gelu(x·Wᵀ + b)
    CK_LINEAR_BIAS_SCALE_ADD = 2,  ///< out += gamma ⊙ (x·Wᵀ + b)   (LayerScale and residual)
    CK_LINEAR_BIAS_ADD = 3,        ///< out += x·Wᵀ + b
};

/// Floats of a packed weight slice of `columns` output features (rounded up to 16) × in_features.
size_t ck_linear_packed_count(long in_features, long columns);

/// Packs output features [col0, col0 + columns) of W [N, K] (PyTorch's (out, in) layout) into 16-feature
/// panels wp[p][k][j] = W[col0 + 16p + j, k] (zero past `columns`). wp: 32-byte aligned.
void ck_linear_pack_weight(float *wp, const float *w, long in_features, long col0, long columns);

/// out[r, j] = epilogue(Σ_k x[r, k] · W[col0 + j, k] + bias[j]) for r < rows, j < columns, with wp packed
/// from those columns. out: rows ldo apart, already offset to column col0 (and holding the residual for the
/// add epilogues); x: [rows, K]; bias, gamma: offset to col0 (bias may be NULL).
void ck_linear(float *out, long ldo, const float *x, const float *wp, const float *bias, const float *gamma,
               long rows, long in_features, long columns, int epilogue);

/// x ← 0.5·x·(1 + erf(x/√2)) (erf: Abramowitz–Stegun 7.1.26, as PyTorch's vectorised CPU GELU).   x: [n]
void ck_gelu_inplace(float *x, long n);

#ifdef __cplusplus
}
#endif

#endif
