/* Channel-blocked depthwise kernels (lc_dw_cblock_kernels in
 * include/leanconv/ukernels.h): L = LC_VLANES channels interleaved, a vector
 * per pixel.  Written once over the vector vocabulary of
 * depthwise_template.h (LC_V, LC_VLANES, LC_VLOAD, LC_VSTORE, LC_VSET1,
 * LC_VFMA, LC_VCLAMP, LC_VLOAD_PART, LC_VSTORE_PART) plus LC_DWC_TRANSPOSE(v), which transposes the L x L
 * floats of the L vectors v[0 .. L) in place; included by
 * kernels/<isa>/depthwise.c after it defines LC_DWC_NAME.
 *
 * The row kernel keeps NB <= LC_DWC_MAX_NB output pixels in accumulators
 * (the ISA's choice, 8 by default: it must cover the FMA latency times the
 * FMA pipes, and leave registers for the weight and the loads); each tap is
 * one weight vector load and NB FMAs whose input is a plain vector load
 * (no shuffles: the lanes are channels, so a 14-pixel row fills every lane
 * where the band kernel's pixel vectors waste 2 of 16).  Each accumulator
 * sums its taps in a fixed order (ky, then kx): results do not depend on
 * the blocking. */

#include "isa_build.h"
#ifndef LC_DWC_MAX_NB
#define LC_DWC_MAX_NB 8
#endif
/* Widest kernel that runs the sliding window (0: none); the ISA's choice,
 * by its register count: the window is NB + KW - 1 vectors beside NB
 * accumulators.  AVX2's 16 registers hold no useful window (NB = 4 would
 * leave the FMAs latency-bound), so it keeps one load per FMA. */
#ifndef LC_DWC_SLIDE_MAX_KW
#define LC_DWC_SLIDE_MAX_KW 0
#endif
#define LC_DWC_INLINE static LC_ALWAYS_INLINE
#define LC_DWC_UNROLL LC_UNROLL_16

/* Pixels [ox, ox + NB) of the row; SW: the stride when a constant, else 0;
 * KW: the kernel width when a constant (stride 1, dilation 1), else 0. */
LC_DWC_INLINE void LC_CAT(LC_DWC_NAME, _block)(float *out, size_t ox, const float *const *rows,
                                               size_t stride, size_t dil, const float *w,
                                               size_t kH, size_t kW, LC_V vb, int clamp,
                                               LC_V vlo, LC_V vhi, const int NB, const int SW,
                                               const int KW) {
    /* SW > 0: the stride as a constant, so the NB loads of a tap are one
     * base register plus constant offsets (not NB index registers) */
    const size_t L = LC_VLANES, ps = (SW > 0 ? (size_t)SW : stride) * L, ts = dil * L;
    LC_V acc[LC_DWC_MAX_NB];
    LC_DWC_UNROLL
    for (int i = 0; i < NB; i++) acc[i] = vb;
    if (KW > 0) {
        /* stride 1, dilation 1: tap kx of pixel i reads pixel i + kx, so a
         * kernel row needs NB + KW - 1 input vectors, each loaded once and
         * kept in registers across the taps that read it (a sliding
         * window), instead of one load per FMA: the loads were the bound
         * (NB + 1 per NB FMAs).  Same tap order (ky, then kx) as below. */
        for (size_t ky = 0; ky < kH; ky++) {
            const float *p = rows[ky] + ox * L;
            const float *wr = w + ky * (size_t)KW * L;
            LC_V win[LC_DWC_MAX_NB + LC_DWC_SLIDE_MAX_KW - 1];
            LC_DWC_UNROLL
            for (int j = 0; j < NB - 1; j++) win[j] = LC_VLOAD(p + (size_t)j * L);
            LC_DWC_UNROLL
            for (int kx = 0; kx < KW; kx++) {
                const LC_V wv = LC_VLOAD(wr + (size_t)kx * L);
                win[kx + NB - 1] = LC_VLOAD(p + (size_t)(kx + NB - 1) * L);
                LC_DWC_UNROLL
                for (int i = 0; i < NB; i++) acc[i] = LC_VFMA(acc[i], wv, win[i + kx]);
            }
        }
        kH = 0; /* done: the generic loop below is skipped */
    }
    for (size_t ky = 0; ky < kH; ky++) {
        const float *p = rows[ky] + ox * ps;
        const float *wr = w + ky * kW * L;
        for (size_t kx = 0; kx < kW; kx++) {
            const LC_V wv = LC_VLOAD(wr + kx * L);
            const float *q = p + kx * ts;
            LC_DWC_UNROLL
            for (int i = 0; i < NB; i++) acc[i] = LC_VFMA(acc[i], wv, LC_VLOAD(q + (size_t)i * ps));
        }
    }
    LC_DWC_UNROLL
    for (int i = 0; i < NB; i++) {
        LC_V y = acc[i];
        if (clamp) y = LC_VCLAMP(y, vlo, vhi);
        LC_VSTORE(out + (ox + (size_t)i) * L, y);
    }
}

