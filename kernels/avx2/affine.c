/* The per-channel affine map of a plane (lc_affine_fn in
 * include/leanconv/ukernels.h), AVX2: 8 floats a vector, the tail one at a
 * time through the same operations.  One fused multiply-add, then the ReLU as a compare and a blend, which keeps a NaN. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

void lc_f32_affine__avx2(float *y, const float *x, size_t n, float scale, float shift,
                         int relu) {
    const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(shift);
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vs, vb);
        if (relu) v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(x[i]), _mm_set_ss(scale),
                                             _mm_set_ss(shift)));
        if (relu && v < 0.0f) v = 0.0f;
        y[i] = v;
    }
}

#include "target_end.h"
#endif
