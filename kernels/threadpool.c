/* leanconv's own thread pool (POSIX threads), behind lc_parallel_for.
 *
 * Why not OpenMP: on the 2-vCPU KVM machine this was written on, waking a
 * sleeping thread costs 25-90 us (the idle vCPU has halted; see
 * docs/threading.md), a model makes 40-200 parallel regions per run, and
 * libgomp's choice is between spinning ~ms after every region (starving
 * whatever runs next) and a wake-up per region.  Here the workers spin a
 * bounded time (lc_pool_set_spin_us) after their last region, so the regions
 * of one model run find them awake, then sleep on a condition variable.
 *
 * A region: items [0, count) are cut into `team` contiguous ranges, range s
 * for team slot s (slot 0 is the caller).  Each thread takes items from the
 * front of its own range, then from the other ranges (work stealing, see
 * lc_pool_work).  Every item is computed whole by one thread, and
 * the `thread` argument only picks that thread's scratch (< team, the slots
 * lc_threads_used promised the workspace for), so the result is bitwise the
 * same for any team and any interleaving.
 *
 * Publication is a sequence lock on `gen`: odd while the caller writes the
 * job, even once published.  A worker announces itself in `inside` and
 * re-reads `gen` before it trusts the job; the caller waits for `inside` to
 * drain before it rewrites the job.  The caller returns once `done` reaches
 * the item count (release/acquire: the workers' stores are visible then).
 * One region at a time: a call that finds the pool busy (another Python
 * thread, or a task that itself calls lc_parallel_for) runs serially on its
 * own thread -- same bits, no deadlock. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, for the trace; implies the POSIX functions below */
#endif
#if !defined(_WIN32) && !defined(__APPLE__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, sched_yield under a strict -std */
#endif
#include <string.h>

#include "internal.h"
#include "threadpool.h"

#if LC_POOL_PTHREADS

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h> /* SYS_gettid: glibc before 2.30 has no gettid() */
#endif

#define LC_POOL_LINE 64
#define LC_POOL_YIELD_NS 20000

/* A line of its own: the counter takes an atomic add per item, and a line
 * shared with the job (fn, ctx, read by every thread per item) or with
 * another range would bounce between the cores on every item; on 14x14
 * depthwise planes (~40 ns an item) that made 2 threads slower than 1. */
typedef struct {
    _Alignas(LC_POOL_LINE) _Atomic long next; /* items of the range taken so far */
} lc_pool_range;

typedef struct {
    /* the job: written by the caller while gen is odd */
    lc_task_fn fn;
    void *ctx;
    long count;
    int team;
    int steal;   /* this region's threads take items from each other's ranges */
    lc_pool_trace_rec *trace; /* this region's trace record, or NULL */
    lc_pool_range range[LC_POOL_MAX_TEAM];
    _Alignas(LC_POOL_LINE) _Atomic unsigned gen;
    _Alignas(LC_POOL_LINE) _Atomic int inside;   /* workers reading the job */
    _Alignas(LC_POOL_LINE) _Atomic long done;    /* items finished this region */
    _Alignas(LC_POOL_LINE) _Atomic int sleepers; /* workers in cond_wait */
    atomic_flag busy;                            /* a region is running */
    _Atomic long spin_ns;                        /* idle spin after a region */
    _Atomic int stealing;                        /* lc_pool_set_stealing */
    _Atomic int spread;                          /* lc_pool_set_spread */
    int workers;                                 /* threads started (slots 1..workers) */
    _Atomic unsigned born_gen;                   /* gen before the region that started them */
    int cpus;                                    /* online CPUs: no spinning beyond */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* statistics, for the tests and docs/threading.md */
    _Atomic long regions, inline_regions, sleeps, moves;
    /* lc_pool_spread's view of the workers: thread id, the region each last
     * joined and the CPU it worked on there; when the caller last moved it */
    _Atomic int tid[LC_POOL_MAX_TEAM];
    _Atomic unsigned joined_gen[LC_POOL_MAX_TEAM];
    _Atomic int cpu_of[LC_POOL_MAX_TEAM];
    int64_t last_move_ns[LC_POOL_MAX_TEAM];
    int64_t missed_ns[LC_POOL_MAX_TEAM]; /* time of the regions it missed since it last joined one */
#ifdef __linux__
    /* lc_pool_wake_away: under `lock`, which workers sleep, and which the
     * caller narrowed before waking them (their own affinity, to give back) */
    int asleep[LC_POOL_MAX_TEAM], narrowed[LC_POOL_MAX_TEAM];
    cpu_set_t allowed[LC_POOL_MAX_TEAM];
#endif
    int64_t last_end_ns; /* when the last region ended (caller's side) */
    long gap_hist[LC_POOL_GAP_BUCKETS];
} lc_pool;

