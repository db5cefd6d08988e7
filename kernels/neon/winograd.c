/* Winograd transforms, NEON (AArch64): the shared template over float32x4_t
 * (4 lanes), NR = 8 tiles per call, matching the GEMM tile.  The clamp uses
 * FMAX/FMIN, which return NaN when either operand is NaN: NaN passes. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include <arm_neon.h>
#include "../ukernel_decls.h"

#define LC_ISA_FN(name) LC_CAT(name, __neon)
#define LC_V float32x4_t
#define LC_VLANES 4
#include "tile.h"
#define LC_NR LC_TILE_NR
#define LC_VLOAD(p) vld1q_f32(p)
#define LC_VSTORE(p, v) vst1q_f32((p), (v))
#define LC_VSET1(f) vdupq_n_f32(f)
#define LC_VADD(a, b) vaddq_f32((a), (b))
#define LC_VSUB(a, b) vsubq_f32((a), (b))
#define LC_VMULC(a, f) vmulq_n_f32((a), (f))
#define LC_VFMAC(acc, a, f) vfmaq_n_f32((acc), (a), (f))
#define LC_VCLAMP(v, lo, hi) vminq_f32((hi), vmaxq_f32((lo), (v)))
static inline uint64_t lc_wino_nanbits_neon(float32x4_t v) {
    static const uint32_t bit[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(vmvnq_u32(vceqq_f32(v, v)), vld1q_u32(bit))); /* v != v: NaN */
}
#define LC_VNANBITS(v) lc_wino_nanbits_neon(v)
/* Interleaved output rows: the structure stores do exactly this. */
static inline void lc_wino_store_i2_neon(float *p, float32x4_t a, float32x4_t b) {
    float32x4x2_t v;
    v.val[0] = a;
    v.val[1] = b;
    vst2q_f32(p, v);
}
static inline void lc_wino_store_i4_neon(float *p, float32x4_t a, float32x4_t b, float32x4_t c,
                                         float32x4_t d) {
    float32x4x4_t v;
    v.val[0] = a;
    v.val[1] = b;
    v.val[2] = c;
    v.val[3] = d;
    vst4q_f32(p, v);
}
/* six: pairs zipped into 64-bit units, which a 3-way structure store
 * interleaves (tiles 0, 1 from the low halves, 2, 3 from the high) */
static inline void lc_wino_store_i6_neon(float *p, float32x4_t a, float32x4_t b, float32x4_t c,
                                         float32x4_t d, float32x4_t e, float32x4_t f) {
    float64x2x3_t lo, hi;
    lo.val[0] = vreinterpretq_f64_f32(vzip1q_f32(a, b));
    lo.val[1] = vreinterpretq_f64_f32(vzip1q_f32(c, d));
    lo.val[2] = vreinterpretq_f64_f32(vzip1q_f32(e, f));
    hi.val[0] = vreinterpretq_f64_f32(vzip2q_f32(a, b));
    hi.val[1] = vreinterpretq_f64_f32(vzip2q_f32(c, d));
    hi.val[2] = vreinterpretq_f64_f32(vzip2q_f32(e, f));
    vst3q_f64((float64_t *)p, lo);
    vst3q_f64((float64_t *)(p + 12), hi);
}
#define LC_VSTORE_I6(p, a, b, c, d, e, f) lc_wino_store_i6_neon((p), (a), (b), (c), (d), (e), (f))
#define LC_VSTORE_I2(p, a, b) lc_wino_store_i2_neon((p), (a), (b))
#define LC_VSTORE_I4(p, a, b, c, d) lc_wino_store_i4_neon((p), (a), (b), (c), (d))

/* channel-lanes GEMM: 4 tiles x 4 vectors of output channels */
#define LC_WCL_ROWS 4
#define LC_WCL_VECS 4
#include "../winograd_instances.h"

#endif
