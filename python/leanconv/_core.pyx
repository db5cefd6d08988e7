# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Binding: NumPy buffers -> C descriptors, the GIL released around the kernels.

Everything here is mechanical; argument checking lives in the pure-Python
layer (_params.py, _plan.py), the algorithm choice in C (kernels/choose.c)."""
cimport cython
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.string cimport memcmp

cdef extern from "leanconv/conv.h":
    ctypedef struct lc_epilogue:
        float lo
        float hi
        int clamp
        int act
        float alpha
        float beta
    ctypedef struct lc_isa_config:
        const char *name
        int mr
        int nr
        int kc
    ctypedef struct lc_conv_desc:
        int64_t N, C, H, W, M, kH, kW, OH, OW
        int64_t stride_h, stride_w, dil_h, dil_w
        int64_t pad_t, pad_b, pad_l, pad_r, groups
        int algorithm
        int nthreads
        lc_epilogue epilogue
        const lc_isa_config *isa
    int lc_conv_supports(const lc_conv_desc *d, const char **why) nogil
    int lc_conv_choose(const lc_conv_desc *d) nogil
    double lc_conv_cost(const lc_conv_desc *d, int algorithm, double *features) nogil
    int64_t lc_conv_packed_floats(const lc_conv_desc *d) nogil
    void lc_conv_pack_weights(const lc_conv_desc *d, const float *w, float *packed) nogil
    int64_t lc_conv_workspace_bytes(const lc_conv_desc *d) nogil
    int lc_conv_run(const lc_conv_desc *d, const float *x, const float *packed,
                    const float *bias, const float *residual, float *y, void *workspace,
                    int64_t workspace_bytes) nogil
    int lc_activate(const lc_isa_config *isa, float *y, const float *x, const float *residual,
                    int64_t n, const lc_epilogue *ep, int nthreads) nogil
    int lc_conv_layout(int algorithm) nogil
    ctypedef struct lc_conv_op:
        pass
    enum: LC_CONV_TILING_WORDS
    ctypedef struct lc_conv_setup:
        lc_conv_desc desc
        const float *packed
        int64_t workspace_bytes
        void *held
        int packed_now
        int64_t tiling[LC_CONV_TILING_WORDS]
    int LC_CONV_OP_BORROW_WEIGHTS
    int LC_RESHAPE_NO_PACK
    int LC_RESHAPE_TRIAL
    lc_conv_op *lc_conv_op_create(const lc_conv_desc *filter, const float *weights,
                                  const float *bias, int max_packings, int flags,
                                  int *status) nogil
    int lc_conv_op_reshape(lc_conv_op *op, int64_t N, int64_t H, int64_t W, int nthreads,
                           int algorithm, int flags, lc_conv_setup *setup) nogil
    int lc_conv_op_run(const lc_conv_op *op, const lc_conv_setup *setup, const float *x,
                       const float *bias, const float *residual, float *y, void *workspace,
                       int64_t workspace_bytes) nogil
    void lc_conv_op_release(lc_conv_op *op, lc_conv_setup *setup) nogil
    void lc_conv_op_destroy(lc_conv_op *op) nogil
    int lc_conv_op_algorithm(const lc_conv_op *op) nogil
    int lc_conv_op_decided(const lc_conv_op *op, int64_t N, int64_t H, int64_t W,
                           int nthreads) nogil
    int64_t lc_conv_op_packed_bytes(const lc_conv_op *op) nogil
    int64_t lc_conv_op_meta_bytes(const lc_conv_op *op) nogil
    int lc_conv_op_packings(const lc_conv_op *op) nogil
    int64_t lc_conv_op_packings_made(const lc_conv_op *op) nogil
    int LC_ACT_CLAMP
    void *lc_aligned_alloc(int64_t nbytes) nogil
    void lc_aligned_free(void *p) nogil

cdef extern from "leanconv/pool.h":
    ctypedef struct lc_pool_desc:
        int64_t planes, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r
        int is_max
        int count_include_pad
    ctypedef struct lc_pool_plan:
        pass
    lc_pool_plan *lc_pool_plan_new(const lc_isa_config *isa, const lc_pool_desc *d) nogil
    int64_t lc_pool_plan_bytes(const lc_pool_plan *plan) nogil
    int lc_pool_plan_form(const lc_pool_plan *plan) nogil
    int64_t lc_pool_plan_scratch_bytes(const lc_pool_plan *plan, int nthreads) nogil
    int lc_pool_plan_run(const lc_pool_plan *plan, const float *x, float *y, int nthreads) nogil
    void lc_pool_plan_free(lc_pool_plan *plan) nogil
    int lc_global_avg_pool(const float *x, float *y, int64_t planes, int64_t hw,
                           int nthreads) nogil

cdef extern from "leanconv/instance_norm.h":
    int lc_instance_norm(const float *x, float *y, int64_t planes, int64_t channels, int64_t hw,
                         float eps, const float *scale, const float *bias, int nthreads) nogil
    int lc_layer_norm_rows(const lc_isa_config *isa, const float *x, float *y, int64_t rows,
                           int64_t width, float eps,
                           const float *scale, const float *bias, int nthreads) nogil

cdef extern from "leanconv/channel_affine.h":
    int lc_channel_affine(const lc_isa_config *isa, const float *x, float *y, int64_t planes,
                          int64_t channels, int64_t hw, const float *scale, const float *shift,
                          int relu, int nthreads) nogil

cdef extern from "leanconv/channel_norm.h":
    int lc_channel_layernorm(const lc_isa_config *isa, const float *x, float *y, int64_t n,
                             int64_t channels, int64_t hw, float eps, const float *scale,
                             const float *bias, int nthreads) nogil

cdef extern from "leanconv/lrn.h":
    int lc_lrn(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t channels,
               int64_t hw, int64_t size, float alpha, float beta, float bias,
               int nthreads) nogil

cdef extern from "leanconv/ir_block.h":
    ctypedef struct lc_ir_project:
        const float *wp_packed
        const float *bp
        const float *residual
    const char *lc_ir_block_unsupported(const lc_conv_desc *e, const lc_conv_desc *d,
                                        const lc_conv_desc *p) nogil
    int64_t lc_ir_block_band_rows(const lc_conv_desc *e, const lc_conv_desc *d,
                                  const lc_conv_desc *p) nogil
    int lc_ir_block_pays(const lc_conv_desc *e, const lc_conv_desc *d) nogil
    int lc_ir_block_project_pays(const lc_conv_desc *e, const lc_conv_desc *d,
                                 const lc_conv_desc *p) nogil
    void lc_ir_block_debug(int64_t rows, int pays) nogil
    int64_t lc_ir_block_packed_floats(const lc_conv_desc *e) nogil
    void lc_ir_block_pack(const lc_conv_desc *e, const float *we, float *packed) nogil
    int64_t lc_ir_block_workspace_bytes(const lc_conv_desc *e, const lc_conv_desc *d,
                                        const lc_conv_desc *p) nogil
    int lc_ir_block_run(const lc_conv_desc *e, const lc_conv_desc *d, const lc_conv_desc *p,
                        const float *x, const float *we_packed, const float *be,
                        const float *wd, const float *bd, const lc_ir_project *proj,
                        float *y, void *workspace, int64_t workspace_bytes) nogil

cdef extern from "leanconv/se_block.h":
    int64_t lc_se_packed_floats(int64_t rows, int64_t k) nogil
    void lc_se_pack(float *dst, const float *w, int64_t rows, int64_t k) nogil
    int lc_se_block(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t c,
                    int64_t hw, const float *w1p, const float *b1, int64_t r,
                    const lc_epilogue *act1, const float *w2p, const float *b2,
                    const lc_epilogue *gate, int nthreads) nogil

cdef extern from "leanconv/dense.h":
    int lc_dense(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t rows,
                 int64_t k, const float *wp, const float *b, const lc_epilogue *ep,
                 int nthreads) nogil

cdef extern from "leanconv/token_gemm.h":
    int64_t lc_token_packed_floats(const lc_isa_config *isa, int64_t n, int64_t k) nogil
    void lc_token_pack(const lc_isa_config *isa, const float *w, int64_t n, int64_t k,
                       int64_t rs, int64_t ks, float *out) nogil
    int64_t lc_token_gemm_workspace(const lc_isa_config *isa, int64_t m, int64_t k) nogil
    int lc_token_gemm(const lc_isa_config *isa, const float *x, int64_t m, int64_t k,
                      const float *wp, int64_t n, const float *b, const float *res,
                      const lc_epilogue *ep, float *y, char *ws, int64_t ws_bytes,
                      int nthreads) nogil

cdef extern from "leanconv/batched_gemm.h":
    int64_t lc_batched_gemm_workspace(const lc_isa_config *isa, int64_t batch, int64_t m,
                                      int64_t k, int64_t n, int64_t wc, int nthreads) nogil
    int lc_batched_gemm(const lc_isa_config *isa, const float *x, const int64_t *xoff,
                        int64_t xr, int64_t xc, const float *w, const int64_t *woff, int64_t wr,
                        int64_t wc, float alpha, float *y, int64_t batch, int64_t m, int64_t k,
                        int64_t n, char *ws, int64_t ws_bytes, int nthreads) nogil

cdef extern from "leanconv/binary.h":
    int LC_BINARY_DIMS
    int lc_binary(int op, float *y, const int64_t *sy, const float *a, const int64_t *sa,
                  const float *b, const int64_t *sb, const int64_t *shape, int ndim,
                  int nthreads) nogil

cdef extern from "leanconv/softmax.h":
    int lc_softmax(const lc_isa_config *isa, const float *x, float *y, int64_t outer, int64_t n,
                   int64_t inner, int nthreads) nogil

cdef extern from "leanconv/resize.h":
    int lc_resize2d(const float *x, float *y, int64_t planes, int64_t H, int64_t W, int64_t OH,
                    int64_t OW, const int64_t *row0, const int64_t *row1, const float *row_w,
                    const int64_t *col0, const int64_t *col1, const float *col_w, int linear,
                    int nthreads) nogil

cdef extern from "leanconv/ukernels.h":
    const lc_isa_config *lc_isa_get(int isa)
    const char *lc_isa_name(int isa)
    int lc_isa_compiled(int isa)
    int LC_ISA_COUNT

cdef extern from "leanconv/cpu.h":
    ctypedef struct lc_cpu_features:
        int x86, arm64, arm32, sse2, avx, avx2, fma, f16c
        int avx512f, avx512bw, avx512vl, avx512dq, os_ymm, os_zmm, neon
    const lc_cpu_features *lc_cpu()
    ctypedef struct lc_cache_sizes:
        long long l1d, l2, l3
        const char *source
    const lc_cache_sizes *lc_cpu_caches()

cdef extern from "internal.h":
    ctypedef struct lc_blocking:
        int64_t gemm_b_l2, gemm_b_l1, gemm_panel_l1, gemm_a_stream, gemm_b_whole, gemm_a_far
        int64_t wino_block, ir_band, ir_fuse_min
    const lc_blocking *lc_blocking_get()
    int lc_gemm_tall_far(const lc_isa_config *cfg, size_t Mg, size_t K, size_t rows, size_t n,
                         int how)

cdef extern from *:
    """
    #ifdef LC_HAVE_OPENMP
    #include <omp.h>
    static int lc_openmp_enabled(void) { return 1; }
    static int lc_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int lc_openmp_enabled(void) { return 0; }
    static int lc_omp_max_threads(void) { return 1; }
    #endif
    """
    int lc_openmp_enabled()
    int lc_omp_max_threads()

cdef extern from "threadpool.h":
    int LC_POOL_PTHREADS
    int LC_POOL_GAP_BUCKETS
    ctypedef struct lc_pool_statistics:
        int workers
        int64_t regions, inline_regions, sleeps, moves, spin_us
        int64_t gap_hist[24]
    void lc_pool_set_spin_us(int64_t us) nogil
    void lc_pool_stats(lc_pool_statistics *s) nogil
    void lc_pool_reset_stats() nogil
    int lc_region_probe(int use_openmp, int64_t gap_ns, int rounds, int64_t *ns) nogil
    int LC_POOL_TRACE_SLOTS
    ctypedef struct lc_pool_trace_rec:
        const void *fn
        int64_t count
        int32_t team
        int32_t cpu[4]
        int64_t start_ns, end_ns
        int64_t busy_ns[4]
        int64_t first_ns[4]
        int64_t items[4]
        int64_t cpu_ns[4]
    int lc_pool_trace(int64_t capacity) nogil
    int64_t lc_pool_trace_read(lc_pool_trace_rec *out, int64_t max) nogil
    void lc_pool_set_stealing(int on) nogil
    void lc_pool_set_spread(int on) nogil

cdef extern from "internal.h":
    int LC_DEBUG_POISON, LC_DEBUG_REVERSE
    void lc_debug_schedule(int flags) nogil
    void *lc_thread_scratch(void *base, int64_t slice_bytes, int thread) nogil

cdef extern from *:
    """
    #define LC_STR_(x) #x
    #define LC_STR(x) LC_STR_(x)
    #ifdef LC_BUILD_OPT_LEVEL
    static const char *lc_build_opt(void) { return LC_STR(LC_BUILD_OPT_LEVEL); }
    #else
    static const char *lc_build_opt(void) { return ""; }
    #endif
    """
    const char *lc_build_opt()

ALGORITHMS = ("direct", "im2col", "patch2vec", "winograd_f2", "winograd_f4",
              "winograd_f6", "depthwise", "direct_lanes", "winograd_f2_lean",
              "winograd_f4_lean")
ISA_NAMES = tuple(lc_isa_name(i).decode() for i in range(LC_ISA_COUNT))

# Bytes of the last workspace a call on this process allocated (for tests that
# check workspace_bytes() is the number the call really uses).
cdef int64_t _last_workspace_bytes = -1
# Weight packings made by this process (for tests that check caches do not repack).
cdef int64_t _packings_made = 0

# Packed layouts (kernels/conv.c): algorithms with the same layout share one packing.
LAYOUTS = tuple(lc_conv_layout(a) for a in range(len(ALGORITHMS)))


def packings_made():
    return _packings_made


def same_bytes(const float[::1] a, const float[::1] b):
    """Do a and b hold the same bytes (NaN payloads included)?"""
    cdef size_t n = a.shape[0]
    cdef int r = 0
    if a.shape[0] != b.shape[0]:
        return False
    if n == 0:
        return True
    with nogil:
        r = memcmp(&a[0], &b[0], n * sizeof(float))
    return r == 0


def last_workspace_bytes():
    return _last_workspace_bytes


def cpu_features():
    """Feature flags (bools) and, under "cache", the data cache sizes."""
    cdef const lc_cpu_features *f = lc_cpu()
    feats = {k: bool(v) for k, v in dict(
        x86=f.x86, arm64=f.arm64, arm32=f.arm32, sse2=f.sse2, avx=f.avx, avx2=f.avx2,
        fma=f.fma, f16c=f.f16c, avx512f=f.avx512f, avx512bw=f.avx512bw,
        avx512vl=f.avx512vl, avx512dq=f.avx512dq, os_saves_ymm=f.os_ymm,
        os_saves_zmm=f.os_zmm, neon=f.neon).items()}
    feats["cache"] = cache_sizes()
    return feats


def cache_sizes():
    """{"l1d", "l2", "l3": bytes (l3 0: none), "source": where they came from}."""
    cdef const lc_cache_sizes *c = lc_cpu_caches()
    return {"l1d": c.l1d, "l2": c.l2, "l3": c.l3, "source": c.source.decode()}


def blocking():
    """The drivers' cache budgets in bytes (kernels/blocking.c derives them)."""
    cdef const lc_blocking *b = lc_blocking_get()
    return {"gemm_b_l2": b.gemm_b_l2, "gemm_b_l1": b.gemm_b_l1,
            "gemm_panel_l1": b.gemm_panel_l1, "gemm_a_stream": b.gemm_a_stream,
            "gemm_b_whole": b.gemm_b_whole, "gemm_a_far": b.gemm_a_far,
            "wino_block": b.wino_block, "ir_band": b.ir_band, "ir_fuse_min": b.ir_fuse_min}