static lc_pool lc_the_pool = {.busy = ATOMIC_FLAG_INIT, .spin_ns = LC_POOL_DEFAULT_SPIN_US * 1000L,
                              .stealing = 1, .spread = 1,
                              .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};
static pthread_once_t lc_pool_once = PTHREAD_ONCE_INIT;

/* A hint to the core that this is a spin-wait loop (lets the sibling
 * hyper-thread run, saves power); nothing where there is no such hint. */
static inline void lc_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t lc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One round of a wait for another thread: spin a little, then give the CPU
 * away (the thread waited for may be preempted, and need this CPU). */
static inline void lc_wait_round(unsigned n) {
    if (n < 256) lc_cpu_relax();
    else sched_yield();
}

/* Items [lo, hi) of range s in a region of `count` items over `team` slots. */
static inline void lc_range_of(long count, int team, int s, long *lo, long *hi) {
    *lo = (long)((int64_t)count * s / team);
    *hi = (long)((int64_t)count * (s + 1) / team);
}

/* ---- the debug trace (lc_pool_trace) ---- */

static struct {
    lc_pool_trace_rec *rec;
    int64_t capacity;
    _Atomic int64_t next; /* records taken (may pass capacity: those are dropped) */
} lc_trace;

/* The calling thread's CPU time (ns), for the trace; 0 where there is none. */
static int64_t lc_thread_cpu_ns(void) {
#ifdef CLOCK_THREAD_CPUTIME_ID
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
    return 0;
}

static int lc_trace_cpu(void) {
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
}

/* A fresh record for a loop, or NULL when not tracing (or full). */
static lc_pool_trace_rec *lc_trace_begin(const void *fn, int64_t count, int team) {
    if (!lc_trace.rec) return NULL;
    const int64_t k = atomic_fetch_add_explicit(&lc_trace.next, 1, memory_order_relaxed);
    if (k >= lc_trace.capacity) return NULL;
    lc_pool_trace_rec *r = &lc_trace.rec[k];
    memset(r, 0, sizeof *r);
    for (int s = 0; s < LC_POOL_TRACE_SLOTS; s++) r->cpu[s] = -1;
    r->fn = fn;
    r->count = count;
    r->team = team;
    r->start_ns = lc_now_ns();
    return r;
}

int lc_pool_trace(int64_t capacity) {
    free(lc_trace.rec);
    lc_trace.rec = NULL;
    lc_trace.capacity = 0;
    atomic_store(&lc_trace.next, 0);
    if (capacity <= 0) return 0;
    lc_pool_trace_rec *r = (lc_pool_trace_rec *)calloc((size_t)capacity, sizeof *r);
    if (!r) return -1;
    lc_trace.capacity = capacity;
    lc_trace.rec = r;
    return 0;
}

int64_t lc_pool_trace_read(lc_pool_trace_rec *out, int64_t max) {
    const int64_t n = lc_min64(lc_min64(atomic_load(&lc_trace.next), lc_trace.capacity), max);
    if (n > 0) memcpy(out, lc_trace.rec, (size_t)n * sizeof *out);
    return n;
}

void lc_pool_serial_for(int64_t count, lc_task_fn fn, void *ctx) {
    lc_pool_trace_rec *r = lc_trace_begin((const void *)fn, count, 1);
    const int64_t c0 = r ? lc_thread_cpu_ns() : 0;
    for (int64_t i = 0; i < count; i++) fn(ctx, i, 0);
    if (r) {
        r->cpu_ns[0] = lc_thread_cpu_ns() - c0;
        r->end_ns = lc_now_ns();
        r->busy_ns[0] = r->end_ns - r->start_ns;
        r->first_ns[0] = r->start_ns;
        r->items[0] = count;
        r->cpu[0] = lc_trace_cpu();
    }
}

/* Runs items of the published job as team slot `slot`: its own range from
 * the front, then (with stealing) what is left of the others' ranges, so a
 * worker the OS has not scheduled yet, or preempted, does not hold the
 * caller up.  Which thread, and so which scratch, runs an item then varies
 * from run to run; the bits do not, as no item reads scratch it did not
 * write (tests/test_scratch_poison.py checks every driver with poisoned
 * scratch).  Returns how many items it ran. */
