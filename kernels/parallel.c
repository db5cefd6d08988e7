/* How a parallel loop runs: leanconv's own pool (kernels/threadpool.c) on
 * POSIX, OpenMP where there is no pool (Windows), inline when one thread is
 * asked for or the build is serial.  Work is split into items (batch x group
 * x pixel/tile block, never a K slice), so the result of every item is
 * computed by one thread in a fixed order: output is bitwise identical for
 * any thread count. */
#include <string.h>

#include "internal.h"
#include "threadpool.h"
#if !LC_POOL_PTHREADS && defined(LC_HAVE_OPENMP)
#include <omp.h>
#endif

/* Work a thread must get to be worth a region, in multiply-adds.  A region
 * costs about 1 us of hand-over and cache-line traffic when the workers are
 * awake and 25-100 us when they have to be woken (docs/threading.md); the
 * bound keeps each thread's share at 10+ us on a fast AVX-512 core (~25 GMAC/s
 * on small layers) and 30-60 us on AVX2/NEON cores, so even the worst case
 * wake-up costs less than the second thread gains.  A constant, not a
 * measurement of this CPU: a plan's workspace depends on it and must be the
 * same in every process. */
#define LC_MIN_WORK_PER_THREAD 262144.0

int lc_threads_for_work(int nthreads, double work) {
    if (nthreads <= 1) return 1;
    const double worth = work / LC_MIN_WORK_PER_THREAD;
    if (worth < 2.0) return 1;
    return worth < (double)nthreads ? (int)worth : nthreads;
}

/* Debug schedules (lc_debug_schedule; off by default): LC_DEBUG_POISON
 * fills a thread's scratch with NaN before each item takes it, and
 * LC_DEBUG_REVERSE runs a loop's items on the calling thread last to first,
 * item i as thread i mod T: an item that reads scratch another item left, or
 * depends on the order of items, then changes the output.  The tests flip it between
 * calls, never while a loop runs. */
static volatile int lc_debug_flags;

void lc_debug_schedule(int flags) {
    lc_debug_flags = flags;
}

void *lc_thread_scratch_kept(void *base, int64_t slice_bytes, int thread, int64_t kept_bytes) {
    char *s = (char *)base + (int64_t)thread * slice_bytes;
    if (lc_debug_flags & LC_DEBUG_POISON) {
        const uint32_t nan_bits = 0x7fc00000u;
        for (int64_t i = kept_bytes; i + 4 <= slice_bytes; i += 4) memcpy(s + i, &nan_bits, 4);
    }
    return s;
}

void *lc_thread_scratch(void *base, int64_t slice_bytes, int thread) {
    return lc_thread_scratch_kept(base, slice_bytes, thread, 0);
}

void lc_kept_tags_clear(lc_kept_tags *k) {
    for (int i = 0; i < LC_KEPT_THREADS; i++) k->tag[i] = -1;
}

int lc_kept_tags_hit(lc_kept_tags *k, int thread, int64_t tag) {
    if (thread < 0 || thread >= LC_KEPT_THREADS) return 0;
    if (k->tag[thread] == tag) return 1;
    k->tag[thread] = tag;
    return 0;
}

void lc_parallel_for(int nthreads, int64_t count, double work, lc_task_fn fn, void *ctx) {
    const int t = lc_threads_used(nthreads, count, work);
    if (lc_debug_flags & LC_DEBUG_REVERSE) {
        for (int64_t i = count - 1; i >= 0; i--) fn(ctx, i, (int)(i % t));
        return;
    }
    if (t > 1) {
#if LC_POOL_PTHREADS
        lc_pool_parallel_for(t, count, fn, ctx);
        return;
#elif defined(LC_HAVE_OPENMP)
        int64_t i;
#pragma omp parallel for schedule(static) num_threads(t)
        for (i = 0; i < count; i++) fn(ctx, i, omp_get_thread_num());
        return;
#endif
    }
    lc_pool_serial_for(count, fn, ctx);
}
