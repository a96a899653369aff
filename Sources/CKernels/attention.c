// Fused multi-head attention for AVX2+FMA (flash-attention's loop order on a CPU core).
// Letters: B = batch, T = tokens, H = heads, Dh = head dim, C = H·Dh, MR×NR = 6×16 register tile.
//
// Why not two library GEMMs per query block: a GEMM call packs its whole B operand (K or V of the head,
// 0.9 MB at 840²) on every call and the T-long score rows spill out of L2. Here K and V are packed once
// per layer, and each task walks key blocks of KB keys with a QB×KB score block that stays in L2, keeping
// a running max m, running sum l and unnormalised output O (online softmax):
//   S = Q·K_blkᵀ·scale;  m' = max(m, rowmax S);  P = exp(S − m');  l = l·e^(m−m') + ΣP;  O = O·e^(m−m') + P·V_blk
// and writes O / l at the end.

#include "CKernels.h"
#if defined(__x86_64__) || defined(__i386__)
#include "simd_avx2.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR CK_ATTENTION_KEY_PANEL
#define QB 96   // queries per task (multiple of MR)
#define KB 256  // keys per block (multiple of NR)

int ck_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

long ck_attention_query_block(void) { return QB; }

static long round_up(long x, long m) { return (x + m - 1) / m * m; }

size_t ck_attention_packed_count(long batch, long tokens, long heads, long head_dim) {
    return (size_t)batch * (size_t)heads * (size_t)round_up(tokens, NR) * (size_t)head_dim;
}

void ck_attention_pack(float *kp, float *vp, const float *qkv,
                       long batch, long tokens, long heads, long head_dim, long begin, long end) {
    const long c = heads * head_dim, tpad = round_up(tokens, NR), dh = head_dim;
    (void)batch;
    for (long bh = begin; bh < end; bh++) {
        const long b = bh / heads, h = bh % heads;
        const float *k = qkv + b * tokens * 3 * c + c + h * dh;
        const float *v = k + c;
        float *kpb = kp + bh * tpad * dh, *vpb = vp + bh * tpad * dh;
        for (long p = 0; p < tpad / NR; p++) {
            float *panel = kpb + p * dh * NR;  // [Dh][NR]
            for (long j = 0; j < NR; j++) {
                const long s = p * NR + j;
                if (s < tokens) {
                    const float *row = k + s * 3 * c;
                    for (long d = 0; d < dh; d++) panel[d * NR + j] = row[d];
                } else {
                    for (long d = 0; d < dh; d++) panel[d * NR + j] = 0;
                }
            }
        }
        for (long dp = 0; dp < dh / NR; dp++) {
            float *panel = vpb + dp * tpad * NR;  // [Tpad][NR]
            for (long s = 0; s < tpad; s++) {
                if (s < tokens) memcpy(panel + s * NR, v + s * 3 * c + dp * NR, NR * sizeof(float));
                else memset(panel + s * NR, 0, NR * sizeof(float));
            }
        }
    }
}

// c[6, 16] = (accumulate ? c : 0) + a[6, K] · b[K, 16].   a: rows lda apart; b: rows ldb apart; c: rows ldc apart.
// Q·Kᵀ: a = Q rows, b = a 16-key panel of Kᵀ. P·V: a = P rows, b = a 16-column panel of V, accumulating into O.
__attribute__((target("avx2,fma")))
static void tile(const float *a, long lda, const float *b, long ldb, long k, float *c, long ldc, int accumulate) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    if (accumulate) {
        c00 = _mm256_load_ps(c); c01 = _mm256_load_ps(c + 8);
        c10 = _mm256_load_ps(c + ldc); c11 = _mm256_load_ps(c + ldc + 8);
        c20 = _mm256_load_ps(c + 2 * ldc); c21 = _mm256_load_ps(c + 2 * ldc + 8);
        c30 = _mm256_load_ps(c + 3 * ldc); c31 = _mm256_load_ps(c + 3 * ldc + 8);
        c40 = _mm256_load_ps(c + 4 * ldc); c41 = _mm256_load_ps(c + 4 * ldc + 8);
        c50 = _mm256_load_ps(c + 5 * ldc); c51 = _mm256_load_ps(c + 5 * ldc + 8);
    }
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
#pragma clang loop unroll_count(4)
    for (long d = 0; d < k; d++) {
        const __m256 b0 = _mm256_loadu_ps(b + d * ldb), b1 = _mm256_loadu_ps(b + d * ldb + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a0 + d); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + d); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + d); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + d); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + d); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + d); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    _mm256_store_ps(c, c00); _mm256_store_ps(c + 8, c01); c += ldc;
    _mm256_store_ps(c, c10); _mm256_store_ps(c + 8, c11); c += ldc;
    _mm256_store_ps(c, c20); _mm256_store_ps(c + 8, c21); c += ldc;
    _mm256_store_ps(c, c30); _mm256_store_ps(c + 8, c31); c += ldc;
    _mm256_store_ps(c, c40); _mm256_store_ps(c + 8, c41); c += ldc;
    _mm256_store_ps(c, c50); _mm256_store_ps(c + 8, c51);
}