static long lc_pool_work(lc_pool *p, int slot) {
    const int team = p->team;
    const long count = p->count;
    const lc_task_fn fn = p->fn;   /* read once: the job does not change in a region */
    void *const ctx = p->ctx;
    lc_pool_trace_rec *tr = p->trace && slot < LC_POOL_TRACE_SLOTS ? p->trace : NULL;
    const int64_t t0 = tr ? lc_now_ns() : 0, c0 = tr ? lc_thread_cpu_ns() : 0;
    long ran = 0;
    for (int k = 0; k < (p->steal ? team : 1); k++) {
        const int s = (slot + k) % team;
        long lo, hi;
        lc_range_of(count, team, s, &lo, &hi);
        for (;;) {
            const long i = lo + atomic_fetch_add_explicit(&p->range[s].next, 1, memory_order_relaxed);
            if (i >= hi) break;
            fn(ctx, (int64_t)i, slot);
            ran++;
        }
    }
    /* Only a slot that ran items writes its entry: a worker that came after
     * the last item was taken adds nothing to `done`, so the caller may have
     * returned, and the trace been freed (lc_pool_trace(0)), by the time it
     * got here; one that ran items writes before its release on `done`. */
    if (tr && ran > 0) {
        const int64_t t1 = lc_now_ns();
        tr->first_ns[slot] = t0;
        tr->busy_ns[slot] = t1 - t0;
        tr->items[slot] = ran;
        tr->cpu[slot] = lc_trace_cpu();
        tr->cpu_ns[slot] = lc_thread_cpu_ns() - c0;
    }
    return ran;
}

/* A worker's idle wait: spin until `gen` moves past `seen` or the spin
 * budget runs out, then sleep.  Returns the new (even) generation. */
static unsigned lc_pool_wait(lc_pool *p, int slot, unsigned seen) {
    const long budget = p->workers + 1 > p->cpus ? 0 : atomic_load_explicit(&p->spin_ns, memory_order_relaxed);
    int64_t until = -1, next_yield = -1;
    for (unsigned n = 0;; n++) {
        const unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen && !(g & 1)) return g;
        if ((n & 63) == 0) {
            const int64_t t = lc_now_ns();
            if (until < 0) {
                until = t + budget;
                next_yield = t + LC_POOL_YIELD_NS;
            }
            if (t >= until) break;
            /* Every LC_POOL_YIELD_NS the spin offers its CPU to whatever
             * else waits for it: when the OS has put this worker on the
             * caller's CPU (a loaded machine, or a wake-up placed there), the
             * caller otherwise waited out the whole spin between regions,
             * ~300 us (bench/region_trace.py).  Harmless when no one waits;
             * on a loaded machine the worker may then be late for the next
             * region, which costs nothing: the caller takes its items. */
            if (t >= next_yield) {
                sched_yield();
                next_yield = t + LC_POOL_YIELD_NS;
            }
        }
        lc_cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);
    atomic_fetch_add_explicit(&p->sleeps, 1, memory_order_relaxed);
    unsigned g;
#ifdef __linux__
    p->asleep[slot] = 1;
#endif
    while ((g = atomic_load(&p->gen)) == seen || (g & 1)) pthread_cond_wait(&p->wake, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
#ifdef __linux__
    p->asleep[slot] = 0;
    if (p->narrowed[slot]) /* awake elsewhere: free again (under the lock, as every affinity change) */
        sched_setaffinity(0, sizeof p->allowed[slot], &p->allowed[slot]);
    p->narrowed[slot] = 0;
#else
    (void)slot;
#endif
    pthread_mutex_unlock(&p->lock);
    return g;
}

