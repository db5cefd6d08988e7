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

#include "../winograd_instances.h"

#endif
