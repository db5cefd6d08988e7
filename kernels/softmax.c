/* Softmax over contiguous rows (include/leanconv/softmax.h).  In C rather
 * than NumPy for a classifier's 1000 values: NumPy's four ufunc calls cost
 * ~10 us warm but 100-150 us as the first NumPy work after a model's
 * convolutions (its dispatch paths cold), against ~10 us for this loop. */
#include <math.h>

#include "leanconv/softmax.h"
#include "internal.h"

typedef struct {
    const float *x;
    float *y;
    int64_t n;
} lc_softmax_ctx;

static void softmax_row(void *vctx, int64_t row, int thread) {
    const lc_softmax_ctx *t = (const lc_softmax_ctx *)vctx;
    const float *x = t->x + row * t->n;
    float *y = t->y + row * t->n;
    const int64_t n = t->n;
    (void)thread;
    float m = x[0];
    int nan = x[0] != x[0];
    for (int64_t i = 1; i < n; i++) {
        m = x[i] > m ? x[i] : m;
        nan |= x[i] != x[i];
    }
    if (nan) m = NAN;   /* a NaN anywhere: every output NaN, as NumPy's max gives */
    float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - m);
        part[i & 7] += y[i];
    }
    const float s = ((part[0] + part[1]) + (part[2] + part[3])) +
                    ((part[4] + part[5]) + (part[6] + part[7]));
    for (int64_t i = 0; i < n; i++) y[i] /= s;
}

int lc_softmax(const float *x, float *y, int64_t rows, int64_t n, int nthreads) {
    if (rows <= 0 || n <= 0) return LC_OK;
    /* work: about 20 multiply-adds' worth a value (expf) */
    const double work = 20.0 * (double)rows * (double)n;
    lc_softmax_ctx t;
    t.x = x; t.y = y; t.n = n;
    lc_parallel_for(nthreads, rows, work, softmax_row, &t);
    return LC_OK;
}