static void *lc_pool_worker(void *arg) {
    lc_pool *p = &lc_the_pool;
    const int slot = (int)(intptr_t)arg;
#ifdef __linux__
    atomic_store(&p->tid[slot], (int)syscall(SYS_gettid));
#endif
    /* the generation before the region that started this worker: it takes
     * part in that region even when it first runs after its publication */
    unsigned seen = atomic_load(&p->born_gen);
    for (;;) {
        const unsigned g = lc_pool_wait(p, slot, seen);
        seen = g;
        atomic_fetch_add(&p->inside, 1);
        atomic_thread_fence(memory_order_seq_cst); /* the worker's side (see lc_pool_region) */
        if (atomic_load(&p->gen) != g || slot >= p->team) { /* stale, or not in this team */
            atomic_fetch_sub(&p->inside, 1);
            continue;
        }
#ifdef __linux__
        atomic_store_explicit(&p->cpu_of[slot], sched_getcpu(), memory_order_relaxed);
        atomic_store_explicit(&p->joined_gen[slot], g, memory_order_relaxed);
#endif
        const long ran = lc_pool_work(p, slot);
        atomic_fetch_add_explicit(&p->done, ran, memory_order_release);
        atomic_fetch_sub(&p->inside, 1);
    }
    return NULL;
}

/* After fork the child has only the thread that forked: no workers. */
static void lc_pool_after_fork_child(void) {
    lc_pool *p = &lc_the_pool;
    p->workers = 0;
    atomic_store(&p->inside, 0);
    atomic_store(&p->sleepers, 0);
    atomic_flag_clear(&p->busy);
    for (int s = 0; s < LC_POOL_MAX_TEAM; s++) {
        atomic_store(&p->tid[s], 0);
        atomic_store(&p->joined_gen[s], 0);
#ifdef __linux__
        p->asleep[s] = p->narrowed[s] = 0;
#endif
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
}

static void lc_pool_init(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    lc_the_pool.cpus = n > 0 ? (int)n : 1;
    pthread_atfork(NULL, NULL, lc_pool_after_fork_child);
}

/* Starts workers up to slot team-1; returns the team it can have. */
static int lc_pool_grow(lc_pool *p, int team) {
    atomic_store(&p->born_gen, atomic_load(&p->gen));
    while (p->workers < team - 1) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int err = pthread_create(&th, &attr, lc_pool_worker, (void *)(intptr_t)(p->workers + 1));
        pthread_attr_destroy(&attr);
        if (err) break;
#ifdef __linux__
        /* named, so a profile (or bench/model_threads.py's CPU columns) tells
         * the pool's threads from other libraries' */
        pthread_setname_np(th, "leanconv-pool");
#endif
        p->workers++;
    }
    return team < p->workers + 1 ? team : p->workers + 1;
}

static void lc_run_serial(long count, lc_task_fn fn, void *ctx, int64_t base) {
    if (base == 0) {
        lc_pool_serial_for(count, fn, ctx);
        return;
    }
    for (long i = 0; i < count; i++) fn(ctx, base + i, 0);
}

typedef struct {
    lc_task_fn fn;
    void *ctx;
    int64_t base;
} lc_offset_ctx;

static void lc_offset_task(void *vctx, int64_t item, int thread) {
    const lc_offset_ctx *o = (const lc_offset_ctx *)vctx;
    o->fn(o->ctx, o->base + item, thread);
}

/* Counts the gap since the last region ended in its log2 bucket. */
static void lc_pool_note_gap(lc_pool *p, int64_t start) {
    if (p->last_end_ns > 0) {
        int64_t us = (start - p->last_end_ns) / 1000;
        int k = 0;
        while (us > 0 && k < LC_POOL_GAP_BUCKETS - 1) { us >>= 1; k++; }
        p->gap_hist[k]++;
    }
}

/* After a region: moves each worker that shared the caller's CPU, or missed
 * regions long enough (together) for it to have joined, to another CPU.
 *
 * Why: on the 2-vCPU KVM guest this was written on, a worker woken from its
 * sleep is usually placed on the CPU of the caller that woke it (the guest's
 * scheduler takes a halted vCPU for a preempted one, not an idle one) and
 * stays there while the other vCPU idles: the caller, which never blocks,
 * runs every item itself.  A 2-thread call after a pause took longer than a
 * 1-thread one (64@56 Winograd F4: 0.39-0.48 ms, 1 thread 0.37, 0.21 once the
 * threads sit on different CPUs); a model called once per camera frame, or a
 * benchmark that lets the pools go quiet between turns, sees only that case.
 * The move narrows the worker's affinity to the allowed CPUs no team mate
 * worked on (the kernel migrates it at once, running or queued) and gives the
 * allowed set back straight after: nothing stays pinned and the scheduler is
 * free to balance later.  At most once per LC_POOL_MOVE_GAP_NS per worker, so
 * where the scheduler keeps putting it back (other work on the other CPUs)
 * it costs two system calls a millisecond. */
