/* The 1 x 1 kernel with output channels in the vector lanes (contract:
 * lc_pw_kernel_fn in include/leanconv/ukernels.h; driver:
 * kernels/pointwise_lanes.c).  n <= R consecutive pixels of the NCHW input
 * times NV vectors of output channels: R x NV named accumulators held over
 * the k input channels; per channel NV weight vectors are loaded and the R
 * pixels broadcast from one contiguous run of the input plane (constant
 * displacements off one pointer: no offset table, unlike the direct_lanes
 * kernel, whose 12 offsets did not fit the general registers beside the
 * loop's pointers).  A call of n < R pixels runs a copy of the body with n
 * fixed (the switch at the end), and a call with LC_PW_PREFETCH a copy that
 * asks for the weights LC_PW_PF_AHEAD channels ahead (into L1, a line at
 * a time): the driver sets it on the first call of each pass, whose weights
 * come from L3 in a model's run.  384>96 and 576>96 @14 ran 3-9% faster
 * inside MobileNetV2 with it (1 thread, interleaved against the plain
 * copy, Intel Xeon); the later calls, weights in L2, gained nothing more.
 *
 * The including file defines the vector vocabulary of gemm_template.h
 * (LC_V, LC_VL, LC_VZERO, LC_VSET1, LC_VLOADU, LC_VSTOREU, LC_VFMA, LC_VMAX,
 * LC_VMIN) and
 *   LC_PW_NV (1-4), LC_PW_R (1-12), LC_PW_NAME,
 *   LC_PW_ATTRS (optional) attributes of the kernel's body. */
#ifndef LC_PW_ATTRS
#define LC_PW_ATTRS
#endif
#define LC_PW_CW (LC_PW_NV * LC_VL)

#ifndef LC_PW_TEMPLATE_ONCE
#define LC_PW_TEMPLATE_ONCE
#define LC_PW_REP4(X) X(0) X(1) X(2) X(3)
#define LC_PW_REP6(X) LC_PW_REP4(X) X(4) X(5)
#define LC_PW_REP7(X) LC_PW_REP6(X) X(6)
#define LC_PW_REP8(X) LC_PW_REP7(X) X(7)
#define LC_PW_REP12(X) LC_PW_REP8(X) X(8) X(9) X(10) X(11)
#define LC_PW_REP(n) LC_CAT(LC_PW_REP, n)
/* Channels ahead whose weights the prefetching copy (LC_PW_PREFETCH) asks
 * for: 4-16 KiB, a few hundred cycles of FMAs ahead of a load from L3. */
#define LC_PW_PF_AHEAD 16
#endif

