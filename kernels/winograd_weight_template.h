/* The lean Winograd algorithms' weight transform (lc_wino_weight_fn,
 * include/leanconv/ukernels.h) of one size over an abstract vector type:
 * the output channels of a panel are the lanes, so each (channel, tap) of
 * the raw 3 x 3 filters is one vector load, and G g G^T is the generated
 * 1-D transform (kernels/gen_winograd.py) down the columns, then along the
 * rows, all in registers.  Included by winograd_instances.h after the
 * ISA's vocabulary (winograd_template.h) with
 *   LC_WWT_1D    LC_WINO_F{m}_WEIGHT_1D (3 values -> alpha)
 *   LC_WWT_ALPHA alpha
 *   LC_WWT_CW    channels a call (the channel-lanes GEMM's CW)
 *   LC_WWT_NAME  the function's name */
#ifndef LC_WWT_ONCE
#define LC_WWT_ONCE
/* channels ahead whose filters a step asks for: the raw filters of a deep
 * layer come from beyond L2 once per call (ResNet's 512@7: 9.4 MB), and the
 * hardware stream alone left the transform at ~8 GB/s, 38% of the call */
#define LC_WWT_PF_AHEAD 32
#if defined(__GNUC__) || defined(__clang__)
#define LC_WWT_PREFETCH(p, n)                                                       \
    do {                                                                            \
        for (size_t pf_ = 0; pf_ < (n); pf_ += 16) __builtin_prefetch((p) + pf_, 0, 3); \
    } while (0)
#else
#define LC_WWT_PREFETCH(p, n) ((void)(p))
#endif
#endif

static void LC_WWT_NAME(const float *wl, size_t cg, float *u, size_t u_xs) {
    for (size_t c = 0; c < cg; c++) {
        if (c + LC_WWT_PF_AHEAD < cg)
            LC_WWT_PREFETCH(wl + (c + LC_WWT_PF_AHEAD) * 9 * LC_WWT_CW, (size_t)(9 * LC_WWT_CW));
        for (size_t v = 0; v < (size_t)LC_WWT_CW; v += LC_VLANES) {
            const float *g = wl + c * 9 * LC_WWT_CW + v;
            LC_V t[LC_WWT_ALPHA][3]; /* G g: alpha x 3 */
            for (int l = 0; l < 3; l++) {
                LC_V x[3], o[LC_WWT_ALPHA];
                for (int k = 0; k < 3; k++) x[k] = LC_VLOAD(g + (3 * k + l) * LC_WWT_CW);
                LC_WWT_1D(o, x);
                for (int i = 0; i < LC_WWT_ALPHA; i++) t[i][l] = o[i];
            }
            float *uc = u + c * LC_WWT_CW + v;
            for (int i = 0; i < LC_WWT_ALPHA; i++) { /* (G g) G^T, row i */
                LC_V o[LC_WWT_ALPHA];
                LC_WWT_1D(o, t[i]);
                for (int j = 0; j < LC_WWT_ALPHA; j++)
                    LC_VSTORE(uc + (size_t)(i * LC_WWT_ALPHA + j) * u_xs, o[j]);
            }
        }
    }
}

#undef LC_WWT_1D
#undef LC_WWT_ALPHA
#undef LC_WWT_NAME
