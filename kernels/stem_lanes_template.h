/* The stem kernel: output pixels in the vector lanes, for layers of a few
 * input channels (contract: lc_stem_kernel_fn in include/leanconv/ukernels.h;
 * driver: kernels/stem_lanes.c).  R output channels times nv <= V vectors of
 * pixels of one output row: R x V named accumulators held over all of the
 * layer's K = C x kH x kW taps (27 or 147 for a 3-channel stem), per tap R
 * weights broadcast and nv input vectors loaded straight from the driver's
 * phase-split rows (a stride-s row stored as s phases, so every tap of a
 * row of outputs is one unit-stride run, whatever the stride), and each
 * output written once, into its NCHW plane, with the bias and the clamp
 * applied in registers.  Channels in the lanes (direct_lanes) instead pay a
 * transpose of every output into its plane, and Im2Col unwraps K x P patch
 * values to feed a GEMM whose K is too short to amortise it.
 *
 * The including file defines the vector vocabulary of gemm_template.h
 * (LC_V, LC_VL, LC_VZERO, LC_VSET1, LC_VLOADU, LC_VSTOREU, LC_VSTOREM,
 * LC_MASK_FOR, LC_VFMA, LC_VMAX, LC_VMIN) and
 *   LC_ST_R (1-8: output channels), LC_ST_V (1-6: pixel vectors), LC_ST_NAME. */

#ifndef LC_ST_TEMPLATE_ONCE
#define LC_ST_TEMPLATE_ONCE
#define LC_ST_REP6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LC_ST_REP8(X) LC_ST_REP6(X) X(6) X(7)
#endif

static LC_ALWAYS_INLINE void LC_CAT(LC_ST_NAME, _body)(const size_t nv, const size_t n,
                                                        const size_t rows, const float *x,
                                                        const size_t *off, const size_t K,
                                                        const float *w, float *y,
                                                        const size_t ldy, const float *bias,
                                                        const lc_epilogue *ep) {
    const size_t VL = LC_VL, R = LC_ST_R;
    /* named accumulators a<r>_<v>, not an array (GCC keeps an array's
     * registers but stores them back every step, direct_lanes_template.h);
     * those past R and nv are never used and cost nothing */
#define LC_ST_BIAS(r) const LC_V b##r = bias && r < LC_ST_R ? LC_VSET1(bias[r % LC_ST_R]) : LC_VZERO();
    LC_ST_REP8(LC_ST_BIAS)
#undef LC_ST_BIAS
#define LC_ST_INIT(v)                                                                         \
    LC_V a0_##v = b0, a1_##v = b1, a2_##v = b2, a3_##v = b3, a4_##v = b4, a5_##v = b5,        \
         a6_##v = b6, a7_##v = b7;
    LC_ST_REP6(LC_ST_INIT)
#undef LC_ST_INIT
    for (size_t k = 0; k < K; k++) {
        const float *xp = x + off[k], *wk = w + k * R;
#define LC_ST_W(r) const LC_V w##r = r < LC_ST_R ? LC_VSET1(wk[r % LC_ST_R]) : LC_VZERO();
        LC_ST_REP8(LC_ST_W)
#undef LC_ST_W
#define LC_ST_FMA(r, v) if (r < LC_ST_R) a##r##_##v = LC_VFMA(w##r, xv, a##r##_##v);
#define LC_ST_STEP(v)                                                                         \
    if (v < nv) {                                                                             \
        const LC_V xv = LC_VLOADU(xp + v * VL);                                               \
        LC_ST_FMA(0, v) LC_ST_FMA(1, v) LC_ST_FMA(2, v) LC_ST_FMA(3, v)                       \
        LC_ST_FMA(4, v) LC_ST_FMA(5, v) LC_ST_FMA(6, v) LC_ST_FMA(7, v)                       \
    }
        LC_ST_REP6(LC_ST_STEP)
#undef LC_ST_STEP
#undef LC_ST_FMA
    }
    if (ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const LC_V lo = LC_VSET1(ep->lo), hi = LC_VSET1(ep->hi);
#define LC_ST_CL(r, v) a##r##_##v = LC_VMIN(hi, LC_VMAX(lo, a##r##_##v));
#define LC_ST_CLAMP(v)                                                                        \
    if (v < nv) {                                                                             \
        LC_ST_CL(0, v) LC_ST_CL(1, v) LC_ST_CL(2, v) LC_ST_CL(3, v)                           \
        LC_ST_CL(4, v) LC_ST_CL(5, v) LC_ST_CL(6, v) LC_ST_CL(7, v)                           \
    }
        LC_ST_REP6(LC_ST_CLAMP)
#undef LC_ST_CLAMP
#undef LC_ST_CL
    }
    /* whole vectors but the row's last, which stores its n - v*VL pixels */
#define LC_ST_PUT(r, v)                                                                       \
    if (r < LC_ST_R && r < rows) {                                                            \
        if ((v + 1) * VL <= n)                                                                \
            LC_VSTOREU(y + r * ldy + v * VL, a##r##_##v);                                     \
        else                                                                                  \
            LC_VSTOREM(y + r * ldy + v * VL, LC_MASK_FOR(n - v * VL), a##r##_##v);            \
    }
#define LC_ST_STORE(v)                                                                        \
    if (v < nv) {                                                                             \
        LC_ST_PUT(0, v) LC_ST_PUT(1, v) LC_ST_PUT(2, v) LC_ST_PUT(3, v)                       \
        LC_ST_PUT(4, v) LC_ST_PUT(5, v) LC_ST_PUT(6, v) LC_ST_PUT(7, v)                       \
    }
    LC_ST_REP6(LC_ST_STORE)
#undef LC_ST_STORE
#undef LC_ST_PUT
}

void LC_ST_NAME(size_t n, size_t rows, const float *x, const size_t *off, size_t K,
                const float *w, float *y, size_t ldy, const float *bias, const lc_epilogue *ep) {
    const size_t nv = (n + LC_VL - 1) / LC_VL;
    switch (nv) {
#define LC_ST_CASE(v)                                                                         \
    case v + 1:                                                                               \
        if (v < LC_ST_V)                                                                      \
            LC_CAT(LC_ST_NAME, _body)(v + 1, n, rows, x, off, K, w, y, ldy, bias, ep);        \
        break;
        LC_ST_REP6(LC_ST_CASE)
#undef LC_ST_CASE
    default: break;
    }
}

#undef LC_ST_R
#undef LC_ST_V
#undef LC_ST_NAME
