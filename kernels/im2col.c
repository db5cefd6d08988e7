/* Im2Col + GEMM: the patch matrix B (K x P, row k = tap (c, ky, kx) of every
 * output pixel) is built first, as a plain row-major matrix, then the GEMM
 * runs over it in NR-column panels straight from the matrix (ldb = P).
 * Rows rather than packed panels because a row is built from OH long runs
 * (one per output row, OW pixels each) instead of P/NR short ones: for
 * strided layers, where building B is a large share of the time, the copy
 * loops then run long enough to pay for their setup.  Workspace: K x P
 * floats, reused across groups and images.  A 1x1/stride-1/unpadded layer
 * skips the matrix: B is the input. */
#include <string.h>
#include "internal.h"

typedef struct {
    const lc_conv_desc *d;
    const float *xg, *ag, *bias;
    float *yg, *bmat;
    int64_t K, Mg, P;
    int64_t chunk; /* panels per GEMM task */
} lc_im2col_ctx;

static void lc_im2col_row_task(void *vctx, int64_t k, int thread) {
    /* row k of B: tap (c, ky, kx) of every output pixel */
    const lc_im2col_ctx *t = (const lc_im2col_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const int64_t kx = k % d->kW, ky = (k / d->kW) % d->kH, c = k / (d->kW * d->kH);
    const float *plane = t->xg + c * d->H * d->W;
    float *dst = t->bmat + k * t->P;
    const int64_t ix0 = kx * d->dil_w - d->pad_l;
    const int64_t sw = d->stride_w, sh = d->stride_h, span = (d->OW - 1) * sw;
    (void)thread;
    /* output rows [oy_lo, oy_hi) read inside the image vertically; the rest
     * are padding */
    const int64_t iy0 = ky * d->dil_h - d->pad_t;
    int64_t oy_lo = iy0 >= 0 ? 0 : (-iy0 + sh - 1) / sh;
    int64_t oy_hi = iy0 < d->H ? (d->H - iy0 + sh - 1) / sh : 0;
    oy_lo = lc_min64(oy_lo, d->OH);
    oy_hi = lc_max64(oy_lo, lc_min64(oy_hi, d->OH));
    if (oy_lo > 0) memset(dst, 0, (size_t)(oy_lo * d->OW) * sizeof(float));
    if (oy_hi < d->OH)
        memset(dst + oy_hi * d->OW, 0, (size_t)((d->OH - oy_hi) * d->OW) * sizeof(float));
    if (oy_hi == oy_lo) return;
    const float *src = plane + (oy_lo * sh + iy0) * d->W;
    dst += oy_lo * d->OW;
    if (d->isa->strided_copy && ix0 >= 0 && ix0 + span < d->W) {
        /* the tap reads inside every row: all of them in one call */
        d->isa->strided_copy(dst, (size_t)d->OW, src + ix0, (size_t)(sh * d->W),
                             (size_t)(oy_hi - oy_lo), (size_t)d->OW, (size_t)sw);
        return;
    }
    for (int64_t oy = oy_lo; oy < oy_hi; oy++, dst += d->OW, src += sh * d->W)
        lc_copy_strided_isa(d->isa, dst, src, d->W, ix0, sw, d->OW);
}

static void lc_im2col_gemm_task(void *vctx, int64_t chunk, int thread) {
    /* a chunk of panels per task, so A is read once per chunk (lc_gemm_panels) */
    const lc_im2col_ctx *t = (const lc_im2col_ctx *)vctx;
    const int64_t nr = t->d->isa->nr, p0 = chunk * t->chunk * nr;
    const int64_t cols = lc_min64(t->chunk * nr, t->P - p0);
    (void)thread;
    lc_gemm_panels(t->d->isa, (size_t)t->Mg, (size_t)t->K, t->ag, t->bmat + p0, (size_t)t->P,
                   (size_t)nr, (size_t)cols, t->yg + p0, (size_t)t->P, (size_t)nr, t->bias,
                   &t->d->epilogue, 1);
}

int64_t lc_im2col_workspace(const lc_conv_desc *d, int *ok) {
    if (lc_gemm_is_pointwise(d)) return 0;
    int64_t K = lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
    int64_t P = lc_mul(d->OH, d->OW, ok);
    return lc_aligned_floats_bytes(lc_mul(K, P, ok), ok);
}

int lc_im2col_run(const lc_conv_desc *d, const float *x, const float *packed,
                  const float *bias, float *y, char *ws) {
    int ok = 1;
    lc_im2col_ctx t;
    t.d = d;
    t.K = d->C / d->groups * d->kH * d->kW;
    t.Mg = d->M / d->groups;
    t.P = d->OH * d->OW;
    const int pointwise = lc_gemm_is_pointwise(d);
    const int64_t nr = d->isa->nr, npanels = lc_div_up(t.P, nr);
    const int64_t a_group = lc_round_up(t.Mg, d->isa->mr, &ok) * t.K;
    t.chunk = lc_gemm_chunk_panels(d->isa, t.K, npanels, d->nthreads);
    for (int64_t n = 0; n < d->N; n++) {
        for (int64_t g = 0; g < d->groups; g++) {
            t.xg = x + (n * d->C + g * (d->C / d->groups)) * d->H * d->W;
            t.yg = y + (n * d->M + g * t.Mg) * t.P;
            t.ag = packed + g * a_group;
            t.bias = bias ? bias + g * t.Mg : NULL;
            t.bmat = pointwise ? (float *)t.xg : (float *)ws;
            if (!pointwise) lc_parallel_for(d->nthreads, t.K, lc_im2col_row_task, &t);
            lc_parallel_for(d->nthreads, lc_div_up(npanels, t.chunk), lc_im2col_gemm_task, &t);
        }
    }
    return LC_OK;
}
