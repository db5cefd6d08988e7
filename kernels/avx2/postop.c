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
#define LC_POSTOP_NAME lc_f32_postop__avx2
#include "../postop_template.h"
#define LC_SOFTMAX_NAME lc_f32_softmax__avx2
#include "../softmax_lanes_template.h"

#include "target_end.h"
#endif