#define LC_POOL_MOVE_GAP_NS 1000000
/* a worker on a CPU of its own joins a region well within this (a halted
 * vCPU wakes in 25-90 us); missing regions that long in total (a model's
 * regions are often 10-50 us each) means it is waiting for the caller's CPU */
#define LC_POOL_LATE_NS 100000
#ifdef __linux__
/* lc_pool_spread's move of worker `s` (thread `tid`), under p->lock. */
static void lc_pool_move_away(lc_pool *p, int s, int tid, int caller_cpu, int team) {
    if (p->narrowed[s]) return; /* already kept off the caller's CPU until it wakes */
    cpu_set_t allowed, away;
    if (sched_getaffinity(tid, sizeof allowed, &allowed) != 0) return;
    away = allowed;
    CPU_CLR(caller_cpu, &away);
    for (int o = 1; o < team; o++) { /* and off the CPUs the other workers worked on */
        const int c = atomic_load_explicit(&p->cpu_of[o], memory_order_relaxed);
        if (o != s && c >= 0 && c < CPU_SETSIZE && CPU_ISSET(c, &away) && CPU_COUNT(&away) > 1)
            CPU_CLR(c, &away);
    }
    if (CPU_COUNT(&away) == 0 || sched_setaffinity(tid, sizeof away, &away) != 0) return;
    sched_setaffinity(tid, sizeof allowed, &allowed);
    atomic_fetch_add_explicit(&p->moves, 1, memory_order_relaxed);
}
#endif

static void lc_pool_spread(lc_pool *p, int team, unsigned gen, int caller_cpu, int64_t start, int64_t end) {
#ifdef __linux__
    if (caller_cpu < 0 || caller_cpu >= CPU_SETSIZE) return;
    for (int s = 1; s < team; s++) {
        const int joined = atomic_load_explicit(&p->joined_gen[s], memory_order_relaxed) == gen;
        const int tid = atomic_load_explicit(&p->tid[s], memory_order_relaxed);
        p->missed_ns[s] = joined ? 0 : p->missed_ns[s] + (end - start);
        const int stuck = joined ? atomic_load_explicit(&p->cpu_of[s], memory_order_relaxed) == caller_cpu
                                 : p->missed_ns[s] >= LC_POOL_LATE_NS;
        if (!stuck || tid <= 0 || end - p->last_move_ns[s] < LC_POOL_MOVE_GAP_NS) continue;
        p->last_move_ns[s] = end;
        p->missed_ns[s] = 0;
        /* Every affinity change happens under p->lock: a worker narrowed by
         * lc_pool_wake_away gives itself its set back under it, and reading
         * the narrowed set here as "allowed" would pin it for good. */
        pthread_mutex_lock(&p->lock);
        lc_pool_move_away(p, s, tid, caller_cpu, team);
        pthread_mutex_unlock(&p->lock);
    }
#else
    (void)p; (void)team; (void)gen; (void)caller_cpu; (void)start; (void)end;
#endif
}


/* Before waking sleeping workers (under p->lock): keeps the caller's CPU out
 * of each sleeping team member's affinity, so the wake-up cannot place it
 * there (see lc_pool_spread for why it otherwise would); the worker gives
 * itself its own affinity back as soon as it runs (lc_pool_wait).  Costs two
 * system calls per sleeping worker, once per wake-up (>= the spin bound of
 * idleness), against a first region run by the caller alone. */
static void lc_pool_wake_away(lc_pool *p, int team) {
#ifdef __linux__
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE) return;
    for (int s = 1; s < team; s++) {
        const int tid = atomic_load_explicit(&p->tid[s], memory_order_relaxed);
        if (!p->asleep[s] || p->narrowed[s] || tid <= 0) continue;
        if (sched_getaffinity(tid, sizeof p->allowed[s], &p->allowed[s]) != 0) continue;
        cpu_set_t away = p->allowed[s];
        CPU_CLR(cpu, &away);
        if (CPU_COUNT(&away) > 0 && sched_setaffinity(tid, sizeof away, &away) == 0) p->narrowed[s] = 1;
    }
#else
    (void)p; (void)team;
#endif
}