def gemm_tall_far(int isa, size_t Mg, size_t K, size_t rows, size_t n):
    """Whether the GEMM driver runs a call of `rows` of Mg rows over n columns
    of K through the tall tile on line-aligned B (LC_PANELS_TALL_FAR)."""
    cdef const lc_isa_config *cfg = lc_isa_get(isa)
    if cfg == NULL:
        raise ValueError(f"isa {isa} does not run here")
    return bool(lc_gemm_tall_far(cfg, Mg, K, rows, n, 0))


# Detect the caches and derive the budgets now, under the GIL, before any
# kernel thread reads them.
if cache_sizes()["source"] == "invalid":
    import os as _os
    raise ImportError(f"LEANCONV_CACHE={_os.environ.get('LEANCONV_CACHE')!r} is not "
                      f"'default', 'cpuid' or 'L1D,L2,L3' sizes such as '48K,1M,32M' (L3 may be 0)")
blocking()


def isa_status():
    """[(name, compiled into this build, runs on this CPU)] in ISA id order."""
    return [(ISA_NAMES[i], bool(lc_isa_compiled(i)), lc_isa_get(i) != NULL)
            for i in range(LC_ISA_COUNT)]


def isa_tile(int isa):
    cdef const lc_isa_config *cfg = lc_isa_get(isa)
    if cfg == NULL:
        raise ValueError(f"ISA {ISA_NAMES[isa]!r} is not available")
    return cfg.mr, cfg.nr, cfg.kc


def openmp_enabled():
    return bool(lc_openmp_enabled())


def omp_max_threads():
    return lc_omp_max_threads()


def parallel_backend():
    """What runs a parallel loop in this build: "pool" (leanconv's own
    threads, kernels/threadpool.c), "openmp" or "serial"."""
    if not lc_openmp_enabled():
        return "serial"
    return "pool" if LC_POOL_PTHREADS else "openmp"


def set_pool_spin_us(int64_t us):
    """How long an idle pool worker spins for the next region before it
    sleeps (0..1,000,000 us; clamped)."""
    lc_pool_set_spin_us(us)


def region_probe(str backend, double gap_us, int rounds):
    """Seconds of each of `rounds` two-thread parallel regions whose two items
    wait for each other (so both threads really run, the worker woken if it
    slept) on `backend` ("pool" or "openmp"), the caller busy gap_us before
    each (as between layers); None when the backend is not in this build or
    the machine has one CPU."""
    if backend not in ("pool", "openmp"):
        raise ValueError(f"backend must be 'pool' or 'openmp', got {backend!r}")
    if rounds < 1 or not gap_us >= 0:
        raise ValueError(f"rounds must be >= 1 and gap_us >= 0, got {rounds}, {gap_us}")
    cdef int64_t[::1] ns = array.array("q", bytes(8 * rounds))
    cdef int r
    cdef int use_omp = backend == "openmp"
    cdef int64_t gap = <int64_t>(gap_us * 1000)
    with nogil:
        r = lc_region_probe(use_omp, gap, rounds, &ns[0])
    if r == -1:
        return None
    if r != 0:
        raise RuntimeError("region probe: the two items of a region did not meet within 1 s")
    return [v * 1e-9 for v in ns]


def pool_stats(bint reset=False):
    """The pool's counters: workers started, regions run on it, regions run
    inline because it was busy, worker sleeps, workers' moves off a team
    mate's CPU (a wake-up that placed them there), the spin bound, and the
    histogram of gaps between regions (log2 us buckets).  reset: zero the
    counters after reading them."""
    cdef lc_pool_statistics s
    lc_pool_stats(&s)
    if reset:
        lc_pool_reset_stats()
    return {"workers": s.workers, "regions": s.regions, "inline_regions": s.inline_regions,
            "sleeps": s.sleeps, "moves": s.moves, "spin_us": s.spin_us,
            "gap_hist_log2_us": [s.gap_hist[k] for k in range(LC_POOL_GAP_BUCKETS)]}


def set_pool_spread(bint on):
    """Whether the pool keeps its workers off the caller's CPU (on by
    default): narrows a sleeping worker's CPU affinity before waking it and
    moves a worker that shared the caller's CPU or missed its regions, giving
    the affinity back at once each time (kernels/threadpool.c)."""
    lc_pool_set_spread(on)


def set_pool_stealing(bint on):
    """Work stealing between the pool's threads on (the default) or off (each
    thread runs only its own contiguous range of items); for measurements."""
    lc_pool_set_stealing(on)


def debug_schedule(bint poison_scratch=False, bint reverse=False):
    """Debug schedules for every parallel loop (both off: normal runs).
    poison_scratch: each item's per-thread scratch is filled with NaN before
    the item runs; reverse: items run on the calling thread last to first,
    item i as thread i mod T.  A kernel whose item reads scratch it did not
    write, or depends on the order of items, then gives other bits."""
    lc_debug_schedule((LC_DEBUG_POISON if poison_scratch else 0) |
                      (LC_DEBUG_REVERSE if reverse else 0))


def debug_thread_scratch(unsigned char[::1] buf, int64_t slice_bytes, int thread):
    """Takes thread `thread`'s slice of buf as a kernel takes its scratch
    (lc_thread_scratch: poisoned with NaN under debug_schedule(poison_scratch
    =True)); returns the slice's byte offset.  For the tests."""
    if slice_bytes < 0 or thread < 0 or (thread + 1) * slice_bytes > buf.shape[0]:
        raise ValueError(f"slice {thread} of {slice_bytes} bytes is outside the {buf.shape[0]}-byte buffer")
    return <char *>lc_thread_scratch(&buf[0], slice_bytes, thread) - <char *>&buf[0]


def pool_trace(capacity=None):
    """The debug trace of parallel loops.  pool_trace(n): start a fresh trace
    with room for n loops (0: stop it); pool_trace(): the loops recorded so
    far, as dicts: fn (the task function's address), count (items), team
    (threads; 1: serial), start_ns / end_ns (the caller's CLOCK_MONOTONIC),
    and per team slot (the first LC_POOL_TRACE_SLOTS) cpu, busy_ns (time in
    items), first_ns (when it started), items and cpu_ns (the thread's CPU
    time in its items: busy_ns without the time the OS ran something else).  None when this build has
    no pool."""
    if capacity is not None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if lc_pool_trace(capacity) != 0:
            if LC_POOL_PTHREADS:
                raise MemoryError(f"cannot allocate a trace of {capacity} loops")
            return None
        return None
    if not LC_POOL_PTHREADS:
        return None
    recs = []
    cdef lc_pool_trace_rec r
    cdef int64_t cap = 1 << 16, got, k
    buf = array.array("b", bytes(sizeof(lc_pool_trace_rec) * cap))
    cdef char[::1] raw = buf
    got = lc_pool_trace_read(<lc_pool_trace_rec *>&raw[0], cap)
    slots = min(LC_POOL_TRACE_SLOTS, 4)
    for k in range(got):
        r = (<lc_pool_trace_rec *>&raw[0])[k]
        recs.append({"fn": <size_t>r.fn, "count": r.count, "team": r.team,
                     "start_ns": r.start_ns, "end_ns": r.end_ns,
                     "cpu": [r.cpu[j] for j in range(slots)],
                     "busy_ns": [r.busy_ns[j] for j in range(slots)],
                     "first_ns": [r.first_ns[j] for j in range(slots)],
                     "items": [r.items[j] for j in range(slots)],
                     "cpu_ns": [r.cpu_ns[j] for j in range(slots)]})
    return recs


def build_optimisation():
    """The -O level setup.py compiled this extension with ("3", "1" for the
    sanitizer build, "2" for MSVC's /O2); "" for a build that did not go
    through setup.py."""
    return lc_build_opt().decode()


cdef int fill_epilogue(lc_epilogue *ep, tuple epilogue) except -1:
    """epilogue: None or (activation code, a, b) from _epilogue.parse: (lo, hi)
    of a clamp, else the activation's (alpha, beta)."""
    ep.clamp = 0
    ep.act = 0
    ep.lo = ep.hi = ep.alpha = ep.beta = 0.0
    if epilogue is None:
        return 0
    ep.act = epilogue[0]
    if ep.act == LC_ACT_CLAMP:
        ep.clamp = 1
        ep.lo = epilogue[1]
        ep.hi = epilogue[2]
    else:
        ep.alpha = epilogue[1]
        ep.beta = epilogue[2]
    return 0


cdef int fill_desc(lc_conv_desc *d, int algorithm, int isa, tuple geometry,
                   tuple epilogue, int nthreads) except -1:
    """geometry: (N, C, H, W, M, kH, kW, OH, OW, sh, sw, dh, dw, pt, pb, pl, pr, groups)"""
    (d.N, d.C, d.H, d.W, d.M, d.kH, d.kW, d.OH, d.OW, d.stride_h, d.stride_w,
     d.dil_h, d.dil_w, d.pad_t, d.pad_b, d.pad_l, d.pad_r, d.groups) = geometry
    # the kernels and the cost model divide by these: a zero reaching them
    # (an empty tensor inside a model) would stop the process with SIGFPE
    for what, v in (("N", d.N), ("C", d.C), ("H", d.H), ("W", d.W), ("M", d.M),
                    ("kH", d.kH), ("kW", d.kW), ("OH", d.OH), ("OW", d.OW),
                    ("stride", min(d.stride_h, d.stride_w)),
                    ("dilation", min(d.dil_h, d.dil_w)), ("groups", d.groups)):
        if v < 1:
            raise ValueError(f"convolution geometry {geometry}: {what} is {v}, must be >= 1")
    d.algorithm = algorithm
    d.nthreads = nthreads if nthreads > 0 else 1
    d.isa = lc_isa_get(isa)
    if d.isa == NULL:
        raise ValueError(f"ISA {ISA_NAMES[isa]!r} is not available on this CPU")
    fill_epilogue(&d.epilogue, epilogue)
    return 0


cdef const lc_isa_config *isa_config(int isa) except NULL:
    """The table of ISA id `isa`; ValueError when this CPU or build lacks it."""
    cdef const lc_isa_config *cfg = NULL
    if 0 <= isa < LC_ISA_COUNT:
        cfg = lc_isa_get(isa)
    if cfg == NULL:
        raise ValueError(f"ISA id {isa} is not available on this CPU")
    return cfg


def activate(const float[::1] x, float[::1] out, int activation_code, float alpha, float beta,
             residual=None, int threads=1, int isa=0):
    """out = act(x + residual) elementwise over flat float32 arrays of one
    length (out may be x or residual).  activation_code is the C enum
    lc_activation (leanconv._epilogue.CODES); alpha, beta its parameters (lo,
    hi for a clamp).  isa: an ISA id (leanconv._isa.isa_id() picks it).  Argument
    forms are checked by leanconv._epilogue.activate."""
    cdef lc_epilogue ep
    cdef const float[::1] res_v
    cdef const float *res_p = NULL
    cdef const lc_isa_config *cfg = isa_config(isa)
    cdef int status
    if out.shape[0] != x.shape[0]:
        raise ValueError("out and x must have the same length")
    if residual is not None:
        res_v = residual
        if res_v.shape[0] != x.shape[0]:
            raise ValueError("residual and x must have the same length")
        if res_v.shape[0] > 0:
            res_p = &res_v[0]
    fill_epilogue(&ep, (activation_code, alpha, beta) if activation_code else None)
    if x.shape[0] == 0:
        return
    with nogil:
        status = lc_activate(cfg, &out[0], &x[0], res_p, x.shape[0], &ep, threads)
    if status != 0:
        raise ValueError(f"unknown activation code {activation_code}")


