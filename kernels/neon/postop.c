/* The epilogue post-op, NEON (AArch64): the shared template over
 * float32x4_t, masks as uint32x4_t. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include "partial.h"
#include "../ukernel_decls.h"

#define LC_V float32x4_t
#define LC_M uint32x4_t
#define LC_VL 4
#define LC_VLOAD(p) vld1q_f32(p)
#define LC_VSTORE(p, v) vst1q_f32((p), (v))
#define LC_VLOAD_PART(p, cnt) lc_neon_load_part((p), (cnt))
#define LC_VSTORE_PART(p, v, cnt) lc_neon_store_part((p), (v), (cnt))
#define LC_VSET1(f) vdupq_n_f32(f)
#define LC_VADD(a, b) vaddq_f32((a), (b))
#define LC_VSUB(a, b) vsubq_f32((a), (b))
#define LC_VMUL(a, b) vmulq_f32((a), (b))
#define LC_VDIV(a, b) vdivq_f32((a), (b))
#define LC_VMIN(a, b) vminq_f32((a), (b))
#define LC_VMAX(a, b) vmaxq_f32((a), (b))
#define LC_VFMA(a, b, c) vfmaq_f32((c), (a), (b))
#define LC_VABS(a) vabsq_f32(a)
#define LC_VLT(a, b) vcltq_f32((a), (b))
#define LC_VLE(a, b) vcleq_f32((a), (b))
#define LC_VGT(a, b) vcgtq_f32((a), (b))
#define LC_VGE(a, b) vcgeq_f32((a), (b))
#define LC_VEQ(a, b) vceqq_f32((a), (b))
#define LC_VISNAN(a) vmvnq_u32(vceqq_f32((a), (a)))
#define LC_VSEL(m, a, b) vbslq_f32((m), (a), (b))
#define LC_VSHL23(a) vreinterpretq_f32_s32(vshlq_n_s32(vreinterpretq_s32_f32(a), 23))
/* softmax's lane reductions, each a fixed sequence (the same bits wherever
 * a row sits): the largest lane, and the lanes' (double)s - (double)c summed
 * in double, high half onto low half down to one */
static inline uint32x4_t lc_vfirst(size_t cnt) {
    static const uint32_t lane[4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(lane), vdupq_n_u32((uint32_t)cnt));
}
#define LC_VFIRST(cnt) lc_vfirst(cnt)
#define LC_VHMAX(v) vmaxvq_f32(v)
static inline double lc_vhsum_comp(float32x4_t s, float32x4_t c) {
    const float64x2_t lo = vsubq_f64(vcvt_f64_f32(vget_low_f32(s)), vcvt_f64_f32(vget_low_f32(c)));
    const float64x2_t hi = vsubq_f64(vcvt_high_f64_f32(s), vcvt_high_f64_f32(c));
    const float64x2_t d2 = vaddq_f64(lo, hi);
    return vgetq_lane_f64(d2, 0) + vgetq_lane_f64(d2, 1);
}
#define LC_VHSUM_COMP(s, c) lc_vhsum_comp((s), (c))
#define LC_POSTOP_NAME lc_f32_postop__neon
#include "../postop_template.h"
#define LC_SOFTMAX_NAME lc_f32_softmax__neon
#include "../softmax_lanes_template.h"

#endif
