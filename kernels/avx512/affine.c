/* The per-channel affine map of a plane (lc_affine_fn in
 * include/leanconv/ukernels.h), AVX-512: 16 floats a vector, the tail
 * masked.  One fused multiply-add, then the ReLU
 * as a compare and a masked move, which keeps a NaN (max would drop it).
 * The baseline x86 build ran it 4 lanes wide, at twice the time on
 * DenseNet's planes (1000@8x8: 9.1 -> 4.2 us). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

void lc_f32_affine__avx512(float *y, const float *x, size_t n, float scale, float shift,
                           int relu) {
    const __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(shift);
    const __m512 zero = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), vs, vb);
        if (relu) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

#include "target_end.h"
#endif
