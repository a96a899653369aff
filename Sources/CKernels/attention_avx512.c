// Fused multi-head attention for AVX-512: attention.c's loop order and packed K/V layouts (ck_attention_pack) with
// 16-wide vectors. The 32 zmm registers hold a 12×32 tile (two 16-key or 16-column panels side by side, 24
// accumulators) where AVX2's 16 ymm held 6×16: half the loads and broadcasts per FMA. Softmax tails use masks.
// Compiled with target attributes only; Kernels/Attention.swift calls it when ck_cpu_has_avx512() says so.

#include "CKernels.h"
#if defined(__x86_64__) || defined(__i386__)
#include "simd_avx512.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MR 12
#define NR CK_ATTENTION_KEY_PANEL
#define QB 96   // queries per task (a multiple of MR); ck_attention_query_block() is shared with the AVX2 kernel
#define KB 256  // keys per block (a multiple of 2·NR)

static long round_up(long x, long m) { return (x + m - 1) / m * m; }

// c[12, 16·W] = (accumulate ? c : 0) + a[12, K] · [b0 | b1][K, 16·W], W = 1 or 2 panels.
// a: rows lda apart; b0, b1: 16-wide panels, rows ldb apart; c: rows ldc apart, 64-byte aligned.
#define UNROLL _Pragma("clang loop unroll(full)")
#define TILE(NAME, W)                                                                                                 \
CK_AVX512 __attribute__((noinline))                                                                                  \
static void NAME(const float *a, long lda, const float *b0, const float *b1, long ldb, long k,                       \
                 float *c, long ldc, int accumulate) {                                                               \
    __m512 acc[MR][W];                                                                                               \
    UNROLL for (int i = 0; i < MR; i++) UNROLL for (int w = 0; w < W; w++)                                           \
        acc[i][w] = accumulate ? _mm512_load_ps(c + i * ldc + 16 * w) : _mm512_setzero_ps();                         \
    for (long d = 0; d < k; d++) {                                                                                   \
        __m512 b[W];                                                                                                 \
        b[0] = _mm512_loadu_ps(b0 + d * ldb);                                                                        \
        if (W == 2) b[W - 1] = _mm512_loadu_ps(b1 + d * ldb);                                                        \
        UNROLL for (int i = 0; i < MR; i++) {                                                                        \
            const __m512 x = _mm512_set1_ps(a[i * lda + d]);                                                         \
            UNROLL for (int w = 0; w < W; w++) acc[i][w] = _mm512_fmadd_ps(x, b[w], acc[i][w]);                      \
        }                                                                                                            \
    }                                                                                                                \
    UNROLL for (int i = 0; i < MR; i++) UNROLL for (int w = 0; w < W; w++)                                           \
        _mm512_store_ps(c + i * ldc + 16 * w, acc[i][w]);                                                            \
}
TILE(tile1, 1)
TILE(tile2, 2)

