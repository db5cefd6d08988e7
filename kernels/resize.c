/* 2-D resize, one plane per task (see include/leanconv/resize.h).  Bilinear:
 * each input row that an output row reads is first resized along W (the
 * gathers, once per input row: an upsample by 8 reads 16 rows for 128 output
 * rows), kept in one of two row buffers of the output's width; then every
 * output row is the blend of its two buffers (contiguous, vectorised).  Rows
 * are read in order, so each input row is resized about once. */
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
    float *rows;   /* per thread: 2 * OW floats */
} lc_resize_ctx;

/* out[ow] = input row a resized along W */
static void resize_row(const lc_resize_ctx *t, const float *a, float *restrict out) {
    for (int64_t ow = 0; ow < t->OW; ow++) {
        const float lo = a[t->col0[ow]], hi = a[t->col1[ow]], cw = t->col_w[ow];
        out[ow] = cw == 0.0f ? lo : lo + (hi - lo) * cw;
    }
}

static void resize_plane(void *vctx, int64_t plane, int thread) {
    const lc_resize_ctx *t = (const lc_resize_ctx *)vctx;
    const float *x = t->x + plane * t->H * t->W;
    float *y = t->y + plane * t->OH * t->OW;
    const int64_t W = t->W, OW = t->OW;
    if (!t->linear) {
        for (int64_t oh = 0; oh < t->OH; oh++) {
            const float *a = x + t->row0[oh] * W;
            float *restrict out = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ow++) out[ow] = a[t->col0[ow]];
        }
        return;
    }
    float *buf = (float *)lc_thread_scratch(t->rows, 2 * OW * (int64_t)sizeof(float), thread);
    int64_t held[2] = {-1, -1};   /* the input row in each buffer */
    for (int64_t oh = 0; oh < t->OH; oh++) {
        const int64_t ra = t->row0[oh], rb = t->row1[oh];
        const float w = t->row_w[oh];
        /* row a in a buffer, then (w != 0) row b in the other one */
        int ka = held[0] == ra ? 0 : held[1] == ra ? 1 : -1;
        if (ka < 0) {
            ka = held[0] == rb && w != 0.0f ? 1 : 0;
            resize_row(t, x + ra * W, buf + ka * OW);
            held[ka] = ra;
        }
        const float *restrict lo = buf + ka * OW;
        float *restrict out = y + oh * OW;
        if (w == 0.0f) {   /* a weight of 0 reads one input (an axis not resized, a border) */
            for (int64_t ow = 0; ow < OW; ow++) out[ow] = lo[ow];
            continue;
        }
        const int kb = 1 - ka;
        if (held[kb] != rb) {
            resize_row(t, x + rb * W, buf + kb * OW);
            held[kb] = rb;
        }
        const float *restrict hi = buf + kb * OW;
        for (int64_t ow = 0; ow < OW; ow++) out[ow] = lo[ow] + (hi[ow] - lo[ow]) * w;
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
        t.rows = (float *)malloc(sizeof(float) * (size_t)(2 * OW * threads));
        if (!t.rows) return LC_ERR_NOMEM;
    }
    lc_parallel_for(threads, planes, work, resize_plane, &t);
    free(t.rows);
    return LC_OK;
}
