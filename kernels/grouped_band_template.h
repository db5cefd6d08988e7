/* Grouped band kernel (lc_grouped_band_fn in include/leanconv/ukernels.h):
 * the depthwise band kernel's padded, phase-split rows (dw_band_template.h),
 * Cg input channels of them, and MB output channels of a group accumulated
 * together, so that each input vector loaded feeds MB multiply-adds with
 * broadcast weights.  Written once over the vector vocabulary of
 * depthwise_template.h (LC_V, LC_VLANES, LC_VLOAD, LC_VSTORE,
 * LC_VSTORE_PART, LC_VSET1, LC_VFMA, LC_VCLAMP) and included by
 * kernels/<isa>/depthwise.c after it defines LC_GB_NAME, LC_GB_ACC (the
 * accumulators a block keeps in the ISA's registers, next to its VB input
 * vectors and a weight) and LC_GB_MAX_VB (output vectors a block takes).
 *
 * Register blocking: one output row, VB output vectors (the row's vectors
 * shared evenly among blocks of at most LC_GB_MAX_VB) x MB output channels
 * (LC_GB_ACC / VB, at most 8; the group's rest in blocks of 4, 2, 1).  Every accumulator sums its
 * taps in the fixed order (c, ky, kx), so results do not depend on the
 * blocking, the ISA's width or the thread count. */

#include "isa_build.h"
#define LC_GB_INLINE static LC_ALWAYS_INLINE
#define LC_GB_UNROLL LC_UNROLL_8

/* Outputs [ox, ox + VB*L) (stored up to column n) of one row, output
 * channels [0, MB): weights w + m*wstride, bias[m] (bias may be NULL). */
LC_GB_INLINE void LC_CAT(LC_GB_NAME, _block)(float *out, size_t out_plane, size_t ox, size_t n,
                                              const float *p, size_t chan_step, size_t cg,
                                              size_t tap_step, const size_t *coff,
                                              const float *w, size_t wstride, size_t kH,
                                              size_t kW, const float *bias, int clamp, LC_V vlo,
                                              LC_V vhi, const int MB, const int VB) {
    const size_t L = LC_VLANES;
    LC_V acc[8 * LC_GB_MAX_VB];
    LC_GB_UNROLL
    for (int m = 0; m < MB; m++) {
        const LC_V b = LC_VSET1(bias ? bias[m] : 0.0f);
        LC_GB_UNROLL
        for (int v = 0; v < VB; v++) acc[m * VB + v] = b;
    }
    const float *wt = w; /* tap (c, ky, kx) of output channel m: wt[m * wstride] */
    for (size_t c = 0; c < cg; c++) {
        const float *pc = p + c * chan_step + ox;
        for (size_t ky = 0; ky < kH; ky++) {
            const float *pr = pc + ky * tap_step;
            for (size_t kx = 0; kx < kW; kx++, wt++) {
                const float *q = pr + coff[kx];
                LC_V xv[LC_GB_MAX_VB];
                LC_GB_UNROLL
                for (int v = 0; v < VB; v++) xv[v] = LC_VLOAD(q + (size_t)v * L);
                LC_GB_UNROLL
                for (int m = 0; m < MB; m++) {
                    const LC_V wv = LC_VSET1(wt[(size_t)m * wstride]);
                    LC_GB_UNROLL
                    for (int v = 0; v < VB; v++)
                        acc[m * VB + v] = LC_VFMA(acc[m * VB + v], wv, xv[v]);
                }
            }
        }
    }
    LC_GB_UNROLL
    for (int m = 0; m < MB; m++) {
        LC_GB_UNROLL
        for (int v = 0; v < VB; v++) {
            LC_V y = acc[m * VB + v];
            if (clamp) y = LC_VCLAMP(y, vlo, vhi);
            const size_t at = ox + (size_t)v * L;
            float *o = out + (size_t)m * out_plane + at;
            if (at + L <= n) LC_VSTORE(o, y);
            else LC_VSTORE_PART(o, y, n - at);
        }
    }
}

#define LC_GB_CALL(MB, VB)                                                                     \
    LC_CAT(LC_GB_NAME, _block)(out + m0 * out_plane, out_plane, ox, n, p, chan_step, cg,       \
                               tap_step, coff, w + m0 * wstride, wstride, kH, kW,              \
                               bias ? bias + m0 : NULL, clamp, vlo, vhi, MB, VB)

