/* A fully connected layer on a few vectors (include/leanconv/dense.h).  The
 * weights are read once per image and are far bigger than the vector (a
 * classifier's 1024 x 1000 is 4 MB): the ISA's gemv16 streams them panel by
 * panel, and the panels are split over the threads, so each thread streams
 * its share (NumPy's one-thread BLAS call took 0.18 ms of DenseNet-121's
 * 3 ms at 2 threads). */
#include "internal.h"
#include "leanconv/dense.h"


typedef struct {
    const lc_isa_config *isa;
    const float *x, *wp, *b;
    float *y;
    int64_t rows, k, panels;
} lc_dense_ctx;

static void dense_task(void *vctx, int64_t item, int thread) {
    const lc_dense_ctx *t = (const lc_dense_ctx *)vctx;
    const int64_t image = item / t->panels, p = item % t->panels;
    const int64_t r0 = p * LC_GEMV_PANEL, rows = lc_min64(LC_GEMV_PANEL, t->rows - r0);
    float *y = t->y + image * t->rows + r0;
    (void)thread;
    t->isa->gemv16(y, t->wp + r0 * t->k, t->x + image * t->k, (size_t)rows, (size_t)t->k);
    if (t->b)
        for (int64_t i = 0; i < rows; i++) y[i] += t->b[r0 + i];
}

int lc_dense(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t rows,
             int64_t k, const float *wp, const float *b, int nthreads) {
    if (n <= 0 || rows <= 0) return LC_OK;
    lc_dense_ctx t;
    t.isa = isa; t.x = x; t.wp = wp; t.b = b; t.y = y; t.rows = rows; t.k = k;
    t.panels = (rows + LC_GEMV_PANEL - 1) / LC_GEMV_PANEL;
    lc_parallel_for(nthreads, n * t.panels, (double)n * (double)rows * (double)k, dense_task, &t);
    return LC_OK;
}