void LC_DWC_NAME(float *out, size_t n, const float *const *rows, size_t stride, size_t dil,
                 const float *w, size_t kH, size_t kW, const float *bias,
                 const lc_epilogue *ep) {
    const LC_V vb = LC_VLOAD(bias), vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    const int clamp = ep->clamp;
    /* the sliding-window kernels: 5 and 7 wide, stride and dilation 1, on
     * ISAs with the registers for the window beside the accumulators */
    const int slide = LC_DWC_SLIDE_MAX_KW > 1 && stride == 1 && dil == 1 &&
                              (kW == 5 || kW == 7) && (int)kW <= LC_DWC_SLIDE_MAX_KW
                          ? (int)kW
                          : 0;
    /* blocks of equal size (14 = 7 + 7 with 8 at most, not 8 + 6): the
     * last is never a short one bound by the FMA latency */
    const size_t nblocks = (n + LC_DWC_MAX_NB - 1) / LC_DWC_MAX_NB;
    size_t ox = 0;
    for (size_t b = 0; b < nblocks; b++) {
        const size_t nb = (n - ox) / (nblocks - b);
#define LC_DWC_CASE(NB)                                                                        \
    case NB:                                                                                   \
        if (slide == 7)                                                                        \
            LC_CAT(LC_DWC_NAME, _block)(out, ox, rows, 1, 1, w, kH, 7, vb, clamp, vlo, vhi,    \
                                        NB, 1, 7);                                             \
        else if (slide == 5)                                                                   \
            LC_CAT(LC_DWC_NAME, _block)(out, ox, rows, 1, 1, w, kH, 5, vb, clamp, vlo, vhi,    \
                                        NB, 1, 5);                                             \
        else if (stride == 1)                                                                  \
            LC_CAT(LC_DWC_NAME, _block)(out, ox, rows, 1, dil, w, kH, kW, vb, clamp, vlo, vhi, \
                                        NB, 1, 0);                                             \
        else if (stride == 2)                                                                  \
            LC_CAT(LC_DWC_NAME, _block)(out, ox, rows, 2, dil, w, kH, kW, vb, clamp, vlo, vhi, \
                                        NB, 2, 0);                                             \
        else                                                                                   \
            LC_CAT(LC_DWC_NAME, _block)(out, ox, rows, stride, dil, w, kH, kW, vb, clamp, vlo, \
                                        vhi, NB, 0, 0);                                        \
        break;
        switch (nb) {
            LC_DWC_CASE(1) LC_DWC_CASE(2) LC_DWC_CASE(3) LC_DWC_CASE(4)
            LC_DWC_CASE(5) LC_DWC_CASE(6) LC_DWC_CASE(7)
#if LC_DWC_MAX_NB > 8
            LC_DWC_CASE(8) LC_DWC_CASE(9) LC_DWC_CASE(10) LC_DWC_CASE(11) LC_DWC_CASE(12)
            LC_DWC_CASE(13) default: LC_DWC_CASE(14)
#else
            default: LC_DWC_CASE(8)
#endif
        }
#undef LC_DWC_CASE
        ox += nb;
    }
}

void LC_CAT(LC_DWC_NAME, _interleave)(float *dst, const float *const *src, size_t off,
                                      size_t n) {
    const size_t L = LC_VLANES;
    size_t x = 0;
    for (; x + L <= n; x += L) {
        LC_V v[LC_VLANES];
        for (size_t c = 0; c < L; c++) v[c] = LC_VLOAD(src[c] + off + x);
        LC_DWC_TRANSPOSE(v);
        for (size_t i = 0; i < L; i++) LC_VSTORE(dst + (x + i) * L, v[i]);
    }
    if (x < n) {
        /* the last n - x pixels: partial loads, whole pixel vectors stored */
        LC_V v[LC_VLANES];
        for (size_t c = 0; c < L; c++) v[c] = LC_VLOAD_PART(src[c] + off + x, n - x);
        LC_DWC_TRANSPOSE(v);
        /* unrolled with a test per vector: a plain loop became a spill of
         * v to the stack and a memcpy call (GCC), a quarter of the time */
        LC_DWC_UNROLL
        for (size_t i = 0; i < L; i++)
            if (i < n - x) LC_VSTORE(dst + (x + i) * L, v[i]);
    }
}

void LC_CAT(LC_DWC_NAME, _deinterleave)(float *const *dst, size_t off, const float *src,
                                        size_t n) {
    const size_t L = LC_VLANES;
    size_t x = 0;
    for (; x + L <= n; x += L) {
        LC_V v[LC_VLANES];
        for (size_t i = 0; i < L; i++) v[i] = LC_VLOAD(src + (x + i) * L);
        LC_DWC_TRANSPOSE(v);
        for (size_t c = 0; c < L; c++) LC_VSTORE(dst[c] + off + x, v[c]);
    }
    if (x < n) {
        /* the last n - x pixels: whole pixel vectors loaded, partial stores */
        LC_V v[LC_VLANES];
        for (size_t i = 0; i < L; i++) v[i] = i < n - x ? LC_VLOAD(src + (x + i) * L) : LC_VSET1(0.0f);
        LC_DWC_TRANSPOSE(v);
        for (size_t c = 0; c < L; c++) LC_VSTORE_PART(dst[c] + off + x, v[c], n - x);
    }
}

#undef LC_DWC_INLINE
#undef LC_DWC_MAX_NB
#undef LC_DWC_SLIDE_MAX_KW
#undef LC_DWC_UNROLL
#undef LC_DWC_NAME
