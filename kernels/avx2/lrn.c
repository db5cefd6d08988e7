/* LRN's divide (lc_lrn_div_fn in include/leanconv/ukernels.h), AVX2: 8
 * pixels a vector, the tail through the same operations one at a time.  The
 * square roots and the division are IEEE (correctly rounded), the
 * divisor's bias + scale * s one fused multiply-add: the portable loop's
 * bits. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

void lc_f32_lrn_div__avx2(float *y, const float *x, const float *s, size_t n, float scale,
                          float bias, int root) {
    const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(bias);
    size_t p = 0;
    for (; p + 8 <= n; p += 8) {
        const __m256 d = _mm256_fmadd_ps(vs, _mm256_loadu_ps(s + p), vb);
        __m256 den = d;
        if (root >= 1) den = _mm256_sqrt_ps(d);
        if (root == 2) den = _mm256_mul_ps(den, _mm256_sqrt_ps(den));
        _mm256_storeu_ps(y + p, _mm256_div_ps(_mm256_loadu_ps(x + p), den));
    }
    for (; p < n; p++) {
        const __m128 d = _mm_fmadd_ss(_mm_set_ss(scale), _mm_set_ss(s[p]), _mm_set_ss(bias));
        __m128 den = d;
        if (root >= 1) den = _mm_sqrt_ss(d);
        if (root == 2) den = _mm_mul_ss(den, _mm_sqrt_ss(den));
        y[p] = _mm_cvtss_f32(_mm_div_ss(_mm_set_ss(x[p]), den));
    }
}

#include "target_end.h"
#endif
