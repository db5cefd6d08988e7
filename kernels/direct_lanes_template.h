/* The direct convolution kernel with output channels in the vector lanes
 * (contract: lc_dl_kernel_fn in include/leanconv/ukernels.h; driver:
 * kernels/direct_lanes.c).  R output pixels of one row times NV vectors of
 * output channels: R x NV named accumulators held over the whole
 * (channel, ky, kx) loop; per tap NV weight vectors are loaded and R input
 * pixels broadcast straight from the input rows (no patch unwrapping), so
 * strided layers and the 3-channel stem keep every lane full.  The pixels
 * are at any offsets (a block may run on past the end of an output row).
 * A call of n < R pixels runs a copy of the body with n fixed (the switch at
 * the end): only n pixels are loaded, multiplied and stored.  A 3 x 3
 * kernel runs a copy with kH and kW fixed too, its 9 taps a channel
 * unrolled: ResNet-18's 3x3/2 64>128@56 and 128>256@28 ran 3-5% faster on
 * an Intel Xeon (AVX-512, interleaved against the loops) with kx unrolled,
 * and 5-8% faster again with ky too.  Not the stem's 7 x 7: its 7 kx
 * unrolled, the stem ran ~10% slower there.  A 1 x 1 call (tap mode's,
 * kernels/tap_lanes.c: one tap a call) runs a copy with the tap loops gone:
 * deeplabv3's ASPP centre tap alone (960>256 @14, one tap live) 0.98 -> 0.83
 * ms (Intel Xeon, 1 thread).  The prefetch of the driver's
 * next weights (g->pf) is a copy of its own: the check in every channel's
 * step cost 3-5% on the layers that do not prefetch (3x3/2 64>128@56 and
 * 128>256@28, the stem).  On an Intel Xeon (one thread) this kernel alone,
 * driven over the layers' own pixel blocks and padded rows by a standalone
 * harness, ran 3x3/2 64>128@56, 128>256@28 and the stem at 95%, 97% and 95%
 * of the FMA peak on AVX-512 (so the layers' gap to the peak is the
 * driver's: the tile's transpose into NCHW planes and the padded copy), but
 * at 79%, 80% and 77% on AVX2 (6 x 16), with its data in L1 too (8
 * channels: 73%), where llvm-mca expects the peak: each kernel row's
 * addresses were rebuilt from the channel and row indices (LC_DL_STEPPED
 * fixes that, see the loop).  The kernel column step (g->xts, 1 without
 * dilation) as a constant in the 3 x 3 copy (the taps' offsets folded into
 * the loads) did not change that.  The stem's 7 x 7 as constant bounds (a
 * copy like the 3 x 3 one) ran at 82% (AVX-512).  On an AMD Zen 4 (AVX2
 * forced, 2 vCPUs at load ~9) the 7 x 7 as constant bounds with kx fully
 * unrolled ran the stem's blocks at 60% where the loop runs 76%
 * (bench/dl_kernel_peak.py --isa avx2).  There this kernel called from C on
 * one block ran as fast as a standalone loop of the same shape (2 loads, 6
 * indexed broadcasts, 12 FMAs a tap; 80% of the peak under that load), and
 * the GEMM 6 x 16 at 99% (bench/ukernel_peak.py --k 147); segments of
 * 32-256 pixels, and skipping the transpose and the padded copy, moved the
 * layers 0-8% (interleaved, thread CPU time).  The AVX-512 kernels run the
 * same blocks at 88-92% there (both FMA peaks equal on Zen 4), with half the
 * loads and loop instructions a multiply-add: likely why, not proven (no
 * PMU in the VM).
 *
 * The including file defines the vector vocabulary of gemm_template.h
 * (LC_V, LC_VL, LC_VZERO, LC_VSET1, LC_VLOADU, LC_VSTOREU, LC_VFMA, LC_VMAX,
 * LC_VMIN) and
 *   LC_DL_NV (1-4), LC_DL_R (1-12), LC_DL_NAME,
 * optionally LC_DL_STEPPED 1 (the loops' addressing, see there). */
#define LC_DL_CW (LC_DL_NV * LC_VL)
#ifndef LC_DL_STEPPED
#define LC_DL_STEPPED 0
#endif

#ifndef LC_DL_TEMPLATE_ONCE
#define LC_DL_TEMPLATE_ONCE
#define LC_DL_REP4(X) X(0) X(1) X(2) X(3)
#define LC_DL_REP6(X) LC_DL_REP4(X) X(4) X(5)
#define LC_DL_REP8(X) LC_DL_REP6(X) X(6) X(7)
#define LC_DL_REP12(X) LC_DL_REP8(X) X(8) X(9) X(10) X(11)
#define LC_DL_REP(n) LC_CAT(LC_DL_REP, n)
#endif

