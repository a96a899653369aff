// Fused multi-head attention with AVX512_BF16 dot products, for `--precision bf16`: attention_avx512.c's loop order
// with Q, K, P and V rounded to bf16 and both products on vdpbf16ps (a pair of bf16 products per fp32 lane per
// instruction: twice the multiplies of an fp32 FMA) accumulating in fp32. The softmax (max, exp, running sum) and the
// output stay fp32, as under PyTorch's bf16 autocast, where the two matmuls run in bf16 and the softmax in fp32.
// Packed layouts hold bf16 pairs along the reduced dimension, so one 32-bit broadcast feeds a whole 16-lane product:
//   kp[bh][p][d2][j][2] = K[16p + j, 2·d2 + {0, 1}]        (16 keys × a pair of head dims = 64 bytes)
//   vp[bh][q][s2][j][2] = V[2·s2 + {0, 1}, 16q + j]         (16 columns × a pair of keys = 64 bytes)

#include "CKernels.h"
#if defined(__x86_64__) || defined(__i386__)
#include "simd_avx512.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CK_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")))
#define MR 12
#define NR CK_ATTENTION_KEY_PANEL
#define QB 96   // queries per task, as the fp32 kernels (ck_attention_query_block)
#define KB 256  // keys per block (a multiple of 2·NR)
#define UNROLL _Pragma("clang loop unroll(full)")

static long round_up(long x, long m) { return (x + m - 1) / m * m; }

// Round to nearest even (finite inputs: attention operands), as ck_f32_to_bf16.
static inline uint16_t bf16(float f) {
    union { float f; uint32_t u; } v = { f };
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

void ck_attention_pack_bf16(unsigned short *kp, unsigned short *vp, const float *qkv,
                            long batch, long tokens, long heads, long head_dim, long begin, long end) {
    const long c = heads * head_dim, tpad = round_up(tokens, NR), dh = head_dim;
    (void)batch;
    for (long bh = begin; bh < end; bh++) {
        const long b = bh / heads, h = bh % heads;
        const float *k = qkv + b * tokens * 3 * c + c + h * dh, *v = k + c;
        uint16_t *kpb = kp + bh * tpad * dh, *vpb = vp + bh * tpad * dh;
        for (long p = 0; p < tpad / NR; p++) {
            uint16_t *panel = kpb + p * dh * NR;  // [Dh/2][NR][2]
            for (long j = 0; j < NR; j++) {
                const long s = p * NR + j;
                const float *row = k + s * 3 * c;
                for (long d = 0; d < dh; d++) panel[(d / 2) * 2 * NR + 2 * j + (d & 1)] = s < tokens ? bf16(row[d]) : 0;
            }
        }
        for (long q = 0; q < dh / NR; q++) {
            uint16_t *panel = vpb + q * tpad * NR;  // [Tpad/2][NR][2]
            for (long s = 0; s < tpad; s++)
                for (long j = 0; j < NR; j++)
                    panel[(s / 2) * 2 * NR + 2 * j + (s & 1)] = s < tokens ? bf16(v[s * 3 * c + q * NR + j]) : 0;
        }
    }
}

// c[12, 16·W] = (accumulate ? c : 0) + a[12, 2·K2] · [b0 | b1][2·K2, 16·W] in bf16 pairs with fp32 sums.
// a: bf16 rows lda elements apart; b0, b1: panels of K2 64-byte rows (16 lanes × a bf16 pair); c: fp32, 64-byte aligned.
#define TILE(NAME, W)                                                                                                 \
CK_AVX512BF16 __attribute__((noinline))                                                                              \
static void NAME(const uint16_t *a, long lda, const uint16_t *b0, const uint16_t *b1, long k2,                       \
                 float *c, long ldc, int accumulate) {                                                               \
    __m512 acc[MR][W];                                                                                               \
    UNROLL for (int i = 0; i < MR; i++) UNROLL for (int w = 0; w < W; w++)                                           \
        acc[i][w] = accumulate ? _mm512_load_ps(c + i * ldc + 16 * w) : _mm512_setzero_ps();                         \
    for (long d = 0; d < k2; d++) {                                                                                  \
        __m512bh b[W];                                                                                               \
        b[0] = (__m512bh)_mm512_loadu_si512(b0 + 32 * d);                                                            \
        if (W == 2) b[W - 1] = (__m512bh)_mm512_loadu_si512(b1 + 32 * d);                                            \
        UNROLL for (int i = 0; i < MR; i++) {                                                                        \
            int32_t pair; memcpy(&pair, a + i * lda + 2 * d, 4);                                                     \
            const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);                                                    \
            UNROLL for (int w = 0; w < W; w++) acc[i][w] = _mm512_dpbf16_ps(acc[i][w], x, b[w]);                     \
        }                                                                                                            \
    }                                                                                                                \
    UNROLL for (int i = 0; i < MR; i++) UNROLL for (int w = 0; w < W; w++)                                           \
        _mm512_store_ps(c + i * ldc + 16 * w, acc[i][w]);                                                            \
}
TILE(tile1, 1)
TILE(tile2, 2)

