/* Depthwise row kernel, AVX-512: the shared template over __m512.  Stride 2
 * de-interleaves two loads with one two-source permute; tails use masks. */
#include <math.h>
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

/* 3x3, stride 1, dilation 1: the three taps of a row are one vector and
 * its shifts by 1 and 2 lanes.  Loading x[o .. o+31] once and shifting with
 * valignd replaces three unaligned loads (two of them split across cache
 * lines) per row and vector.  Two output vectors per step; the second's
 * shifts need only x[o+32], x[o+33] (a masked load reads just those, which
 * are taps).  Returns how many outputs it wrote (a multiple of 32). */
static size_t lc_dw3_s1_avx512(float *out, size_t n, const float *in, size_t rs, const float *w,
                               __m512 vb, int clamp, __m512 vlo, __m512 vhi) {
    const __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]), w2 = _mm512_set1_ps(w[2]);
    const __m512 w3 = _mm512_set1_ps(w[3]), w4 = _mm512_set1_ps(w[4]), w5 = _mm512_set1_ps(w[5]);
    const __m512 w6 = _mm512_set1_ps(w[6]), w7 = _mm512_set1_ps(w[7]), w8 = _mm512_set1_ps(w[8]);
    size_t ox = 0;
#define LC_SHIFT(hi, lo, k) \
    _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi), _mm512_castps_si512(lo), k))
#define LC_ROW3(p, wa, wb, wc, s0, s1)                                                         \
    {                                                                                           \
        const __m512 l0 = _mm512_loadu_ps((p) + ox), l1 = _mm512_loadu_ps((p) + ox + 16);       \
        const __m512 l2 = _mm512_maskz_loadu_ps(0x3, (p) + ox + 32);                            \
        s0 = _mm512_fmadd_ps(wa, l0, s0);                                                       \
        s1 = _mm512_fmadd_ps(wa, l1, s1);                                                       \
        s0 = _mm512_fmadd_ps(wb, LC_SHIFT(l1, l0, 1), s0);                                      \
        s1 = _mm512_fmadd_ps(wb, LC_SHIFT(l2, l1, 1), s1);                                      \
        s0 = _mm512_fmadd_ps(wc, LC_SHIFT(l1, l0, 2), s0);                                      \
        s1 = _mm512_fmadd_ps(wc, LC_SHIFT(l2, l1, 2), s1);                                      \
    }
    for (; ox + 32 <= n; ox += 32) {
        __m512 a0 = vb, a1 = vb, b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
        LC_ROW3(in, w0, w1, w2, a0, a1)
        LC_ROW3(in + rs, w3, w4, w5, b0, b1)
        LC_ROW3(in + 2 * rs, w6, w7, w8, a0, a1)
        a0 = _mm512_add_ps(a0, b0);
        a1 = _mm512_add_ps(a1, b1);
        if (clamp) {
            a0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, a0));
            a1 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, a1));
        }
        _mm512_storeu_ps(out + ox, a0);
        _mm512_storeu_ps(out + ox + 16, a1);
    }
#undef LC_ROW3
#undef LC_SHIFT
    return ox;
}
#define LC_DW3_S1_FAST lc_dw3_s1_avx512

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

/* Lanes [lo, hi) of 16, clipped. */
static inline __mmask16 lc_dw_mask_range(ptrdiff_t lo, ptrdiff_t hi) {
    return (__mmask16)(lc_dw_mask16(hi) & ~lc_dw_mask16(lo));
}
static inline __m512 lc_dw_odd(__m512 lo, __m512 hi) {
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_permutex2var_ps(lo, idx, hi);
}
#define LC_SHIFT(hi, lo, k) \
    _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi), _mm512_castps_si512(lo), k))
/* Stride 1: one full load and a two-float load, shifted by valignd. */
#define LC_DW3_TAPS_S1(p, t0, t1, t2)                                 \
    {                                                                 \
        const __m512 h_ = _mm512_maskz_loadu_ps(0x3, (p) + 16);       \
        t0 = _mm512_loadu_ps(p);                                      \
        t1 = LC_SHIFT(h_, t0, 1);                                     \
        t2 = LC_SHIFT(h_, t0, 2);                                     \
    }
/* Stride 2: taps 0 and 1 are the even and odd floats of p[0..32); tap 2 is
 * tap 0 moved one lane on, with p[32] last. */
#define LC_DW3_TAPS_S2(p, t0, t1, t2)                                 \
    {                                                                 \
        const __m512 l_ = _mm512_loadu_ps(p), m_ = _mm512_loadu_ps((p) + 16); \
        const __m512 h_ = _mm512_maskz_loadu_ps(0x1, (p) + 32);       \
        t0 = lc_dw_even(l_, m_);                                      \
        t1 = lc_dw_odd(l_, m_);                                       \
        t2 = LC_SHIFT(h_, t0, 1);                                     \
    }
