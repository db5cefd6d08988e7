/* Depthwise band kernel (lc_dw_band_fn in include/leanconv/ukernels.h): any
 * kernel size, stride and dilation, over a zero-padded band whose every tap
 * is a unit-stride run (the driver stores a stride-s row as s phases).
 * Written once over the vector vocabulary of depthwise_template.h (LC_V,
 * LC_VLANES, LC_VLOAD, LC_VSTORE, LC_VSTORE_PART, LC_VSET1, LC_VFMA, LC_VADD,
 * LC_VCLAMP) and included by kernels/<isa>/depthwise.c after it defines
 * LC_DWB_NAME.
 *
 * Register blocking: RB output rows x VB output vectors (8 accumulators, the
 * FMA latency of two pipes covered), one weight broadcast per 8 FMAs, every
 * load a plain vector load.  Each accumulator sums its taps in a fixed order
 * (ky, then kx), so results do not depend on the blocking. */

#include "isa_build.h"
#define LC_DWB_INLINE static LC_ALWAYS_INLINE
#define LC_DWB_UNROLL LC_UNROLL_8

/* Outputs [ox, ox + VB*L) of rows [0, RB) (stored up to column n).  KW > 0:
 * the kernel is KW wide with dilation 1 and its taps are at kx (SW 1) or at
 * phase kx % 2, position kx / 2 (SW 2, phase 1 at p + wq): the tap loop is
 * unrolled with constant offsets and the row's weights stay in registers.
 * KW == 0: any kernel, taps at coff[kx].
 * An ISA may define LC_DWB_SHIFT(hi, lo, k) (lanes k .. k+L-1 of the 2L
 * floats lo:hi, k a constant 0 .. L): then the taps come from VB + 1 vector
 * loads per phase at the block's (aligned) start and shifts, not from KW*VB
 * unaligned loads; this reads up to one vector past the block, which the
 * band's slack holds. */
LC_DWB_INLINE void LC_CAT(LC_DWB_NAME, _block)(float *out, size_t ldo, size_t ox, size_t n,
                                               const float *p, size_t row_step, size_t tap_step,
                                               const size_t *coff, size_t wq, const float *w,
                                               size_t kH, size_t kW, LC_V vb, int clamp,
                                               LC_V vlo, LC_V vhi, const int RB, const int VB,
                                               const int KW, const int SW) {
    const size_t L = LC_VLANES, rsb = row_step * sizeof(float);
    /* blocks of <= 4 accumulators (the last rows of a band) would be bound by
     * the FMA latency: their unrolled taps alternate between two sets, odd kx
     * into acc2, added at the end */
    const int split = KW > 0 && RB * VB <= 4;
    LC_V acc[8], acc2[8];
    LC_DWB_UNROLL
    for (int i = 0; i < RB * VB; i++) {
        acc[i] = vb;
        acc2[i] = LC_VSET1(0.0f);
    }
    for (size_t ky = 0; ky < kH; ky++) {
        const float *pr = p + ky * tap_step + ox;
        const float *wr = w + ky * kW;
        if (KW > 0) {
            LC_V wv[8]; /* KW <= 7: a fixed size, not a VLA the compiler keeps in memory */
            LC_DWB_UNROLL
            for (int kx = 0; kx < KW; kx++) wv[kx] = LC_VSET1(wr[kx]);
            /* row r at b0 + r*rsb bytes, written as base + index*{1,2,4} so
             * that every load is one addressing mode of three bases and
             * rsb (no per-row offsets to keep, or spill, in registers) */
            const char *b0 = (const char *)pr, *b2 = b0 + 2 * rsb, *b3 = b0 + 3 * rsb;
            LC_DWB_UNROLL
            for (int r = 0; r < RB; r++) {
                const char *qb = r == 0 ? b0 : r == 1 ? b0 + rsb : r == 2 ? b0 + 2 * rsb
                               : r == 3 ? b3 : r == 4 ? b0 + 4 * rsb : r == 5 ? b3 + 2 * rsb
                               : r == 6 ? b2 + 4 * rsb : b3 + 4 * rsb;
                const float *q = (const float *)qb;
#ifdef LC_DWB_SHIFT
                {
                    /* taps from VB + 1 aligned loads per phase, shifted in
                     * registers: tap kx is phase kx % SW, shifted kx / SW */
                    LC_V raw[2][3];
                    LC_DWB_UNROLL
                    for (int ph = 0; ph < SW; ph++) {
                        LC_DWB_UNROLL
                        for (int v = 0; v <= VB; v++)
                            raw[ph][v] = LC_VLOAD(q + (size_t)ph * wq + (size_t)v * L);
                    }
                    LC_DWB_UNROLL
                    for (int kx = 0; kx < KW; kx++) {
                        LC_DWB_UNROLL
                        for (int v = 0; v < VB; v++) {
                            LC_V *a = split && (kx & 1) ? acc2 : acc;
                            a[r * VB + v] = LC_VFMA(a[r * VB + v], wv[kx],
                                                    LC_DWB_SHIFT(raw[kx % SW][v + 1],
                                                                 raw[kx % SW][v], kx / SW));
                        }
                    }
                    continue;
                }
#endif
                LC_DWB_UNROLL
                for (int kx = 0; kx < KW; kx++) {
                    const float *t = q + (SW == 1 ? (size_t)kx : (size_t)(kx & 1) * wq + (size_t)(kx >> 1));
                    LC_DWB_UNROLL
                    for (int v = 0; v < VB; v++) {
                        LC_V *a = split && (kx & 1) ? acc2 : acc;
                        a[r * VB + v] = LC_VFMA(a[r * VB + v], wv[kx], LC_VLOAD(t + (size_t)v * L));
                    }
                }
            }
            continue;
        }
        for (size_t kx = 0; kx < kW; kx++) {
            const LC_V wv = LC_VSET1(wr[kx]);
            const float *q = pr + coff[kx];
            LC_DWB_UNROLL
            for (int r = 0; r < RB; r++) {
                LC_DWB_UNROLL
                for (int v = 0; v < VB; v++)
                    acc[r * VB + v] = LC_VFMA(acc[r * VB + v], wv,
                                              LC_VLOAD(q + (size_t)r * row_step + (size_t)v * L));
            }
        }
    }
    if (split) {
        LC_DWB_UNROLL
        for (int i = 0; i < RB * VB; i++) acc[i] = LC_VADD(acc[i], acc2[i]);
    }
    LC_DWB_UNROLL
    for (int r = 0; r < RB; r++) {
        LC_DWB_UNROLL
        for (int v = 0; v < VB; v++) {
            LC_V y = acc[r * VB + v];
            if (clamp) y = LC_VCLAMP(y, vlo, vhi);
            float *o = out + (size_t)r * ldo + ox + (size_t)v * L;
            const size_t at = ox + (size_t)v * L;
            if (at + L <= n) LC_VSTORE(o, y);
            else LC_VSTORE_PART(o, y, n - at);
        }
    }
}