def why_unsupported(int algorithm, int isa, tuple geometry):
    """None when the algorithm supports the shape, else the constraint."""
    cdef lc_conv_desc d
    cdef const char *why = NULL
    fill_desc(&d, algorithm, isa, geometry, None, 1)
    if lc_conv_supports(&d, &why):
        return None
    return why.decode()


def choose(int request, int isa, tuple geometry, int nthreads):
    """The concrete algorithm id the C cost model picks: request -1 = auto,
    -2 = the best Winograd size (kernels/choose.c)."""
    cdef lc_conv_desc d
    fill_desc(&d, request, isa, geometry, None, nthreads)
    return lc_conv_choose(&d)


def cost(int algorithm, int isa, tuple geometry, int nthreads):
    """(the cost model's estimate, [the 4 features it prices]) of one
    algorithm for one call (kernels/choose.c)."""
    cdef lc_conv_desc d
    cdef double f[4]
    fill_desc(&d, algorithm, isa, geometry, None, nthreads)
    c = lc_conv_cost(&d, algorithm, f)
    return c, [f[0], f[1], f[2], f[3]]


def sizes(int algorithm, int isa, tuple geometry, int nthreads):
    """(packed weight bytes, workspace bytes) for this call; -1 where a size
    overflows 63 bits."""
    cdef lc_conv_desc d
    fill_desc(&d, algorithm, isa, geometry, None, nthreads)
    cdef int64_t packed = lc_conv_packed_floats(&d)
    cdef int64_t ws = lc_conv_workspace_bytes(&d)
    return (packed * 4 if packed >= 0 else -1), ws


cdef int64_t _status_error(int status, str what) except -1:
    if status == 2:  # LC_ERR_NOMEM
        raise MemoryError(f"leanconv could not allocate memory for {what}")
    if status == 3:  # LC_ERR_OVERFLOW
        raise ValueError(f"{what}: a size would not fit in 63 bits")
    if status == 1:  # LC_ERR_UNSUPPORTED
        raise ValueError(f"the algorithm cannot run {what} (or the input is smaller than "
                         f"the kernel)")
    raise RuntimeError(f"leanconv kernel failed with status {status} ({what})")


# Setup's and Op's __dealloc__ need their attributes (the operator, its lock):
# the cycle collector must not clear them to None first, as it does at
# interpreter shutdown ("AttributeError: __exit__" in Setup.__dealloc__).
@cython.no_gc_clear
cdef class Setup:
    """One call prepared by Op.setup: it holds its packing until release()."""
    cdef lc_conv_setup s
    cdef Op op

    def __dealloc__(self):
        if self.op is not None and self.s.held != NULL:
            with self.op.lock:
                lc_conv_op_release(self.op.op, &self.s)

    def release(self):
        with self.op.lock:
            lc_conv_op_release(self.op.op, &self.s)

    @property
    def algorithm(self):
        return self.s.desc.algorithm

    @property
    def workspace_bytes(self):
        return self.s.workspace_bytes

    @property
    def tiling(self):
        """The driver's tiling and work items reshape fixed (opaque words)."""
        return tuple(self.s.tiling[i] for i in range(LC_CONV_TILING_WORDS))

    def run(self, const float[::1] x, float[::1] y, const float[::1] bias=None,
            const float[::1] residual=None):
        self.op._run(&self.s, x, y, bias, residual)


@cython.no_gc_clear
cdef class Op:
    """The C operator (include/leanconv/conv.h, kernels/conv_op.c): filters,
    weights, bias and epilogue for one ISA; decides, packs and sizes per
    input geometry and runs.  request: an algorithm id, or -1 (auto) / -2
    (the best Winograd size).  borrow: the operator reads `weights` in place
    (kept alive here) instead of copying them.  The C calls that change the
    operator (reshape, release) run under `lock`; runs do not."""
    cdef lc_conv_op *op
    cdef readonly object lock
    cdef object owner
    cdef readonly int isa, request

    def __cinit__(self):
        self.op = NULL

    def __init__(self, int request, int isa, const float[::1] weights, bias, tuple geometry,
                 tuple epilogue, int max_packings, bint borrow=False):
        global _packings_made
        import threading
        cdef lc_conv_desc d
        cdef const float[::1] bias_v
        cdef const float *bias_p = NULL
        cdef int status = 0, flags = LC_CONV_OP_BORROW_WEIGHTS if borrow else 0
        self.lock = threading.RLock()
        self.isa = isa
        self.request = request
        fill_desc(&d, request, isa, geometry, epilogue, 1)
        if weights.shape[0] != d.M * (d.C // d.groups) * d.kH * d.kW:
            raise ValueError("the weights do not match the filter geometry")
        if bias is not None:
            bias_v = bias
            if bias_v.shape[0] != d.M:
                raise ValueError("the bias does not match the filter geometry")
            bias_p = &bias_v[0]
        if borrow:
            self.owner = weights
        with nogil:
            self.op = lc_conv_op_create(&d, &weights[0], bias_p, max_packings, flags, &status)
        if self.op == NULL:
            _status_error(status, "the packed weights")
        _packings_made += lc_conv_op_packings_made(self.op)

    def __dealloc__(self):
        if self.op != NULL:
            lc_conv_op_destroy(self.op)

    def decided(self, int64_t N, int64_t H, int64_t W, int nthreads):
        """The algorithm remembered for this geometry, -1 for none yet."""
        with self.lock:
            return lc_conv_op_decided(self.op, N, H, W, nthreads)

    def decide(self, int64_t N, int64_t H, int64_t W, int nthreads, int algorithm=-1,
               bint remember=True):
        """(algorithm, exact workspace bytes) for this geometry, without
        packing; remembered unless remember is False."""
        cdef lc_conv_setup s
        cdef int status
        cdef int flags = LC_RESHAPE_NO_PACK | (0 if remember else LC_RESHAPE_TRIAL)
        with self.lock:
            status = lc_conv_op_reshape(self.op, N, H, W, nthreads, algorithm, flags, &s)
        if status != 0:
            _status_error(status, f"a {N}x{H}x{W} input")
        return s.desc.algorithm, s.workspace_bytes

    def setup(self, int64_t N, int64_t H, int64_t W, int nthreads, int algorithm=-1,
              bint remember=True):
        """A Setup for this geometry (packs if needed)."""
        global _packings_made
        cdef Setup st = Setup.__new__(Setup)
        cdef int status
        cdef int flags = 0 if remember else LC_RESHAPE_TRIAL
        with self.lock:
            with nogil:
                status = lc_conv_op_reshape(self.op, N, H, W, nthreads, algorithm, flags, &st.s)
            _packings_made += st.s.packed_now
        if status != 0:
            _status_error(status, f"a {N}x{H}x{W} input")
        st.op = self
        return st

    cdef _run(self, lc_conv_setup *s, const float[::1] x, float[::1] y, const float[::1] bias,
              const float[::1] residual, unsigned char[::1] workspace=None):
        global _last_workspace_bytes
        cdef void *ws = NULL
        cdef bint lent = False
        cdef int status
        cdef int64_t ws_bytes = s.workspace_bytes
        cdef const float *bias_ptr = NULL
        cdef const float *res_ptr = NULL
        if bias is not None:
            bias_ptr = &bias[0]
        if residual is not None:
            if residual.shape[0] != y.shape[0]:
                raise ValueError("residual must have the output's size")
            res_ptr = &residual[0]
        if ws_bytes > 0 and workspace is not None and workspace.shape[0] >= ws_bytes:
            if (<size_t>&workspace[0]) % 64 != 0:
                raise ValueError("a lent workspace must start on a 64-byte boundary")
            ws = <void *>&workspace[0]
            lent = True
        elif ws_bytes > 0:
            ws = lc_aligned_alloc(ws_bytes)
            if ws == NULL:
                raise MemoryError(f"leanconv could not allocate {ws_bytes} bytes of workspace "
                                  f"for {ALGORITHMS[s.desc.algorithm]}")
        _last_workspace_bytes = ws_bytes
        try:
            with nogil:
                status = lc_conv_op_run(self.op, s, &x[0], bias_ptr, res_ptr, &y[0], ws, ws_bytes)
        finally:
            if ws != NULL and not lent:
                lc_aligned_free(ws)
        if status == 2:  # LC_ERR_NOMEM: a driver's own allocation (see lc_conv_run)
            raise MemoryError(f"leanconv could not allocate the staging rows of "
                              f"{ALGORITHMS[s.desc.algorithm]} with out=residual")
        if status != 0:
            raise RuntimeError(f"leanconv kernel failed with status {status}")

    def run(self, const float[::1] x, float[::1] y, const float[::1] bias, tuple geometry,
            int nthreads, const float[::1] residual=None, int algorithm=-1,
            unsigned char[::1] workspace=None):
        """y = act(conv(x) + bias + residual) on the input of `geometry` (the
        full call geometry) with `algorithm` (-1: the operator's decision),
        remembered for that geometry.  bias None: the operator's own.
        Allocates exactly the workspace reshape sized and frees it, unless the
        caller lends a `workspace` buffer at least that large (an executor
        that owns one scratch buffer for all its calls; a smaller one, e.g.
        planned for fewer threads, is not used)."""
        global _packings_made
        cdef lc_conv_setup s
        cdef int status
        cdef int64_t N = geometry[0], H = geometry[2], W = geometry[3]
        with self.lock:
            with nogil:
                status = lc_conv_op_reshape(self.op, N, H, W, nthreads, algorithm, 0, &s)
            _packings_made += s.packed_now
        if status != 0:
            _status_error(status, f"a {N}x{H}x{W} input")
        try:
            self._run(&s, x, y, bias, residual, workspace)
        finally:
            if s.held != NULL:
                with self.lock:
                    lc_conv_op_release(self.op, &s)

    @property
    def algorithm(self):
        """The algorithm of the last run or setup (-1: none yet)."""
        return lc_conv_op_algorithm(self.op)

    def __sizeof__(self):
        """This object and the C operator's own records (not its packed
        weights: packed_bytes), so sys.getsizeof sees what the operator holds."""
        if self.op == NULL:
            return Op.__basicsize__
        with self.lock:
            return Op.__basicsize__ + lc_conv_op_meta_bytes(self.op)

    @property
    def packed_bytes(self):
        """Bytes the operator allocated for weights (packings, its own copy)."""
        with self.lock:
            return lc_conv_op_packed_bytes(self.op)

    @property
    def packings(self):
        """Packings the operator keeps."""
        with self.lock:
            return lc_conv_op_packings(self.op)


cdef class BoundCall:
    """A compiled executor step's C call, fixed once with its buffers:
    run_bound runs a sequence of them with no Python between the calls."""
    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return 0

    @property
    def held_bytes(self):
        """Bytes the call itself holds for its run (tables built once)
        beyond its buffers and what its step counts as packed weights."""
        return 0


cdef class BoundConv(BoundCall):
    """One Setup.run call fixed once (a compiled executor step): the setup
    (which holds its packing), input, output, bias and residual, checked here
    and held alive; run_bound() then does only the C call, in a caller-owned
    workspace of at least `workspace_bytes`."""
    cdef Setup setup
    cdef tuple keep
    cdef const float *x
    cdef const float *bias
    cdef const float *res
    cdef float *y
    cdef readonly int64_t workspace_bytes

    def __init__(self, Setup setup, const float[::1] x, float[::1] y, const float[::1] bias,
                 const float[::1] residual=None):
        cdef const lc_conv_desc *d = &setup.s.desc
        if x.shape[0] != d.N * d.C * d.H * d.W or y.shape[0] != d.N * d.M * d.OH * d.OW:
            raise ValueError("x and y must have the setup's sizes")
        if bias is not None and bias.shape[0] != d.M:
            raise ValueError("bias must have M values")
        if residual is not None and residual.shape[0] != y.shape[0]:
            raise ValueError("residual must have the output's size")
        self.setup = setup
        self.workspace_bytes = setup.s.workspace_bytes
        self.keep = (x, y, bias, residual)
        self.x = &x[0]
        self.y = &y[0]
        self.bias = NULL if bias is None else &bias[0]
        self.res = NULL if residual is None else &residual[0]

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_conv_op_run(self.setup.op.op, &self.setup.s, self.x, self.bias, self.res,
                              self.y, ws, ws_bytes)

    @property
    def packed_range(self):
        """(address, bytes) of the packed weights it runs on, (0, 0) for none:
        for placing them in memory (leanconv._heap.back_with_huge_pages)."""
        cdef int64_t floats = lc_conv_packed_floats(&self.setup.s.desc)
        if self.setup.s.packed == NULL or floats <= 0:
            return (0, 0)
        return (<size_t>self.setup.s.packed, floats * 4)


cdef lc_pool_desc _pool_desc(tuple geom, bint is_max, bint count_include_pad) except *:
    """A pool's C description from pool2d's geometry tuple (planes, H, W, OH,
    OW, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r)."""
    cdef lc_pool_desc d
    (d.planes, d.H, d.W, d.OH, d.OW, d.kh, d.kw, d.sh, d.sw, d.dh, d.dw, d.pad_t, d.pad_l,
     d.pad_b, d.pad_r) = geom
    d.is_max = is_max
    d.count_include_pad = count_include_pad
    return d


cdef class BoundPool(BoundCall):
    """A pooling step's C call fixed once: max / average pooling of geometry
    `geom` (as pool2d's), or with geom None a global average of `planes`
    planes of `hw` pixels; x and y flat float32 buffers, held alive here.
    Its plan (kernels/pool.c: the form that runs and its tables, built once
    here) is freed with it; `held_bytes` counts it."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef lc_pool_desc d
    cdef lc_pool_plan *plan
    cdef const lc_isa_config *cfg
    cdef int64_t planes, hw
    cdef int threads, is_global

    def __init__(self, const float[::1] x, float[::1] y, geom, int64_t planes, int64_t hw,
                 bint is_max, bint count_include_pad, int threads, int isa=0):
        self.is_global = geom is None
        if self.is_global:
            if x.shape[0] != planes * hw or y.shape[0] != planes:
                raise ValueError("BoundPool: buffer sizes do not match the global pool")
        else:
            self.d = _pool_desc(geom, is_max, count_include_pad)
            if x.shape[0] != self.d.planes * self.d.H * self.d.W or \
                    y.shape[0] != self.d.planes * self.d.OH * self.d.OW:
                raise ValueError("BoundPool: buffer sizes do not match the geometry")
        if threads < 1:
            raise ValueError(f"BoundPool: threads must be >= 1, got {threads}")
        self.cfg = isa_config(isa)
        self.planes, self.hw, self.threads = planes, hw, threads
        self.keep = (x, y)
        self.x = &x[0] if x.shape[0] else NULL
        self.y = &y[0] if y.shape[0] else NULL
        if not self.is_global:
            self.plan = lc_pool_plan_new(self.cfg, &self.d)
            if self.plan == NULL:
                raise MemoryError("BoundPool: out of memory for the pool's tables")

    def __dealloc__(self):
        lc_pool_plan_free(self.plan)
        self.plan = NULL

    @property
    def held_bytes(self):
        """Bytes its plan holds (tables built once; 0 for a global pool)."""
        return lc_pool_plan_bytes(self.plan) if self.plan != NULL else 0

    @property
    def scratch_bytes(self):
        """Bytes a run allocates (row buffers per thread, at most; 0 for a
        global pool)."""
        return lc_pool_plan_scratch_bytes(self.plan, self.threads) if self.plan != NULL else 0

    @property
    def form(self):
        """The plane primitive's form that runs (kernels/pool_flat.h
        LC_POOL_FORM_*: 0 rows, 1 flat, 2 run, 3 s2, 4 one, 5 m3s2), -1 the row
        loops, None for a global pool: for tests."""
        return lc_pool_plan_form(self.plan) if self.plan != NULL else None

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        if self.y == NULL:
            return 0
        if self.is_global:
            if self.hw == 0:
                return 0
            return lc_global_avg_pool(self.x, self.y, self.planes, self.hw, self.threads)
        return lc_pool_plan_run(self.plan, self.x, self.y, self.threads)


cdef class BoundDense(BoundCall):
    """A fully connected step's C call fixed once (dense() runs the same
    call): out[i] = act(W x[i] (+ b)) for the n rows of x, W packed by
    se_pack, act the parsed `epilogue` (leanconv._epilogue.parse; None:
    none); x, out, the packed weights and b held alive here.  Bound, a classifier
    head runs inside the schedule's C loop right after the global pool: as
    a Python step its glue cost ~11 us of a 1.9 ms MobileNetV2 at 2 threads
    between the two (cold interpreter state after the convolutions)."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const float *wp
    cdef const float *b
    cdef const lc_isa_config *cfg
    cdef lc_epilogue ep   # act 0 (none) without an epilogue: lc_dense skips it
    cdef int64_t n, rows, k
    cdef int threads

    def __init__(self, const float[::1] x, float[::1] out, int64_t n, int64_t rows, int64_t k,
                 const float[::1] wp, b, int threads, int isa=0, tuple epilogue=None):
        if n < 1 or rows < 1 or k < 1:
            raise ValueError("dense: n, rows and k must be positive")
        if x.shape[0] != n * k or out.shape[0] != n * rows:
            raise ValueError("dense: x must hold n * k floats and out n * rows")
        if wp.shape[0] != lc_se_packed_floats(rows, k):
            raise ValueError("dense: packed weights do not match rows and k")
        if threads < 1:
            raise ValueError(f"dense: threads must be >= 1, got {threads}")
        self.b = optional_vector(b, rows, "dense: b")
        self.cfg = isa_config(isa)
        fill_epilogue(&self.ep, epilogue)
        self.keep = (x, out, wp, b)
        self.x, self.y, self.wp = &x[0], &out[0], &wp[0]
        self.n, self.rows, self.k, self.threads = n, rows, k, threads

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_dense(self.cfg, self.x, self.y, self.n, self.rows, self.k, self.wp, self.b,
                        &self.ep, self.threads)