/* Border blocks: the same taps from masked raw loads (masked floats read 0). */
#define LC_DW3_MTAPS_RAW(p, m, sw, t0, t1, t2)                                    \
    {                                                                             \
        const __m512 l_ = _mm512_maskz_loadu_ps((m)[0], (p));                     \
        if ((sw) == 1) {                                                          \
            const __m512 h_ = _mm512_maskz_loadu_ps((m)[1] & 0x3, (p) + 16);      \
            t0 = l_;                                                              \
            t1 = LC_SHIFT(h_, l_, 1);                                             \
            t2 = LC_SHIFT(h_, l_, 2);                                             \
        } else {                                                                  \
            const __m512 m_ = _mm512_maskz_loadu_ps((m)[1], (p) + 16);            \
            const __m512 h_ = _mm512_maskz_loadu_ps((m)[2] & 0x1, (p) + 32);      \
            t0 = lc_dw_even(l_, m_);                                              \
            t1 = lc_dw_odd(l_, m_);                                               \
            t2 = LC_SHIFT(h_, t0, 1);                                             \
        }                                                                         \
    }
#define LC_VMASK __mmask16
#define LC_VMASK_RANGE(lo, hi) lc_dw_mask_range((lo), (hi))
#define LC_VLOAD_M(p, m) _mm512_maskz_loadu_ps((m), (p))
#define LC_VEVEN(a, b) lc_dw_even((a), (b))
#define LC_DW3_PLANE_NAME lc_dw3x3_plane_rows_avx512
#define LC_DW3_PLANE_LINKAGE static
#include "../depthwise_template.h"

/* Narrow planes (14x14 stride 2: OW <= 8 and one output row's taps
 * span <= 16 floats): two output rows share each vector, lanes [0, OW) for
 * row oy and [OW, 2*OW) for row oy+1, which are adjacent in the output, so
 * one masked store writes both.  Each input row is one masked load of its
 * raw floats (columns -pad_l ..); a tap is one two-source permute of the raw
 * rows of oy and oy+1.  Halves the vectors of a 7-wide plane and drops the
 * per-row work.  Taken at stride_h 2 only (14x14 -> 7x7: 1.07x the strips
 * below); at stride_h 1 the strips, which keep the rows two output rows
 * share in registers, are faster (7x7: 1.27x).  A copy per stride_h, so the
 * raw rows stay in registers; the caller checks the plane fits. */
#define LC_DW3_NARROW(SH)                                                                                      \
static void lc_dw3x3_narrow_sh##SH(float *out, size_t OH, size_t OW, const float *in, size_t H,                \
                                   size_t W, size_t sw, size_t pad_t, size_t pad_l,                            \
                                   const float *w, float bias, const lc_epilogue *ep) {                        \
    const size_t sh = (SH);                                                                                    \
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);              \
    const __m512i vow = _mm512_set1_epi32((int)OW);                                                            \
    /* lane j: row B (second source, +16) when j >= OW, column jj = j mod OW */                                \
    const __mmask16 inb = _mm512_cmpge_epi32_mask(iota, vow);                                                  \
    const __m512i jj = _mm512_mask_sub_epi32(iota, inb, iota, vow);                                            \
    const __m512i jjs = sw == 2 ? _mm512_add_epi32(jj, jj) : jj;                                               \
    const __m512i base = _mm512_mask_add_epi32(jjs, inb, jjs, _mm512_set1_epi32(16));                          \
    const __m512i idx0 = base, idx1 = _mm512_add_epi32(base, _mm512_set1_epi32(1));                            \
    const __m512i idx2 = _mm512_add_epi32(base, _mm512_set1_epi32(2));                                         \
    /* raw lane r holds column r - pad_l: keep columns in [0, W) */                                            \
    const __mmask16 mrow = lc_dw_mask_range((ptrdiff_t)pad_l, (ptrdiff_t)(pad_l + W));                         \
    const __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(ep->lo), vhi = _mm512_set1_ps(ep->hi);        \
    __m512 wv[9];                                                                                              \
    for (int k = 0; k < 9; k++) wv[k] = _mm512_set1_ps(w[k]);                                                  \
    const ptrdiff_t Hd = (ptrdiff_t)H;                                                                         \
    for (size_t oy = 0; oy < OH; oy += 2) {                                                                    \
        const ptrdiff_t iy = (ptrdiff_t)(oy * sh) - (ptrdiff_t)pad_t;                                          \
        const int two = oy + 1 < OH;                                                                           \
        __m512 raw[5];                                                                                         \
        /* without a second row, its lanes are computed from whatever rows and not stored */                   \
        for (size_t r = 0; r < sh + 3; r++) {                                                                  \
            const ptrdiff_t y = iy + (ptrdiff_t)r;                                                             \
            raw[r] = y >= 0 && y < Hd ? _mm512_maskz_loadu_ps(mrow, in + y * (ptrdiff_t)W - (ptrdiff_t)pad_l)  \
                                      : _mm512_setzero_ps();                                                   \
        }                                                                                                      \
        __m512 a0 = vb, a1 = _mm512_setzero_ps();                                                              \
        for (size_t ky = 0; ky < 3; ky++) {                                                                    \
            const __m512 ra = raw[ky], rb = raw[ky + sh];                                                      \
            __m512 acc = ky == 1 ? a1 : a0;                                                                    \
            acc = _mm512_fmadd_ps(wv[3 * ky], _mm512_permutex2var_ps(ra, idx0, rb), acc);                      \
            acc = _mm512_fmadd_ps(wv[3 * ky + 1], _mm512_permutex2var_ps(ra, idx1, rb), acc);                  \
            acc = _mm512_fmadd_ps(wv[3 * ky + 2], _mm512_permutex2var_ps(ra, idx2, rb), acc);                  \
            if (ky == 1) a1 = acc; else a0 = acc;                                                              \
        }                                                                                                      \
        a0 = _mm512_add_ps(a0, a1);                                                                            \
        if (ep->clamp) a0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, a0));                                        \
        _mm512_mask_storeu_ps(out + oy * OW, lc_dw_mask16((ptrdiff_t)((two ? 2 : 1) * OW)), a0);               \
    }                                                                                                          \
}
LC_DW3_NARROW(2)
#undef LC_DW3_NARROW