static void lc_pool_region(lc_pool *p, int team, long count, lc_task_fn fn, void *ctx) {
    const int64_t start = lc_now_ns();
    lc_pool_note_gap(p, start);
    const unsigned g = atomic_load(&p->gen);
    atomic_store(&p->gen, g + 1); /* odd: the job is being written */
    /* The store above and the load of `inside` below are one side of a
     * Dekker handshake with lc_pool_worker (inside++, then gen is read): at
     * least one of the two must see the other.  seq_cst already promises it;
     * the explicit full fence is there for translations that do not keep
     * it: under qemu-aarch64 (x86 host) grouped Im2Col at 7 threads gave a
     * wrong last GEMM chunk in 3 of 180 runs without these fences and in
     * none of 720 with them (likely the store of `gen` and the load of
     * `inside` passing each other, so a worker joined a region whose job
     * was being rewritten). */
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned n = 0; atomic_load(&p->inside) != 0; n++) lc_wait_round(n);
    p->fn = fn;
    p->ctx = ctx;
    p->count = count;
    p->team = team;
    p->steal = atomic_load_explicit(&p->stealing, memory_order_relaxed);
    p->trace = lc_trace_begin((const void *)fn, count, team);
    for (int s = 0; s < team; s++) atomic_store_explicit(&p->range[s].next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store(&p->gen, g + 2); /* published */
    atomic_thread_fence(memory_order_seq_cst); /* the same handshake with a worker going to sleep */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->lock);
        if (p->cpus > 1 && atomic_load_explicit(&p->spread, memory_order_relaxed)) lc_pool_wake_away(p, team);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    long finished = lc_pool_work(p, 0);
    finished = atomic_fetch_add_explicit(&p->done, finished, memory_order_acq_rel) + finished;
    for (unsigned n = 0; finished < count; n++) { /* items still running on workers */
        lc_wait_round(n);
        finished = atomic_load_explicit(&p->done, memory_order_acquire);
    }
    atomic_fetch_add_explicit(&p->regions, 1, memory_order_relaxed);
    p->last_end_ns = lc_now_ns();
    if (p->cpus > 1 && atomic_load_explicit(&p->spread, memory_order_relaxed))
        lc_pool_spread(p, team, g + 2, lc_trace_cpu(), start, p->last_end_ns);
    if (p->trace) p->trace->end_ns = p->last_end_ns;
}

void lc_pool_parallel_for(int team, int64_t count, lc_task_fn fn, void *ctx) {
    lc_pool *p = &lc_the_pool;
    pthread_once(&lc_pool_once, lc_pool_init);
    if (team > LC_POOL_MAX_TEAM) team = LC_POOL_MAX_TEAM;
    if (team <= 1 || atomic_flag_test_and_set_explicit(&p->busy, memory_order_acquire)) {
        if (team > 1) atomic_fetch_add_explicit(&p->inline_regions, 1, memory_order_relaxed);
        lc_run_serial((long)count, fn, ctx, 0); /* count fits a long: see below */
        return;
    }
    team = lc_pool_grow(p, team);
    /* A region's item count fits a long (32 bits on i686): larger loops go
     * in slices, each one region. */
    const int64_t slice = 1L << 30;
    for (int64_t base = 0; base < count; base += slice) {
        const long n = (long)lc_min64(slice, count - base);
        const int t = (int)lc_min64(team, n);
        if (t <= 1) {
            lc_run_serial(n, fn, ctx, base);
        } else if (base == 0) {
            lc_pool_region(p, t, n, fn, ctx);
        } else {
            lc_offset_ctx o = {fn, ctx, base};
            lc_pool_region(p, t, n, lc_offset_task, &o);
        }
    }
    atomic_flag_clear_explicit(&p->busy, memory_order_release);
}

void lc_pool_set_stealing(int on) { atomic_store(&lc_the_pool.stealing, on != 0); }

void lc_pool_set_spread(int on) { atomic_store(&lc_the_pool.spread, on != 0); }

void lc_pool_set_spin_us(int64_t us) {
    atomic_store(&lc_the_pool.spin_ns, (long)(lc_min64(lc_max64(us, 0), 1000000) * 1000));
}

void lc_pool_stats(lc_pool_statistics *s) {
    lc_pool *p = &lc_the_pool;
    s->workers = p->workers;
    s->regions = atomic_load(&p->regions);
    s->inline_regions = atomic_load(&p->inline_regions);
    s->sleeps = atomic_load(&p->sleeps);
    s->moves = atomic_load(&p->moves);
    s->spin_us = atomic_load(&p->spin_ns) / 1000;
    for (int k = 0; k < LC_POOL_GAP_BUCKETS; k++) s->gap_hist[k] = p->gap_hist[k];
}

