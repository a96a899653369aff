// Non-x86 builds (e.g. linux/arm64 images): the hand-written kernels do not exist and are never selected,
// because ck_cpu_has_avx2_fma() says so; the Swift side runs its portable kernels.
#include "CKernels.h"
#if !(defined(__x86_64__) || defined(__i386__))
#include <stdlib.h>

int ck_cpu_has_avx2_fma(void) { return 0; }
long ck_attention_query_block(void) { return 96; }
size_t ck_attention_packed_count(long b, long t, long h, long d) { (void)b; (void)t; (void)h; (void)d; return 0; }
void ck_attention_pack(float *kp, float *vp, const float *qkv, long b, long t, long h, long d, long s, long e) {
    (void)kp; (void)vp; (void)qkv; (void)b; (void)t; (void)h; (void)d; (void)s; (void)e; abort();
}
void ck_attention_tasks(float *o, const float *qkv, const float *kp, const float *vp, long b, long t, long h, long d,
                        float sc, long s, long e) {
    (void)o; (void)qkv; (void)kp; (void)vp; (void)b; (void)t; (void)h; (void)d; (void)sc; (void)s; (void)e; abort();
}
void ck_attention_tasks_avx512(float *o, const float *qkv, const float *kp, const float *vp, long b, long t, long h, long d,
                               float sc, long s, long e) {
    (void)o; (void)qkv; (void)kp; (void)vp; (void)b; (void)t; (void)h; (void)d; (void)sc; (void)s; (void)e; abort();
}
void ck_attention_pack_bf16(unsigned short *kp, unsigned short *vp, const float *qkv, long b, long t, long h, long d, long s, long e) {
    (void)kp; (void)vp; (void)qkv; (void)b; (void)t; (void)h; (void)d; (void)s; (void)e; abort();
}
void ck_attention_tasks_avx512_bf16(float *o, const float *qkv, const unsigned short *kp, const unsigned short *vp, long b, long t,
                                    long h, long d, float sc, long s, long e) {
    (void)o; (void)qkv; (void)kp; (void)vp; (void)b; (void)t; (void)h; (void)d; (void)sc; (void)s; (void)e; abort();
}
size_t ck_linear_packed_count(long k, long c) { (void)k; (void)c; return 0; }
void ck_linear_pack_weight(float *wp, const float *w, long k, long c0, long c) { (void)wp; (void)w; (void)k; (void)c0; (void)c; abort(); }
void ck_linear(float *out, long ldo, const float *x, const float *wp, const float *b, const float *g, long r, long k, long c, int e) {
    (void)out; (void)ldo; (void)x; (void)wp; (void)b; (void)g; (void)r; (void)k; (void)c; (void)e; abort();
}
void ck_gelu_inplace(float *x, long n) { (void)x; (void)n; abort(); }
#endif
