// Element-wise activations for AVX2+FMA; the portable versions are in Kernels/Activations.swift.
#include "CKernels.h"
#if defined(__x86_64__) || defined(__i386__)
#include "simd_avx2.h"
#include <math.h>

__attribute__((target("avx2,fma")))
void ck_gelu_inplace(float *x, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu256(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float tail[8] = {0};
        for (long j = i; j < n; j++) tail[j - i] = x[j];
        _mm256_storeu_ps(tail, gelu256(_mm256_loadu_ps(tail)));
        for (long j = i; j < n; j++) x[j] = tail[j - i];
    }
}
#endif  // x86
