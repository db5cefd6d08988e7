/* Depthwise row kernel, NEON (AArch64): the shared template over float32x4_t.
 * Stride 2 de-interleaves with one vld2q (8 floats: the template allows a
 * full vector to read one float past its last tap).  Row tails (< 4 outputs)
 * go through partial.h, which reads and writes exactly the lanes asked for.
 * The clamp uses FMAX/FMIN, which return NaN when either operand is NaN. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include "partial.h"
#include "../ukernel_decls.h"

#define LC_V float32x4_t
#define LC_VLANES 4
#define LC_VLOAD(p) vld1q_f32(p)
#define LC_VLOAD_S2(p) (vld2q_f32(p).val[0])
#define LC_VLOAD_PART(p, cnt) lc_neon_load_part((p), (size_t)(cnt))
#define LC_VLOAD_S2_PART(p, cnt) lc_neon_load_s2_part((p), (size_t)(cnt))
#define LC_VSTORE(p, v) vst1q_f32((p), (v))
#define LC_VSTORE_PART(p, v, cnt) lc_neon_store_part((p), (v), (size_t)(cnt))
#define LC_VSET1(f) vdupq_n_f32(f)
#define LC_VFMA(acc, a, b) vfmaq_f32((acc), (a), (b))
#define LC_VMUL(a, b) vmulq_f32((a), (b))
#define LC_VADD(a, b) vaddq_f32((a), (b))
#define LC_VCLAMP(v, lo, hi) vminq_f32((hi), vmaxq_f32((lo), (v)))
#define LC_DW_NAME lc_f32_dw_row__neon
#include "../depthwise_template.h"

#define LC_DWB_NAME lc_f32_dw_band__neon
#include "../dw_band_template.h"

/* Channel-blocked kernels: 4 x 4 transposes (float pairs, then halves). */
static inline void lc_dwc_transpose4(float32x4_t *v) {
    const float32x4_t t0 = vtrn1q_f32(v[0], v[1]), t1 = vtrn2q_f32(v[0], v[1]);
    const float32x4_t t2 = vtrn1q_f32(v[2], v[3]), t3 = vtrn2q_f32(v[2], v[3]);
    v[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    v[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    v[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    v[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}
#define LC_DWC_TRANSPOSE(v) lc_dwc_transpose4(v)
/* 32 registers: 8 accumulators, a 14-vector window of a 7-wide kernel row
 * and the weight */
#define LC_DWC_SLIDE_MAX_KW 7
#define LC_DWC_NAME lc_f32_dw_cblock__neon
#include "../dw_cblock_template.h"
#undef LC_DWC_TRANSPOSE

#define LC_GEMV_NAME lc_f32_gemv16__neon
#include "../se_gemv_template.h"

#endif
