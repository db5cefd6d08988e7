/* The epilogue post-op, AVX2+FMA: the shared template over __m256, masks as
 * __m256 compare results. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

/* Lanes [0, cnt) set, cnt in [0, 8]. */
static inline __m256i lc_postop_mask8(size_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define LC_V __m256
#define LC_M __m256
#define LC_VL 8
#define LC_VLOAD(p) _mm256_loadu_ps(p)
#define LC_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define LC_VLOAD_PART(p, cnt) _mm256_maskload_ps((p), lc_postop_mask8(cnt))
#define LC_VSTORE_PART(p, v, cnt) _mm256_maskstore_ps((p), lc_postop_mask8(cnt), (v))
#define LC_VSET1(f) _mm256_set1_ps(f)
#define LC_VADD(a, b) _mm256_add_ps((a), (b))
#define LC_VSUB(a, b) _mm256_sub_ps((a), (b))
#define LC_VMUL(a, b) _mm256_mul_ps((a), (b))
#define LC_VDIV(a, b) _mm256_div_ps((a), (b))
#define LC_VMIN(a, b) _mm256_min_ps((a), (b))
#define LC_VMAX(a, b) _mm256_max_ps((a), (b))
#define LC_VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define LC_VABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (a))
#define LC_VLT(a, b) _mm256_cmp_ps((a), (b), _CMP_LT_OQ)
#define LC_VLE(a, b) _mm256_cmp_ps((a), (b), _CMP_LE_OQ)
#define LC_VGT(a, b) _mm256_cmp_ps((a), (b), _CMP_GT_OQ)
#define LC_VGE(a, b) _mm256_cmp_ps((a), (b), _CMP_GE_OQ)
#define LC_VEQ(a, b) _mm256_cmp_ps((a), (b), _CMP_EQ_OQ)
#define LC_VISNAN(a) _mm256_cmp_ps((a), (a), _CMP_UNORD_Q)
#define LC_VSEL(m, a, b) _mm256_blendv_ps((b), (a), (m))
#define LC_VSHL23(a) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(a), 23))
/* softmax's lane reductions, each a fixed sequence (the same bits wherever
 * a row sits): the largest lane, and the lanes' (double)s - (double)c summed
 * in double, high half onto low half down to one */
#define LC_VFIRST(cnt) _mm256_castsi256_ps(lc_postop_mask8(cnt))
static inline float lc_vhmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
#define LC_VHMAX(v) lc_vhmax(v)
static inline double lc_vhsum_comp(__m256 s, __m256 c) {
    const __m256d lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(s)),
                                     _mm256_cvtps_pd(_mm256_castps256_ps128(c)));
    const __m256d hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)),
                                     _mm256_cvtps_pd(_mm256_extractf128_ps(c, 1)));
    const __m256d d4 = _mm256_add_pd(lo, hi);
    const __m128d d2 = _mm_add_pd(_mm256_castpd256_pd128(d4), _mm256_extractf128_pd(d4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(d2, _mm_unpackhi_pd(d2, d2)));
}
#define LC_VHSUM_COMP(s, c) lc_vhsum_comp((s), (c))
#define LC_POSTOP_NAME lc_f32_postop__avx2
#include "../postop_template.h"
#define LC_SOFTMAX_NAME lc_f32_softmax__avx2
#include "../softmax_lanes_template.h"

#include "target_end.h"
#endif
