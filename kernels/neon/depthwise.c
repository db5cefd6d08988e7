/* Depthwise row kernel, NEON (AArch64): the shared template over float32x4_t.
 * Stride 2 de-interleaves with one vld2q (8 floats: the template allows a
 * full vector to read one float past its last tap).  Row tails (< 4 outputs)
 * go through partial.h, which reads and writes exactly the lanes asked for.
 * The clamp uses FMAX/FMIN, which return NaN when either operand is NaN. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include "partial.h"
#include "../ukernel_decls.h"

#define LC_V float32x4_t
#define LC_VLANES 4
#define LC_VLOAD(p) vld1q_f32(p)
#define LC_VLOAD_S2(p) (vld2q_f32(p).val[0])
#define LC_VLOAD_PART(p, cnt) lc_neon_load_part((p), (size_t)(cnt))
#define LC_VLOAD_S2_PART(p, cnt) lc_neon_load_s2_part((p), (size_t)(cnt))
#define LC_VSTORE(p, v) vst1q_f32((p), (v))
#define LC_VSTORE_PART(p, v, cnt) lc_neon_store_part((p), (v), (size_t)(cnt))
#define LC_VSET1(f) vdupq_n_f32(f)
#define LC_VFMA(acc, a, b) vfmaq_f32((acc), (a), (b))
#define LC_VMUL(a, b) vmulq_f32((a), (b))
#define LC_VADD(a, b) vaddq_f32((a), (b))
#define LC_VCLAMP(v, lo, hi) vminq_f32((hi), vmaxq_f32((lo), (v)))
#define LC_DW_NAME lc_f32_dw_row__neon
#include "../depthwise_template.h"

#define LC_DWB_NAME lc_f32_dw_band__neon
#include "../dw_band_template.h"

#define LC_GB_NAME lc_f32_grouped_band__neon
#define LC_GB_ACC 24
#define LC_GB_MAX_VB 6
#include "../grouped_band_template.h"

/* Channel-blocked kernels: 4 x 4 transposes (float pairs, then halves). */
static inline void lc_dwc_transpose4(float32x4_t *v) {
    const float32x4_t t0 = vtrn1q_f32(v[0], v[1]), t1 = vtrn2q_f32(v[0], v[1]);
    const float32x4_t t2 = vtrn1q_f32(v[2], v[3]), t3 = vtrn2q_f32(v[2], v[3]);
    v[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    v[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
    v[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
    v[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}
#define LC_DWC_TRANSPOSE(v) lc_dwc_transpose4(v)
/* 32 registers: 8 accumulators, a 14-vector window of a 7-wide kernel row
 * and the weight */
#define LC_DWC_SLIDE_MAX_KW 7
#define LC_DWC_NAME lc_f32_dw_cblock__neon
#include "../dw_cblock_template.h"
#undef LC_DWC_TRANSPOSE

/* Tiny planes (lc_dw_tiny_fn): a plane of up to 16 pixels in four registers,
 * which one TBL reads as a 64-byte table: a tap of four output pixels is one
 * byte lookup, whose indices (built once per call, for all its channels)
 * name the 4 bytes of each pixel's input, or 255 (out of the table: 0) for
 * a pixel the tap reads in the padding.  Each channel sums alternate taps in
 * two chains per quarter. */
void lc_f32_dw_tiny__neon(float *out, const float *in, size_t channels, size_t mult,
                          size_t in_plane, size_t out_plane, const lc_dw_tiny_taps *taps,
                          const float *w, size_t ktaps, const float *bias,
                          const lc_epilogue *ep) {
    uint8x16_t tab[LC_DW_TINY_TAPS][LC_DW_TINY_PIXELS / 4];
    const int n = taps->n, quarters = (int)((out_plane + 3) / 4);
    for (int t = 0; t < n; t++)
        for (int j = 0; j < quarters; j++) {
            uint8_t b[16];
            for (int l = 0; l < 4; l++) {
                const int q = 4 * j + l;
                const int inside = (taps->mask[t] >> q) & 1u;
                for (int k = 0; k < 4; k++)
                    b[4 * l + k] = inside ? (uint8_t)(4 * taps->idx[t][q] + k) : 255u;
            }
            tab[t][j] = vld1q_u8(b);
        }
    const float32x4_t lo = vdupq_n_f32(ep->lo), hi = vdupq_n_f32(ep->hi);
    float plane[LC_DW_TINY_PIXELS] = {0.0f}; /* an input plane shorter than 16 floats */
    for (size_t o = 0; o < channels; o++) {
        const float *x = in + (o / mult) * in_plane, *wo = w + o * ktaps;
        if (in_plane < LC_DW_TINY_PIXELS) {
            for (size_t i = 0; i < in_plane; i++) plane[i] = x[i];
            x = plane;
        }
        const uint8x16x4_t xv = {{vreinterpretq_u8_f32(vld1q_f32(x)),
                                  vreinterpretq_u8_f32(vld1q_f32(x + 4)),
                                  vreinterpretq_u8_f32(vld1q_f32(x + 8)),
                                  vreinterpretq_u8_f32(vld1q_f32(x + 12))}};
        for (int j = 0; j < quarters; j++) {
            float32x4_t a = vdupq_n_f32(bias ? bias[o] : 0.0f), b = vdupq_n_f32(0.0f);
            int t = 0;
            for (; t + 2 <= n; t += 2) {
                a = vfmaq_n_f32(a, vreinterpretq_f32_u8(vqtbl4q_u8(xv, tab[t][j])), wo[taps->tap[t]]);
                b = vfmaq_n_f32(b, vreinterpretq_f32_u8(vqtbl4q_u8(xv, tab[t + 1][j])),
                                wo[taps->tap[t + 1]]);
            }
            if (t < n)
                a = vfmaq_n_f32(a, vreinterpretq_f32_u8(vqtbl4q_u8(xv, tab[t][j])), wo[taps->tap[t]]);
            a = vaddq_f32(a, b);
            if (ep->clamp) a = vminq_f32(hi, vmaxq_f32(lo, a));
            lc_neon_store_part(out + o * out_plane + 4 * j, a, out_plane - 4 * (size_t)j);
        }
    }
}

#define LC_GEMV_NAME lc_f32_gemv16__neon
#include "../se_gemv_template.h"

#endif
