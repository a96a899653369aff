// Linear layers for AVX2+FMA: out[R, cols] = epilogue(x[R, K] · W[cols, K]ᵀ), BLIS's loop order with a 6×16
// register tile and the epilogue (bias, GELU, LayerScale, residual) applied to the tile in registers.
// Letters: R = rows, K = input features, N = output features (row stride of out), MR×NR = 6×16.
//
// Why our own: a library GEMM call repacks the whole weight matrix on every call and its epilogues cost
// separate passes over memory. Here each worker packs its own columns of W once per call into 16-column
// panels, and the tile is finished (bias/GELU/residual) while it is still in registers.

#include "CKernels.h"
#if defined(__x86_64__) || defined(__i386__)
#include "simd_avx2.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256  // K block: a 16 KB micro-panel of W stays in L1
#define MC 96   // rows per block: the packed 96×256 block of x (96 KB) stays in L2

// What the tile does after the product (bit flags, in this order): v = acc; +bias; ·gamma; +old; gelu.
enum { F_BIAS = 1, F_GAMMA = 2, F_LOAD = 4, F_GELU = 8 };

static long round_up(long x, long m) { return (x + m - 1) / m * m; }

size_t ck_linear_packed_count(long in_features, long columns) { return (size_t)in_features * (size_t)round_up(columns, NR); }

void ck_linear_pack_weight(float *wp, const float *w, long in_features, long col0, long columns) {
    const long k = in_features;
    for (long p = 0; p < round_up(columns, NR) / NR; p++) {
        float *panel = wp + p * k * NR;  // [K][16]
        for (long j = 0; j < NR; j++) {
            const long col = p * NR + j;
            if (col < columns) {
                const float *row = w + (col0 + col) * k;
                for (long d = 0; d < k; d++) panel[d * NR + j] = row[d];
            } else {
                for (long d = 0; d < k; d++) panel[d * NR + j] = 0;
            }
        }
    }
}

