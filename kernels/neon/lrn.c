/* LRN's divide (lc_lrn_div_fn in include/leanconv/ukernels.h), NEON: 4
 * pixels a vector, the tail one at a time through the same operations.
 * AArch64's square root and division are IEEE (correctly rounded) and
 * vfmaq_f32 one fused multiply-add: the portable loop's bits. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include <arm_neon.h>
#include "../ukernel_decls.h"

static inline float32x4_t lc_lrn_den(float32x4_t d, int root) {
    float32x4_t den = d;
    if (root >= 1) den = vsqrtq_f32(d);
    if (root == 2) den = vmulq_f32(den, vsqrtq_f32(den));
    return den;
}

void lc_f32_lrn_div__neon(float *y, const float *x, const float *s, size_t n, float scale,
                          float bias, int root) {
    const float32x4_t vs = vdupq_n_f32(scale), vb = vdupq_n_f32(bias);
    size_t p = 0;
    for (; p + 4 <= n; p += 4) {
        const float32x4_t d = vfmaq_f32(vb, vs, vld1q_f32(s + p));
        vst1q_f32(y + p, vdivq_f32(vld1q_f32(x + p), lc_lrn_den(d, root)));
    }
    for (; p < n; p++) {   /* lane 0 of the same operations */
        const float32x4_t d = vfmaq_f32(vb, vs, vdupq_n_f32(s[p]));
        y[p] = vgetq_lane_f32(vdivq_f32(vdupq_n_f32(x[p]), lc_lrn_den(d, root)), 0);
    }
}
#endif