// One score row of a key block: row[0, valid) ← exp(row − m'), row[valid, nk) ← 0; updates m and l and
// returns the factor e^(m − m') the output row must be rescaled by.
// Not inlined: inside the task loop the exp's constants would be spilled to the stack.
__attribute__((target("avx2,fma"), noinline))
static float softmax_block_row(float *row, long valid, long nk, float *m, float *l) {
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 8 <= valid; j += 8) mx8 = _mm256_max_ps(mx8, _mm256_load_ps(row + j));
    float mx = hmax256(mx8);
    for (; j < valid; j++) mx = row[j] > mx ? row[j] : mx;
    const float mnew = mx > *m ? mx : *m;
    const __m256 mv = _mm256_set1_ps(mnew);
    __m256 s0 = _mm256_setzero_ps();
    j = 0;
    // One exp per iteration: two would not fit the 16 ymm registers with the polynomial's constants.
    for (; j + 8 <= valid; j += 8) {
        const __m256 e = exp256_unclamped_above(_mm256_sub_ps(_mm256_load_ps(row + j), mv));
        _mm256_store_ps(row + j, e);
        s0 = _mm256_add_ps(s0, e);
    }
    // Past the last full 8: exp of the valid lanes, zero for the padded keys (they get no weight).
    for (; j < nk; j += 8) {
        const long lanes = valid - j;
        __m256 e = _mm256_setzero_ps();
        if (lanes > 0) {
            const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(lanes > 8 ? 8 : lanes)), idx));
            e = _mm256_and_ps(exp256_unclamped_above(_mm256_sub_ps(_mm256_load_ps(row + j), mv)), keep);
        }
        _mm256_store_ps(row + j, e);
        s0 = _mm256_add_ps(s0, e);
    }
    const float sum = hsum256(s0);
    const float alpha = *m == -INFINITY ? 0.0f : expf(*m - mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

__attribute__((target("avx2,fma")))
void ck_attention_tasks(float *out, const float *qkv, const float *kp, const float *vp,
                        long batch, long tokens, long heads, long head_dim, float scale, long begin, long end) {
    const long c = heads * head_dim, dh = head_dim, tpad = round_up(tokens, NR);
    const long qblocks = (tokens + QB - 1) / QB;
    (void)batch;
    // Per-task working set (≈ 150 KB at Dh = 64): stays in L2 across the key blocks.
    float *q = aligned_alloc(64, sizeof(float) * QB * (size_t)dh);
    float *o = aligned_alloc(64, sizeof(float) * QB * (size_t)dh);
    float *s = aligned_alloc(64, sizeof(float) * QB * KB);
    float m[QB], l[QB];
    for (long task = begin; task < end; task++) {
        const long qb = task % qblocks, bh = task / qblocks, b = bh / heads, h = bh % heads;
        const long q0 = qb * QB, nq = tokens - q0 < QB ? tokens - q0 : QB, nqp = round_up(nq, MR);
        const float *kpb = kp + bh * tpad * dh, *vpb = vp + bh * tpad * dh;
        // Q rows, pre-scaled as the reference does (q · scale, then q·kᵀ); padded rows are zero.
        const __m256 sc = _mm256_set1_ps(scale);
        for (long i = 0; i < nqp; i++) {
            float *dst = q + i * dh;
            if (i < nq) {
                const float *src = qkv + (b * tokens + q0 + i) * 3 * c + h * dh;
                for (long d = 0; d < dh; d += 8) _mm256_store_ps(dst + d, _mm256_mul_ps(_mm256_loadu_ps(src + d), sc));
            } else {
                memset(dst, 0, sizeof(float) * (size_t)dh);
            }
            m[i] = -INFINITY; l[i] = 0;
        }
        memset(o, 0, sizeof(float) * (size_t)(nqp * dh));
        for (long k0 = 0; k0 < tpad; k0 += KB) {
            const long nk = tpad - k0 < KB ? tpad - k0 : KB, valid = tokens - k0 < nk ? tokens - k0 : nk;
            // Panel-outer: one 4 KB panel of Kᵀ stays in L1 while the query rows pass over it.
            for (long p = 0; p < nk; p += NR)
                for (long i = 0; i < nqp; i += MR)
                    tile(q + i * dh, dh, kpb + (k0 + p) * dh, NR, dh, s + i * KB + p, KB, 0);
            for (long i = 0; i < nqp; i++) {
                float *row = s + i * KB;
                if (i >= nq) { memset(row, 0, sizeof(float) * (size_t)nk); continue; }
                const float alpha = softmax_block_row(row, valid, nk, &m[i], &l[i]);
                if (alpha != 1.0f) {
                    const __m256 av = _mm256_set1_ps(alpha);
                    float *orow = o + i * dh;
                    for (long d = 0; d < dh; d += 8) _mm256_store_ps(orow + d, _mm256_mul_ps(_mm256_load_ps(orow + d), av));
                }
            }
            // Panel-outer: 16 columns of V for this key block (8 KB, contiguous) stay in L1.
            for (long d = 0; d < dh; d += NR)
                for (long i = 0; i < nqp; i += MR)
                    tile(s + i * KB, KB, vpb + d * tpad + k0 * NR, NR, nk, o + i * dh + d, dh, 1);
        }
        for (long i = 0; i < nq; i++) {
            const __m256 inv = _mm256_set1_ps(1.0f / l[i]);
            float *dst = out + (b * tokens + q0 + i) * c + h * dh;
            const float *orow = o + i * dh;
            for (long d = 0; d < dh; d += 8) _mm256_storeu_ps(dst + d, _mm256_mul_ps(_mm256_load_ps(orow + d), inv));
        }
    }
    free(q); free(o); free(s);
}
#endif  // x86
