/* The naive convolution: seven loops, accumulated in double.  The reference
 * the fast algorithms are tested against inside the library, and the fallback
 * that handles anything.  No workspace. */
#include "internal.h"
#include "activation.h"

typedef struct {
    const lc_conv_desc *d;
    const float *x, *w, *bias, *res;
    float *y;
} lc_direct_ctx;

static void lc_direct_task(void *vctx, int64_t item, int thread) {
    const lc_direct_ctx *t = (const lc_direct_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const int64_t o = item % d->M, n = item / d->M;
    const int64_t Cg = d->C / d->groups, Mg = d->M / d->groups, grp = o / Mg;
    const float *xg = t->x + (n * d->C + grp * Cg) * d->H * d->W;
    const float *wo = t->w + o * Cg * d->kH * d->kW;
    float *yo = t->y + (n * d->M + o) * d->OH * d->OW;
    const float *ro = t->res ? t->res + (n * d->M + o) * d->OH * d->OW : NULL;
    (void)thread;
    for (int64_t oy = 0; oy < d->OH; oy++) {
        for (int64_t ox = 0; ox < d->OW; ox++) {
            double acc = t->bias ? t->bias[o] : 0.0;
            for (int64_t c = 0; c < Cg; c++) {
                for (int64_t ky = 0; ky < d->kH; ky++) {
                    int64_t iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
                    if (iy < 0 || iy >= d->H) continue;
                    for (int64_t kx = 0; kx < d->kW; kx++) {
                        int64_t ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
                        if (ix < 0 || ix >= d->W) continue;
                        acc += (double)wo[(c * d->kH + ky) * d->kW + kx] *
                               (double)xg[(c * d->H + iy) * d->W + ix];
                    }
                }
            }
            /* (conv + bias) rounded once, then the residual, then act */
            float v = (float)acc;
            if (ro) v += ro[oy * d->OW + ox]; /* read before the store: ro may be yo */
            yo[oy * d->OW + ox] = lc_act1(v, &d->epilogue);
        }
    }
}

int lc_direct_run(const lc_conv_desc *d, const float *x, const float *w,
                  const float *bias, const float *res, float *y) {
    lc_direct_ctx t;
    t.d = d; t.x = x; t.w = w; t.bias = bias; t.res = res; t.y = y;
    lc_parallel_for(d->nthreads, d->N * d->M, lc_conv_macs(d), lc_direct_task, &t);
    return LC_OK;
}
