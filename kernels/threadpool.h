/* leanconv's thread pool (kernels/threadpool.c), used by kernels/parallel.c. */
#ifndef LEANCONV_THREADPOOL_H
#define LEANCONV_THREADPOOL_H

#include <stdint.h>

#include "internal.h"

/* The pool is POSIX threads, in a threaded build (LC_HAVE_OPENMP: the build
 * found a threads runtime) on a POSIX system; elsewhere (Windows)
 * lc_parallel_for keeps OpenMP, and a serial build runs every loop inline. */
#if defined(LC_HAVE_OPENMP) && !defined(_WIN32)
#define LC_POOL_PTHREADS 1
#else
#define LC_POOL_PTHREADS 0
#endif

/* Most threads one region uses (lc_threads_used caps there too, so the
 * per-thread workspace agrees). */
#define LC_POOL_MAX_TEAM LC_THREADS_MAX

/* How long an idle worker spins for the next region before it sleeps, by
 * default.  Waking a sleeping thread costs 25-90 us on the KVM guest this was
 * measured on (docs/threading.md); the gaps between one layer's regions and
 * the next are 1-50 us inside a model run, while the next engine or program
 * step after a run is usually milliseconds away.  300 us covers the first and
 * keeps the cost to the second below a third of a millisecond of one core. */
#define LC_POOL_DEFAULT_SPIN_US 300

/* Log2 buckets of the gap between one region's end and the next one's start, in us. */
#define LC_POOL_GAP_BUCKETS 24

typedef struct {
    int workers;          /* worker threads started (0 until a region needs them) */
    int64_t regions;      /* regions run on the pool */
    int64_t inline_regions; /* regions run serially because the pool was busy */
    int64_t sleeps;       /* times a worker went to sleep after its spin */
    int64_t moves;        /* times a worker moved off a team mate's CPU (lc_pool_spread) */
    int64_t spin_us;
    int64_t gap_hist[LC_POOL_GAP_BUCKETS]; /* [k]: gaps of 2^(k-1)..2^k us ([0]: < 1 us) */
} lc_pool_statistics;

/* A debug trace of parallel loops (lc_pool_trace; off by default): one
 * record per loop, the first LC_POOL_TRACE_SLOTS team slots in detail. */
#define LC_POOL_TRACE_SLOTS 4
typedef struct {
    const void *fn;      /* the task function (named from the symbol table by bench/step_threads.py) */
    int64_t count;       /* items */
    int32_t team;        /* threads it ran on (1: serial) */
    int32_t cpu[LC_POOL_TRACE_SLOTS];       /* CPU each slot ran its first item on (-1: none) */
    int64_t start_ns, end_ns;               /* the caller's view, CLOCK_MONOTONIC */
    int64_t busy_ns[LC_POOL_TRACE_SLOTS];   /* time each slot spent in items */
    int64_t first_ns[LC_POOL_TRACE_SLOTS];  /* when each slot took its first item */
    int64_t items[LC_POOL_TRACE_SLOTS];     /* items each slot ran */
    /* CPU time each slot's thread used in its items (CLOCK_THREAD_CPUTIME_ID;
     * 0 where there is none): unlike busy_ns it leaves out the time the OS
     * ran something else on that CPU, so on a shared machine it still shows
     * what the items themselves cost (caches, hand-overs between cores) */
    int64_t cpu_ns[LC_POOL_TRACE_SLOTS];
} lc_pool_trace_rec;

void lc_pool_parallel_for(int team, int64_t count, void (*fn)(void *, int64_t, int), void *ctx);
/* A loop run on the calling thread (traced like a region of team 1). */
void lc_pool_serial_for(int64_t count, void (*fn)(void *, int64_t, int), void *ctx);
/* Starts a fresh trace with room for `capacity` loops (0: stops it and frees
 * it); returns 0, or -1 when out of memory. */
int lc_pool_trace(int64_t capacity);
/* Copies up to `max` records of the trace into out; returns how many. */
int64_t lc_pool_trace_read(lc_pool_trace_rec *out, int64_t max);
/* Work stealing on (1) or off (0): see lc_pool_work. */
void lc_pool_set_stealing(int on);
/* Keeping workers off the caller's CPU (lc_pool_spread / lc_pool_wake_away in
 * threadpool.c; on by default, LEANCONV_POOL_SPREAD=0 turns it off). */
void lc_pool_set_spread(int on);
void lc_pool_set_spin_us(int64_t us);
void lc_pool_stats(lc_pool_statistics *s);
void lc_pool_reset_stats(void);
int lc_region_probe(int use_openmp, int64_t gap_ns, int rounds, int64_t *ns);

#endif