#define LC_DWB_CALL(RB, VB, KW, SW)                                                            \
    LC_CAT(LC_DWB_NAME, _block)(out + r_ * ldo, ldo, ox, n, p + r_ * row_step, row_step,      \
                                tap_step, coff, wq, w, kH, kW, vb, clamp, vlo, vhi, RB, VB, KW, SW)

/* Columns [ox, ox + VB*L) of rows [0, rows): blocks of RB rows (VB == 1: RB 8
 * then 4; VB == 2: RB 4), then 2 and 1, with the taps unrolled for KW, SW. */
#define LC_DWB_COLS(VB, KW, SW)                                                                \
    {                                                                                          \
        size_t r_ = 0;                                                                         \
        if ((VB) == 1)                                                                         \
            for (; r_ + 8 <= rows; r_ += 8) LC_DWB_CALL(8, 1, KW, SW);                         \
        for (; r_ + 4 <= rows; r_ += 4) LC_DWB_CALL(4, VB, KW, SW);                            \
        if (r_ + 2 <= rows) {                                                                  \
            LC_DWB_CALL(2, VB, KW, SW);                                                        \
            r_ += 2;                                                                           \
        }                                                                                      \
        if (r_ < rows) LC_DWB_CALL(1, VB, KW, SW);                                             \
    }

/* The whole band for one (KW, SW): two vectors wide while two vectors of
 * outputs are left, then the last (full or partial) vector. */
#define LC_DWB_BAND(KW, SW)                                                                    \
    {                                                                                          \
        size_t ox = 0;                                                                         \
        for (; ox + L < n; ox += 2 * L) LC_DWB_COLS(2, KW, SW)                                 \
        if (ox < n) LC_DWB_COLS(1, KW, SW)                                                     \
    }

void LC_DWB_NAME(float *out, size_t ldo, size_t rows, size_t n, const float *p,
                 size_t row_step, size_t tap_step, const size_t *coff, const float *w,
                 size_t kH, size_t kW, float bias, const lc_epilogue *ep) {
    const size_t L = LC_VLANES;
    const LC_V vb = LC_VSET1(bias), vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    const int clamp = ep->clamp;
    /* the tap layouts of dilation 1 with stride 1 (coff[kx] = kx) or stride
     * 2 (coff[kx] = (kx % 2)*wq + kx / 2) get unrolled copies for the
     * kernel widths networks use */
    const size_t wq = kW > 1 ? coff[1] : 0;
    int s1 = 1, s2 = kW > 1;
    for (size_t kx = 0; kx < kW; kx++) {
        s1 &= coff[kx] == kx;
        s2 &= coff[kx] == (kx & 1) * wq + kx / 2;
    }
    if (s1 && kW == 3) LC_DWB_BAND(3, 1)
    else if (s1 && kW == 5) LC_DWB_BAND(5, 1)
    else if (s1 && kW == 7) LC_DWB_BAND(7, 1)
    else if (s2 && kW == 3) LC_DWB_BAND(3, 2)
    else if (s2 && kW == 5) LC_DWB_BAND(5, 2)
    else if (s2 && kW == 7) LC_DWB_BAND(7, 2)
    else LC_DWB_BAND(0, 0)
}

#undef LC_DWB_BAND
#undef LC_DWB_COLS
#undef LC_DWB_CALL
#undef LC_DWB_INLINE
#undef LC_DWB_UNROLL
#undef LC_DWB_NAME
