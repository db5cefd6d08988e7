/* Max and average pooling, one plane per task (see include/leanconv/pool.h).
 *
 * For each output column the window's first and last in-image input column
 * are computed once per call (they do not depend on the row), so the inner
 * loops run over in-image positions only: no padding is materialised and no
 * position is tested. */
#include <math.h>
#include <stdlib.h>

#include "leanconv/pool.h"
#include "internal.h"

typedef struct {
    const lc_pool_desc *d;
    const float *x;
    float *y;
    const int64_t *col_lo, *col_hi;   /* per output column: kernel taps [lo, hi) in the image */
    int64_t interior_a, interior_b;   /* output columns [a, b): every tap in the image */
} lc_pool_ctx;

/* Kernel taps [lo, hi) of a window starting at `start` that land in [0, size). */
static void taps_in(int64_t start, int64_t k, int64_t dil, int64_t size, int64_t *lo,
                    int64_t *hi) {
    int64_t a = 0, b = k;
    while (a < k && start + a * dil < 0) a++;
    while (b > a && start + (b - 1) * dil >= size) b--;
    *lo = a;
    *hi = b;
}

/* Positions of a window inside [-pad_begin, size + pad_end) (count_include_pad). */
static int64_t taps_padded(int64_t start, int64_t k, int64_t dil, int64_t size,
                           int64_t pad_begin, int64_t pad_end) {
    int64_t n = 0;
    for (int64_t i = 0; i < k; i++) {
        const int64_t p = start + i * dil;
        n += p >= -pad_begin && p < size + pad_end;
    }
    return n;
}

/* Max over the output columns [a, b) whose windows lie wholly inside the row
 * (the interior): tap by tap across the row, so neighbouring outputs are
 * independent (vectorisable, no chain of dependent maxes per output).  A NaN
 * sticks once taken (v != v takes it; nothing is greater than it after);
 * | rather than || keeps it free of branches. */
static void max_interior(const float *x, const lc_pool_desc *d, int64_t h0, int64_t rlo,
                         int64_t rhi, int64_t a, int64_t b, float *yrow) {
    float *restrict out = yrow;
    const int64_t sw = d->sw;
    for (int64_t ow = a; ow < b; ow++) out[ow] = -INFINITY;
#define LC_MAX_NAN(m, v) (((v) > (m)) | ((v) != (v)) ? (v) : (m))
    for (int64_t i = rlo; i < rhi; i++) {
        const float *xr = x + (h0 + i * d->dh) * d->W;
        if (d->kw == 3) {   /* the common window: its three taps in one pass over the row */
            const float *restrict in = xr + (a * sw - d->pad_l);
            const int64_t t1 = d->dw, t2 = 2 * d->dw;
            for (int64_t k = 0; k < b - a; k++) {
                const float *p = in + k * sw;
                float m = out[a + k];
                m = LC_MAX_NAN(m, p[0]);
                m = LC_MAX_NAN(m, p[t1]);
                m = LC_MAX_NAN(m, p[t2]);
                out[a + k] = m;
            }
            continue;
        }
        for (int64_t j = 0; j < d->kw; j++) {
            /* + ow * sw >= 0 in the interior */
            const float *restrict in = xr + (a * sw + j * d->dw - d->pad_l);
            for (int64_t k = 0; k < b - a; k++) {
                const float v = in[k * sw], m = out[a + k];
                out[a + k] = LC_MAX_NAN(m, v);
            }
        }
    }
}