/* Every other plane at stride_h 1 or 2 (all widths at stride_h 1): one column
 * block of 16 outputs at a time, walked down the whole plane, each input row
 * loaded (and its taps shifted or de-interleaved) once for every output row
 * it feeds: the taps of the rows the next output row shares stay in
 * registers (stride_h 1: two rows, stride_h 2: one), so an output row costs
 * one new input row (two at stride_h 2), where the template's paired rows
 * (lc_dw3x3_plane_rows_avx512, kept for taller strides) load four rows for
 * two output rows (five at stride_h 2).  A block's masks (raw lane r =
 * column ix + r, kept when inside [0, W); stores kept below OW) are the
 * same on every row, so border blocks cost what interior ones do; rows
 * outside the image give zero taps.  A walk takes NB blocks side by side
 * (their rows' loads shared, more independent work per row): two over each
 * pair of blocks except at stride_w 1 with stride_h 2 (rare), one for an odd
 * last block.  Measured against the paired rows and the former 14/28-wide
 * register kernels, hot, one thread (Zen 5): 1.1-1.5x on 112/56/28/14-wide
 * MobileNet planes at either stride, 1.7-2.5x on 64/32/16-wide ones; two
 * blocks a walk against one, 1.06-1.15x where there are pairs.  Each output
 * sums its taps in the order the other 3x3 paths use (bias + row 0 + row 2,
 * and row 1 apart, each row's taps left to right), so every path gives the
 * same bits. */
#define LC_DW3_STRIP(SW, SH, NB)                                                               \
    static LC_NOINLINE void lc_dw3x3_strip_##SW##_##SH##_##NB(float *out, size_t OH, size_t OW, size_t ox0, \
                                                 size_t ox1, const float *in, size_t H,        \
                                                 size_t W, size_t pad_t, size_t pad_l,         \
                                                 const float *w, float bias,                   \
                                                 const lc_epilogue *ep) {                      \
        enum { NL = (SW) * (NB) + 1 }; /* loads a row: SW*NB vectors, then the last taps */     \
        const __m512 vb = _mm512_set1_ps(bias), vz = _mm512_setzero_ps();                      \
        __m512 vlo = _mm512_set1_ps(ep->lo), vhi = _mm512_set1_ps(ep->hi);                     \
        if (!ep->clamp) {                                                                       \
            vlo = _mm512_set1_ps(-HUGE_VALF);                                                   \
            vhi = _mm512_set1_ps(HUGE_VALF);                                                    \
        }                                                                                       \
        __m512 wv[9];                                                                           \
        for (int k = 0; k < 9; k++) wv[k] = _mm512_set1_ps(w[k]);                               \
        const ptrdiff_t Wd = (ptrdiff_t)W;                                                      \
        for (size_t ox = ox0; ox < ox1; ox += 16 * (NB)) {                                      \
            const ptrdiff_t ix = (ptrdiff_t)ox * (SW) - (ptrdiff_t)pad_l;                       \
            /* masks as scalars (an array of them went through memory) */                     \
            const __mmask16 last = (SW) == 1 ? 0x3 : 0x1;                                       \
            const __mmask16 m_0 = lc_dw_mask_range(-ix, Wd - ix) & (NL == 1 ? last : 0xFFFF);   \
            const __mmask16 m_1 = lc_dw_mask_range(-ix - 16, Wd - ix - 16) & (NL == 2 ? last : 0xFFFF); \
            const __mmask16 m_2 = NL < 3 ? 0 : lc_dw_mask_range(-ix - 32, Wd - ix - 32) & (NL == 3 ? last : 0xFFFF); \
            const __mmask16 m_3 = NL < 4 ? 0 : lc_dw_mask_range(-ix - 48, Wd - ix - 48) & (NL == 4 ? last : 0xFFFF); \
            const __mmask16 m_4 = NL < 5 ? 0 : lc_dw_mask_range(-ix - 64, Wd - ix - 64) & last; \
            const __mmask16 mst0 = lc_dw_mask16((ptrdiff_t)(ox1 - ox));                         \
            const __mmask16 mst1 = lc_dw_mask16((ptrdiff_t)(ox1 - ox) - 16);                    \
            const float *col = in + ix;                                                         \
            float *o = out + ox;                                                                \
            __m512 p[NB][3], q[NB][3], t[NB][3];                                                \
            ptrdiff_t y = -(ptrdiff_t)pad_t;                                                    \
            LC_DW3_ROW_TAPS(SW, NB, y, p)                                                       \
            if ((SH) == 1) { LC_DW3_ROW_TAPS(SW, NB, y + 1, q) }                                \
            for (size_t oy = 0; oy < OH; oy++, y += (SH), o += OW) {                            \
                if ((SH) == 2) { LC_DW3_ROW_TAPS(SW, NB, y + 1, q) }                            \
                LC_DW3_ROW_TAPS(SW, NB, y + 2, t)                                               \
                for (int b = 0; b < (NB); b++) {                                                \
                    __m512 a0 = vb, a1 = vz;                                                    \
                    a0 = _mm512_fmadd_ps(wv[2], p[b][2], _mm512_fmadd_ps(wv[1], p[b][1], _mm512_fmadd_ps(wv[0], p[b][0], a0))); \
                    a1 = _mm512_fmadd_ps(wv[5], q[b][2], _mm512_fmadd_ps(wv[4], q[b][1], _mm512_fmadd_ps(wv[3], q[b][0], a1))); \
                    a0 = _mm512_fmadd_ps(wv[8], t[b][2], _mm512_fmadd_ps(wv[7], t[b][1], _mm512_fmadd_ps(wv[6], t[b][0], a0))); \
                    _mm512_mask_storeu_ps(o + 16 * b, b ? mst1 : mst0,                          \
                                          _mm512_min_ps(vhi, _mm512_max_ps(vlo, _mm512_add_ps(a0, a1)))); \
                }                                                                               \
                for (int b = 0; b < (NB); b++)                                                  \
                    for (int k = 0; k < 3; k++) {                                               \
                        if ((SH) == 1) {                                                        \
                            p[b][k] = q[b][k];                                                  \
                            q[b][k] = t[b][k];                                                  \
                        } else {                                                                \
                            p[b][k] = t[b][k];                                                  \
                        }                                                                       \
                    }                                                                           \
            }                                                                                   \
        }                                                                                       \
    }
