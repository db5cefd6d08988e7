/* AVX-512 GEMM micro-kernels, MR x 32: MR rows x two 16-float ZMM
 * accumulators, two B loads and MR A broadcasts (folded into the FMAs as
 * {1to16} memory operands) per k step.  Several MR are stamped out from
 * ../gemm_template.h; config.c picks one (measurements there).
 * Edge tiles: rows >= m are computed on the zero padding of A and not stored;
 * columns >= n are never read from B nor written to C (masked loads/stores). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_V __m512
#define LC_VL 16
#define LC_MASK __mmask16
#define LC_MASK_FOR(cnt) ((__mmask16)((1u << (cnt)) - 1u))
#define LC_VZERO() _mm512_setzero_ps()
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VLOADU(p) _mm512_loadu_ps(p)
#define LC_VSTOREU(p, v) _mm512_storeu_ps((p), (v))
#define LC_VLOADM(p, mask) _mm512_maskz_loadu_ps((mask), (p))
#define LC_VSTOREM(p, mask, v) _mm512_mask_storeu_ps((p), (mask), (v))
#define LC_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define LC_VMAX(a, b) _mm512_max_ps((a), (b))
#define LC_VMIN(a, b) _mm512_min_ps((a), (b))

#define LC_GEMM_MR 6
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LC_GEMM_NAME lc_f32_gemm_6x32__avx512
#include "../gemm_template.h"

#define LC_GEMM_MR 8
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define LC_GEMM_NAME lc_f32_gemm_8x32__avx512
#include "../gemm_template.h"

#define LC_GEMM_MR 12
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define LC_GEMM_NAME lc_f32_gemm_12x32__avx512
#include "../gemm_template.h"

#define LC_GEMM_MR 14
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define LC_GEMM_NAME lc_f32_gemm_14x32__avx512
#include "../gemm_template.h"

#include "target_end.h"
#endif
