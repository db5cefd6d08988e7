/* A fully connected layer on a few vectors (include/leanconv/dense.h).  The
 * weights are read once per image and are far bigger than the vector (a
 * classifier's 1024 x 1000 is 4 MB): the ISA's gemv16 streams them panel by
 * panel, and the panels are split over the threads, so each thread streams
 * its share (NumPy's one-thread BLAS call took 0.18 ms of DenseNet-121's
 * 3 ms at 2 threads). */
#include "internal.h"
#include "leanconv/dense.h"

/* A weight's share of the work in multiply-add equivalents (the unit of
 * lc_threads_used).  Each weight is used once per image, so the gemv runs at
 * the rate its weights arrive from beyond L2, not at the FMA rate: 512 x 1000
 * (2 MB, ResNet-18's head) took 0.21-0.23 ms on one thread (Intel Xeon,
 * AVX-512), ~2.4 G weights/s against the ~25 G multiply-adds/s the parallel
 * bound assumes.  Counted as one multiply-add, that head (0.51 M) stayed
 * under the two-thread bound (kernels/parallel.c) and ran on one thread;
 * at 8 a head of 64 K weights (256 KB) and more is split, and each core
 * streams its own panels. */
#define LC_DENSE_WORK_PER_WEIGHT 8.0


typedef struct {
    const lc_isa_config *isa;
    const float *x, *wp, *b;
    const lc_epilogue *ep; /* NULL: no activation */
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
    /* the activation on the panel's outputs while they are in L1 (a
     * classifier's hidden layer: MobileNetV3's 960>1280 HardSwish, which as
     * a pass of its own kept the head out of the schedule's C loop) */
    if (t->ep) t->isa->postop(y, y, (size_t)rows, NULL, 0.0f, t->ep);
}

int lc_dense(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t rows,
             int64_t k, const float *wp, const float *b, const lc_epilogue *ep, int nthreads) {
    if (n <= 0 || rows <= 0) return LC_OK;
    lc_dense_ctx t;
    t.isa = isa; t.x = x; t.wp = wp; t.b = b; t.y = y; t.rows = rows; t.k = k;
    t.ep = ep && ep->act != LC_ACT_NONE ? ep : NULL;
    t.panels = (rows + LC_GEMV_PANEL - 1) / LC_GEMV_PANEL;
    lc_parallel_for(nthreads, n * t.panels, (double)n * (double)rows * (double)k * LC_DENSE_WORK_PER_WEIGHT,
                    dense_task, &t);
    return LC_OK;
}
