// Element-wise activations for AVX2+FMA; the portable versions are in Kernels/Activations.swift.
#include "CKernels.h"
#include "exp_avx2.h"
#include <math.h>

// erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), the approximation PyTorch's vectorised CPU erf uses.
__attribute__((target("avx2,fma"), always_inline))
static inline __m256 erf256(__m256 x) {
    const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(ax, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
    const __m256 y = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
    return _mm256_or_ps(y, sign);
}

__attribute__((target("avx2,fma")))
void ck_gelu_inplace(float *x, long n) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), rsqrt2 = _mm256_set1_ps(0.70710678118654752f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(v, half), _mm256_add_ps(one, erf256(_mm256_mul_ps(v, rsqrt2)))));
    }
    if (i < n) {
        float tail[8] = {0};
        for (long j = i; j < n; j++) tail[j - i] = x[j];
        const __m256 v = _mm256_loadu_ps(tail);
        _mm256_storeu_ps(tail, _mm256_mul_ps(_mm256_mul_ps(v, half), _mm256_add_ps(one, erf256(_mm256_mul_ps(v, rsqrt2)))));
        for (long j = i; j < n; j++) x[j] = tail[j - i];
    }
}