def token_packed_floats(int64_t n, int64_t k, int isa=0):
    """Floats token_pack writes for W of n outputs by k inputs on this ISA
    (its GEMM tile's NR-column panels: leanconv/token_gemm.h)."""
    if n < 1 or k < 1:
        raise ValueError(f"token_pack: n and k must be positive, got {n} and {k}")
    return lc_token_packed_floats(isa_config(isa), n, k)


def token_pack(w, float[::1] out, int isa=0):
    """Pack W (n x k float32, any strides: a MatMul's k x n constant passes as
    its transpose view) into `out` (token_packed_floats of it)."""
    cdef const float[:, :] wv = w
    cdef int64_t n = wv.shape[0], k = wv.shape[1]
    if out.shape[0] != token_packed_floats(n, k, isa):
        raise ValueError(f"token_pack: out must hold {token_packed_floats(n, k, isa)} floats")
    cdef const lc_isa_config *cfg = isa_config(isa)
    with nogil:
        lc_token_pack(cfg, &wv[0, 0], n, k, wv.strides[0] // 4, wv.strides[1] // 4, &out[0])


def token_gemm_workspace(int64_t m, int64_t k, int isa=0):
    """Workspace bytes token_gemm needs for m rows of k."""
    return lc_token_gemm_workspace(isa_config(isa), m, k)


cdef class BoundTokenGemm(BoundCall):
    """A dense layer over many rows fixed once (leanconv/token_gemm.h):
    out (m x n) = act(x (m x k) W^T + b (+ res)), W packed by token_pack on
    the same ISA; x, out, res flat float32, held alive here.  Runs in the
    caller's workspace (at least `workspace_bytes`, 64-byte aligned: the
    compiled schedule lends the Convs' buffer)."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const float *wp
    cdef const float *b
    cdef const float *res
    cdef const lc_isa_config *cfg
    cdef lc_epilogue ep
    cdef int64_t m, k, n
    cdef int threads
    cdef readonly int64_t workspace_bytes

    def __init__(self, const float[::1] x, float[::1] out, int64_t m, int64_t k, int64_t n,
                 const float[::1] wp, b, res, tuple epilogue, int threads, int isa=0):
        if m < 1 or k < 1 or n < 1:
            raise ValueError("token_gemm: m, k and n must be positive")
        if x.shape[0] != m * k or out.shape[0] != m * n:
            raise ValueError("token_gemm: x must hold m * k floats and out m * n")
        self.cfg = isa_config(isa)
        if wp.shape[0] != lc_token_packed_floats(self.cfg, n, k):
            raise ValueError("token_gemm: packed weights do not match n and k on this ISA")
        if threads < 1:
            raise ValueError(f"token_gemm: threads must be >= 1, got {threads}")
        self.b = optional_vector(b, n, "token_gemm: b")
        self.res = optional_vector(res, m * n, "token_gemm: res")
        fill_epilogue(&self.ep, epilogue)
        self.keep = (x, out, wp, b, res)
        self.x, self.y, self.wp = &x[0], &out[0], &wp[0]
        if <const float *>self.y == self.x:
            raise ValueError("token_gemm: out must not be x")
        self.m, self.k, self.n, self.threads = m, k, n, threads
        self.workspace_bytes = lc_token_gemm_workspace(self.cfg, m, k)

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_token_gemm(self.cfg, self.x, self.m, self.k, self.wp, self.n, self.b,
                             self.res, &self.ep, self.y, ws, ws_bytes, self.threads)


def token_gemm(const float[::1] x, float[::1] out, int64_t m, int64_t k, int64_t n,
               const float[::1] wp, b, res, tuple epilogue, int threads, int isa=0,
               workspace=None):
    """The call a BoundTokenGemm makes, run once; workspace None: one of
    its own (a uint8 array of at least token_gemm_workspace bytes, 64-byte
    aligned, otherwise)."""
    cdef BoundTokenGemm call = BoundTokenGemm(x, out, m, k, n, wp, b, res, epilogue, threads,
                                              isa)
    cdef unsigned char[::1] ws
    cdef int status
    if workspace is None:
        from leanconv._scratch import aligned_empty
        workspace = aligned_empty(max(call.workspace_bytes, 64))
    ws = workspace
    if ws.shape[0] < call.workspace_bytes:
        raise ValueError(f"token_gemm: workspace of {ws.shape[0]} bytes, needs "
                         f"{call.workspace_bytes}")
    if (<size_t>&ws[0]) % 64:
        raise ValueError("token_gemm: workspace must be 64-byte aligned")
    with nogil:
        status = call._run(<char *>&ws[0], ws.shape[0])
    if status != 0:
        raise ValueError(f"token_gemm: the C call failed (status {status})")


def batched_gemm_workspace(int64_t batch, int64_t m, int64_t k, int64_t n, int64_t wc,
                           int threads, int isa=0):
    """Workspace bytes a BoundBatchedGemm of these sizes (w's column stride
    wc: 1 reads w in place, else it is packed) needs at `threads`."""
    return lc_batched_gemm_workspace(isa_config(isa), batch, m, k, n, wc, threads)


cdef class BoundBatchedGemm(BoundCall):
    """Batched products of run-time operands fixed once
    (leanconv/batched_gemm.h): out (batch x m x n, contiguous) = alpha x[b] w[b],
    x and w float32 arrays of any strides, element (b, i, j) of x at
    x_offsets[b] + i*xr + j*xc floats from x's first element (w's
    likewise) -- the caller (leanconv._batched_matmul) derives them from the
    arrays' own strides, so every address is one of the arrays'.  Runs in
    the caller's workspace (at least `workspace_bytes`, 64-byte aligned)."""
    cdef tuple keep
    cdef const float *x
    cdef const float *w
    cdef float *y
    cdef const int64_t *xoff
    cdef const int64_t *woff
    cdef int64_t xr, xc, wr, wc, batch, m, k, n
    cdef float alpha
    cdef const lc_isa_config *cfg
    cdef int threads
    cdef readonly int64_t workspace_bytes

    def __init__(self, x, const int64_t[::1] x_offsets, int64_t xr, int64_t xc, w,
                 const int64_t[::1] w_offsets, int64_t wr, int64_t wc, float[::1] out,
                 int64_t m, int64_t k, int64_t n, int threads, int isa=0, float alpha=1.0):
        cdef int64_t batch = x_offsets.shape[0]
        if batch < 1 or m < 1 or k < 1 or n < 1 or w_offsets.shape[0] != batch:
            raise ValueError("batched_gemm: batch, m, k and n must be positive, one offset "
                             "of x and of w per batch")
        if x.dtype != "float32" or w.dtype != "float32":
            raise TypeError("batched_gemm: x and w must be float32")
        if out.shape[0] != batch * m * n:
            raise ValueError("batched_gemm: out must hold batch * m * n floats")
        if threads < 1:
            raise ValueError(f"batched_gemm: threads must be >= 1, got {threads}")
        self.cfg = isa_config(isa)
        self.keep = (x, x_offsets, w, w_offsets, out)
        self.x = <const float *><uintptr_t>x.ctypes.data
        self.w = <const float *><uintptr_t>w.ctypes.data
        self.y = &out[0]
        self.xoff, self.woff = &x_offsets[0], &w_offsets[0]
        self.xr, self.xc, self.wr, self.wc = xr, xc, wr, wc
        self.batch, self.m, self.k, self.n, self.threads = batch, m, k, n, threads
        self.alpha = alpha
        self.workspace_bytes = lc_batched_gemm_workspace(self.cfg, batch, m, k, n, wc, threads)

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_batched_gemm(self.cfg, self.x, self.xoff, self.xr, self.xc, self.w, self.woff,
                               self.wr, self.wc, self.alpha, self.y, self.batch, self.m, self.k,
                               self.n, ws, ws_bytes, self.threads)


cdef class BoundAffine(BoundCall):
    """A per-channel affine step's C call fixed once (channel_affine's
    arguments, checked here): x, out, scale and shift held alive."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const float *scale
    cdef const float *shift
    cdef const lc_isa_config *cfg
    cdef int64_t planes, channels, hw
    cdef int relu, threads

    def __init__(self, const float[::1] x, float[::1] out, int64_t planes, int64_t hw,
                 const float[::1] scale, const float[::1] shift, bint relu, int threads,
                 int isa=0):
        cdef int64_t channels = scale.shape[0]
        if planes < 0 or hw < 0 or x.shape[0] != planes * hw or out.shape[0] != x.shape[0]:
            raise ValueError("channel_affine: buffer sizes do not match the geometry")
        if shift.shape[0] != channels or channels == 0 or planes % channels != 0:
            raise ValueError("channel_affine: scale and shift need one value per channel, "
                             "and the planes whole images")
        if threads < 1:
            raise ValueError(f"channel_affine: threads must be >= 1, got {threads}")
        self.cfg = isa_config(isa)
        self.planes, self.channels, self.hw = planes, channels, hw
        self.relu, self.threads = relu, threads
        self.keep = (x, out, scale, shift)
        self.x = &x[0] if x.shape[0] else NULL
        self.y = &out[0] if out.shape[0] else NULL
        self.scale = &scale[0]
        self.shift = &shift[0]

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        if self.y == NULL:
            return 0
        return lc_channel_affine(self.cfg, self.x, self.y, self.planes, self.channels, self.hw,
                                 self.scale, self.shift, self.relu, self.threads)


cdef class _BoundNorm(BoundCall):
    """What a normalisation's bound call holds: x, out, scale and bias (kept
    alive in `keep`) and the ISA table."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const float *scale
    cdef const float *bias
    cdef const lc_isa_config *cfg


