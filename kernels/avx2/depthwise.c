/* Depthwise row kernel, AVX2+FMA: the shared template over __m256.  Stride 2
 * de-interleaves two loads with a shuffle and a lane permute. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

/* Lanes [0, count) set, count clipped to [0, 8]. */
static inline __m256i lc_dw_mask8(ptrdiff_t count) {
    count = count < 0 ? 0 : count > 8 ? 8 : count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Even floats of lo:hi (16 floats) in order. */
static inline __m256 lc_dw_even(__m256 lo, __m256 hi) {
    __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)); /* l0 l2 h0 h2 | l4 l6 h4 h6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

static inline __m256 lc_dw_load_s2(const float *p) {
    return lc_dw_even(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8));
}

static inline __m256 lc_dw_load_s2_part(const float *p, size_t cnt) {
    const ptrdiff_t e = (ptrdiff_t)(2 * cnt - 1); /* floats p[0 .. e) are taps */
    return lc_dw_even(_mm256_maskload_ps(p, lc_dw_mask8(e)), _mm256_maskload_ps(p + 8, lc_dw_mask8(e - 8)));
}

#define LC_V __m256
#define LC_VLANES 8
#define LC_VLOAD(p) _mm256_loadu_ps(p)
#define LC_VLOAD_S2(p) lc_dw_load_s2(p)
#define LC_VLOAD_PART(p, cnt) _mm256_maskload_ps((p), lc_dw_mask8((ptrdiff_t)(cnt)))
#define LC_VLOAD_S2_PART(p, cnt) lc_dw_load_s2_part((p), (cnt))
#define LC_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define LC_VSTORE_PART(p, v, cnt) _mm256_maskstore_ps((p), lc_dw_mask8((ptrdiff_t)(cnt)), (v))
#define LC_VSET1(f) _mm256_set1_ps(f)
#define LC_VFMA(acc, a, b) _mm256_fmadd_ps((a), (b), (acc))
#define LC_VMUL(a, b) _mm256_mul_ps((a), (b))
#define LC_VADD(a, b) _mm256_add_ps((a), (b))
/* max/min return their second operand when either is NaN: NaN passes */
#define LC_VCLAMP(v, lo, hi) _mm256_min_ps((hi), _mm256_max_ps((lo), (v)))
#define LC_DW_NAME lc_f32_dw_row__avx2

/* Lanes [lo, hi) of 8. */
static inline __m256i lc_dw_mask_range(ptrdiff_t lo, ptrdiff_t hi) {
    return _mm256_andnot_si256(lc_dw_mask8(lo), lc_dw_mask8(hi));
}
static inline __m256 lc_dw_odd(__m256 lo, __m256 hi) {
    __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}
/* Stride 2: taps 0 and 1 share the loads of p[0..16). */
#define LC_DW3_TAPS_S2(p, t0, t1, t2)                                 \
    {                                                                 \
        const __m256 l_ = _mm256_loadu_ps(p), m_ = _mm256_loadu_ps((p) + 8); \
        t0 = lc_dw_even(l_, m_);                                      \
        t1 = lc_dw_odd(l_, m_);                                       \
        t2 = lc_dw_load_s2((p) + 2);                                  \
    }
#define LC_VODD(a, b) lc_dw_odd((a), (b))
#define LC_VSTORE_M(p, v, m) _mm256_maskstore_ps((p), (m), (v))
#define LC_VMASK __m256i
#define LC_VMASK_RANGE(lo, hi) lc_dw_mask_range((lo), (hi))
#define LC_VLOAD_M(p, m) _mm256_maskload_ps((p), (m))
#define LC_VEVEN(a, b) lc_dw_even((a), (b))
#define LC_DW3_PLANE_NAME lc_f32_dw3x3_plane__avx2
#include "../depthwise_template.h"

#define LC_DWB_NAME lc_f32_dw_band__avx2
#include "../dw_band_template.h"

#define LC_GB_NAME lc_f32_grouped_band__avx2
#define LC_GB_ACC 12
#define LC_GB_MAX_VB 3
#include "../grouped_band_template.h"