// dst[kc][6] ← the 6 rows (NULL: a zero row), transposed 8 columns at a time in registers. Each 8-float store
// of a 6-float column spills 2 floats into the next column, which the next store overwrites: dst needs 2 floats
// of slack past its end (the last micro-panel's spill lands in `ap`'s padding, earlier ones in the next panel).
__attribute__((target("avx2,fma")))
static void pack_rows6(float *dst, const float *const rows[MR], long kc) {
    const __m256 zero = _mm256_setzero_ps();
    long d = 0;
    for (; d + 8 <= kc; d += 8) {
        __m256 r[8];
        for (int i = 0; i < MR; i++) r[i] = rows[i] ? _mm256_loadu_ps(rows[i] + d) : zero;
        r[6] = zero; r[7] = zero;
        // 8×8 transpose: t = pairs interleaved, u = quads, then the 128-bit halves.
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 u4 = _mm256_shuffle_ps(t4, zero, 0x44), u5 = _mm256_shuffle_ps(t4, zero, 0xEE);
        const __m256 u6 = _mm256_shuffle_ps(t5, zero, 0x44), u7 = _mm256_shuffle_ps(t5, zero, 0xEE);
        float *o = dst + d * MR;
        _mm256_storeu_ps(o + 0 * MR, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_storeu_ps(o + 1 * MR, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_storeu_ps(o + 2 * MR, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_storeu_ps(o + 3 * MR, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_storeu_ps(o + 4 * MR, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_storeu_ps(o + 5 * MR, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_storeu_ps(o + 6 * MR, _mm256_permute2f128_ps(u2, u6, 0x31));
        _mm256_storeu_ps(o + 7 * MR, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; d < kc; d++)
        for (int i = 0; i < MR; i++) dst[d * MR + i] = rows[i] ? rows[i][d] : 0;
}

// c[6, 16] = finish(a[kc][6] · b[kc][16]).   c: rows ldc apart; bias, gamma: 16 floats of this tile's columns.
__attribute__((target("avx2,fma")))
static void tile(const float *a, const float *b, long kc, float *c, long ldc, int flags, const float *bias, const float *gamma) {
    // The tile's rows of out arrive while the products run (the epilogue reads or writes them).
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma clang loop unroll_count(4)
    for (long d = 0; d < kc; d++) {
        const __m256 b0 = _mm256_load_ps(b + d * NR), b1 = _mm256_load_ps(b + d * NR + 8);
        const float *ad = a + d * MR;
        __m256 x;
        x = _mm256_broadcast_ss(ad + 0); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(ad + 1); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(ad + 2); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(ad + 3); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(ad + 4); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(ad + 5); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    const __m256 bias0 = (flags & F_BIAS) ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias1 = (flags & F_BIAS) ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    const __m256 g0 = (flags & F_GAMMA) ? _mm256_loadu_ps(gamma) : _mm256_set1_ps(1.0f);
    const __m256 g1 = (flags & F_GAMMA) ? _mm256_loadu_ps(gamma + 8) : _mm256_set1_ps(1.0f);
#define FINISH(acc, col, bv, gv)                                                            \
    do {                                                                                    \
        __m256 v = _mm256_add_ps(acc, bv);                                                  \
        if (flags & F_GAMMA) v = _mm256_mul_ps(v, gv);                                      \
        if (flags & F_LOAD) v = _mm256_add_ps(v, _mm256_loadu_ps(row + col));               \
        if (flags & F_GELU) v = gelu256(v);                                                 \
        _mm256_storeu_ps(row + col, v);                                                     \
    } while (0)
    float *row = c;
    FINISH(c00, 0, bias0, g0); FINISH(c01, 8, bias1, g1); row += ldc;
    FINISH(c10, 0, bias0, g0); FINISH(c11, 8, bias1, g1); row += ldc;
    FINISH(c20, 0, bias0, g0); FINISH(c21, 8, bias1, g1); row += ldc;
    FINISH(c30, 0, bias0, g0); FINISH(c31, 8, bias1, g1); row += ldc;
    FINISH(c40, 0, bias0, g0); FINISH(c41, 8, bias1, g1); row += ldc;
    FINISH(c50, 0, bias0, g0); FINISH(c51, 8, bias1, g1);
#undef FINISH
}

// The flags of the K block [pc, pc + kc) of K for an epilogue (CK_LINEAR_*). Blocks before the last accumulate
// into out; the residual epilogues add each block's share straight into the residual stream (linear in acc).
static int block_flags(int epilogue, int first, int last) {
    switch (epilogue) {
    case CK_LINEAR_BIAS: return (first ? 0 : F_LOAD) | (last ? F_BIAS : 0);
    case CK_LINEAR_BIAS_GELU: return (first ? 0 : F_LOAD) | (last ? F_BIAS | F_GELU : 0);
    case CK_LINEAR_BIAS_ADD: return F_LOAD | (first ? F_BIAS : 0);
    default: return F_LOAD | F_GAMMA | (first ? F_BIAS : 0);  // CK_LINEAR_BIAS_SCALE_ADD
    }
}

__attribute__((target("avx2,fma")))
void ck_linear(float *out, long ldo, const float *x, const float *wp, const float *bias, const float *gamma,
               long rows, long in_features, long columns, int epilogue) {
    const long k = in_features, panels = round_up(columns, NR) / NR;
    float *ap = aligned_alloc(64, sizeof(float) * (MC * KC + 64));  // + slack for pack_rows6's spill
    float edge[MR * NR] __attribute__((aligned(32)));
    float zeros[NR] = {0}, ones[NR];
    for (int j = 0; j < NR; j++) ones[j] = 1;
    for (long ic = 0; ic < rows; ic += MC) {
        const long mc = rows - ic < MC ? rows - ic : MC, mcp = round_up(mc, MR);
        for (long pc = 0; pc < k; pc += KC) {
            const long kc = k - pc < KC ? k - pc : KC;
            const int flags = block_flags(epilogue, pc == 0, pc + kc >= k);
            // x block → micro-panels [mcp/6][kc][6] (zero rows past mc): the tile's broadcasts read sequentially.
            for (long ir = 0; ir < mcp; ir += MR) {
                const float *rows[MR];
                for (long i = 0; i < MR; i++) rows[i] = ir + i < mc ? x + (ic + ir + i) * k + pc : NULL;
                pack_rows6(ap + ir * kc, rows, kc);
            }
            for (long jr = 0; jr < panels; jr++) {
                const float *b = wp + jr * k * NR + pc * NR;
                const long col = jr * NR, ncol = columns - col < NR ? columns - col : NR;
                // Columns past `columns` only exist in a partial last panel; bias/gamma there read padding.
                float bpad[NR], gpad[NR];
                const float *bj = bias ? bias + col : zeros, *gj = gamma ? gamma + col : ones;
                if (ncol < NR) {
                    for (long j = 0; j < NR; j++) { bpad[j] = j < ncol && bias ? bias[col + j] : 0; gpad[j] = j < ncol && gamma ? gamma[col + j] : 1; }
                    bj = bpad; gj = gpad;
                }
                for (long ir = 0; ir < mcp; ir += MR) {
                    float *c = out + (ic + ir) * ldo + col;
                    const long nr = mc - ir < MR ? mc - ir : MR;
                    if (nr == MR && ncol == NR) {
                        tile(ap + ir * kc, b, kc, c, ldo, flags, bj, gj);
                    } else {
                        // Partial tile: through a 6×16 buffer holding the valid part of out.
                        for (long i = 0; i < MR; i++)
                            for (long j = 0; j < NR; j++) edge[i * NR + j] = i < nr && j < ncol ? c[i * ldo + j] : 0;
                        tile(ap + ir * kc, b, kc, edge, NR, flags, bj, gj);
                        for (long i = 0; i < nr; i++)
                            for (long j = 0; j < ncol; j++) c[i * ldo + j] = edge[i * NR + j];
                    }
                }
            }
        }
    }
    free(ap);
}
#endif  // x86
