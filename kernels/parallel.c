/* The one place that knows about OpenMP.  Work is split into items (batch x
 * group x pixel/tile block, never a K slice), so the result of every item is
 * computed by one thread in a fixed order: output is bitwise identical for any
 * thread count. */
#include "internal.h"
#ifdef LC_HAVE_OPENMP
#include <omp.h>
#endif

void lc_parallel_for(int nthreads, int64_t count, lc_task_fn fn, void *ctx) {
#ifdef LC_HAVE_OPENMP
    int t = lc_threads_used(nthreads, count);
    if (t > 1) {
        int64_t i;
#pragma omp parallel for schedule(static) num_threads(t)
        for (i = 0; i < count; i++) fn(ctx, i, omp_get_thread_num());
        return;
    }
#else
    (void)nthreads;
#endif
    for (int64_t i = 0; i < count; i++) fn(ctx, i, 0);
}