static LC_ALWAYS_INLINE void LC_CAT(LC_DL_NAME, _body)(const size_t n, const float *x,
                                                        const float *w, float *t,
                                                        const float *bias,
                                                        const lc_dl_geom *g,
                                                        const lc_epilogue *ep,
                                                        unsigned flags, const size_t kH,
                                                        const size_t kW, const int pf) {
    const size_t VL = LC_VL, CW = LC_DL_CW, ldt = g->ldt;
    /* named accumulators, not an array: GCC at -O2 keeps an array's
     * registers but also stores them back every step */
    const LC_V b0 = bias ? LC_VLOADU(bias) : LC_VZERO();
    const LC_V b1 = bias && LC_DL_NV > 1 ? LC_VLOADU(bias + VL) : LC_VZERO();
    const LC_V b2 = bias && LC_DL_NV > 2 ? LC_VLOADU(bias + 2 * VL) : LC_VZERO();
    const LC_V b3 = bias && LC_DL_NV > 3 ? LC_VLOADU(bias + 3 * VL) : LC_VZERO();
#define LC_DL_INIT(j) LC_V a##j##_0 = b0, a##j##_1 = b1, a##j##_2 = b2, a##j##_3 = b3;
    LC_DL_REP(LC_DL_R)(LC_DL_INIT)
#undef LC_DL_INIT
    if (flags & LC_GEMM_ACCUMULATE) {
#define LC_DL_LOAD(j)                                                                         \
    if (j < n) {                                                                              \
        a##j##_0 = LC_VLOADU(t + j * VL);                                                     \
        if (LC_DL_NV > 1) a##j##_1 = LC_VLOADU(t + ldt + j * VL);                             \
        if (LC_DL_NV > 2) a##j##_2 = LC_VLOADU(t + 2 * ldt + j * VL);                         \
        if (LC_DL_NV > 3) a##j##_3 = LC_VLOADU(t + 3 * ldt + j * VL);                         \
    }
        LC_DL_REP(LC_DL_R)(LC_DL_LOAD)
#undef LC_DL_LOAD
    }
    /* the pixels' offsets, in registers for the whole loop */
#define LC_DL_OFF(j) const size_t off##j = j < n ? g->xoff[j] : 0;
    LC_DL_REP(LC_DL_R)(LC_DL_OFF)
#undef LC_DL_OFF
#define LC_DL_STEP(j)                                                                         \
    if (j < n) {                                                                              \
        const LC_V xb = LC_VSET1(xr[off##j]);                                                 \
        a##j##_0 = LC_VFMA(w0, xb, a##j##_0);                                                 \
        if (LC_DL_NV > 1) a##j##_1 = LC_VFMA(w1, xb, a##j##_1);                               \
        if (LC_DL_NV > 2) a##j##_2 = LC_VFMA(w2, xb, a##j##_2);                               \
        if (LC_DL_NV > 3) a##j##_3 = LC_VFMA(w3, xb, a##j##_3);                               \
    }
    /* one tap: the weights at wr times the pixels at xr + off_j */
#define LC_DL_TAP                                                                             \
    {                                                                                         \
        const LC_V w0 = LC_VLOADU(wr);                                                        \
        LC_V w1 = w0, w2 = w0, w3 = w0;                                                       \
        if (LC_DL_NV > 1) w1 = LC_VLOADU(wr + VL);                                            \
        if (LC_DL_NV > 2) w2 = LC_VLOADU(wr + 2 * VL);                                        \
        if (LC_DL_NV > 3) w3 = LC_VLOADU(wr + 3 * VL);                                        \
        LC_DL_REP(LC_DL_R)(LC_DL_STEP)                                                        \
    }
#if LC_DL_STEPPED
    /* The channel's input and weights as pointers stepped once a channel,
     * a kernel row's as an offset from them, its taps up to an end pointer
     * (no counter).  Rebuilding each row's addresses from c * xcs + ky * xrs
     * (the #else; with six pixel offsets live, x86-64's 16 general
     * registers do not hold the geometry: reloads from g and the stack, two
     * multiplies a row) held AVX2 6 x 16 at 76-83% of the FMA peak even with
     * all data in L1, though its kx loop was clean (2 loads, 6 broadcasts,
     * 12 FMAs a tap).  Why exactly is not pinned down (no PMU in the VM
     * measured on).  The kernel alone on the layers' shapes (Intel Xeon, 1
     * thread, AVX2): stem 7 x 7 78% -> 92%, 3 x 3 over 64 channels 82% ->
     * 97%, 7 x 7 over 8 channels in L1 76% -> 93%.  Rows stepped by a
     * pointer as well (xrow += xrs) were as fast on AVX2.
     * AVX-512 keeps the #else: stepped, GCC's code ran 6 x 64's 3 x 3 copy
     * on 5-pixel calls (most of the 3x3/2 layers' blocks) at 90% where the
     * #else runs 96% (3x3/2 64>128@56 and 128>256@28 4% slower as layers;
     * every other form tried 86-90%, though the loops' code differs by a
     * few address instructions), though it ran the stem on 12 x 32 at 94%
     * (#else 89%) and 3x3/2 256>512@14, which prefetches, 13% faster. */
    const size_t xts = g->xts, xrs = g->xrs, rowW = kW * CW;
    const float *xc = x, *wc = w;
    for (size_t c = 0; c < g->C; c++, xc += g->xcs, wc += g->wcs) {
        /* a share of the driver's next weights, into L2 (locality 2) */
        if (pf)
            for (size_t i = 0; i < g->pf_lines; i++)
                __builtin_prefetch(g->pf + (c * g->pf_lines + i) * 64, 0, 2);
        for (size_t ky = 0; ky < kH; ky++) {
            const float *xr = xc + ky * xrs, *wr = wc + ky * rowW, *const wend = wr + rowW;
            for (; wr != wend; xr += xts, wr += CW) LC_DL_TAP
        }
    }
#else
    for (size_t c = 0; c < g->C; c++) {
        /* a share of the driver's next weights, into L2 (locality 2) */
        if (pf)
            for (size_t i = 0; i < g->pf_lines; i++)
                __builtin_prefetch(g->pf + (c * g->pf_lines + i) * 64, 0, 2);
        for (size_t ky = 0; ky < kH; ky++) {
            const float *xr = x + c * g->xcs + ky * g->xrs;
            const float *wr = w + c * g->wcs + ky * kW * CW;
            for (size_t kx = 0; kx < kW; kx++, xr += g->xts, wr += CW) LC_DL_TAP
        }
    }
#endif
#undef LC_DL_TAP
#undef LC_DL_STEP
    if ((flags & LC_GEMM_FINAL) && ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const LC_V lo = LC_VSET1(ep->lo), hi = LC_VSET1(ep->hi);
#define LC_DL_CLAMP(j)                                                                        \
    a##j##_0 = LC_VMIN(hi, LC_VMAX(lo, a##j##_0));                                            \
    a##j##_1 = LC_VMIN(hi, LC_VMAX(lo, a##j##_1));                                            \
    a##j##_2 = LC_VMIN(hi, LC_VMAX(lo, a##j##_2));                                            \
    a##j##_3 = LC_VMIN(hi, LC_VMAX(lo, a##j##_3));
        LC_DL_REP(LC_DL_R)(LC_DL_CLAMP)
#undef LC_DL_CLAMP
    }
#define LC_DL_STORE(j)                                                                        \
    if (j < n) {                                                                              \
        LC_VSTOREU(t + j * VL, a##j##_0);                                                     \
        if (LC_DL_NV > 1) LC_VSTOREU(t + ldt + j * VL, a##j##_1);                             \
        if (LC_DL_NV > 2) LC_VSTOREU(t + 2 * ldt + j * VL, a##j##_2);                         \
        if (LC_DL_NV > 3) LC_VSTOREU(t + 3 * ldt + j * VL, a##j##_3);                         \
    }
    LC_DL_REP(LC_DL_R)(LC_DL_STORE)
#undef LC_DL_STORE
}

void LC_DL_NAME(size_t n, const float *x, const float *w, float *t, const float *bias,
                const lc_dl_geom *g, const lc_epilogue *ep, unsigned flags) {
    switch (n) {
#define LC_DL_CASE(j)                                                                         \
    case j + 1:                                                                               \
        if (g->kH == 3 && g->kW == 3 && g->pf_lines)                                          \
            LC_CAT(LC_DL_NAME, _body)(j + 1, x, w, t, bias, g, ep, flags, 3, 3, 1);           \
        else if (g->kH == 3 && g->kW == 3)                                                    \
            LC_CAT(LC_DL_NAME, _body)(j + 1, x, w, t, bias, g, ep, flags, 3, 3, 0);           \
        else if (g->kH == 1 && g->kW == 1 && !g->pf_lines)                                    \
            LC_CAT(LC_DL_NAME, _body)(j + 1, x, w, t, bias, g, ep, flags, 1, 1, 0);           \
        else if (g->pf_lines)                                                                 \
            LC_CAT(LC_DL_NAME, _body)(j + 1, x, w, t, bias, g, ep, flags, g->kH, g->kW, 1);   \
        else                                                                                  \
            LC_CAT(LC_DL_NAME, _body)(j + 1, x, w, t, bias, g, ep, flags, g->kH, g->kW, 0);   \
        break;
        LC_DL_REP(LC_DL_R)(LC_DL_CASE)
#undef LC_DL_CASE
    default: break;
    }
}

#undef LC_DL_CW
#undef LC_DL_STEPPED
#undef LC_DL_NV
#undef LC_DL_R
#undef LC_DL_NAME