// One score row of a key block: p[0, valid) ← bf16(exp(row − m')), p[valid, nk) ← 0; updates m and l (summing the
// fp32 exponentials) and returns the factor e^(m − m') the output row must be rescaled by. nk is a multiple of 16.
CK_AVX512BF16 __attribute__((noinline))
static float softmax_block_row(const float *row, uint16_t *p, long valid, long nk, float *m, float *l) {
    __m512 mx16 = _mm512_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 16 <= valid; j += 16) mx16 = _mm512_max_ps(mx16, _mm512_load_ps(row + j));
    if (j < valid) mx16 = _mm512_mask_max_ps(mx16, (__mmask16)((1u << (valid - j)) - 1), mx16, _mm512_load_ps(row + j));
    const float mx = _mm512_reduce_max_ps(mx16);
    const float mnew = mx > *m ? mx : *m;
    const __m512 mv = _mm512_set1_ps(mnew);
    __m512 s0 = _mm512_setzero_ps();
    for (j = 0; j < nk; j += 16) {
        const long lanes = valid - j;
        const __mmask16 keep = lanes >= 16 ? (__mmask16)0xFFFF : lanes > 0 ? (__mmask16)((1u << lanes) - 1) : 0;
        const __m512 e = _mm512_maskz_mov_ps(keep, exp512_unclamped_above(_mm512_sub_ps(_mm512_load_ps(row + j), mv)));
        _mm256_storeu_si256((__m256i *)(p + j), (__m256i)_mm512_cvtneps_pbh(e));
        s0 = _mm512_add_ps(s0, e);
    }
    const float sum = _mm512_reduce_add_ps(s0);
    const float alpha = *m == -INFINITY ? 0.0f : expf(*m - mnew);
    *l = *l * alpha + sum;
    *m = mnew;
    return alpha;
}

CK_AVX512BF16
void ck_attention_tasks_avx512_bf16(float *out, const float *qkv, const unsigned short *kp, const unsigned short *vp,
                                    long batch, long tokens, long heads, long head_dim, float scale, long begin, long end) {
    const long c = heads * head_dim, dh = head_dim, tpad = round_up(tokens, NR);
    const long qblocks = (tokens + QB - 1) / QB;
    (void)batch;
    uint16_t *q = aligned_alloc(64, sizeof(uint16_t) * QB * (size_t)dh);
    uint16_t *pb = aligned_alloc(64, sizeof(uint16_t) * QB * KB);
    float *o = aligned_alloc(64, sizeof(float) * QB * (size_t)dh);
    float *s = aligned_alloc(64, sizeof(float) * QB * KB);
    float m[QB], l[QB];
    for (long task = begin; task < end; task++) {
        const long qb = task % qblocks, bh = task / qblocks, b = bh / heads, h = bh % heads;
        const long q0 = qb * QB, nq = tokens - q0 < QB ? tokens - q0 : QB, nqp = round_up(nq, MR);
        const uint16_t *kpb = kp + bh * tpad * dh, *vpb = vp + bh * tpad * dh;
        // Q rows, pre-scaled as the reference does (q · scale, then q·kᵀ), in bf16; padded rows are zero.
        const __m512 sc = _mm512_set1_ps(scale);
        for (long i = 0; i < nqp; i++) {
            uint16_t *dst = q + i * dh;
            if (i < nq) {
                const float *src = qkv + (b * tokens + q0 + i) * 3 * c + h * dh;
                for (long d = 0; d < dh; d += 16)
                    _mm256_storeu_si256((__m256i *)(dst + d), (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(src + d), sc)));
            } else {
                memset(dst, 0, sizeof(uint16_t) * (size_t)dh);
            }
            m[i] = -INFINITY; l[i] = 0;
        }
        memset(o, 0, sizeof(float) * (size_t)(nqp * dh));
        for (long k0 = 0; k0 < tpad; k0 += KB) {
            const long nk = tpad - k0 < KB ? tpad - k0 : KB, valid = tokens - k0 < nk ? tokens - k0 : nk;
            // S = Q·Kᵀ over Dh/2 pairs, two 16-key panels per pass over the query rows.
            long p = 0;
            for (; p + 2 * NR <= nk; p += 2 * NR) {
                const uint16_t *k = kpb + (k0 + p) * dh;
                for (long i = 0; i < nqp; i += MR) tile2(q + i * dh, dh, k, k + NR * dh, dh / 2, s + i * KB + p, KB, 0);
            }
            if (p < nk)
                for (long i = 0; i < nqp; i += MR) tile1(q + i * dh, dh, kpb + (k0 + p) * dh, NULL, dh / 2, s + i * KB + p, KB, 0);
            for (long i = 0; i < nqp; i++) {
                if (i >= nq) { memset(pb + i * KB, 0, sizeof(uint16_t) * (size_t)nk); continue; }
                const float alpha = softmax_block_row(s + i * KB, pb + i * KB, valid, nk, &m[i], &l[i]);
                if (alpha != 1.0f) {
                    const __m512 av = _mm512_set1_ps(alpha);
                    float *orow = o + i * dh;
                    for (long d = 0; d < dh; d += 16) _mm512_store_ps(orow + d, _mm512_mul_ps(_mm512_load_ps(orow + d), av));
                }
            }
            // O += P·V over nk/2 key pairs, two 16-column panels of V per pass over the rows.
            long d = 0;
            for (; d + 2 * NR <= dh; d += 2 * NR) {
                const uint16_t *v = vpb + d * tpad + k0 * NR;
                for (long i = 0; i < nqp; i += MR) tile2(pb + i * KB, KB, v, v + NR * tpad, nk / 2, o + i * dh + d, dh, 1);
            }
            if (d < dh)
                for (long i = 0; i < nqp; i += MR) tile1(pb + i * KB, KB, vpb + d * tpad + k0 * NR, NULL, nk / 2, o + i * dh + d, dh, 1);
        }
        for (long i = 0; i < nq; i++) {
            const __m512 inv = _mm512_set1_ps(1.0f / l[i]);
            float *dst = out + (b * tokens + q0 + i) * c + h * dh;
            const float *orow = o + i * dh;
            for (long d = 0; d < dh; d += 16) _mm512_storeu_ps(dst + d, _mm512_mul_ps(_mm512_load_ps(orow + d), inv));
        }
    }
    free(q); free(pb); free(o); free(s);
}
#endif  // x86