// One score row of a key block: row[0, valid) ← exp(row − m'), row[valid, nk) ← 0; updates m and l and returns
// the factor e^(m − m') the output row must be rescaled by. nk is a multiple of 16.
CK_AVX512 __attribute__((noinline))
static float softmax_block_row(float *row, long valid, long nk, float *m, float *l) {
    __m512 mx16 = _mm512_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 16 <= valid; j += 16) mx16 = _mm512_max_ps(mx16, _mm512_load_ps(row + j));
    if (j < valid) mx16 = _mm512_mask_max_ps(mx16, (__mmask16)((1u << (valid - j)) - 1), mx16, _mm512_load_ps(row + j));
    const float mx = _mm512_reduce_max_ps(mx16);
    const float mnew = mx > *m ? mx : *m;
    const __m512 mv = _mm512_set1_ps(mnew);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    j = 0;
    for (; j + 32 <= valid; j += 32) {
        const __m512 e0 = exp512_unclamped_above(_mm512_sub_ps(_mm512_load_ps(row + j), mv));
        const __m512 e1 = exp512_unclamped_above(_mm512_sub_ps(_mm512_load_ps(row + j + 16), mv));
        _mm512_store_ps(row + j, e0); _mm512_store_ps(row + j + 16, e1);
        s0 = _mm512_add_ps(s0, e0); s1 = _mm512_add_ps(s1, e1);
    }
    // Past the last full pair: exp of the valid lanes, zero for the padded keys (they get no weight).
    for (; j < nk; j += 16) {
        const long lanes = valid - j;
        const __mmask16 keep = lanes >= 16 ? (__mmask16)0xFFFF : lanes > 0 ? (__mmask16)((1u << lanes) - 1) : 0;
        const __m512 e = _mm512_maskz_mov_ps(keep, exp512_unclamped_above(_mm512_sub_ps(_mm512_load_ps(row + j), mv)));
        _mm512_store_ps(row + j, e);
        s0 = _mm512_add_ps(s0, e);
    }
    const float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    const float alpha = *m == -INFINITY ? 0.0f : expf(*m - mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

CK_AVX512
void ck_attention_tasks_avx512(float *out, const float *qkv, const float *kp, const float *vp,
                               long batch, long tokens, long heads, long head_dim, float scale, long begin, long end) {
    const long c = heads * head_dim, dh = head_dim, tpad = round_up(tokens, NR);
    const long qblocks = (tokens + QB - 1) / QB;
    (void)batch;
    float *q = aligned_alloc(64, sizeof(float) * QB * (size_t)dh);
    float *o = aligned_alloc(64, sizeof(float) * QB * (size_t)dh);
    float *s = aligned_alloc(64, sizeof(float) * QB * KB);
    float m[QB], l[QB];
    for (long task = begin; task < end; task++) {
        const long qb = task % qblocks, bh = task / qblocks, b = bh / heads, h = bh % heads;
        const long q0 = qb * QB, nq = tokens - q0 < QB ? tokens - q0 : QB, nqp = round_up(nq, MR);
        const float *kpb = kp + bh * tpad * dh, *vpb = vp + bh * tpad * dh;
        // Q rows, pre-scaled as the reference does (q · scale, then q·kᵀ); padded rows are zero.
        const __m512 sc = _mm512_set1_ps(scale);
        for (long i = 0; i < nqp; i++) {
            float *dst = q + i * dh;
            if (i < nq) {
                const float *src = qkv + (b * tokens + q0 + i) * 3 * c + h * dh;
                for (long d = 0; d < dh; d += 16) _mm512_store_ps(dst + d, _mm512_mul_ps(_mm512_loadu_ps(src + d), sc));
            } else {
                memset(dst, 0, sizeof(float) * (size_t)dh);
            }
            m[i] = -INFINITY; l[i] = 0;
        }
        memset(o, 0, sizeof(float) * (size_t)(nqp * dh));
        for (long k0 = 0; k0 < tpad; k0 += KB) {
            const long nk = tpad - k0 < KB ? tpad - k0 : KB, valid = tokens - k0 < nk ? tokens - k0 : nk;
            // S = Q·Kᵀ, two 16-key panels (8 KB of Kᵀ, in L1) per pass over the query rows.
            long p = 0;
            for (; p + 2 * NR <= nk; p += 2 * NR) {
                const float *k = kpb + (k0 + p) * dh;
                for (long i = 0; i < nqp; i += MR) tile2(q + i * dh, dh, k, k + NR * dh, NR, dh, s + i * KB + p, KB, 0);
            }
            if (p < nk)
                for (long i = 0; i < nqp; i += MR) tile1(q + i * dh, dh, kpb + (k0 + p) * dh, NULL, NR, dh, s + i * KB + p, KB, 0);
            for (long i = 0; i < nqp; i++) {
                float *row = s + i * KB;
                if (i >= nq) { memset(row, 0, sizeof(float) * (size_t)nk); continue; }
                const float alpha = softmax_block_row(row, valid, nk, &m[i], &l[i]);
                if (alpha != 1.0f) {
                    const __m512 av = _mm512_set1_ps(alpha);
                    float *orow = o + i * dh;
                    for (long d = 0; d < dh; d += 16) _mm512_store_ps(orow + d, _mm512_mul_ps(_mm512_load_ps(orow + d), av));
                }
            }
            // O += P·V, two 16-column panels of V for this key block (16 KB) per pass over the rows.
            long d = 0;
            for (; d + 2 * NR <= dh; d += 2 * NR) {
                const float *v = vpb + d * tpad + k0 * NR;
                for (long i = 0; i < nqp; i += MR) tile2(s + i * KB, KB, v, v + NR * tpad, NR, nk, o + i * dh + d, dh, 1);
            }
            if (d < dh)
                for (long i = 0; i < nqp; i += MR) tile1(s + i * KB, KB, vpb + d * tpad + k0 * NR, NULL, NR, nk, o + i * dh + d, dh, 1);
        }
        for (long i = 0; i < nq; i++) {
            const __m512 inv = _mm512_set1_ps(1.0f / l[i]);
            float *dst = out + (b * tokens + q0 + i) * c + h * dh;
            const float *orow = o + i * dh;
            for (long d = 0; d < dh; d += 16) _mm512_storeu_ps(dst + d, _mm512_mul_ps(_mm512_load_ps(orow + d), inv));
        }
    }
    free(q); free(o); free(s);
}
#endif  // x86