cdef class BoundLayerNorm(_BoundNorm):
    """A channel LayerNorm step's C call fixed once (channel_layernorm's
    arguments, checked here): x, out, scale and bias held alive."""
    cdef int64_t n, channels, hw
    cdef float eps
    cdef int threads

    def __init__(self, const float[::1] x, float[::1] out, int64_t n, int64_t channels,
                 int64_t hw, float eps, const float[::1] scale, const float[::1] bias,
                 int threads, int isa=0):
        if n < 0 or channels < 0 or hw < 0 or x.shape[0] != n * channels * hw or \
                out.shape[0] != x.shape[0]:
            raise ValueError("channel_layernorm: buffer sizes do not match the geometry")
        if threads < 1:
            raise ValueError(f"channel_layernorm: threads must be >= 1, got {threads}")
        for v, name in ((scale, "scale"), (bias, "bias")):
            if v is not None and v.shape[0] != channels:
                raise ValueError(f"channel_layernorm: {name} needs one value per channel, "
                                 f"got {v.shape[0]} for {channels}")
        self.cfg = isa_config(isa)
        self.n, self.channels, self.hw, self.eps, self.threads = n, channels, hw, eps, threads
        self.keep = (x, out, scale, bias)
        self.x = &x[0] if x.shape[0] else NULL
        self.y = &out[0] if out.shape[0] else NULL
        self.scale = &scale[0] if scale is not None and channels else NULL
        self.bias = &bias[0] if bias is not None and channels else NULL

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        if self.y == NULL:
            return 0
        return lc_channel_layernorm(self.cfg, self.x, self.y, self.n, self.channels, self.hw,
                                    self.eps, self.scale, self.bias, self.threads)


cdef class BoundSequence(BoundCall):
    """Bound calls run one after the other as one step's call (a
    LayerNormalization of a strided view: the view copied into the output,
    then normalised there), sharing the workspace of the largest."""
    cdef tuple calls

    def __init__(self, *calls):
        if not calls or not all(isinstance(c, BoundCall) for c in calls):
            raise TypeError("BoundSequence: every call must be a BoundCall")
        self.calls = calls

    @property
    def held_bytes(self):
        return sum(c.held_bytes for c in self.calls)

    @property
    def workspace_bytes(self):
        return max(getattr(c, "workspace_bytes", 0) for c in self.calls)

    cdef int _run_all(self, char *ws, int64_t ws_bytes) noexcept:
        cdef int status = 0
        cdef BoundCall c
        for c in self.calls:
            with nogil:
                status = c._run(ws, ws_bytes)
            if status:
                break
        return status

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        with gil:
            return self._run_all(ws, ws_bytes)


cdef class BoundBinary(BoundCall):
    """An element-wise Add / Sub / Mul / Div (op 0-3) or copy of a (4) fixed
    once (leanconv/binary.h): out's element i (at i . out_strides floats from
    its first element, the last stride 1) = a's op b's, a's at i . a_strides
    (b's likewise; 0 along a broadcast axis).  out, a and b are float32
    arrays and the strides the caller's (leanconv.onnx.broadcast_binary
    derives them from the arrays' own, so every address is one of the
    arrays'); out is writeable and its elements distinct."""
    cdef tuple keep
    cdef const float *a
    cdef const float *b
    cdef float *y
    cdef int64_t sy[6]
    cdef int64_t sa[6]
    cdef int64_t sb[6]
    cdef int64_t shape[6]
    cdef int op, ndim, threads

    def __init__(self, int op, a, a_strides, b, b_strides, shape, out, out_strides, int threads):
        cdef int k
        if op < 0 or op > 4:
            raise ValueError(f"binary: op must be 0-4 (Add, Sub, Mul, Div, copy), got {op}")
        if not 1 <= len(shape) <= LC_BINARY_DIMS or len(a_strides) != len(shape) or \
                len(b_strides) != len(shape) or len(out_strides) != len(shape):
            raise ValueError(f"binary: shape must have 1 to {LC_BINARY_DIMS} axes, with a "
                             "stride of out, a and b for each")
        if a.dtype != "float32" or b.dtype != "float32" or out.dtype != "float32":
            raise TypeError("binary: out, a and b must be float32")
        if not out.flags.writeable:
            raise ValueError("binary: out must be writeable")
        if out_strides[len(shape) - 1] != 1:
            raise ValueError("binary: out's last stride must be 1")
        if threads < 1:
            raise ValueError(f"binary: threads must be >= 1, got {threads}")
        for k in range(len(shape)):
            if shape[k] < 1:
                raise ValueError("binary: every axis must be >= 1")
            self.shape[k], self.sa[k], self.sb[k] = shape[k], a_strides[k], b_strides[k]
            self.sy[k] = out_strides[k]
        self.op, self.ndim, self.threads = op, len(shape), threads
        self.keep = (a, b, out)
        self.a = <const float *><uintptr_t>a.ctypes.data
        self.b = <const float *><uintptr_t>b.ctypes.data
        self.y = <float *><uintptr_t>out.ctypes.data

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_binary(self.op, self.y, self.sy, self.a, self.sa, self.b, self.sb, self.shape,
                         self.ndim, self.threads)


cdef class BoundSoftmax(BoundCall):
    """A Softmax step's C call fixed once: x and out flat float32 buffers of
    outer x n x inner values, the softmax over n (leanconv/softmax.h); out
    may be x.  Bound, a classifier's last step runs in the schedule's C loop:
    as a Python step (NumPy's reshapes and checks around the same C) it took
    ~37 us of SqueezeNet's run against ~4 us called hot."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const lc_isa_config *cfg
    cdef int64_t outer, n, inner
    cdef int threads

    def __init__(self, const float[::1] x, float[::1] out, int64_t outer, int64_t n,
                 int64_t inner, int threads, int isa=0):
        if outer < 0 or n < 1 or inner < 1 or x.shape[0] != outer * n * inner or \
                out.shape[0] != x.shape[0]:
            raise ValueError("softmax: x and out must hold outer * n * inner floats, "
                             "n and inner >= 1")
        if threads < 1:
            raise ValueError(f"softmax: threads must be >= 1, got {threads}")
        self.cfg = isa_config(isa)
        self.outer, self.n, self.inner, self.threads = outer, n, inner, threads
        self.keep = (x, out)
        self.x = &x[0] if x.shape[0] else NULL
        self.y = &out[0] if out.shape[0] else NULL

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        if self.y == NULL:
            return 0
        return lc_softmax(self.cfg, self.x, self.y, self.outer, self.n, self.inner, self.threads)


def run_bound(tuple calls, unsigned char[::1] workspace):
    """Run BoundCall calls in order, all sharing `workspace` (sized for the largest)."""
    cdef BoundCall c
    cdef int status
    cdef char *ws = NULL
    cdef int64_t n = workspace.shape[0]
    if n > 0:
        ws = <char *>&workspace[0]
    for c in calls:
        with nogil:
            status = c._run(ws, n)
        if status == 2:  # LC_ERR_NOMEM: a driver's own allocation (see lc_conv_run)
            if isinstance(c, BoundConv):
                raise MemoryError(f"leanconv could not allocate the staging rows of "
                                  f"{ALGORITHMS[(<BoundConv>c).setup.s.desc.algorithm]} with "
                                  f"out=residual")
            raise MemoryError(f"leanconv could not allocate the scratch of a {type(c).__name__}")
        if status == 4:  # LC_ERR_WORKSPACE
            raise ValueError(f"leanconv: a workspace of {n} bytes is smaller than "
                             f"{type(c).__name__} needs")
        if status != 0:
            raise RuntimeError(f"leanconv kernel failed with status {status}")


# ---------------------------------------------------------------------------
# SIMD helpers: the FMA peak measurement and direct calls of one ISA's
# micro-kernels on NumPy arrays (for tests/test_ukernels.py and bench/).
# Nothing here is on the convolution path.
# ---------------------------------------------------------------------------
from libc.stddef cimport size_t as _size_t
import time as _time
import array

cdef extern from "leanconv/ukernels.h":
    ctypedef void (*_lc_gemm_fn "lc_gemm_ukernel_fn")(size_t m, size_t n, size_t k, const float *a, const float *b,
                                 size_t ldb, float *c, size_t ldc, const float *bias,
                                 const lc_epilogue *ep, unsigned flags) nogil
    ctypedef void (*_lc_wino_in_fn "lc_wino_input_fn")(const float *d, float *v, size_t xi_stride,
                                                      size_t lanes) nogil
    ctypedef uint64_t (*_lc_wino_out_fn "lc_wino_output_fn")(const float *mo, size_t xi_stride, float *o, float bias,
                                         const lc_epilogue *ep, size_t lanes) nogil
    ctypedef void (*_lc_dw_fn "lc_dw_row_fn")(float *out, size_t n, const float *inp, size_t in_row_stride,
                               size_t rows, const float *w, size_t kW, size_t stride,
                               size_t dil, float bias, const lc_epilogue *ep) nogil
    ctypedef void (*_lc_wino_cl_fn "lc_wino_cl_gemm_fn")(size_t k, const float *ut, const float *v,
                                                        size_t ldv, float *mo, size_t ldo,
                                                        size_t rows, size_t cols) nogil
    ctypedef struct _lc_dl_geom "lc_dl_geom":
        size_t C, kH, kW, xcs, xrs, xts, wcs, ldt, pf_lines
        const size_t *xoff
        const char *pf
    ctypedef void (*_lc_dl_fn "lc_dl_kernel_fn")(size_t n, const float *x, const float *w,
                                               float *t, const float *bias,
                                               const _lc_dl_geom *g, const lc_epilogue *ep,
                                               unsigned flags) nogil
    ctypedef void (*_lc_pw_fn "lc_pw_kernel_fn")(size_t n, size_t k, const float *x, size_t ldx,
                                               const float *w, float *t, size_t ldt,
                                               const float *bias, const lc_epilogue *ep,
                                               unsigned flags) nogil
    ctypedef struct _lc_isa_table "lc_isa_config":
        int mr, nr, kc
        _lc_gemm_fn gemm
        _lc_wino_in_fn wino_input[3]
        _lc_wino_out_fn wino_output[3]
        _lc_dw_fn dw_row
        _lc_wino_cl_fn wino_cl_gemm
        int wino_cl_rows, wino_cl_cols
        _lc_dl_fn dl_kernel
        int dl_lanes, dl_cols, dl_rows
        _lc_dl_fn dl_kernel_half
        int dl_rows_half
        _lc_pw_fn pw_kernel
        _lc_pw_fn pw_kernel_half
        int pw_rows
    unsigned LC_GEMM_ACCUMULATE
    unsigned LC_GEMM_FINAL
    unsigned LC_PW_PREFETCH
    unsigned LC_GEMM_PF_WRITE

cdef extern from "ukernel_decls.h":
    ctypedef float (*_lc_fma_peak_fn "lc_fma_peak_fn")(size_t iters, double *flops) nogil
    _lc_fma_peak_fn lc_fma_peak_get(int isa)

GEMM_ACCUMULATE = LC_GEMM_ACCUMULATE
GEMM_FINAL = LC_GEMM_FINAL
PW_PREFETCH = LC_PW_PREFETCH
GEMM_PF_WRITE = LC_GEMM_PF_WRITE


cdef const _lc_isa_table *_table(str isa_name) except NULL:
    if not isinstance(isa_name, str) or isa_name not in ISA_NAMES:
        raise ValueError(f"unknown ISA {isa_name!r}; known: {', '.join(ISA_NAMES)}")
    cdef const _lc_isa_table *t = <const _lc_isa_table *>lc_isa_get(ISA_NAMES.index(isa_name))
    if t == NULL:
        raise ValueError(f"ISA {isa_name!r} is not available in this build on this CPU")
    return t


cdef lc_epilogue _epilogue(clamp):
    cdef lc_epilogue ep
    fill_epilogue(&ep, None if clamp is None else (LC_ACT_CLAMP, clamp[0], clamp[1]))
    return ep


def fma_peak_gflops(isa_name: str, seconds: float = 0.2) -> float:
    """Single-thread FMA throughput of an ISA in GFLOP/s (2 flops per lane per
    FMA), the best of several timed runs filling about `seconds` in all.
    Raises ValueError for an ISA this build or CPU does not have."""
    _table(isa_name)
    cdef _lc_fma_peak_fn fn = lc_fma_peak_get(ISA_NAMES.index(isa_name))
    if fn == NULL:
        raise ValueError(f"no FMA peak loop for ISA {isa_name!r}")
    cdef double flops = 0.0
    cdef _size_t iters = 1 << 14
    cdef float sink = 0.0
    # grow the loop until one run takes ~10 ms, then keep the best rate
    while True:
        t0 = _time.perf_counter()
        with nogil:
            sink += fn(iters, &flops)
        dt = _time.perf_counter() - t0
        if dt > 0.01 or iters > (1 << 40):
            break
        iters *= 2
    best = flops / dt
    deadline = _time.perf_counter() + max(0.0, float(seconds))
    while _time.perf_counter() < deadline:
        t0 = _time.perf_counter()
        with nogil:
            sink += fn(iters, &flops)
        dt = _time.perf_counter() - t0
        best = max(best, flops / dt)
    if sink != sink:  # keeps `sink` alive; never true for these inputs
        return float("nan")
    return best / 1e9


def _ukernel_tile(isa_name: str):
    """(mr, nr, kc) of an ISA's GEMM micro-kernel."""
    cdef const _lc_isa_table *t = _table(isa_name)
    return t.mr, t.nr, t.kc