/* The three taps of input row yy for each of the walk's NB blocks (zero
 * outside the image): stride 1 the row and its shifts by 1 and 2 lanes,
 * stride 2 its even and odd floats and the even ones moved a lane on (the
 * next block's even floats, or the last load's float, coming in). */
#define LC_DW3_ROW_TAPS(SW, NB, yy, t)                                                         \
    if ((size_t)(yy) < H) {                                                                     \
        const float *r_ = col + (yy) * Wd;                                                      \
        __m512 l_[NL];                                                                          \
        for (int k = 0; k < NL; k++)                                                            \
            l_[k] = _mm512_maskz_loadu_ps(k == 0 ? m_0 : k == 1 ? m_1 : k == 2 ? m_2 : k == 3 ? m_3 : m_4, \
                                          r_ + 16 * k);                                         \
        for (int b = 0; b < (NB); b++) {                                                        \
            if ((SW) == 1) {                                                                    \
                t[b][0] = l_[b];                                                                \
                t[b][1] = LC_SHIFT(l_[b + 1], l_[b], 1);                                        \
                t[b][2] = LC_SHIFT(l_[b + 1], l_[b], 2);                                        \
            } else {                                                                            \
                t[b][0] = lc_dw_even(l_[2 * b], l_[2 * b + 1]);                                 \
                t[b][1] = lc_dw_odd(l_[2 * b], l_[2 * b + 1]);                                  \
            }                                                                                   \
        }                                                                                       \
        if ((SW) == 2)                                                                          \
            for (int b = 0; b < (NB); b++)                                                      \
                t[b][2] = LC_SHIFT(b + 1 < (NB) ? t[b + 1 < (NB) ? b + 1 : b][0] : l_[NL - 1], t[b][0], 1); \
    } else {                                                                                    \
        for (int b = 0; b < (NB); b++) t[b][0] = t[b][1] = t[b][2] = vz;                        \
    }
LC_DW3_STRIP(1, 1, 1)
LC_DW3_STRIP(1, 2, 1)
LC_DW3_STRIP(2, 1, 1)
LC_DW3_STRIP(2, 2, 1)
LC_DW3_STRIP(1, 1, 2)
LC_DW3_STRIP(2, 1, 2)
LC_DW3_STRIP(2, 2, 2)
#undef LC_DW3_STRIP
#undef LC_DW3_ROW_TAPS

/* Small planes at stride 1 (lc_dw3x3_planes_fn): up to 16 outputs wide, a
 * plane's one-block walk each, without a call and task per plane; 7x7: two
 * planes to a
 * vector, plane A in lanes [0, 8) and plane B in [8, 16), each input row of
 * both one masked load and one merge-masked load (raw lane r of a plane =
 * column r - pad_l, kept inside [0, W)).  Taps are the vector shifted by 1
 * and 2 lanes: A's taps past its 8 lanes land on B's lanes below pad_l,
 * which are zero, as the columns they stand for are padding (what the
 * geometry check guarantees); B's run into the zeros shifted in.  Rows are
 * walked down as in the strips, so the taps the next output row shares stay
 * in registers.  A 7-wide plane fills 7 of a strip's 16 lanes; here 14, with
 * the per-plane set-up shared: 1.6x the strips (960@7, hot, Zen 5).  Each
 * output sums its taps in the strips' order: the same bits. */
