/* Copying runs of floats gathered from offsets (include/leanconv/gather.h).
 * In C on leanconv's threads rather than NumPy's copy of the strided view:
 * one thread's copy of a 750 KB channel shuffle is ~27 us on a Zen 5 core,
 * a step that at 2 threads would otherwise stay on one. */
#include <string.h>

#include "leanconv/gather.h"
#include "internal.h"

typedef struct {
    const float *x;
    float *y;
    const int64_t *offsets;
    int64_t run, per_item, runs;
} lc_gather_ctx;

static void gather_item(void *vctx, int64_t item, int thread) {
    const lc_gather_ctx *t = (const lc_gather_ctx *)vctx;
    const int64_t i0 = item * t->per_item;
    const int64_t i1 = i0 + t->per_item < t->runs ? i0 + t->per_item : t->runs;
    (void)thread;
    for (int64_t i = i0; i < i1; i++)
        memcpy(t->y + i * t->run, t->x + t->offsets[i], (size_t)t->run * sizeof(float));
}

int lc_gather_runs(const float *x, float *y, const int64_t *offsets, int64_t runs, int64_t run,
                   int nthreads) {
    if (runs <= 0 || run <= 0) return LC_OK;
    /* work: a float copied costs about 3 multiply-adds' time (NumPy's copy of
     * the shuffle above: 7 floats a ns, against ~25 multiply-adds); items of
     * about 4 K floats, at least one run each */
    const double work = 3.0 * (double)runs * (double)run;
    lc_gather_ctx t;
    t.x = x; t.y = y; t.offsets = offsets; t.run = run; t.runs = runs;
    t.per_item = 4096 / run > 1 ? 4096 / run : 1;
    lc_parallel_for(nthreads, (runs + t.per_item - 1) / t.per_item, work, gather_item, &t);
    return LC_OK;
}
