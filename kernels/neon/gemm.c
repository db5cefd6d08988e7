/* NEON GEMM micro-kernel, 12 x 8 (AArch64), from ../gemm_template.h.
 *
 * Registers: 24 accumulators (12 rows x two 4-float vectors), 2 B vectors and
 * the 12 A values of a k step loaded as 3 vectors = 29 of the 32 q registers.
 * Each row multiplies by one lane of an A vector (fmla v.4s, v.4s, v.s[lane]),
 * so a k step is 5 loads for 24 FMAs.  24 independent FMA chains cover the
 * FMA latency x pipes of Cortex-A76-class cores (4 x 2 = 8) and of wider ones
 * (Neoverse V1/N2, Apple: 4 pipes, 16) with room to spare.
 * Broadcasting A from memory instead (ld1r) makes GCC keep the 12 A values in
 * scalar registers: 38 live values, accumulators spilled in the inner loop.
 *
 * Edge tiles: rows >= m are computed on the zero padding of A and not stored;
 * columns >= n are never read from B nor written to C.  NEON has no masked
 * loads/stores, so the "mask" is the lane count and edge vectors go through
 * partial.h (lane loads); the full 8-column tile uses plain vld1q/vst1q.
 *
 * Clamp: vmaxq_f32/vminq_f32 (FMAX/FMIN) return NaN when either operand is
 * NaN, so a NaN sum stays NaN through ReLU/clamp as in torch (the bounds are
 * never NaN: the Python layer rejects them).  FMAXNM/FMINNM would drop it. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include "partial.h"
#include "../ukernel_decls.h"

#define LC_V float32x4_t
#define LC_VL 4
#define LC_MASK size_t
#define LC_MASK_FOR(cnt) ((size_t)(cnt))
#define LC_VZERO() vdupq_n_f32(0.0f)
#define LC_VSET1(f) vdupq_n_f32(f)
#define LC_VLOADU(p) vld1q_f32(p)
#define LC_VSTOREU(p, v) vst1q_f32((p), (v))
#define LC_VLOADM(p, cnt) lc_neon_load_part((p), (cnt))
#define LC_VSTOREM(p, cnt, v) lc_neon_store_part((p), (v), (cnt))
#define LC_VFMA(a, b, c) vfmaq_f32((c), (a), (b))
#define LC_VMAX(a, b) vmaxq_f32((a), (b))
#define LC_VMIN(a, b) vminq_f32((a), (b))

/* A of one k step as three vectors; row i is lane i % 4 of vector i / 4
 * (constant expressions: the ternary folds away, the lane is an immediate). */
#define LC_GEMM_LOAD_A(ap)                                                                   \
    const float32x4_t lc_a0 = vld1q_f32(ap), lc_a1 = vld1q_f32((ap) + 4),                   \
                      lc_a2 = vld1q_f32((ap) + 8);
#define LC_GEMM_A(i) vdupq_laneq_f32((i) < 4 ? lc_a0 : (i) < 8 ? lc_a1 : lc_a2, (i) % 4)
#define LC_GEMM_MR 12
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LC_GEMM_NAME lc_f32_gemm_12x8__neon
#include "../gemm_template.h"

/* Direct convolution, output channels in the lanes (../direct_lanes_template.h):
 * 6 pixels x 4 vectors (16 channels): 24 accumulators, 4 weight vectors and a
 * broadcast (ld1r), 29 of the 32 q registers. */
#define LC_DL_NV 4
#define LC_DL_R 6
#define LC_DL_NAME lc_f32_dl_6x16__neon
#include "../direct_lanes_template.h"
/* its 1 x 1 form (../pointwise_lanes_template.h) */
#define LC_PW_NV 4
#define LC_PW_R 6
#define LC_PW_NAME lc_f32_pw_6x16__neon
#include "../pointwise_lanes_template.h"
/* The stem kernel (../stem_lanes_template.h): 4 output channels x 6 pixel
 * vectors, AVX-512's shape: 24 accumulators, 4 broadcast weights and a pixel
 * vector, 29 of the 32 q registers; per tap 6 loads and 4 broadcasts for 24
 * multiply-adds, within two load pipes' reach of two FMA pipes. */
#define LC_ST_R 4
#define LC_ST_V 6
#define LC_ST_NAME lc_f32_stem_4x6__neon
#include "../stem_lanes_template.h"

#endif
