/* Depthwise row kernel, AVX-512: the shared template over __m512.  Stride 2
 * de-interleaves two loads with one two-source permute; tails use masks. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

static inline __mmask16 lc_dw_mask16(ptrdiff_t count) {
    count = count < 0 ? 0 : count > 16 ? 16 : count;
    return (__mmask16)((1u << count) - 1u);
}

static inline __m512 lc_dw_even(__m512 lo, __m512 hi) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(lo, idx, hi);
}

static inline __m512 lc_dw_load_s2_part(const float *p, size_t cnt) {
    const ptrdiff_t e = (ptrdiff_t)(2 * cnt - 1); /* floats p[0 .. e) are taps */
    return lc_dw_even(_mm512_maskz_loadu_ps(lc_dw_mask16(e), p),
                      _mm512_maskz_loadu_ps(lc_dw_mask16(e - 16), p + 16));
}

#define LC_V __m512
#define LC_VLANES 16
#define LC_VLOAD(p) _mm512_loadu_ps(p)
#define LC_VLOAD_S2(p) lc_dw_even(_mm512_loadu_ps(p), _mm512_loadu_ps((p) + 16))
#define LC_VLOAD_PART(p, cnt) _mm512_maskz_loadu_ps(lc_dw_mask16((ptrdiff_t)(cnt)), (p))
#define LC_VLOAD_S2_PART(p, cnt) lc_dw_load_s2_part((p), (cnt))
#define LC_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define LC_VSTORE_PART(p, v, cnt) _mm512_mask_storeu_ps((p), lc_dw_mask16((ptrdiff_t)(cnt)), (v))
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VFMA(acc, a, b) _mm512_fmadd_ps((a), (b), (acc))
#define LC_VMUL(a, b) _mm512_mul_ps((a), (b))
#define LC_VADD(a, b) _mm512_add_ps((a), (b))
/* max/min return their second operand when either is NaN: NaN passes */
#define LC_VCLAMP(v, lo, hi) _mm512_min_ps((hi), _mm512_max_ps((lo), (v)))
#define LC_DW_NAME lc_f32_dw_row__avx512
#include "../depthwise_template.h"

#include "target_end.h"
#endif
