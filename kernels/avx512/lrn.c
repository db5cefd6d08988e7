/* LRN's divide (lc_lrn_div_fn in include/leanconv/ukernels.h), AVX-512: 16
 * pixels a vector, the tail masked.  The square roots and the
 * division are IEEE (correctly rounded), the divisor's bias + scale * s one
 * fused multiply-add: the portable loop's bits. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

void lc_f32_lrn_div__avx512(float *y, const float *x, const float *s, size_t n, float scale,
                            float bias, int root) {
    const __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(bias);
    for (size_t p = 0; p < n; p += 16) {
        const __mmask16 k = n - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - p)) - 1u);
        const __m512 d = _mm512_fmadd_ps(vs, _mm512_maskz_loadu_ps(k, s + p), vb);
        __m512 den = d;
        if (root >= 1) den = _mm512_sqrt_ps(d);
        if (root == 2) den = _mm512_mul_ps(den, _mm512_sqrt_ps(den));
        _mm512_mask_storeu_ps(y + p, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, x + p), den));
    }
}

#include "target_end.h"
#endif
