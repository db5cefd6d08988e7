/* 2-D resize, one plane per task (see include/leanconv/resize.h).  Bilinear:
 * per output row the two input rows are blended once into a row buffer of
 * the input's width (contiguous, vectorised), then every output column is
 * read from that buffer (in L1): one pass over the output. */
#include <stdlib.h>

#include "leanconv/resize.h"
#include "internal.h"

typedef struct {
    const float *x;
    float *y;
    int64_t H, W, OH, OW;
    const int64_t *row0, *row1, *col0, *col1;
    const float *row_w, *col_w;
    int linear;
    float *rows;   /* per thread: W floats */
} lc_resize_ctx;

static void resize_plane(void *vctx, int64_t plane, int thread) {
    const lc_resize_ctx *t = (const lc_resize_ctx *)vctx;
    const float *x = t->x + plane * t->H * t->W;
    float *y = t->y + plane * t->OH * t->OW;
    const int64_t W = t->W, OW = t->OW;
    float *restrict r = t->linear ? (float *)lc_thread_scratch(t->rows, W * (int64_t)sizeof(float), thread) : NULL;
    for (int64_t oh = 0; oh < t->OH; oh++) {
        float *restrict out = y + oh * OW;
        const float *a = x + t->row0[oh] * W;
        if (!t->linear) {
            for (int64_t ow = 0; ow < OW; ow++) out[ow] = a[t->col0[ow]];
            continue;
        }
        const float *b = x + t->row1[oh] * W;
        const float w = t->row_w[oh];
        /* a weight of 0 reads one input (an axis not resized, a border) */
        if (w == 0.0f)
            for (int64_t i = 0; i < W; i++) r[i] = a[i];
        else
            for (int64_t i = 0; i < W; i++) r[i] = a[i] + (b[i] - a[i]) * w;
        for (int64_t ow = 0; ow < OW; ow++) {
            const float lo = r[t->col0[ow]], hi = r[t->col1[ow]], cw = t->col_w[ow];
            out[ow] = cw == 0.0f ? lo : lo + (hi - lo) * cw;
        }
    }
}

int lc_resize2d(const float *x, float *y, int64_t planes, int64_t H, int64_t W, int64_t OH,
                int64_t OW, const int64_t *row0, const int64_t *row1, const float *row_w,
                const int64_t *col0, const int64_t *col1, const float *col_w, int linear,
                int nthreads) {
    if (planes <= 0 || OH <= 0 || OW <= 0) return LC_OK;
    /* work: the output's elements, a bilinear one four taps */
    const double work = (double)planes * (double)OH * (double)OW * (linear ? 4.0 : 1.0);
    const int threads = lc_threads_used(nthreads, planes, work);
    lc_resize_ctx t;
    t.x = x; t.y = y; t.H = H; t.W = W; t.OH = OH; t.OW = OW;
    t.row0 = row0; t.row1 = row1; t.row_w = row_w;
    t.col0 = col0; t.col1 = col1; t.col_w = col_w;
    t.linear = linear;
    t.rows = NULL;
    if (linear) {
        t.rows = (float *)malloc(sizeof(float) * (size_t)(W * threads));
        if (!t.rows) return LC_ERR_NOMEM;
    }
    lc_parallel_for(threads, planes, work, resize_plane, &t);
    free(t.rows);
    return LC_OK;
}