static void lc_dw3x3_two_planes(float *outA, float *outB, size_t OH, size_t OW, const float *inA,
                                const float *inB, size_t H, size_t W, size_t pad_t, size_t pad_l,
                                const float *wA, const float *wB, float bA, float bB,
                                const lc_epilogue *ep) {
    const __mmask16 hiB = 0xFF00;
    const __m512 vz = _mm512_setzero_ps();
    const __m512 vb = _mm512_mask_blend_ps(hiB, _mm512_set1_ps(bA), _mm512_set1_ps(bB));
    __m512 vlo = _mm512_set1_ps(ep->lo), vhi = _mm512_set1_ps(ep->hi);
    if (!ep->clamp) {
        vlo = _mm512_set1_ps(-HUGE_VALF);
        vhi = _mm512_set1_ps(HUGE_VALF);
    }
    __m512 wv[9];
    for (int k = 0; k < 9; k++)
        wv[k] = _mm512_mask_blend_ps(hiB, _mm512_set1_ps(wA[k]), _mm512_set1_ps(wB[k]));
    const __mmask16 mA = lc_dw_mask_range((ptrdiff_t)pad_l, (ptrdiff_t)(pad_l + W));
    const __mmask16 mB = (__mmask16)(mA << 8);
    const __mmask16 sA = lc_dw_mask16((ptrdiff_t)OW), sB = (__mmask16)(sA << 8);
    /* raw lane r of A at ca[r], of B (lanes 8..15) at cb[r] */
    const float *ca = inA - pad_l, *cb = inB - pad_l - 8;
    const ptrdiff_t Wd = (ptrdiff_t)W;
#define LC_DW3_TWO_TAPS(yy, t0, t1, t2)                                                        \
    if ((size_t)(yy) < H) {                                                                    \
        __m512 v_ = _mm512_maskz_loadu_ps(mA, ca + (yy) * Wd);                                 \
        v_ = _mm512_mask_loadu_ps(v_, mB, cb + (yy) * Wd);                                     \
        t0 = v_;                                                                               \
        t1 = LC_SHIFT(vz, v_, 1);                                                              \
        t2 = LC_SHIFT(vz, v_, 2);                                                              \
    } else {                                                                                   \
        t0 = t1 = t2 = vz;                                                                     \
    }
    __m512 p0, p1, p2, q0, q1, q2, t0, t1, t2;
    ptrdiff_t y = -(ptrdiff_t)pad_t;
    LC_DW3_TWO_TAPS(y, p0, p1, p2)
    LC_DW3_TWO_TAPS(y + 1, q0, q1, q2)
    for (size_t oy = 0; oy < OH; oy++, y++) {
        __m512 a0 = vb, a1 = vz;
        LC_DW3_TWO_TAPS(y + 2, t0, t1, t2)
        a0 = _mm512_fmadd_ps(wv[2], p2, _mm512_fmadd_ps(wv[1], p1, _mm512_fmadd_ps(wv[0], p0, a0)));
        a1 = _mm512_fmadd_ps(wv[5], q2, _mm512_fmadd_ps(wv[4], q1, _mm512_fmadd_ps(wv[3], q0, a1)));
        a0 = _mm512_fmadd_ps(wv[8], t2, _mm512_fmadd_ps(wv[7], t1, _mm512_fmadd_ps(wv[6], t0, a0)));
        const __m512 r = _mm512_min_ps(vhi, _mm512_max_ps(vlo, _mm512_add_ps(a0, a1)));
        _mm512_mask_storeu_ps(outA + oy * OW, sA, r);
        _mm512_mask_storeu_ps(outB + oy * OW - 8, sB, r);
        p0 = q0; p1 = q1; p2 = q2;
        q0 = t0; q1 = t1; q2 = t2;
    }
#undef LC_DW3_TWO_TAPS
}

/* Small planes at stride 2 (lc_dw3x3_planes_fn: 14x14 -> 7x7, the last
 * stride-2 layer of MobileNets): two planes to a vector as at stride 1,
 * output row oy of plane A in lanes [0, OW) and of plane B in [8, 8 + OW).
 * An input row of each plane is one masked load of its raw floats (raw lane
 * r = column r - pad_l, kept inside [0, W)), and tap kx of both planes one
 * two-source permute of the two rows (lane j of A: raw lane 2j + kx).  The
 * input row an output row shares with the next (its third, the next one's
 * first) stays in registers: an output row of two planes costs four loads
 * and six permutes beside its nine multiply-adds, where the one-plane
 * narrow kernel (lc_dw3x3_narrow_sh2, two output rows of one plane to a
 * vector) spends five loads and nine permutes on each pair of rows, and a
 * call and set-up on every plane.  Each output sums its taps in the narrow
 * kernel's order: the same bits. */
