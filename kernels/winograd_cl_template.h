/* The channel-lanes Winograd GEMM (lc_wino_cl_gemm_fn) over an abstract
 * vector type: R tiles broadcast from the transformed input times CW = NV
 * vectors of output channels from the transformed weights, R x NV
 * accumulators kept over the whole k loop.  Small images have few tiles (16
 * at 14 x 14 with F4, 16 at 7 x 7 with F2) and many channels: with channels
 * in the lanes every FMA is full, and each k step loads NV vectors and R
 * broadcasts for R x NV FMAs, the shape of the GEMM tile.
 *
 * The including file defines the vector vocabulary of winograd_template.h
 * (LC_V, LC_VLANES, LC_VLOAD, LC_VSTORE, LC_VSET1, LC_VFMAC) and
 *   LC_WCL_R LC_WCL_NV LC_WCL_NAME
 * Optional: LC_WCL_STORE_T(mo, ldo, acc) stores a full R x CW accumulator
 * block transposed (mo[o * ldo + r] = channel o of acc[r]); without it the
 * block goes through a stack array. */
#define LC_WCL_CW (LC_WCL_NV * LC_VLANES)

#ifndef LC_WCL_TEMPLATE_ONCE
#define LC_WCL_TEMPLATE_ONCE
/* The row loops spelled out (R is 4, 8 or 16), and the vector loops written
 * with constant indices (NV is 1, 2 or 4), so every accumulator is a register
 * even at -O2, where GCC does not unroll such loops itself. */
#define LC_WCL_REP4(X) X(0) X(1) X(2) X(3)
#define LC_WCL_REP8(X) LC_WCL_REP4(X) X(4) X(5) X(6) X(7)
#define LC_WCL_REP16(X) LC_WCL_REP8(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define LC_WCL_REP(n) LC_CAT(LC_WCL_REP, n)
#ifndef LC_WCL_PF_DIST
#define LC_WCL_PF_DIST 128
#endif
#if defined(__GNUC__) || defined(__clang__)
/* every cache line of the CW floats of one k step (64-byte lines) */
#define LC_WCL_PREFETCH(p)                                                          \
    do {                                                                            \
        for (int pf_ = 0; pf_ < LC_WCL_CW; pf_ += 16) __builtin_prefetch((p) + pf_, 0, 3); \
    } while (0)
#else
#define LC_WCL_PREFETCH(p) ((void)(p))
#endif
#endif

static void LC_WCL_NAME(size_t k, const float *ut, const float *v, size_t ldv, float *mo,
                        size_t ldo, size_t rows, size_t cols) {
    /* named accumulators, not an array: GCC at -O2 keeps an array's
     * registers but also stores them back every k step */
#define LC_WCL_ZERO(r)                                                              \
    LC_V a##r##_0 = LC_VSET1(0.0f), a##r##_1 = a##r##_0, a##r##_2 = a##r##_0,       \
         a##r##_3 = a##r##_0;
    LC_WCL_REP(LC_WCL_R)(LC_WCL_ZERO)
#undef LC_WCL_ZERO
    for (size_t c = 0; c < k; c++, ut += LC_WCL_CW, v += ldv) {
        /* deep layers stream U from beyond L2 once per call: ask for it a
         * few k steps ahead (the hardware stream alone reached ~22 GB/s) */
        LC_WCL_PREFETCH(ut + LC_WCL_PF_DIST * LC_WCL_CW);
        const LC_V u0 = LC_VLOAD(ut);
        LC_V u1 = u0, u2 = u0, u3 = u0;
        if (LC_WCL_NV > 1) u1 = LC_VLOAD(ut + LC_VLANES);
        if (LC_WCL_NV > 2) {
            u2 = LC_VLOAD(ut + 2 * LC_VLANES);
            u3 = LC_VLOAD(ut + 3 * LC_VLANES);
        }
#define LC_WCL_ROW(r)                                                               \
        {                                                                           \
            const float b = v[r];                                                   \
            a##r##_0 = LC_VFMAC(a##r##_0, u0, b);                                   \
            if (LC_WCL_NV > 1)                                                      \
                a##r##_1 = LC_VFMAC(a##r##_1, u1, b);                               \
            if (LC_WCL_NV > 2) {                                                    \
                a##r##_2 = LC_VFMAC(a##r##_2, u2, b);                               \
                a##r##_3 = LC_VFMAC(a##r##_3, u3, b);                               \
            }                                                                       \
        }
        LC_WCL_REP(LC_WCL_R)(LC_WCL_ROW)
#undef LC_WCL_ROW
    }
    LC_V acc[LC_WCL_R][4]; /* [tile][vector], NV <= 4 used */
#define LC_WCL_GATHER(r)                                                            \
    acc[r][0] = a##r##_0; acc[r][1] = a##r##_1; acc[r][2] = a##r##_2; acc[r][3] = a##r##_3;
    LC_WCL_REP(LC_WCL_R)(LC_WCL_GATHER)
#undef LC_WCL_GATHER
#ifdef LC_WCL_STORE_T
    if (rows == LC_WCL_R && cols == LC_WCL_CW) {
        LC_WCL_STORE_T(mo, ldo, acc);
        return;
    }
#endif
    float t[LC_WCL_R][LC_WCL_CW];
    for (int r = 0; r < LC_WCL_R; r++)
        for (int j = 0; j < LC_WCL_NV; j++) LC_VSTORE(&t[r][j * LC_VLANES], acc[r][j]);
    for (size_t o = 0; o < cols; o++)
        for (size_t r = 0; r < rows; r++) mo[o * ldo + r] = t[r][o];
}

#undef LC_WCL_CW
#undef LC_WCL_R
#undef LC_WCL_NV
#undef LC_WCL_NAME
