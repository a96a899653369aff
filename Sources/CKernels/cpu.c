// CPU feature tiers beyond AVX2 (cpuid and the OS's XSAVE state), and the bf16 conversion of activations.
#include "CKernels.h"
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int os_saves_zmm(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    return (xgetbv0() & 0xE6) == 0xE6;  // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM
}

int ck_cpu_has_avx512(void) {
    unsigned a, b, c, d;
    if (!os_saves_zmm() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned f = 1u << 16, dq = 1u << 17, bw = 1u << 30, vl = 1u << 31;
    return (b & (f | dq | bw | vl)) == (f | dq | bw | vl);
}

int ck_cpu_has_avx512_bf16(void) {
    unsigned a, b, c, d;
    if (!ck_cpu_has_avx512() || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;
}

int ck_cpu_has_amx_bf16(void) {
    unsigned a, b, c, d;
    if (!ck_cpu_has_avx512() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return ((d >> 22) & 1) && ((d >> 24) & 1);  // AMX-BF16 and AMX-TILE (the OS grant is oneDNN's to request)
}
#else
int ck_cpu_has_avx512(void) { return 0; }
int ck_cpu_has_avx512_bf16(void) { return 0; }
int ck_cpu_has_amx_bf16(void) { return 0; }
#endif

// Round to nearest even, NaN kept quiet: what torch's .to(bfloat16) and oneDNN's reorders do.
void ck_f32_to_bf16(unsigned short *dst, const float *src, long n) {
    for (long i = 0; i < n; i++) {
        union { float f; uint32_t u; } v = { src[i] };
        if ((v.u & 0x7fffffffu) > 0x7f800000u) { dst[i] = (uint16_t)((v.u >> 16) | 0x40); continue; }
        dst[i] = (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
    }
}

void ck_bf16_to_f32(float *dst, const unsigned short *src, long n) {
    for (long i = 0; i < n; i++) {
        union { uint32_t u; float f; } v = { (uint32_t)src[i] << 16 };
        dst[i] = v.f;
    }
}