static void lc_dw3x3_two_planes_s2(float *outA, float *outB, size_t OH, size_t OW,
                                   const float *inA, const float *inB, size_t H, size_t W,
                                   size_t pad_t, size_t pad_l, const float *wA, const float *wB,
                                   float bA, float bB, const lc_epilogue *ep) {
    const __mmask16 hiB = 0xFF00;
    const __m512 vz = _mm512_setzero_ps();
    const __m512 vb = _mm512_mask_blend_ps(hiB, _mm512_set1_ps(bA), _mm512_set1_ps(bB));
    const __m512 vlo = _mm512_set1_ps(ep->lo), vhi = _mm512_set1_ps(ep->hi);
    __m512 wv[9];
    for (int k = 0; k < 9; k++)
        wv[k] = _mm512_mask_blend_ps(hiB, _mm512_set1_ps(wA[k]), _mm512_set1_ps(wB[k]));
    /* lane j < 8: A's raw lane 2j + kx; lane j >= 8: B's (second source, + 16) */
    const __m512i idx0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i idx1 = _mm512_add_epi32(idx0, one), idx2 = _mm512_add_epi32(idx1, one);
    const __mmask16 mrow = lc_dw_mask_range((ptrdiff_t)pad_l, (ptrdiff_t)(pad_l + W));
    const __mmask16 sA = lc_dw_mask16((ptrdiff_t)OW), sB = (__mmask16)(sA << 8);
    const float *ca = inA - pad_l, *cb = inB - pad_l;
    const ptrdiff_t Wd = (ptrdiff_t)W;
#define LC_DW3_S2_TAPS(yy, t0, t1, t2)                                                         \
    if ((size_t)(yy) < H) {                                                                    \
        const __m512 ra_ = _mm512_maskz_loadu_ps(mrow, ca + (yy) * Wd);                        \
        const __m512 rb_ = _mm512_maskz_loadu_ps(mrow, cb + (yy) * Wd);                        \
        t0 = _mm512_permutex2var_ps(ra_, idx0, rb_);                                           \
        t1 = _mm512_permutex2var_ps(ra_, idx1, rb_);                                           \
        t2 = _mm512_permutex2var_ps(ra_, idx2, rb_);                                           \
    } else {                                                                                   \
        t0 = t1 = t2 = vz;                                                                     \
    }
    __m512 p0, p1, p2, q0, q1, q2, t0, t1, t2;
    ptrdiff_t y = -(ptrdiff_t)pad_t;
    LC_DW3_S2_TAPS(y, p0, p1, p2)
    for (size_t oy = 0; oy < OH; oy++, y += 2) {
        LC_DW3_S2_TAPS(y + 1, q0, q1, q2)
        LC_DW3_S2_TAPS(y + 2, t0, t1, t2)
        __m512 a0 = vb, a1 = vz;
        a0 = _mm512_fmadd_ps(wv[2], p2, _mm512_fmadd_ps(wv[1], p1, _mm512_fmadd_ps(wv[0], p0, a0)));
        a1 = _mm512_fmadd_ps(wv[5], q2, _mm512_fmadd_ps(wv[4], q1, _mm512_fmadd_ps(wv[3], q0, a1)));
        a0 = _mm512_fmadd_ps(wv[8], t2, _mm512_fmadd_ps(wv[7], t1, _mm512_fmadd_ps(wv[6], t0, a0)));
        a0 = _mm512_add_ps(a0, a1);
        if (ep->clamp) a0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, a0));
        _mm512_mask_storeu_ps(outA + oy * OW, sA, a0);
        _mm512_mask_storeu_ps(outB + oy * OW - 8, sB, a0);
        p0 = t0; p1 = t1; p2 = t2;
    }
#undef LC_DW3_S2_TAPS
}

int lc_f32_dw3x3_planes__avx512(float *out, size_t out_plane, const float *in, size_t in_plane,
                                size_t channels, size_t OH, size_t OW, size_t H, size_t W,
                                size_t stride, size_t pad_t, size_t pad_l, const float *w,
                                const float *bias, const lc_epilogue *ep) {
    size_t c = 0;
    if (stride == 2) {
        /* a row's raw floats in one vector, output column OW - 1's taps
         * (raw lanes up to 2 OW) inside its plane's 16 */
        if (W + pad_l > 16 || OW > 7) return 0;
        for (; c + 2 <= channels; c += 2)
            lc_dw3x3_two_planes_s2(out + c * out_plane, out + (c + 1) * out_plane, OH, OW,
                                   in + c * in_plane, in + (c + 1) * in_plane, H, W, pad_t, pad_l,
                                   w + 9 * c, w + 9 * (c + 1), bias ? bias[c] : 0.0f,
                                   bias ? bias[c + 1] : 0.0f, ep);
        if (c < channels)   /* an odd one out */
            lc_dw3x3_narrow_sh2(out + c * out_plane, OH, OW, in + c * in_plane, H, W, 2, pad_t,
                                pad_l, w + 9 * c, bias ? bias[c] : 0.0f, ep);
        return 1;
    }
    if (stride != 1) return 0;
    const int two = W + pad_l <= 8 && OW + 2 <= 8 + pad_l && OW <= 8;
    if (!two && OW > 16) return 0;
    for (; two && c + 2 <= channels; c += 2)
        lc_dw3x3_two_planes(out + c * out_plane, out + (c + 1) * out_plane, OH, OW,
                            in + c * in_plane, in + (c + 1) * in_plane, H, W, pad_t, pad_l,
                            w + 9 * c, w + 9 * (c + 1), bias ? bias[c] : 0.0f,
                            bias ? bias[c + 1] : 0.0f, ep);
    for (; c < channels; c++)   /* an odd one out, or one-block planes (14 wide) */
        lc_dw3x3_strip_1_1_1(out + c * out_plane, OH, OW, 0, OW, in + c * in_plane, H, W, pad_t,
                             pad_l, w + 9 * c, bias ? bias[c] : 0.0f, ep);
    return 1;
}

