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

#endif
