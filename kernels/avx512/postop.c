/* The epilogue post-op, AVX-512: the shared template over __m512, masks as
 * __mmask16. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_V __m512
#define LC_M __mmask16
#define LC_VL 16
#define LC_VLOAD(p) _mm512_loadu_ps(p)
#define LC_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define LC_VMASK_(cnt) ((__mmask16)((1u << (cnt)) - 1u))
#define LC_VLOAD_PART(p, cnt) _mm512_maskz_loadu_ps(LC_VMASK_(cnt), (p))
#define LC_VSTORE_PART(p, v, cnt) _mm512_mask_storeu_ps((p), LC_VMASK_(cnt), (v))
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VADD(a, b) _mm512_add_ps((a), (b))
#define LC_VSUB(a, b) _mm512_sub_ps((a), (b))
#define LC_VMUL(a, b) _mm512_mul_ps((a), (b))
#define LC_VDIV(a, b) _mm512_div_ps((a), (b))
#define LC_VMIN(a, b) _mm512_min_ps((a), (b))
#define LC_VMAX(a, b) _mm512_max_ps((a), (b))
#define LC_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define LC_VABS(a) _mm512_abs_ps(a)
#define LC_VLT(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ)
#define LC_VLE(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_LE_OQ)
#define LC_VGT(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GT_OQ)
#define LC_VGE(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_GE_OQ)
#define LC_VEQ(a, b) _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
#define LC_VISNAN(a) _mm512_cmp_ps_mask((a), (a), _CMP_UNORD_Q)
#define LC_VSEL(m, a, b) _mm512_mask_blend_ps((m), (b), (a))
#define LC_VSHL23(a) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(a), 23))
/* softmax's lane reductions, each a fixed sequence (the same bits wherever
 * a row sits): the largest lane, and the lanes' (double)s - (double)c summed
 * in double, high half onto low half down to one */
#define LC_VFIRST(cnt) LC_VMASK_(cnt)
#define LC_VHMAX(v) _mm512_reduce_max_ps(v)
static inline double lc_vhsum_comp(__m512 s, __m512 c) {
    const __m512d lo = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(s)),
                                     _mm512_cvtps_pd(_mm512_castps512_ps256(c)));
    const __m512d hi = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(s, 1)),
                                     _mm512_cvtps_pd(_mm512_extractf32x8_ps(c, 1)));
    const __m512d d8 = _mm512_add_pd(lo, hi);
    const __m256d d4 = _mm256_add_pd(_mm512_castpd512_pd256(d8), _mm512_extractf64x4_pd(d8, 1));
    const __m128d d2 = _mm_add_pd(_mm256_castpd256_pd128(d4), _mm256_extractf128_pd(d4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(d2, _mm_unpackhi_pd(d2, d2)));
}
#define LC_VHSUM_COMP(s, c) lc_vhsum_comp((s), (c))
#define LC_POSTOP_NAME lc_f32_postop__avx512
#include "../postop_template.h"
#define LC_SOFTMAX_NAME lc_f32_softmax__avx512
#include "../softmax_lanes_template.h"

#include "target_end.h"
#endif