void lc_f32_dw3x3_plane__avx512(float *out, size_t OH, size_t OW, const float *in, size_t H,
                                size_t W, size_t stride_h, size_t stride_w, size_t pad_t,
                                size_t pad_l, const float *w, float bias, const lc_epilogue *ep) {
    if (stride_h == 1 || stride_h == 2) {
        const size_t sw = stride_w;
        const int s2 = stride_h == 2;
        if (s2 && OW <= 8 && sw * (OW - 1) + 3 <= 16 && pad_l <= 16) {
            lc_dw3x3_narrow_sh2(out, OH, OW, in, H, W, sw, pad_t, pad_l, w, bias, ep);
        } else if (sw == 1 && s2) {
            lc_dw3x3_strip_1_2_1(out, OH, OW, 0, OW, in, H, W, pad_t, pad_l, w, bias, ep);
        } else {
            /* two-block walks over [0, pairs), the pairs of 16-column
             * blocks; a one-block walk over an odd last block */
            const size_t ends = (OW + 15) / 32 * 32, pairs = ends < OW ? ends : OW;
#define LC_DW3_WALKS(SW, SH)                                                                   \
    {                                                                                          \
        if (pairs)                                                                             \
            lc_dw3x3_strip_##SW##_##SH##_2(out, OH, OW, 0, pairs, in, H, W, pad_t, pad_l, w,   \
                                           bias, ep);                                          \
        if (pairs < OW)                                                                        \
            lc_dw3x3_strip_##SW##_##SH##_1(out, OH, OW, pairs, OW, in, H, W, pad_t, pad_l, w,  \
                                           bias, ep);                                          \
    }
            if (sw == 1) LC_DW3_WALKS(1, 1)
            else if (s2) LC_DW3_WALKS(2, 2)
            else LC_DW3_WALKS(2, 1)
#undef LC_DW3_WALKS
        }
        return;
    }
    lc_dw3x3_plane_rows_avx512(out, OH, OW, in, H, W, stride_h, stride_w, pad_t, pad_l, w, bias, ep);
}

/* Band kernel: stride-1 taps by valignd from aligned loads (each unaligned
 * 64-byte load would cross a cache line). */
static inline __m512 lc_dwb_shift(__m512 hi, __m512 lo, int k) {
    switch (k) {
    case 0: return lo;
    case 1: return LC_SHIFT(hi, lo, 1);
    case 2: return LC_SHIFT(hi, lo, 2);
    case 3: return LC_SHIFT(hi, lo, 3);
    case 4: return LC_SHIFT(hi, lo, 4);
    case 5: return LC_SHIFT(hi, lo, 5);
    case 6: return LC_SHIFT(hi, lo, 6);
    case 7: return LC_SHIFT(hi, lo, 7);
    case 8: return LC_SHIFT(hi, lo, 8);
    case 9: return LC_SHIFT(hi, lo, 9);
    case 10: return LC_SHIFT(hi, lo, 10);
    case 11: return LC_SHIFT(hi, lo, 11);
    case 12: return LC_SHIFT(hi, lo, 12);
    case 13: return LC_SHIFT(hi, lo, 13);
    case 14: return LC_SHIFT(hi, lo, 14);
    case 15: return LC_SHIFT(hi, lo, 15);
    default: return hi;
    }
}
#define LC_DWB_SHIFT(hi, lo, k) lc_dwb_shift((hi), (lo), (k))
#define LC_DWB_NAME lc_f32_dw_band__avx512
#include "../dw_band_template.h"

#define LC_GB_NAME lc_f32_grouped_band__avx512
#define LC_GB_ACC 16
#define LC_GB_MAX_VB 4
#include "../grouped_band_template.h"
#undef LC_DWB_SHIFT
#undef LC_SHIFT

/* Channel-blocked kernels: 16 x 16 transposes in four rounds (pairs of
 * floats, of 2, 128-bit chunks twice). */