static LC_ALWAYS_INLINE LC_PW_ATTRS void LC_CAT(LC_PW_NAME, _body)(const size_t n, size_t k, const float *x,
                                                        size_t ldx, const float *w, float *t,
                                                        size_t ldt, const float *bias,
                                                        const lc_epilogue *ep, unsigned flags,
                                                        const int pf) {
    const size_t VL = LC_VL, CW = LC_PW_CW;
    /* named accumulators, not an array: GCC at -O2 keeps an array's
     * registers but also stores them back every step */
    const LC_V b0 = bias ? LC_VLOADU(bias) : LC_VZERO();
    const LC_V b1 = bias && LC_PW_NV > 1 ? LC_VLOADU(bias + VL) : LC_VZERO();
    const LC_V b2 = bias && LC_PW_NV > 2 ? LC_VLOADU(bias + 2 * VL) : LC_VZERO();
    const LC_V b3 = bias && LC_PW_NV > 3 ? LC_VLOADU(bias + 3 * VL) : LC_VZERO();
#define LC_PW_INIT(j) LC_V a##j##_0 = b0, a##j##_1 = b1, a##j##_2 = b2, a##j##_3 = b3;
    LC_PW_REP(LC_PW_R)(LC_PW_INIT)
#undef LC_PW_INIT
    if (flags & LC_GEMM_ACCUMULATE) {
#define LC_PW_LOAD(j)                                                                         \
    if (j < n) {                                                                              \
        a##j##_0 = LC_VLOADU(t + j * VL);                                                     \
        if (LC_PW_NV > 1) a##j##_1 = LC_VLOADU(t + ldt + j * VL);                             \
        if (LC_PW_NV > 2) a##j##_2 = LC_VLOADU(t + 2 * ldt + j * VL);                         \
        if (LC_PW_NV > 3) a##j##_3 = LC_VLOADU(t + 3 * ldt + j * VL);                         \
    }
        LC_PW_REP(LC_PW_R)(LC_PW_LOAD)
#undef LC_PW_LOAD
    }
    /* the next call's input lines (LC_PW_PREFETCH_X): its pixels continue
     * this call's in every plane, one short run per plane -- as many streams
     * as channels, which the hardware prefetchers do not follow -- so each
     * line the previous layer left in another core's cache would otherwise
     * arrive as a miss of its own (see lc_pw_task) */
    const float *const xnext = (flags & LC_PW_PREFETCH_X) ? x + 2 * n - 1 : NULL;
    for (size_t c = 0; c < k; c++, w += CW) {
        const float *xc = x + c * ldx;
        if (pf && c + LC_PW_PF_AHEAD < k) {
            lc_prefetch_block(w + LC_PW_PF_AHEAD * CW, CW);
            if (xnext) LC_PREFETCH_LINES(xc + LC_PW_PF_AHEAD * ldx + n - 1, 1, 3);
        }
        if (xnext) LC_PREFETCH_LINES(xnext + c * ldx, 1, 3);
        const LC_V w0 = LC_VLOADU(w);
        LC_V w1 = w0, w2 = w0, w3 = w0;
        if (LC_PW_NV > 1) w1 = LC_VLOADU(w + VL);
        if (LC_PW_NV > 2) w2 = LC_VLOADU(w + 2 * VL);
        if (LC_PW_NV > 3) w3 = LC_VLOADU(w + 3 * VL);
#define LC_PW_STEP(j)                                                                         \
    if (j < n) {                                                                              \
        const LC_V xb = LC_VSET1(xc[j]);                                                       \
        a##j##_0 = LC_VFMA(w0, xb, a##j##_0);                                                 \
        if (LC_PW_NV > 1) a##j##_1 = LC_VFMA(w1, xb, a##j##_1);                               \
        if (LC_PW_NV > 2) a##j##_2 = LC_VFMA(w2, xb, a##j##_2);                               \
        if (LC_PW_NV > 3) a##j##_3 = LC_VFMA(w3, xb, a##j##_3);                               \
    }
        LC_PW_REP(LC_PW_R)(LC_PW_STEP)
#undef LC_PW_STEP
    }
    if ((flags & LC_GEMM_FINAL) && ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const LC_V lo = LC_VSET1(ep->lo), hi = LC_VSET1(ep->hi);
#define LC_PW_CLAMP(j)                                                                        \
    a##j##_0 = LC_VMIN(hi, LC_VMAX(lo, a##j##_0));                                            \
    a##j##_1 = LC_VMIN(hi, LC_VMAX(lo, a##j##_1));                                            \
    a##j##_2 = LC_VMIN(hi, LC_VMAX(lo, a##j##_2));                                            \
    a##j##_3 = LC_VMIN(hi, LC_VMAX(lo, a##j##_3));
        LC_PW_REP(LC_PW_R)(LC_PW_CLAMP)
#undef LC_PW_CLAMP
    }
#define LC_PW_STORE(j)                                                                        \
    if (j < n) {                                                                              \
        LC_VSTOREU(t + j * VL, a##j##_0);                                                     \
        if (LC_PW_NV > 1) LC_VSTOREU(t + ldt + j * VL, a##j##_1);                             \
        if (LC_PW_NV > 2) LC_VSTOREU(t + 2 * ldt + j * VL, a##j##_2);                         \
        if (LC_PW_NV > 3) LC_VSTOREU(t + 3 * ldt + j * VL, a##j##_3);                         \
    }
    LC_PW_REP(LC_PW_R)(LC_PW_STORE)
#undef LC_PW_STORE
}

LC_PW_ATTRS void LC_PW_NAME(size_t n, size_t k, const float *x, size_t ldx, const float *w,
                            float *t, size_t ldt, const float *bias, const lc_epilogue *ep,
                            unsigned flags) {
    switch (n) {
#define LC_PW_CASE(j)                                                                         \
    case j + 1:                                                                               \
        if (flags & LC_PW_PREFETCH)                                                           \
            LC_CAT(LC_PW_NAME, _body)(j + 1, k, x, ldx, w, t, ldt, bias, ep, flags, 1);        \
        else                                                                                  \
            LC_CAT(LC_PW_NAME, _body)(j + 1, k, x, ldx, w, t, ldt, bias, ep, flags, 0);        \
        break;
        LC_PW_REP(LC_PW_R)(LC_PW_CASE)
#undef LC_PW_CASE
    default: break;
    }
}

#undef LC_PW_CW
#undef LC_PW_NV
#undef LC_PW_R
#undef LC_PW_NAME
#undef LC_PW_ATTRS