cdef const float *_bias_ptr(bias, _size_t need, str what) except? NULL:
    """A micro-kernel's bias argument: NULL for None, else the first of at
    least `need` floats (the caller keeps `bias` alive)."""
    cdef const float[::1] bias_v
    if bias is None:
        return NULL
    bias_v = bias
    if <_size_t>bias_v.shape[0] < need:
        raise ValueError(f"bias must hold {what} floats")
    return &bias_v[0]


def _ukernel_gemm(str isa_name, _size_t m, _size_t n, _size_t k, const float[::1] a_packed,
                  const float[::1] b, _size_t ldb, float[::1] c, _size_t ldc, bias,
                  unsigned flags, clamp=None, _size_t repeat=1):
    """One call of the ISA's GEMM micro-kernel (`repeat` calls, for timing it
    on cache-resident data); sizes are checked against the buffers first (the
    kernel itself trusts its caller)."""
    cdef const _lc_isa_table *t = _table(isa_name)
    cdef const float *bias_p = NULL
    cdef lc_epilogue ep = _epilogue(clamp)
    if not (1 <= m <= <_size_t>t.mr and 1 <= n <= <_size_t>t.nr and k >= 1):
        raise ValueError(f"need 1 <= m <= {t.mr}, 1 <= n <= {t.nr}, k >= 1")
    if ldb < n or ldc < n:
        raise ValueError("ldb and ldc must be >= n")
    if <_size_t>a_packed.shape[0] < k * <_size_t>t.mr:
        raise ValueError("a_packed must hold k * mr floats")
    if <_size_t>b.shape[0] < (k - 1) * ldb + n or <_size_t>c.shape[0] < (m - 1) * ldc + n:
        raise ValueError("b or c is too small for the strides")
    bias_p = _bias_ptr(bias, m, "m")
    cdef _size_t rep
    with nogil:
        for rep in range(repeat):
            t.gemm(m, n, k, &a_packed[0], &b[0], ldb, &c[0], ldc, bias_p, &ep, flags)


cdef _size_t _wino_lanes(lanes, _size_t nr) except 0:
    if lanes is None:
        return nr
    if not 1 <= lanes <= nr:
        raise ValueError(f"lanes must be in [1, NR = {nr}], got {lanes}")
    return lanes


def _ukernel_wino_input(str isa_name, int variant, const float[::1] d, float[::1] v,
                        _size_t xi_stride, lanes=None):
    """Input transform of NR tiles: d is alpha*alpha*NR floats, v receives
    alpha*alpha rows of NR floats at stride xi_stride.  variant 0/1/2 = F2/F4/F6.
    lanes (default NR): only the vectors holding lanes [0, lanes) are written."""
    cdef const _lc_isa_table *t = _table(isa_name)
    if variant not in (0, 1, 2):
        raise ValueError("variant must be 0, 1 or 2 (F2, F4, F6)")
    cdef _size_t alpha = (2, 4, 6)[variant] + 2, nr = t.nr
    cdef _size_t nl = _wino_lanes(lanes, nr)
    if xi_stride < nr or <_size_t>d.shape[0] < alpha * alpha * nr or \
            <_size_t>v.shape[0] < (alpha * alpha - 1) * xi_stride + nr:
        raise ValueError("buffers too small for alpha, NR and xi_stride")
    with nogil:
        t.wino_input[variant](&d[0], &v[0], xi_stride, nl)


def _ukernel_wino_output(str isa_name, int variant, const float[::1] mo, _size_t xi_stride,
                         float[::1] o, float bias, clamp=None, lanes=None):
    """Output transform of NR tiles: mo holds alpha*alpha rows of NR floats at
    stride xi_stride, o receives m*m*NR floats.  Returns the lane mask of
    tiles whose results (before bias and clamp) hold an Inf or NaN.  lanes
    (default NR): only the vectors holding lanes [0, lanes) are written, and
    mo's lanes >= lanes are read as zero."""
    cdef const _lc_isa_table *t = _table(isa_name)
    cdef lc_epilogue ep = _epilogue(clamp)
    if variant not in (0, 1, 2):
        raise ValueError("variant must be 0, 1 or 2 (F2, F4, F6)")
    cdef _size_t wm = (2, 4, 6)[variant], alpha = wm + 2, nr = t.nr
    cdef _size_t nl = _wino_lanes(lanes, nr)
    if xi_stride < nr or <_size_t>o.shape[0] < wm * wm * nr or \
            <_size_t>mo.shape[0] < (alpha * alpha - 1) * xi_stride + nr:
        raise ValueError("buffers too small for alpha, NR and xi_stride")
    cdef uint64_t nonfinite
    with nogil:
        nonfinite = t.wino_output[variant](&mo[0], xi_stride, &o[0], bias, &ep, nl)
    return nonfinite


def _ukernel_wino_cl_shape(str isa_name):
    """(R, CW) of the ISA's channel-lanes Winograd GEMM: tiles and output
    channels per call; (0, 0) when it has none."""
    cdef const _lc_isa_table *t = _table(isa_name)
    if t.wino_cl_gemm == NULL:
        return 0, 0
    return t.wino_cl_rows, t.wino_cl_cols


def _ukernel_wino_cl_gemm(str isa_name, _size_t k, const float[::1] ut, const float[::1] v,
                          _size_t ldv, float[::1] mo, _size_t ldo, _size_t rows, _size_t cols):
    """mo[o * ldo + r] = sum_c ut[c * CW + o] * v[c * ldv + r] for r < rows,
    o < cols: the channel-lanes Winograd GEMM (reads R floats of each v row)."""
    cdef const _lc_isa_table *t = _table(isa_name)
    if t.wino_cl_gemm == NULL:
        raise ValueError(f"ISA {isa_name!r} has no channel-lanes Winograd GEMM")
    cdef _size_t R = t.wino_cl_rows, CW = t.wino_cl_cols
    if k < 1 or not 1 <= rows <= R or not 1 <= cols <= CW or ldv < R or ldo < rows:
        raise ValueError(f"need k >= 1, 1 <= rows <= {R}, 1 <= cols <= {CW}, ldv >= {R}, ldo >= rows")
    if <_size_t>ut.shape[0] < k * CW or <_size_t>v.shape[0] < (k - 1) * ldv + R or \
            <_size_t>mo.shape[0] < (cols - 1) * ldo + rows:
        raise ValueError("buffers too small for k, R, CW, ldv, ldo, rows and cols")
    with nogil:
        t.wino_cl_gemm(k, &ut[0], &v[0], ldv, &mo[0], ldo, rows, cols)