static void pool_plane(void *vctx, int64_t plane, int thread) {
    const lc_pool_ctx *t = (const lc_pool_ctx *)vctx;
    const lc_pool_desc *d = t->d;
    const float *x = t->x + plane * d->H * d->W;
    float *y = t->y + plane * d->OH * d->OW;
    (void)thread;
    for (int64_t oh = 0; oh < d->OH; oh++) {
        const int64_t h0 = oh * d->sh - d->pad_t;
        int64_t rlo, rhi;
        taps_in(h0, d->kh, d->dh, d->H, &rlo, &rhi);
        const int64_t rows_padded = d->count_include_pad ?
            taps_padded(h0, d->kh, d->dh, d->H, d->pad_t, d->pad_b) : rhi - rlo;
        float *yrow = y + oh * d->OW;
        if (d->is_max && t->interior_b > t->interior_a)
            max_interior(x, d, h0, rlo, rhi, t->interior_a, t->interior_b, yrow);
        for (int64_t ow = 0; ow < d->OW; ow++) {
            if (d->is_max && ow == t->interior_a && t->interior_b > t->interior_a) {
                ow = t->interior_b - 1;   /* done above */
                continue;
            }
            const int64_t w0 = ow * d->sw - d->pad_l;
            const int64_t clo = t->col_lo[ow], chi = t->col_hi[ow];
            if (d->is_max) {
                /* branch-free max (a maxss), NaN tracked beside it: a NaN in the
                 * window gives NaN, as in onnxruntime */
                float m = -INFINITY;
                int nan = 0;
                for (int64_t i = rlo; i < rhi; i++) {
                    const float *xr = x + (h0 + i * d->dh) * d->W + w0;
                    for (int64_t j = clo; j < chi; j++) {
                        const float v = xr[j * d->dw];
                        m = v > m ? v : m;
                        nan |= v != v;
                    }
                }
                yrow[ow] = nan ? NAN : m;
            } else {
                float s = 0.0f;
                for (int64_t i = rlo; i < rhi; i++) {
                    const float *xr = x + (h0 + i * d->dh) * d->W + w0;
                    for (int64_t j = clo; j < chi; j++) s += xr[j * d->dw];
                }
                const int64_t cols_padded = d->count_include_pad ?
                    taps_padded(w0, d->kw, d->dw, d->W, d->pad_l, d->pad_r) : chi - clo;
                const int64_t count = rows_padded * cols_padded;
                yrow[ow] = count > 0 ? s / (float)count : NAN;
            }
        }
    }
}

int lc_pool2d(const lc_pool_desc *d, const float *x, float *y, int nthreads) {
    if (d->planes <= 0 || d->OH <= 0 || d->OW <= 0) return LC_OK;
    int64_t *cols = (int64_t *)malloc(sizeof(int64_t) * 2 * (size_t)d->OW);
    if (!cols) return LC_ERR_NOMEM;
    for (int64_t ow = 0; ow < d->OW; ow++)
        taps_in(ow * d->sw - d->pad_l, d->kw, d->dw, d->W, &cols[ow], &cols[d->OW + ow]);
    lc_pool_ctx t;
    t.d = d; t.x = x; t.y = y; t.col_lo = cols; t.col_hi = cols + d->OW;
    /* the interior is one run of columns (windows move right with ow) */
    t.interior_a = t.interior_b = 0;
    for (int64_t ow = 0; ow < d->OW; ow++) {
        if (cols[ow] == 0 && cols[d->OW + ow] == d->kw) {
            if (t.interior_b == t.interior_a) t.interior_a = ow;
            t.interior_b = ow + 1;
        } else if (t.interior_b > t.interior_a) {
            break;
        }
    }
    const double taps = (double)d->planes * (double)d->OH * (double)d->OW * (double)(d->kh * d->kw);
    lc_parallel_for(lc_threads_for_work(nthreads, taps), d->planes, pool_plane, &t);
    free(cols);
    return LC_OK;
}

typedef struct {
    const float *x;
    float *y;
    int64_t hw;
} lc_gap_ctx;

/* Eight running sums: independent lanes the compiler can keep in one vector
 * register without reassociating (the order is fixed by this code). */
static void gap_plane(void *vctx, int64_t plane, int thread) {
    const lc_gap_ctx *t = (const lc_gap_ctx *)vctx;
    const float *x = t->x + plane * t->hw;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    (void)thread;
    for (; i + 8 <= t->hw; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < t->hw; i++) s += x[i];
    t->y[plane] = s / (float)t->hw;
}

int lc_global_avg_pool(const float *x, float *y, int64_t planes, int64_t hw, int nthreads) {
    if (planes <= 0 || hw <= 0) return LC_OK;
    lc_gap_ctx t;
    t.x = x; t.y = y; t.hw = hw;
    lc_parallel_for(lc_threads_for_work(nthreads, (double)planes * (double)hw), planes, gap_plane, &t);
    return LC_OK;
}
