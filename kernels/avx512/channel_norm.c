/* The channel LayerNorm's block (lc_layernorm_block_fn in
 * include/leanconv/ukernels.h), AVX-512: groups of up to 64 pixels (four
 * vectors, the tail masked) whose sums stay in registers while the loop runs
 * down the channels, so each channel costs four loads and four adds and no
 * loop of its own.  The compiled portable loops (../channel_norm_template.h)
 * ran a short pixel loop per channel and pass, whose set-up cost as much as
 * its 4 vectors (96@32x32: 37 us).  The same operations per pixel as those
 * loops with their multiply-adds fused (sums in channel order, one rounding
 * for d * d + s and for t * scale + bias, IEEE root and divides). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include <stddef.h>

#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_LN_VECS 4

void lc_f32_layernorm_block__avx512(float *y, const float *x, size_t channels, size_t hw,
                                    size_t np, float eps, const float *scale,
                                    const float *bias, float *pack) {
    const __m512 vcount = _mm512_set1_ps((float)channels), veps = _mm512_set1_ps(eps);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t p0 = 0; p0 < np; p0 += 16 * LC_LN_VECS) {
        const size_t w = np - p0 < 16 * LC_LN_VECS ? np - p0 : 16 * LC_LN_VECS;
        __mmask16 k[LC_LN_VECS];
        __m512 s[LC_LN_VECS], m[LC_LN_VECS];
        for (int v = 0; v < LC_LN_VECS; v++) {
            const size_t lo = 16 * (size_t)v;
            k[v] = w <= lo ? 0 : w - lo >= 16 ? (__mmask16)0xFFFF
                                               : (__mmask16)((1u << (w - lo)) - 1u);
            s[v] = _mm512_setzero_ps();
        }
        const float *xg = x + p0;
        /* the copy: rows of w floats, contiguous (pack holds channels x np) */
        for (size_t c = 0; c < channels; c++) {
            const float *xc = xg + c * hw;
            for (int v = 0; v < LC_LN_VECS; v++) {
                const __m512 a = _mm512_maskz_loadu_ps(k[v], xc + 16 * v);
                s[v] = _mm512_add_ps(s[v], a);
                if (pack) _mm512_mask_storeu_ps(pack + c * w + 16 * v, k[v], a);
            }
        }
        const float *src = pack ? pack : xg;
        const size_t ld = pack ? w : hw;
        for (int v = 0; v < LC_LN_VECS; v++) {
            m[v] = _mm512_div_ps(s[v], vcount);
            s[v] = _mm512_setzero_ps();
        }
        for (size_t c = 0; c < channels; c++) {
            const float *xc = src + c * ld;
            for (int v = 0; v < LC_LN_VECS; v++) {
                const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k[v], xc + 16 * v), m[v]);
                s[v] = _mm512_fmadd_ps(d, d, s[v]);
            }
        }
        for (int v = 0; v < LC_LN_VECS; v++)
            s[v] = _mm512_div_ps(one, _mm512_sqrt_ps(_mm512_add_ps(_mm512_div_ps(s[v], vcount),
                                                                   veps)));
        float *yg = y + p0;
        for (size_t c = 0; c < channels; c++) {
            const float *xc = src + c * ld;
            const __m512 sc = _mm512_set1_ps(scale ? scale[c] : 1.0f);
            const __m512 sh = _mm512_set1_ps(bias ? bias[c] : 0.0f);
            for (int v = 0; v < LC_LN_VECS; v++) {
                const __m512 t = _mm512_mul_ps(
                    _mm512_sub_ps(_mm512_maskz_loadu_ps(k[v], xc + 16 * v), m[v]), s[v]);
                _mm512_mask_storeu_ps(yg + c * hw + 16 * v, k[v], _mm512_fmadd_ps(t, sc, sh));
            }
        }
    }
}

#include "target_end.h"
#endif