def _ukernel_dl_shape(str isa_name, bint half=False):
    """(L, CW, R) of the ISA's direct_lanes kernel (half: its half-width
    kernel, None if it has none): lanes a vector, output channels and output
    pixels a call."""
    cdef const _lc_isa_table *t = _table(isa_name)
    if half:
        return (t.dl_lanes, t.dl_cols // 2, t.dl_rows_half) if t.dl_kernel_half != NULL else None
    return t.dl_lanes, t.dl_cols, t.dl_rows


def _ukernel_pw_shape(str isa_name, bint half=False):
    """(L, CW, R) of the ISA's 1 x 1 direct_lanes kernel, as
    _ukernel_dl_shape: the same widths, its own R (pw_rows)."""
    shape = _ukernel_dl_shape(isa_name, half)
    if shape is None or half:
        return shape
    return shape[0], shape[1], _table(isa_name).pw_rows


def _ukernel_dl(str isa_name, _size_t n, const float[::1] x, _size_t x_at, const float[::1] w,
                float[::1] t, _size_t t_at, _size_t ldt, bias, _size_t C, _size_t kH,
                _size_t kW, _size_t xcs, _size_t xrs, _size_t xts, xoff, unsigned flags,
                clamp=None, _size_t repeat=1, bint half=False, const float[::1] pf=None,
                _size_t pf_lines=0):
    """One call of the ISA's direct_lanes kernel (half: its half-width one)
    on x[x_at:], tile t[t_at:], prefetching C x pf_lines lines of pf if given
    (lc_dl_kernel_fn; `repeat` calls, for timing it on cache-resident data);
    every float it may touch is checked to lie inside the buffers first (the
    kernel itself trusts its caller)."""
    cdef const _lc_isa_table *tb = _table(isa_name)
    cdef _size_t L = tb.dl_lanes, CW = tb.dl_cols, R = tb.dl_rows, j
    cdef _lc_dl_fn kernel = tb.dl_kernel
    if half:
        if tb.dl_kernel_half == NULL:
            raise ValueError(f"isa {isa_name!r} has no half-width direct_lanes kernel")
        kernel, CW, R = tb.dl_kernel_half, CW // 2, tb.dl_rows_half
    cdef lc_epilogue ep = _epilogue(clamp)
    cdef _lc_dl_geom g
    cdef const float *bias_p = NULL
    if not 1 <= n <= R or C < 1 or kH < 1 or kW < 1 or len(xoff) < n or ldt < R * L:
        raise ValueError(f"need 1 <= n <= {R}, C, kH, kW >= 1, n offsets, ldt >= {R * L}")
    cdef size_t offs[16]
    if R > 16:
        raise ValueError("R > 16")
    for j in range(n):
        offs[j] = xoff[j]
    last = x_at + (C - 1) * xcs + (kH - 1) * xrs + (kW - 1) * xts + max(xoff[:n])
    if last >= <_size_t>x.shape[0] or <_size_t>w.shape[0] < C * kH * kW * CW or \
            t_at + (CW // L - 1) * ldt + n * L > <_size_t>t.shape[0]:
        raise ValueError("x, w or t is too small for the geometry")
    bias_p = _bias_ptr(bias, CW, "CW")
    g.C, g.kH, g.kW, g.xcs, g.xrs, g.xts = C, kH, kW, xcs, xrs, xts
    g.wcs, g.ldt, g.xoff = kH * kW * CW, ldt, offs
    g.pf, g.pf_lines = NULL, 0
    if pf is not None and pf_lines:
        if <_size_t>pf.shape[0] * sizeof(float) < C * pf_lines * 64:
            raise ValueError("pf is too small for C x pf_lines lines")
        g.pf, g.pf_lines = <const char *>&pf[0], pf_lines
    cdef _size_t rep
    with nogil:
        for rep in range(repeat):
            kernel(n, &x[x_at], &w[0], &t[t_at], bias_p, &g, &ep, flags)


cdef extern from "internal.h":
    int64_t lc_pointwise_lanes_chunks(const lc_conv_desc *d) nogil
    int64_t lc_pointwise_lanes_chunk(const lc_conv_desc *d, int64_t c, int64_t *at) nogil
    int lc_pointwise_lanes_by_pixels(const lc_conv_desc *d) nogil
    int lc_winograd_split(const lc_conv_desc *d) nogil
    int lc_stem_lanes_applies(const lc_conv_desc *d) nogil
    int lc_gemm_is_pointwise(const lc_conv_desc *d) nogil
    int lc_tap_lanes_applies(const lc_conv_desc *d) nogil
    int64_t lc_tap_lanes_live_pairs(const lc_conv_desc *d) nogil


def _winograd_split(int algorithm, int isa, tuple geometry, int nthreads):
    """How the threads share a Winograd call (kernels/winograd.c
    lc_wino_geometry), for the tests: "blocks", "phased" or "channels"."""
    cdef lc_conv_desc d
    fill_desc(&d, algorithm, isa, geometry, None, nthreads)
    split = lc_winograd_split(&d)
    if split < 0:
        raise ValueError("a Winograd size would not fit in 63 bits")
    return ("blocks", "phased", "channels")[split]


def _direct_lanes_mode(int isa, tuple geometry):
    """Which of direct_lanes' paths runs this call (kernels/direct_lanes.c
    hands layers to them in this order), for the tests and profiles: "stem"
    (kernels/stem_lanes.c), "pointwise" (pointwise_lanes.c), "taps"
    (tap_lanes.c: only the (tap, output) pairs that read the input) or
    "padded" (its own, over a zero-padded copy)."""
    cdef lc_conv_desc d
    fill_desc(&d, ALGORITHMS.index("direct_lanes"), isa, geometry, None, 1)
    if lc_stem_lanes_applies(&d):
        return "stem"
    if lc_gemm_is_pointwise(&d):
        return "pointwise"
    return "taps" if lc_tap_lanes_applies(&d) else "padded"


def _tap_lanes_live_pairs(int isa, tuple geometry):
    """(tap, output) pairs of one image that read the input, as tap mode
    counts them."""
    cdef lc_conv_desc d
    fill_desc(&d, ALGORITHMS.index("direct_lanes"), isa, geometry, None, 1)
    return lc_tap_lanes_live_pairs(&d)


def _pointwise_lanes_chunks(int isa, tuple geometry, int nthreads, bint with_order=False):
    """[(first pixel, pixels)] of each chunk the 1 x 1 direct_lanes path
    (kernels/pointwise_lanes.c) splits an image's pixels into, for the tests;
    with_order: (that list, whether the items go chunk-major -- by pixels)."""
    cdef lc_conv_desc d
    cdef int64_t at = 0, n
    fill_desc(&d, ALGORITHMS.index("direct_lanes"), isa, geometry, None, nthreads)
    out = []
    for c in range(lc_pointwise_lanes_chunks(&d)):
        n = lc_pointwise_lanes_chunk(&d, c, &at)
        out.append((at, n))
    return (out, bool(lc_pointwise_lanes_by_pixels(&d))) if with_order else out


def _ukernel_pw(str isa_name, _size_t n, _size_t k, const float[::1] x, _size_t x_at,
                _size_t ldx, const float[::1] w, float[::1] t, _size_t t_at, _size_t ldt, bias,
                unsigned flags, clamp=None, _size_t repeat=1, bint half=False):
    """One call of the ISA's 1 x 1 direct_lanes kernel (lc_pw_kernel_fn; half:
    its half-width one, shaped as _ukernel_pw_shape says) on x[x_at:], tile
    t[t_at:]; every float it may touch is checked to lie inside the buffers
    first (the kernel itself trusts its caller)."""
    cdef const _lc_isa_table *tb = _table(isa_name)
    cdef _size_t L = tb.dl_lanes, CW = tb.dl_cols, R = tb.pw_rows
    cdef _lc_pw_fn kernel = tb.pw_kernel
    if half:
        if tb.pw_kernel_half == NULL:
            raise ValueError(f"isa {isa_name!r} has no half-width direct_lanes kernel")
        kernel, CW, R = tb.pw_kernel_half, CW // 2, tb.dl_rows_half
    cdef lc_epilogue ep = _epilogue(clamp)
    cdef const float *bias_p = NULL
    if not 1 <= n <= R or k < 1 or ldt < R * L:
        raise ValueError(f"need 1 <= n <= {R}, k >= 1, ldt >= {R * L}")
    if x_at + (k - 1) * ldx + n > <_size_t>x.shape[0] or <_size_t>w.shape[0] < k * CW or \
            t_at + (CW // L - 1) * ldt + n * L > <_size_t>t.shape[0]:
        raise ValueError("x, w or t is too small for the geometry")
    bias_p = _bias_ptr(bias, CW, "CW")
    cdef _size_t rep
    with nogil:
        for rep in range(repeat):
            kernel(n, k, &x[x_at], ldx, &w[0], &t[t_at], ldt, bias_p, &ep, flags)


def _ukernel_dw_row(str isa_name, float[::1] out, _size_t n, const float[::1] inp,
                    _size_t in_offset, _size_t in_row_stride, _size_t rows, const float[::1] w,
                    _size_t kW, _size_t stride, _size_t dil, float bias, clamp=None,
                    _size_t repeat=1):
    """One depthwise row: out[ox] for ox < n from inp[in_offset + ...]; checks
    that every tap lies inside `inp` (the kernel itself trusts its caller)."""
    cdef const _lc_isa_table *t = _table(isa_name)
    cdef lc_epilogue ep = _epilogue(clamp)
    if n < 1 or rows < 1 or kW < 1 or stride < 1 or dil < 1:
        raise ValueError("n, rows, kW, stride and dil must be >= 1")
    if <_size_t>out.shape[0] < n or <_size_t>w.shape[0] < rows * kW or \
            <_size_t>inp.shape[0] <= in_offset + (rows - 1) * in_row_stride + \
            (n - 1) * stride + (kW - 1) * dil:
        raise ValueError("buffers too small for n, rows, kW, stride and dil")
    cdef _size_t rep
    with nogil:
        for rep in range(repeat):
            t.dw_row(&out[0], n, &inp[in_offset], in_row_stride, rows, &w[0], kW, stride, dil,
                     bias, &ep)


def pool2d_scratch_bytes(tuple geom, bint is_max, bint count_include_pad, int threads,
                         int isa=0):
    """Bytes a pool2d call (or a BoundPool's run) of geometry `geom` (as
    pool2d's) allocates at `threads`, at most: its row buffers."""
    cdef lc_pool_desc d = _pool_desc(geom, is_max, count_include_pad)
    if threads < 1:
        raise ValueError(f"pool2d_scratch_bytes: threads must be >= 1, got {threads}")
    cdef lc_pool_plan *plan = lc_pool_plan_new(isa_config(isa), &d)
    if plan == NULL:
        raise MemoryError("pool2d_scratch_bytes: out of memory")
    cdef int64_t n = lc_pool_plan_scratch_bytes(plan, threads)
    lc_pool_plan_free(plan)
    return n


def pool2d(const float[::1] x, float[::1] out, tuple geom, bint is_max, bint count_include_pad,
           int threads, int isa=0):
    """out = 2-D max/average pooling of x, flat float32 NCHW buffers.  geom =
    (planes, H, W, OH, OW, kh, kw, sh, sw, dh, dw, pad_t, pad_l, pad_b, pad_r),
    checked by the caller (leanconv.onnx.ops_pool).  isa: an ISA id whose row
    primitives to use (leanconv._isa.isa_id(); same bits on every ISA).  The
    call a BoundPool makes, run once."""
    cdef BoundPool call = BoundPool(x, out, geom, 0, 0, is_max, count_include_pad, threads, isa)
    cdef int status
    with nogil:
        status = call._run(NULL, 0)
    if status != 0:
        raise MemoryError("pool2d: out of memory")


def resize2d(const float[::1] x, float[::1] out, int64_t planes, int64_t H, int64_t W,
             const int64_t[::1] row0, const int64_t[::1] row1, const float[::1] row_w,
             const int64_t[::1] col0, const int64_t[::1] col1, const float[::1] col_w,
             bint linear, int threads):
    """out = 2-D nearest / bilinear resize of x (flat float32 NCHW buffers) from
    per-axis index and weight tables (see include/leanconv/resize.h); the
    tables' lengths give OH and OW, their indices are checked here."""
    cdef int64_t OH = row0.shape[0], OW = col0.shape[0], i
    if x.shape[0] != planes * H * W or out.shape[0] != planes * OH * OW:
        raise ValueError("resize2d: buffer sizes do not match the geometry")
    if row1.shape[0] != OH or row_w.shape[0] != OH or col1.shape[0] != OW or \
            col_w.shape[0] != OW:
        raise ValueError("resize2d: the tables' lengths differ")
    if out.shape[0] == 0:
        return
    for i in range(OH):
        if not (0 <= row0[i] < H and 0 <= row1[i] < H):
            raise ValueError("resize2d: a row index is out of range")
    for i in range(OW):
        if not (0 <= col0[i] < W and 0 <= col1[i] < W):
            raise ValueError("resize2d: a column index is out of range")
    cdef int status
    with nogil:
        status = lc_resize2d(&x[0], &out[0], planes, H, W, OH, OW, &row0[0], &row1[0],
                             &row_w[0], &col0[0], &col1[0], &col_w[0], linear, threads)
    if status != 0:
        raise MemoryError("resize2d: out of memory")


def channel_affine(const float[::1] x, float[::1] out, int64_t planes, int64_t hw,
                   const float[::1] scale, const float[::1] shift, bint relu, int threads,
                   int isa=0):
    """out = fma(x, scale[c], shift[c]) per plane (c = plane % len(scale)), then
    with relu 0 where below 0 (NaN passes); flat float32 buffers of `planes`
    planes of hw floats (see include/leanconv/channel_affine.h).  isa: an ISA
    id whose plane primitive to use (same bits on every ISA).  The call a
    BoundAffine makes, run once."""
    cdef BoundAffine call = BoundAffine(x, out, planes, hw, scale, shift, relu, threads, isa)
    with nogil:
        call._run(NULL, 0)


def lrn(const float[::1] x, float[::1] out, int64_t n, int64_t channels, int64_t hw,
        int64_t size, float alpha, float beta, float bias, int threads, int isa=0):
    """out = ONNX LRN of x, flat float32 buffers of n images of `channels`
    planes of hw pixels (see include/leanconv/lrn.h).  isa: an ISA id whose
    divide to use (leanconv._isa.isa_id(); same bits on every ISA)."""
    cdef const lc_isa_config *cfg = isa_config(isa)
    if n < 0 or channels < 0 or hw < 0 or x.shape[0] != n * channels * hw or \
            out.shape[0] != x.shape[0]:
        raise ValueError("lrn: buffer sizes do not match the geometry")
    if size < 1:
        raise ValueError(f"lrn: size must be at least 1, got {size}")
    if out.shape[0] == 0:
        return
    with nogil:
        lc_lrn(cfg, &x[0], &out[0], n, channels, hw, size, alpha, beta, bias, threads)


def channel_layernorm(const float[::1] x, float[::1] out, int64_t n, int64_t channels,
                      int64_t hw, float eps, scale, bias, int threads, int isa=0):
    """out = LayerNorm over the channels of x, flat float32 buffers of n images
    of `channels` planes of hw pixels, times scale and plus bias (float32
    buffers of one value per channel, or None) (see
    include/leanconv/channel_norm.h).  out may be x.  isa: an ISA id whose
    block to use (leanconv._isa.isa_id()).  The call a BoundLayerNorm makes,
    run once."""
    cdef BoundLayerNorm call = BoundLayerNorm(x, out, n, channels, hw, eps, scale, bias,
                                              threads, isa)
    with nogil:
        call._run(NULL, 0)


def instance_norm(const float[::1] x, float[::1] out, int64_t planes, int64_t channels,
                  int64_t hw, float eps, scale, bias, int threads):
    """out = InstanceNormalization of x: flat float32 buffers of `planes`
    planes of hw values, plane i of channel i % channels, each normalised
    over itself, times scale and plus bias (float32 buffers of one value per
    channel, or None) (include/leanconv/instance_norm.h).  out may be x."""
    if planes < 0 or channels < 1 or hw < 0 or planes % channels or \
            x.shape[0] != planes * hw or out.shape[0] != x.shape[0]:
        raise ValueError("instance_norm: buffer sizes do not match the geometry")
    if threads < 1:
        raise ValueError(f"instance_norm: threads must be >= 1, got {threads}")
    cdef const float *s = optional_vector(scale, channels, "scale")
    cdef const float *b = optional_vector(bias, channels, "bias")
    if x.shape[0] == 0:
        return
    with nogil:
        lc_instance_norm(&x[0], &out[0], planes, channels, hw, eps, s, b, threads)


cdef class BoundLayerNormRows(_BoundNorm):
    """A LayerNormalization step's C call fixed once (layer_norm_rows'
    arguments, checked here): `rows` rows of `width` floats of x normalised
    into out (flat float32 buffers; out may be x), times scale and plus bias
    (`width` values; bias may be None) (include/leanconv/instance_norm.h),
    with ISA `isa`'s row entry (the same bits as any other)."""
    cdef int64_t rows, width
    cdef float eps
    cdef int threads

    def __init__(self, const float[::1] x, float[::1] out, int64_t rows, int64_t width,
                 float eps, const float[::1] scale, bias, int threads, int isa=0):
        if rows < 0 or width < 1 or x.shape[0] != rows * width or out.shape[0] != x.shape[0]:
            raise ValueError("layer_norm_rows: buffer sizes do not match the geometry")
        if scale.shape[0] != width:
            raise ValueError(f"layer_norm_rows: scale has {scale.shape[0]} values, rows have "
                             f"{width}")
        if threads < 1:
            raise ValueError(f"layer_norm_rows: threads must be >= 1, got {threads}")
        self.bias = optional_vector(bias, width, "bias")
        self.cfg = isa_config(isa)
        self.keep = (x, out, scale, bias)
        self.x = &x[0] if x.shape[0] else NULL
        self.y = &out[0] if out.shape[0] else NULL
        self.scale = &scale[0]
        self.rows, self.width, self.eps, self.threads = rows, width, eps, threads

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        if self.y == NULL:
            return 0
        return lc_layer_norm_rows(self.cfg, self.x, self.y, self.rows, self.width, self.eps,
                                  self.scale, self.bias, self.threads)


def layer_norm_rows(const float[::1] x, float[::1] out, int64_t rows, int64_t width, float eps,
                    const float[::1] scale, bias, int threads, int isa=0):
    """The call a BoundLayerNormRows makes, run once."""
    cdef BoundLayerNormRows call = BoundLayerNormRows(x, out, rows, width, eps, scale, bias,
                                                      threads, isa)
    with nogil:
        call._run(NULL, 0)


def se_packed_floats(int64_t rows, int64_t k):
    """Floats of lc_se_pack's form of a rows x k matrix."""
    return lc_se_packed_floats(rows, k)


def se_pack(const float[::1] w, float[::1] out, int64_t rows, int64_t k):
    """out = w (rows x k, row-major) in 16-row panels (lc_se_pack)."""
    if rows < 1 or k < 1 or w.shape[0] != rows * k or \
            out.shape[0] != lc_se_packed_floats(rows, k):
        raise ValueError("se_pack: buffer sizes do not match")
    with nogil:
        lc_se_pack(&out[0], &w[0], rows, k)


cdef const float *optional_vector(object b, int64_t n, str what) except? NULL:
    """&b[0] for b a C-contiguous float32 array of n floats, NULL for None.
    The pointer stays valid while the caller holds b (a NumPy array's data
    does not move)."""
    cdef const float[::1] v
    if b is None:
        return NULL
    v = b
    if v.shape[0] != n:
        raise ValueError(f"{what} must hold {n} floats")
    return &v[0]


def dense(const float[::1] x, float[::1] out, int64_t n, int64_t rows, int64_t k,
          const float[::1] wp, b, int threads, int isa, tuple epilogue=None):
    """out[i] = act(W x[i] (+ b)) for the n rows of x (n x k, flat): W (rows
    x k) packed by se_pack, b float32 of rows floats or None, act the parsed
    epilogue or None (leanconv/dense.h).  The call BoundDense makes, run once."""
    cdef BoundDense call = BoundDense(x, out, n, rows, k, wp, b, threads, isa, epilogue)
    with nogil:
        call._run(NULL, 0)


def softmax(const float[::1] x, float[::1] out, int64_t rows, int64_t n, int threads,
            int64_t inner=1, int isa=0):
    """out = softmax over n of x seen as rows x n x inner (flat float32 buffers;
    inner 1: each row of n contiguous floats) (leanconv/softmax.h); out may
    be x.  isa: an ISA id whose vector exp to use (leanconv._isa.isa_id()).
    The call a BoundSoftmax makes, run once."""
    cdef BoundSoftmax call = BoundSoftmax(x, out, rows, n, inner, threads, isa)
    with nogil:
        call._run(NULL, 0)


cdef class BoundSEBlock(BoundCall):
    """A squeeze-and-excitation step's C call fixed once (leanconv/se_block.h):
    out = x * gate(W2 act1(W1 mean(x) + b1) + b2) per image and channel; W1,
    W2 packed by se_pack; b1, b2 float32 or None; act1, gate: None or
    _epilogue.parse's (code, a, b).  out may be x."""
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const float *w1p
    cdef const float *w2p
    cdef const float *b1p
    cdef const float *b2p
    cdef lc_epilogue e1, e2
    cdef const lc_isa_config *cfg
    cdef int64_t n, c, hw, r
    cdef int threads

    def __init__(self, const float[::1] x, float[::1] out, int64_t n, int64_t c, int64_t hw,
                 const float[::1] w1p, b1, int64_t r, tuple act1, const float[::1] w2p, b2,
                 tuple gate, int threads, int isa):
        if n < 1 or c < 1 or hw < 1 or r < 1:
            raise ValueError("se_block: n, c, hw and r must be positive")
        if x.shape[0] != n * c * hw or out.shape[0] != x.shape[0]:
            raise ValueError("se_block: x and out must hold n * c * hw floats")
        if w1p.shape[0] != lc_se_packed_floats(r, c) or \
                w2p.shape[0] != lc_se_packed_floats(c, r):
            raise ValueError("se_block: packed weights do not match c and r")
        if threads < 1:
            raise ValueError(f"se_block: threads must be >= 1, got {threads}")
        self.b1p = optional_vector(b1, r, "se_block: b1")
        self.b2p = optional_vector(b2, c, "se_block: b2")
        fill_epilogue(&self.e1, act1)
        fill_epilogue(&self.e2, gate)
        self.cfg = isa_config(isa)
        self.keep = (x, out, w1p, b1, w2p, b2)
        self.x, self.y, self.w1p, self.w2p = &x[0], &out[0], &w1p[0], &w2p[0]
        self.n, self.c, self.hw, self.r, self.threads = n, c, hw, r, threads

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_se_block(self.cfg, self.x, self.y, self.n, self.c, self.hw, self.w1p,
                           self.b1p, self.r, &self.e1, self.w2p, self.b2p, &self.e2,
                           self.threads)


def se_block(const float[::1] x, float[::1] out, int64_t n, int64_t c, int64_t hw,
             const float[::1] w1p, b1, int64_t r, tuple act1, const float[::1] w2p, b2,
             tuple gate, int threads, int isa):
    """The call a BoundSEBlock makes, run once."""
    cdef BoundSEBlock call = BoundSEBlock(x, out, n, c, hw, w1p, b1, r, act1, w2p, b2, gate,
                                          threads, isa)
    cdef int status
    with nogil:
        status = call._run(NULL, 0)
    if status == 2:
        raise MemoryError("se_block: out of memory")
    if status != 0:
        raise ValueError("se_block: unknown activation code")


def global_avg_pool(const float[::1] x, float[::1] out, int64_t planes, int64_t hw, int threads):
    """out[p] = mean of x[p * hw:(p + 1) * hw]."""
    if x.shape[0] != planes * hw or out.shape[0] != planes:
        raise ValueError("global_avg_pool: buffer sizes do not match")
    if planes == 0 or hw == 0:
        return
    with nogil:
        lc_global_avg_pool(&x[0], &out[0], planes, hw, threads)


cdef lc_conv_desc *_ir_descs(lc_conv_desc *e, lc_conv_desc *d, lc_conv_desc *p, int isa,
                             tuple geom_e, tuple geom_d, tuple geom_p, tuple ep_e, tuple ep_d,
                             tuple ep_p, int threads) except? NULL:
    """Fills e (where geom_e is not None: a block without the expanding 1x1
    has none), d (and p where geom_p is not None); returns p, or NULL
    without a projection."""
    if geom_e is not None:
        fill_desc(e, 1, isa, geom_e, ep_e, threads)    # LC_ALGO_IM2COL: the 1x1 path
    fill_desc(d, 6, isa, geom_d, ep_d, threads)    # LC_ALGO_DEPTHWISE
    if geom_p is None:
        return NULL
    fill_desc(p, 1, isa, geom_p, ep_p, threads)
    return p


def ir_block_info(int isa, tuple geom_e, tuple geom_d, tuple geom_p, int threads):
    """The fused inverted-residual block (leanconv/ir_block.h) for the 1x1's,
    the depthwise's and the projection's (None: no projection) geometries
    (fill_desc's tuples; geom_e None: no expanding 1x1, the depthwise reads
    x): a dict of why (None or the reason it cannot run), band_rows, pays
    (fusing is worth it on this CPU), project_pays (so is fusing the
    projection too), packed_floats (the first 1x1's) and workspace_bytes at
    `threads`."""
    cdef lc_conv_desc e, d, p
    cdef lc_conv_desc *pp = _ir_descs(&e, &d, &p, isa, geom_e, geom_d, geom_p, None, None, None,
                                      threads)
    cdef lc_conv_desc *pe = &e if geom_e is not None else NULL
    cdef const char *why = lc_ir_block_unsupported(pe, &d, pp)
    if why != NULL:
        return {"why": why.decode(), "band_rows": 0, "pays": False, "project_pays": False,
                "packed_floats": 0, "workspace_bytes": -1}
    return {"why": None, "band_rows": lc_ir_block_band_rows(pe, &d, pp),
            "pays": bool(lc_ir_block_pays(pe, &d)),
            "project_pays": pp != NULL and bool(lc_ir_block_project_pays(pe, &d, pp)),
            "packed_floats": lc_ir_block_packed_floats(pe) if pe != NULL else 0,
            "workspace_bytes": lc_ir_block_workspace_bytes(pe, &d, pp)}


def ir_block_debug(int64_t band_rows=0, int pays=-1):
    """Tests: the fused inverted-residual block in bands of `band_rows`
    output rows whatever the cache (0: the cache budget's), and its rule
    answering `pays` (0 never, 1 always, -1 the rule's own)."""
    lc_ir_block_debug(band_rows, pays)


def ir_block_packed_floats(int isa, tuple geom_e):
    """Floats of the 1x1's packed weights for the fused block."""
    cdef lc_conv_desc e
    fill_desc(&e, 1, isa, geom_e, None, 1)
    return lc_ir_block_packed_floats(&e)


def ir_block_pack(int isa, tuple geom_e, const float[::1] w, float[::1] out):
    """out = the 1x1's weights (M x C, flat) packed for the fused block."""
    cdef lc_conv_desc e
    fill_desc(&e, 1, isa, geom_e, None, 1)
    if w.shape[0] != e.M * e.C or out.shape[0] != lc_ir_block_packed_floats(&e):
        raise ValueError("ir_block_pack: buffer sizes do not match the geometry")
    with nogil:
        lc_ir_block_pack(&e, &w[0], &out[0])


cdef class BoundIRBlock(BoundCall):
    """A fused inverted-residual block's C call (leanconv/ir_block.h) fixed
    once with its buffers and checked here (ir_block's arguments but the
    workspace): bound, a block runs in the schedule's C loop among the
    Convs, in their lent workspace (at least `workspace_bytes`), instead of
    as a Python step between two such loops (its argument checks and
    NumPy glue: 18-33 us a block called hot on Zen 4, three blocks in
    MobileNetV2 224, ~1% of its run)."""
    cdef lc_conv_desc e, d, p
    cdef lc_conv_desc *pe
    cdef lc_conv_desc *pp
    cdef lc_ir_project proj
    cdef const lc_ir_project *projp
    cdef tuple keep
    cdef const float *x
    cdef float *y
    cdef const float *we
    cdef const float *be
    cdef const float *wd
    cdef const float *bd
    cdef readonly int64_t workspace_bytes

    def __init__(self, const float[::1] x, float[::1] out, int isa, tuple geom_e, tuple geom_d,
                 tuple ep_e, tuple ep_d, we_packed, be, const float[::1] wd,
                 bd, int threads, tuple geom_p=None, tuple ep_p=None, wp_packed=None, bp=None,
                 residual=None):
        cdef const float[::1] wpv
        cdef const float[::1] wev
        self.pp = _ir_descs(&self.e, &self.d, &self.p, isa, geom_e, geom_d, geom_p, ep_e, ep_d,
                            ep_p, threads)
        self.pe = &self.e if geom_e is not None else NULL
        cdef const char *why = lc_ir_block_unsupported(self.pe, &self.d, self.pp)
        if why != NULL:
            raise ValueError(f"ir_block: {why.decode()}")
        cdef int64_t out_floats = (self.p.N * self.p.M * self.p.OH * self.p.OW
                                   if self.pp != NULL else
                                   self.d.N * self.d.M * self.d.OH * self.d.OW)
        cdef int64_t x_floats = (self.e.N * self.e.C * self.e.H * self.e.W if self.pe != NULL
                                 else self.d.N * self.d.C * self.d.H * self.d.W)
        if x.shape[0] != x_floats or out.shape[0] != out_floats:
            raise ValueError("ir_block: x or out does not match the geometry")
        if wd.shape[0] != self.d.M * self.d.kH * self.d.kW:
            raise ValueError("ir_block: weights do not match the geometry")
        self.we = NULL
        self.be = NULL
        if self.pe != NULL:
            wev = we_packed
            if wev.shape[0] != lc_ir_block_packed_floats(self.pe):
                raise ValueError("ir_block: weights do not match the geometry")
            self.we = &wev[0]
            self.be = optional_vector(be, self.e.M, "ir_block: be")
        elif we_packed is not None or be is not None:
            raise ValueError("ir_block: expansion weights without geom_e")
        self.bd = optional_vector(bd, self.d.M, "ir_block: bd")
        self.projp = NULL
        if self.pp != NULL:
            wpv = wp_packed
            if wpv.shape[0] != lc_ir_block_packed_floats(self.pp):
                raise ValueError("ir_block: wp_packed does not match the geometry")
            self.proj.wp_packed = &wpv[0]
            self.proj.bp = optional_vector(bp, self.p.M, "ir_block: bp")
            self.proj.residual = optional_vector(residual, out_floats, "ir_block: residual")
            self.projp = &self.proj
        elif residual is not None or wp_packed is not None:
            raise ValueError("ir_block: a residual or projection weights without geom_p")
        self.workspace_bytes = lc_ir_block_workspace_bytes(self.pe, &self.d, self.pp)
        if self.workspace_bytes < 0:
            raise ValueError("ir_block: no band of this block fits the cache budget")
        self.keep = (x, out, we_packed, be, wd, bd, wp_packed, bp, residual)
        self.x, self.y, self.wd = &x[0], &out[0], &wd[0]

    cdef int _run(self, char *ws, int64_t ws_bytes) noexcept nogil:
        return lc_ir_block_run(self.pe, &self.d, self.pp, self.x, self.we, self.be, self.wd,
                               self.bd, self.projp, self.y, ws, ws_bytes)


def ir_block(const float[::1] x, float[::1] out, int isa, tuple geom_e, tuple geom_d,
             tuple ep_e, tuple ep_d, we_packed, be, const float[::1] wd, bd,
             unsigned char[::1] workspace, int threads, tuple geom_p=None, tuple ep_p=None,
             wp_packed=None, bp=None, residual=None):
    """out = act_d(depthwise(act_e(We x + be)) + bd) (leanconv/ir_block.h), or
    with geom_p act_p(Wp (that) + bp [+ residual]): x, out (and residual) flat
    float32 of the geometries' input and output; be, bd, bp float32 or None;
    ep_* None or _epilogue.parse's (code, a, b); wp_packed the projection's
    packed weights; workspace at least ir_block_info's workspace_bytes,
    64-byte aligned."""
    cdef BoundIRBlock block = BoundIRBlock(x, out, isa, geom_e, geom_d, ep_e, ep_d, we_packed,
                                           be, wd, bd, threads, geom_p, ep_p, wp_packed, bp,
                                           residual)
    cdef char *wsp = NULL
    cdef int64_t n = workspace.shape[0]
    cdef int status
    if n < block.workspace_bytes:
        raise ValueError(f"ir_block: workspace of {n} bytes, needs {block.workspace_bytes}")
    if n > 0:
        wsp = <char *>&workspace[0]
        if (<size_t>wsp) % 64:
            raise ValueError("ir_block: workspace must be 64-byte aligned")
    with nogil:
        status = block._run(wsp, n)
    if status != 0:
        raise ValueError("ir_block: the block cannot run (status %d)" % status)