static inline void lc_dwc_transpose16(__m512 *v) {
    __m512 t[16], u[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]);
    }
    /* u[4g + j], 128-bit chunk m: rows 4g .. 4g+3, column 4m + j */
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        const __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);  /* chunks 0, 2 */
        const __m512 b = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);  /* chunks 1, 3 */
        const __m512 c = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        const __m512 d = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        v[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        v[8 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        v[4 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        v[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
}
#define LC_DWC_TRANSPOSE(v) lc_dwc_transpose16(v)
/* 14 accumulators of 32 registers: a 14-wide row in one block, 56 in four */
#define LC_DWC_MAX_NB 14
/* the sliding window of a 7-wide kernel row: 14 vectors live at a time (a
 * load per tap slides it) beside the 14 accumulators and the weight */
#define LC_DWC_SLIDE_MAX_KW 7
#define LC_DWC_NAME lc_f32_dw_cblock__avx512
#include "../dw_cblock_template.h"
#undef LC_DWC_TRANSPOSE

/* Tiny planes (lc_dw_tiny_fn): a plane in one vector, each tap one masked
 * permute of it.  Channels go in pairs, which share each tap's table loads;
 * each channel sums alternate taps in two chains. */
static inline __m512 lc_dw_tiny_tap(const lc_dw_tiny_taps *taps, int t, __m512i idx, __m512 x,
                                    const float *w, __m512 acc) {
    return _mm512_fmadd_ps(_mm512_set1_ps(w[taps->tap[t]]),
                           _mm512_maskz_permutexvar_ps((__mmask16)taps->mask[t], idx, x), acc);
}

static inline void lc_dw_tiny_store(float *out, __m512 a, __m512 b, int clamp, __m512 lo,
                                    __m512 hi, __mmask16 m) {
    a = _mm512_add_ps(a, b);
    if (clamp) a = _mm512_min_ps(hi, _mm512_max_ps(lo, a));
    _mm512_mask_storeu_ps(out, m, a);
}

void lc_f32_dw_tiny__avx512(float *out, const float *in, size_t channels, size_t mult,
                            size_t in_plane, size_t out_plane, const lc_dw_tiny_taps *taps,
                            const float *w, size_t ktaps, const float *bias,
                            const lc_epilogue *ep) {
    const __mmask16 in_m = lc_dw_mask16((ptrdiff_t)in_plane);
    const __mmask16 out_m = lc_dw_mask16((ptrdiff_t)out_plane);
    const int n = taps->n;
    const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
    size_t o = 0;
    for (; o + 2 <= channels; o += 2) {
        const __m512 x0 = _mm512_maskz_loadu_ps(in_m, in + (o / mult) * in_plane);
        const __m512 x1 = _mm512_maskz_loadu_ps(in_m, in + ((o + 1) / mult) * in_plane);
        const float *w0 = w + o * ktaps, *w1 = w0 + ktaps;
        __m512 a0 = _mm512_set1_ps(bias ? bias[o] : 0.0f), b0 = _mm512_setzero_ps();
        __m512 a1 = _mm512_set1_ps(bias ? bias[o + 1] : 0.0f), b1 = _mm512_setzero_ps();
        int t = 0;
        for (; t + 2 <= n; t += 2) {
            const __m512i i0 = _mm512_loadu_si512((const void *)taps->idx[t]);
            const __m512i i1 = _mm512_loadu_si512((const void *)taps->idx[t + 1]);
            a0 = lc_dw_tiny_tap(taps, t, i0, x0, w0, a0);
            a1 = lc_dw_tiny_tap(taps, t, i0, x1, w1, a1);
            b0 = lc_dw_tiny_tap(taps, t + 1, i1, x0, w0, b0);
            b1 = lc_dw_tiny_tap(taps, t + 1, i1, x1, w1, b1);
        }
        if (t < n) {
            const __m512i i0 = _mm512_loadu_si512((const void *)taps->idx[t]);
            a0 = lc_dw_tiny_tap(taps, t, i0, x0, w0, a0);
            a1 = lc_dw_tiny_tap(taps, t, i0, x1, w1, a1);
        }
        lc_dw_tiny_store(out + o * out_plane, a0, b0, ep->clamp, lo, hi, out_m);
        lc_dw_tiny_store(out + (o + 1) * out_plane, a1, b1, ep->clamp, lo, hi, out_m);
    }
    if (o < channels) {   /* the last of an odd count */
        const __m512 x = _mm512_maskz_loadu_ps(in_m, in + (o / mult) * in_plane);
        const float *wo = w + o * ktaps;
        __m512 a = _mm512_set1_ps(bias ? bias[o] : 0.0f), b = _mm512_setzero_ps();
        for (int t = 0; t < n; t++) {
            const __m512i i0 = _mm512_loadu_si512((const void *)taps->idx[t]);
            if (t & 1)
                b = lc_dw_tiny_tap(taps, t, i0, x, wo, b);
            else
                a = lc_dw_tiny_tap(taps, t, i0, x, wo, a);
        }
        lc_dw_tiny_store(out + o * out_plane, a, b, ep->clamp, lo, hi, out_m);
    }
}

#define LC_GEMV_NAME lc_f32_gemv16__avx512
#include "../se_gemv_template.h"
#include "target_end.h"
#endif
