/* Winograd tiles recomputed in double.
 *
 * The float transforms multiply by up to 15 (input) and 32 (output) per
 * dimension (F6), so inputs beyond ~1e36 can overflow inside them where the
 * convolution itself is finite.  The output transform reports the lanes
 * whose results hold an Inf or NaN; for each such lane (tile) and output
 * channel the driver calls this, before the scatter.  When the tile's input
 * window is finite, the lane's output-transform result is recomputed with the
 * same packed U (float; a lean call's from its raw filters, in double) but
 * the input transform, the products and the output transform in double,
 * where nothing overflows, and rounded once; everything
 * after the transform (the scatter and what it adds) is unchanged.  A window
 * that holds a genuine Inf or NaN keeps the float result: those spread over
 * the tile, as documented.  No workspace: a few alpha x alpha blocks on the
 * stack.  Slow (the input transform is redone per output channel), and only
 * for tiles out of float range. */
#include <math.h>
#include "internal.h"
#include "winograd_transforms.h"

/* The generated 1-D transforms over plain doubles (same coefficients). */
#define LC_VADD(a, b) ((a) + (b))
#define LC_VSUB(a, b) ((a) - (b))
#define LC_VFMAC(acc, a, f) ((acc) + (a) * (double)(f))

/* out = T^T in T for an n_in x n_in block and a 1-D transform `one_d` of
 * n_in inputs to n_out outputs: columns first, then rows (the template's order). */
#define LC_EXACT_2D(name, n_in, n_out, one_d)                                    \
    static void name(const double *in, double *out) {                          \
        double t[n_out][n_in];                                                  \
        for (int j = 0; j < (n_in); j++) {                                      \
            double x[n_in], o[n_out];                                           \
            for (int k = 0; k < (n_in); k++) x[k] = in[k * (n_in) + j];         \
            one_d(o, x);                                                        \
            for (int i = 0; i < (n_out); i++) t[i][j] = o[i];                   \
        }                                                                       \
        for (int i = 0; i < (n_out); i++) {                                     \
            double o[n_out];                                                    \
            one_d(o, t[i]);                                                     \
            for (int j = 0; j < (n_out); j++) out[i * (n_out) + j] = o[j];      \
        }                                                                       \
    }
LC_EXACT_2D(lc_exact_in_f2, 4, 4, LC_WINO_F2_INPUT_1D)
LC_EXACT_2D(lc_exact_in_f4, 6, 6, LC_WINO_F4_INPUT_1D)
LC_EXACT_2D(lc_exact_in_f6, 8, 8, LC_WINO_F6_INPUT_1D)
LC_EXACT_2D(lc_exact_out_f2, 4, 2, LC_WINO_F2_OUTPUT_1D)
LC_EXACT_2D(lc_exact_out_f4, 6, 4, LC_WINO_F4_OUTPUT_1D)
LC_EXACT_2D(lc_exact_out_f6, 8, 6, LC_WINO_F6_OUTPUT_1D)

typedef void (*lc_exact_fn)(const double *in, double *out);
static const lc_exact_fn lc_exact_in[LC_WINO_VARIANTS] = {lc_exact_in_f2, lc_exact_in_f4, lc_exact_in_f6};
static const lc_exact_fn lc_exact_out[LC_WINO_VARIANTS] = {lc_exact_out_f2, lc_exact_out_f4, lc_exact_out_f6};

int lc_wino_exact_lane(const lc_conv_desc *d, const float *xg, const float *packed, int64_t grp,
                       int64_t th, int64_t tw, int64_t o, float bias, const lc_epilogue *ep,
                       float *tile, size_t row_stride) {
    const int var = lc_wino_variant_of(d->algorithm);
    const int64_t m = lc_wino_m[var], alpha = m + 2, xi = alpha * alpha;
    const int64_t Cg = d->C / d->groups;
    const int64_t y0 = th * m - d->pad_t, x0 = tw * m - d->pad_l;
    double win[64], v[64], u[64], mo[64] = {0}, out[36];
    /* Mo = sum_c U[o][c] * (B^T d_c B), the window in double; give up on a
     * non-finite input */
    for (int64_t c = 0; c < Cg; c++) {
        const float *plane = xg + c * d->H * d->W;
        for (int64_t i = 0; i < alpha; i++)
            for (int64_t j = 0; j < alpha; j++) {
                const int64_t iy = y0 + i, ix = x0 + j;
                const double a = iy >= 0 && iy < d->H && ix >= 0 && ix < d->W ? plane[iy * d->W + ix] : 0.0;
                if (!isfinite(a)) return 0;
                win[i * alpha + j] = a;
            }
        lc_exact_in[var](win, v);
        lc_wino_u_double(d, packed, grp, o, c, u);
        for (int64_t x = 0; x < xi; x++) mo[x] += u[x] * v[x];
    }
    /* Y = A^T Mo A + bias, rounded once, then the epilogue the transform applies */
    lc_exact_out[var](mo, out);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++)
            tile[(size_t)i * row_stride + (size_t)j] = lc_clampf((float)(out[i * m + j] + (double)bias), ep);
    return 1;
}