void lc_pool_reset_stats(void) {
    lc_pool *p = &lc_the_pool;
    atomic_store(&p->regions, 0);
    atomic_store(&p->inline_regions, 0);
    atomic_store(&p->sleeps, 0);
    atomic_store(&p->moves, 0);
    p->last_end_ns = 0;
    memset(p->gap_hist, 0, sizeof p->gap_hist);
}

#endif

/* ---- the region-cost probe (bench/region_cost.py, docs/threading.md) ---- */

#if !defined(_WIN32) && (LC_POOL_PTHREADS || defined(LC_HAVE_OPENMP))
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#ifdef LC_HAVE_OPENMP
#include <omp.h>
#endif

static int64_t lc_probe_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    _Atomic long arrived;
    long target;
    _Atomic int late; /* a rendezvous timed out */
} lc_probe_ctx;

/* Both items of a region meet: each waits (at most 1 s) for the other, so
 * the region has really run on two threads, the worker woken if it slept. */
static void lc_probe_task(void *vctx, int64_t item, int thread) {
    lc_probe_ctx *c = (lc_probe_ctx *)vctx;
    (void)item;
    (void)thread;
    atomic_fetch_add(&c->arrived, 1);
    const int64_t give_up = lc_probe_now_ns() + 1000000000;
    while (atomic_load(&c->arrived) < c->target)
        if (lc_probe_now_ns() > give_up) {
            atomic_store(&c->late, 1);
            return;
        }
}

/* Times `rounds` two-thread regions of two meeting items (lc_probe_task),
 * each after the caller has been busy `gap_ns` (as between layers), on the
 * pool or on OpenMP (the runtime this build links, under its environment):
 * ns[r] per region.  Returns 0; -1 when that backend is not in the build (or
 * the machine has one CPU); -2 when a rendezvous timed out. */
int lc_region_probe(int use_openmp, int64_t gap_ns, int rounds, int64_t *ns) {
    lc_probe_ctx c;
    atomic_init(&c.arrived, 0);
    atomic_init(&c.late, 0);
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) return -1;
#ifndef LC_HAVE_OPENMP
    if (use_openmp) return -1;
#endif
    if (!use_openmp && !LC_POOL_PTHREADS) return -1;
    for (int r = 0; r < rounds; r++) {
        const int64_t until = lc_probe_now_ns() + gap_ns;
        while (lc_probe_now_ns() < until) { /* the caller busy between regions, as between layers */ }
        c.target = 2L * (r + 1);
        const int64_t t0 = lc_probe_now_ns();
        if (use_openmp) {
#ifdef LC_HAVE_OPENMP
            int64_t i;
#pragma omp parallel for schedule(static) num_threads(2)
            for (i = 0; i < 2; i++) lc_probe_task(&c, i, omp_get_thread_num());
#endif
        } else {
#if LC_POOL_PTHREADS
            lc_pool_parallel_for(2, 2, lc_probe_task, &c);
#endif
        }
        ns[r] = lc_probe_now_ns() - t0;
    }
    return atomic_load(&c.late) ? -2 : 0;
}
#else
int lc_region_probe(int use_openmp, int64_t gap_ns, int rounds, int64_t *ns) {
    (void)use_openmp; (void)gap_ns; (void)rounds; (void)ns;
    return -1;
}
#endif

#if !LC_POOL_PTHREADS /* no pool in this build: lc_parallel_for uses OpenMP or runs serially */

void lc_pool_set_spin_us(int64_t us) { (void)us; }

void lc_pool_set_stealing(int on) { (void)on; }
void lc_pool_set_spread(int on) { (void)on; }

void lc_pool_serial_for(int64_t count, void (*fn)(void *, int64_t, int), void *ctx) {
    for (int64_t i = 0; i < count; i++) fn(ctx, i, 0);
}

int lc_pool_trace(int64_t capacity) { return capacity > 0 ? -1 : 0; }

int64_t lc_pool_trace_read(lc_pool_trace_rec *out, int64_t max) {
    (void)out; (void)max;
    return 0;
}

void lc_pool_parallel_for(int team, int64_t count, void (*fn)(void *, int64_t, int), void *ctx) {
    (void)team;
    for (int64_t i = 0; i < count; i++) fn(ctx, i, 0);
}

void lc_pool_stats(lc_pool_statistics *s) { memset(s, 0, sizeof *s); }

void lc_pool_reset_stats(void) {}

#endif