/* Output channels a block of VB vectors takes: as many as the ISA's
 * accumulators hold, at most 8 (a row of one or two vectors, 7 x 7 to
 * 28 x 28 images, then still has 8-16 independent FMA chains). */
#define LC_GB_MB(VB) (LC_GB_ACC / (VB) < 8 ? LC_GB_ACC / (VB) : 8)

/* Every output channel of the columns [ox, ox + VB*L): blocks of
 * LC_GB_MB(VB), then the rest in blocks of 4, 2, 1. */
#define LC_GB_CHANNELS(VB)                                                                     \
    {                                                                                          \
        size_t m0 = 0;                                                                         \
        for (; m0 + LC_GB_MB(VB) <= mg; m0 += LC_GB_MB(VB)) LC_GB_CALL(LC_GB_MB(VB), VB);      \
        if (LC_GB_MB(VB) > 4 && m0 + 4 <= mg) {                                                \
            LC_GB_CALL(4, VB);                                                                 \
            m0 += 4;                                                                           \
        }                                                                                      \
        if (LC_GB_MB(VB) > 2 && m0 + 2 <= mg) {                                                \
            LC_GB_CALL(2, VB);                                                                 \
            m0 += 2;                                                                           \
        }                                                                                      \
        if (m0 < mg) LC_GB_CALL(1, VB);                                                        \
    }

/* One output row's columns [ox, ox + vb*L), vb <= LC_GB_MAX_VB. */
static void LC_CAT(LC_GB_NAME, _cols)(float *out, size_t out_plane, size_t ox, size_t vb,
                                      size_t n, size_t mg, const float *p, size_t chan_step,
                                      size_t cg, size_t tap_step, const size_t *coff,
                                      const float *w, size_t kH, size_t kW, const float *bias,
                                      int clamp, LC_V vlo, LC_V vhi) {
    const size_t wstride = cg * kH * kW;
    switch (vb) {
    case 1: LC_GB_CHANNELS(1) break;
#if LC_GB_MAX_VB >= 2
    case 2: LC_GB_CHANNELS(2) break;
#endif
#if LC_GB_MAX_VB >= 3
    case 3: LC_GB_CHANNELS(3) break;
#endif
#if LC_GB_MAX_VB >= 4
    case 4: LC_GB_CHANNELS(4) break;
#endif
#if LC_GB_MAX_VB >= 5
    case 5: LC_GB_CHANNELS(5) break;
#endif
#if LC_GB_MAX_VB >= 6
    case 6: LC_GB_CHANNELS(6) break;
#endif
    default: break;
    }
}

void LC_GB_NAME(float *out, size_t out_plane, size_t ldo, size_t rows, size_t n, size_t mg,
                const float *p, size_t chan_step, size_t cg, size_t row_step, size_t tap_step,
                const size_t *coff, const float *w, size_t kH, size_t kW, const float *bias,
                const lc_epilogue *ep) {
    const size_t L = LC_VLANES;
    const LC_V vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    /* the row's vectors shared evenly among the fewest blocks that hold them
     * (AVX2's 7 vectors of 56 as 3 + 2 + 2, not 3 + 3 + 1: a block of one
     * vector would wait on its few accumulators' FMA latency) */
    const size_t nv = (n + L - 1) / L, blocks = (nv + LC_GB_MAX_VB - 1) / LC_GB_MAX_VB;
    for (size_t r = 0; r < rows; r++) {
        size_t ox = 0;
        for (size_t b = 0; b < blocks; b++) {
            const size_t vb = nv / blocks + (b < nv % blocks);
            LC_CAT(LC_GB_NAME, _cols)(out + r * ldo, out_plane, ox, vb, n, mg, p + r * row_step,
                                      chan_step, cg, tap_step, coff, w, kH, kW, bias, ep->clamp,
                                      vlo, vhi);
            ox += vb * L;
        }
    }
}

#undef LC_GB_CHANNELS
#undef LC_GB_CALL
#undef LC_GB_MB
#undef LC_GB_ACC
#undef LC_GB_INLINE
#undef LC_GB_UNROLL
#undef LC_GB_NAME
#undef LC_GB_MAX_VB
