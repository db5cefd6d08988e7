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

static void LC_WCL_NAME(size_t k, const float *ut, const float *v, size_t ldv, float *mo,
                        size_t ldo, size_t rows, size_t cols) {
    LC_V acc[LC_WCL_R][LC_WCL_NV];
    for (int r = 0; r < LC_WCL_R; r++)
        for (int j = 0; j < LC_WCL_NV; j++) acc[r][j] = LC_VSET1(0.0f);
    for (size_t c = 0; c < k; c++, ut += LC_WCL_CW, v += ldv) {
        LC_V u[LC_WCL_NV];
        for (int j = 0; j < LC_WCL_NV; j++) u[j] = LC_VLOAD(ut + j * LC_VLANES);
        for (int r = 0; r < LC_WCL_R; r++) {
            const float b = v[r];
            for (int j = 0; j < LC_WCL_NV; j++) acc[r][j] = LC_VFMAC(acc[r][j], u[j], b);
        }
    }
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