/* Channel-blocked kernels: 8 x 8 transposes (pairs, 2-float pairs, halves). */
static inline void lc_dwc_transpose8(__m256 *v) {
    __m256 t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_ps(v[2 * k], v[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(v[2 * k], v[2 * k + 1]);
    }
    /* u[4g + j], half m: rows 4g .. 4g+3, column 4m + j */
    for (int g = 0; g < 2; g++) {
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        v[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}
#define LC_DWC_TRANSPOSE(v) lc_dwc_transpose8(v)
#define LC_DWC_NAME lc_f32_dw_cblock__avx2
#include "../dw_cblock_template.h"
#undef LC_DWC_TRANSPOSE

/* Tiny planes (lc_dw_tiny_fn): a plane of up to 16 pixels in two vectors,
 * pixels 0-7 and 8-15.  A tap of an output half is a permute of each input
 * half, the half its index falls in picked by a blend, the pixels it reads in
 * the padding zeroed by a mask; those three vectors per tap and half are
 * built once per call, for all its channels, and each load of them serves
 * a pair of channels. */
typedef struct {
    __m256i idx;   /* input pixel of each output pixel (the permutes use its low 3 bits) */
    __m256 upper;  /* lanes whose input pixel is in the upper half */
    __m256 inside; /* lanes whose input pixel is in the image */
} lc_dw_tiny_half;

static inline __m256 lc_dw_tiny_pick(const lc_dw_tiny_half *h, __m256 x0, __m256 x1) {
    const __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(x0, h->idx),
                                      _mm256_permutevar8x32_ps(x1, h->idx), h->upper);
    return _mm256_and_ps(v, h->inside);
}

void lc_f32_dw_tiny__avx2(float *out, const float *in, size_t channels, size_t mult,
                          size_t in_plane, size_t out_plane, const lc_dw_tiny_taps *taps,
                          const float *w, size_t ktaps, const float *bias,
                          const lc_epilogue *ep) {
    lc_dw_tiny_half tab[LC_DW_TINY_TAPS][2];
    const int n = taps->n, halves = out_plane > 8 ? 2 : 1;
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < halves; h++) {
            const __m256i idx = _mm256_loadu_si256((const __m256i *)(taps->idx[t] + 8 * h));
            const __m256i bits = _mm256_and_si256(
                _mm256_set1_epi32((int)((taps->mask[t] >> (8 * h)) & 0xffu)), lane_bit);
            tab[t][h].idx = idx;
            tab[t][h].upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
            tab[t][h].inside = _mm256_castsi256_ps(_mm256_cmpeq_epi32(bits, lane_bit));
        }
    const __m256i in_m0 = lc_dw_mask8((ptrdiff_t)in_plane);
    const __m256i in_m1 = lc_dw_mask8((ptrdiff_t)in_plane - 8);
    const __m256i out_m[2] = {lc_dw_mask8((ptrdiff_t)out_plane),
                              lc_dw_mask8((ptrdiff_t)out_plane - 8)};
    const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
    size_t o = 0;
    for (; o + 2 <= channels; o += 2) {   /* channel pairs share each table load */
        const float *xa = in + (o / mult) * in_plane, *xb = in + ((o + 1) / mult) * in_plane;
        const float *wa = w + o * ktaps, *wb = wa + ktaps;
        const __m256 a0 = _mm256_maskload_ps(xa, in_m0), a1 = _mm256_maskload_ps(xa + 8, in_m1);
        const __m256 b0 = _mm256_maskload_ps(xb, in_m0), b1 = _mm256_maskload_ps(xb + 8, in_m1);
        for (int h = 0; h < halves; h++) {
            __m256 sa = _mm256_set1_ps(bias ? bias[o] : 0.0f);
            __m256 sb = _mm256_set1_ps(bias ? bias[o + 1] : 0.0f);
            for (int t = 0; t < n; t++) {
                const lc_dw_tiny_half *e = &tab[t][h];
                sa = _mm256_fmadd_ps(_mm256_set1_ps(wa[taps->tap[t]]), lc_dw_tiny_pick(e, a0, a1), sa);
                sb = _mm256_fmadd_ps(_mm256_set1_ps(wb[taps->tap[t]]), lc_dw_tiny_pick(e, b0, b1), sb);
            }
            if (ep->clamp) {
                sa = _mm256_min_ps(hi, _mm256_max_ps(lo, sa));
                sb = _mm256_min_ps(hi, _mm256_max_ps(lo, sb));
            }
            _mm256_maskstore_ps(out + o * out_plane + 8 * h, out_m[h], sa);
            _mm256_maskstore_ps(out + (o + 1) * out_plane + 8 * h, out_m[h], sb);
        }
    }
    if (o < channels) {   /* the last of an odd count */
        const float *x = in + (o / mult) * in_plane, *wo = w + o * ktaps;
        const __m256 x0 = _mm256_maskload_ps(x, in_m0), x1 = _mm256_maskload_ps(x + 8, in_m1);
        for (int h = 0; h < halves; h++) {
            __m256 a = _mm256_set1_ps(bias ? bias[o] : 0.0f);
            for (int t = 0; t < n; t++)
                a = _mm256_fmadd_ps(_mm256_set1_ps(wo[taps->tap[t]]),
                                    lc_dw_tiny_pick(&tab[t][h], x0, x1), a);
            if (ep->clamp) a = _mm256_min_ps(hi, _mm256_max_ps(lo, a));
            _mm256_maskstore_ps(out + o * out_plane + 8 * h, out_m[h], a);
        }
    }
}

#define LC_GEMV_NAME lc_f32_gemv16__avx2
#include "../se_gemv_template.h"

#include "target_end.h"
#endif
