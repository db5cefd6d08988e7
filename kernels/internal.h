/* Helpers shared by the drivers (not part of the public C interface). */
#ifndef LEANCONV_INTERNAL_H
#define LEANCONV_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "leanconv/conv.h"
#include "leanconv/ukernels.h"

#define LC_ALIGN 64

/* Checked 63-bit arithmetic: once *ok is 0 the results are meaningless. */
static inline int64_t lc_mul(int64_t a, int64_t b, int *ok) {
    if (a < 0 || b < 0) { *ok = 0; return 0; }
    if (a != 0 && b > INT64_MAX / a) { *ok = 0; return 0; }
    return a * b;
}
static inline int64_t lc_add(int64_t a, int64_t b, int *ok) {
    if (a < 0 || b < 0 || a > INT64_MAX - b) { *ok = 0; return 0; }
    return a + b;
}
static inline int64_t lc_round_up(int64_t a, int64_t m, int *ok) {
    int64_t r = lc_add(a, m - 1, ok);
    return (r / m) * m;
}
static inline int64_t lc_div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t lc_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t lc_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Bytes of `floats` floats rounded up to the 64-byte alignment every buffer keeps. */
static inline int64_t lc_aligned_floats_bytes(int64_t floats, int *ok) {
    return lc_round_up(lc_mul(floats, (int64_t)sizeof(float), ok), LC_ALIGN, ok);
}

/* The micro-kernels' clamp on one value (what they do as they store, for
 * the drivers' scalar border code); NaN compares false and passes through. */
static inline float lc_clampf(float v, const lc_epilogue *ep) {
    if (ep->clamp) {
        if (v < ep->lo) v = ep->lo;
        if (v > ep->hi) v = ep->hi;
    }
    return v;
}

/* Is the activation one the micro-kernels do themselves (none, a clamp)? */
static inline int lc_act_in_kernels(const lc_epilogue *ep) {
    return ep->act == LC_ACT_NONE || ep->act == LC_ACT_CLAMP;
}

/* The epilogue the micro-kernels get when `adds_after` (a residual is still
 * to be added after their store): their clamp only when it is the whole
 * activation and nothing is added after it. */
static inline lc_epilogue lc_kernel_epilogue(const lc_epilogue *ep, int adds_after) {
    lc_epilogue k = *ep;
    k.clamp = ep->act == LC_ACT_CLAMP && !adds_after;
    return k;
}

/* Must the post-op run after the kernels (a residual, or an activation they
 * do not do)? */
static inline int lc_needs_postop(const lc_epilogue *ep, int adds_after) {
    return adds_after || !lc_act_in_kernels(ep);
}

/* The identity epilogue (the post-op then only adds). */
static inline lc_epilogue lc_identity_epilogue(void) {
    lc_epilogue e = {0.0f, 0.0f, 0, LC_ACT_NONE, 0.0f, 0.0f};
    return e;
}

/* dst[r] = row[ix0 + r*sw] for r in [0, run), zero where the index falls
 * outside [0, W).  The common all-inside case goes first with no bounds work;
 * the small constant strides (1, 2 for downsampling; 2, 4, 6 for Winograd
 * tiles) get loops of their own that the compiler vectorises. */
/* Of the run dst[r] = row[ix0 + r*sw], r < run, the part [*lo, *hi) reads
 * inside [0, W); the rest is padding, zeroed here. */
static inline void lc_run_inside(float *dst, int64_t W, int64_t ix0, int64_t sw, int64_t run,
                                 int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = run, r;
    if (!(ix0 >= 0 && ix0 + (run - 1) * sw < W)) {
        l = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
        h = ix0 < W ? (W - ix0 + sw - 1) / sw : 0;
        l = l < run ? l : run;
        h = h < run ? h : run;
        h = h > l ? h : l;
        for (r = 0; r < l; r++) dst[r] = 0.0f;
        for (r = h; r < run; r++) dst[r] = 0.0f;
    }
    *lo = l;
    *hi = h;
}

static inline void lc_copy_strided(float *dst, const float *row, int64_t W, int64_t ix0,
                                   int64_t sw, int64_t run) {
    int64_t lo, hi, r;
    lc_run_inside(dst, W, ix0, sw, run, &lo, &hi);
    const float *src = row + ix0;
    switch (sw) {
    case 1: for (r = lo; r < hi; r++) dst[r] = src[r]; break;
    case 2: for (r = lo; r < hi; r++) dst[r] = src[2 * r]; break;
    case 4: for (r = lo; r < hi; r++) dst[r] = src[4 * r]; break;
    case 6: for (r = lo; r < hi; r++) dst[r] = src[6 * r]; break;
    default: for (r = lo; r < hi; r++) dst[r] = src[r * sw];
    }
}

/* lc_copy_strided through the ISA's strided-copy entry when it has one
 * (vectorised stride 1 and 2 with masked tails): the in-image part of the run
 * goes to the entry, the padding is zeroed here. */
static inline void lc_copy_strided_isa(const lc_isa_config *cfg, float *dst, const float *row,
                                       int64_t W, int64_t ix0, int64_t sw, int64_t run) {
    if (!cfg->strided_copy) {
        lc_copy_strided(dst, row, W, ix0, sw, run);
        return;
    }
    int64_t lo, hi;
    lc_run_inside(dst, W, ix0, sw, run, &lo, &hi);
    if (hi > lo)
        cfg->strided_copy(dst + lo, 0, row + ix0 + lo * sw, 0, 1, (size_t)(hi - lo), (size_t)sw);
}

/* Threads a call really uses: never more than there are work items, nor
 * than the pool's largest team (LC_POOL_MAX_TEAM in threadpool.h), nor than
 * `work` (multiply-adds or elementwise operations of the whole loop) repays
 * (lc_threads_for_work, kernels/parallel.c): one rule, applied here for every
 * loop and every workspace sized per thread. */
#define LC_THREADS_MAX 256
int lc_threads_for_work(int nthreads, double work);
/* The rule's unit is a GEMM micro-kernel multiply-add (~110 GMAC/s a Zen 5
 * core).  A depthwise multiply-add reuses neither weights across pixels in
 * registers nor inputs across channels, and pays per-plane setup and
 * borders: 20-55 GMAC/s on the 7x7-28x28 planes of MobileNet-class models
 * (960@7 3x3: 19), so it counts as this many.  A constant, not a measurement,
 * for the same reason as the rule's bound (kernels/parallel.c). */
#define LC_WORK_PER_DEPTHWISE_MAC 4.0
/* A float's share of a pass that streams a tensor once (the per-channel
 * affine map, the squeeze-and-excitation block's pool and scaling) in
 * multiply-add equivalents (the unit of lc_threads_used).  Its one-thread
 * cost is only ~2.4 (95 ps a float on 1000@8x8, AVX-512, at ~25
 * multiply-adds a ns), which would keep every DenseNet norm on one thread;
 * but the pass is bound by each core's own L2 and L3 bandwidth, which a
 * second thread adds, and inside a model the workers are awake and the
 * tensor was just written by all the threads, so one thread reading it all
 * pulls the others' share from their caches.  Split at 2 threads, hot (Zen
 * 5): 64@32x32 5.2 -> 3.7 us, 480@16x16 9.7 -> 5.8, 224@32x32 18.0 -> 9.2.
 * At 10, passes over 64 K floats and more split, 32 K (128@16x16, 3.3 us)
 * stay whole. */
#define LC_WORK_PER_STREAMED_FLOAT 10.0
/* Floats a task of such a pass takes, in whole planes (at least one): small
 * planes (DenseNet's 8x8 and 4x4, an SE block's 4x4) do not pay a task
 * each (1152 planes of 16 pixels, a task a plane: ~15 us against ~3). */
#define LC_STREAM_TASK_FLOATS 16384
static inline int lc_threads_used(int nthreads, int64_t items, double work) {
    int64_t t = lc_min64(lc_threads_for_work(nthreads, work), items < 1 ? 1 : items);
    t = lc_min64(t, LC_THREADS_MAX);
    return (int)t;
}

/* ---- token_gemm.c: the GEMM over rows, shared with batched_gemm.c ---- */
/* The B panels' width: the wide tile's where the ISA has one, else NR. */
int64_t lc_tg_width(const lc_isa_config *isa);
/* One tile: rows <= MR of packed A by cols columns of B (row j at b +
 * j*ldb) into C at ldc, over k, with the micro-kernel flags; cols at most
 * the panel width, or a wide panel and up to LC_GEMM_NARROW_TAIL more. */
void lc_tg_tile(const lc_isa_config *isa, int64_t rows, int64_t cols, int64_t k, const float *a,
                const float *b, int64_t ldb, float *c, int64_t ldc, const lc_epilogue *kep,
                unsigned flags);
/* One row panel of packed A against all n columns of a row-major B (row j
 * at b + j*ldb, n contiguous floats), the last few past a whole panel in
 * its call. */
void lc_tg_row(const lc_isa_config *isa, int64_t rows, int64_t n, int64_t k, const float *a,
               const float *b, int64_t ldb, float *c, int64_t ldc, const lc_epilogue *kep,
               unsigned flags);
/* rows <= MR rows of x (element (i, j) at x[i*xr + j*xc]) into k groups of
 * MR floats (zero past rows): the micro-kernel's A panel. */
void lc_tg_pack_a(const lc_isa_config *isa, float *dst, const float *x, int64_t rows,
                  int64_t k, int64_t xr, int64_t xc);

/* ---- epilogue.c ---- */
/* The post-op over an m x n region of rows at stride ld (the GEMM's C):
 * row i gets y = act(y + bias[i] + res) through the ISA's post-op. */
void lc_postop_rows(const lc_isa_config *cfg, float *y, size_t m, size_t n, size_t ld,
                    const float *res, const float *bias, const lc_epilogue *ep);

/* ---- parallel.c ---- */
/* Calls fn(ctx, item, thread) for every item in [0, count) on
 * lc_threads_used(nthreads, count, work) threads (thread in [0, that)): each
 * item whole on one thread, `thread` picks its scratch.  Serial in a serial
 * build.  work: the loop's multiply-adds or elementwise operations. */
typedef void (*lc_task_fn)(void *ctx, int64_t item, int thread);
void lc_parallel_for(int nthreads, int64_t count, double work, lc_task_fn fn, void *ctx);
/* Thread `thread`'s slice of a per-thread scratch area (base + thread *
 * slice_bytes).  Under lc_debug_schedule(LC_DEBUG_POISON) it is first filled with NaN,
 * so an item that reads scratch it did not write this item shows in its
 * output (tests/test_scratch_poison.py). */
void *lc_thread_scratch(void *base, int64_t slice_bytes, int thread);
/* The same, but the slice's first kept_bytes hold data the thread wrote
 * earlier in the same loop, tagged with what it is (the debug poison spares
 * them): a call's own cache, never scratch history a result could depend on. */
void *lc_thread_scratch_kept(void *base, int64_t slice_bytes, int thread, int64_t kept_bytes);
/* What each thread's slice holds from an earlier item of the same call, as a
 * tag (-1: nothing): a thread's next item often needs the same data
 * (Winograd's transformed input of a block, direct_lanes' padded band), the
 * same bits whoever makes them.  Cleared at the start of each call; threads
 * past LC_KEPT_THREADS keep nothing and make the data for every item. */
#define LC_KEPT_THREADS 64
typedef struct { int64_t tag[LC_KEPT_THREADS]; } lc_kept_tags;
void lc_kept_tags_clear(lc_kept_tags *k);
/* 1 if thread's slice holds `tag` already; else 0, and `tag` is recorded
 * (the caller makes the data now). */
int lc_kept_tags_hit(lc_kept_tags *k, int thread, int64_t tag);
#define LC_DEBUG_POISON 1
#define LC_DEBUG_REVERSE 2
void lc_debug_schedule(int flags);

/* ---- gemm_driver.c: the GEMM family's shared pieces ---- */
int64_t lc_gemm_packed_floats(const lc_conv_desc *d, int *ok);
void lc_gemm_pack_weights(const lc_conv_desc *d, const float *w, float *packed);
/* Packs an Mg x K row-major matrix (row stride lda) into MR-row panels, in
 * blocks of kc rows of K (the order lc_gemm_panels reads them). */
void lc_pack_a_panels(const float *w, size_t lda, size_t Mg, size_t K, size_t mr, size_t kc,
                      float *packed);
/* Where element (m, k) of such a packing lives. */
size_t lc_packed_a_offset(size_t Mg, size_t K, size_t mr, size_t kc, size_t m, size_t k);
/* Several NR-column panels at once: panel j has B at b + j*b_pstride (K rows
 * at stride ldb) and C at c + j*c_pstride (Mg rows at stride ldc), n columns
 * in all (the last panel may be partial).  C = A * B + bias, epilogue applied
 * when apply_epilogue.  A is read once per call, whatever n is. */
/* lc_gemm_panels over the rows [m_begin, m_end) of the Mg x K weights only
 * (m_begin a multiple of 2*MR): C rows and bias indexed as in the full call. */
/* how: LC_PANELS_EPILOGUE: the whole epilogue is done: residual (NULL or
 * laid out like c, possibly c itself) added and the activation applied;
 * LC_PANELS_WIDE: the call's columns are the same whatever the thread count
 * (Im2Col's whole rows of C), so the ISA's wide tile may take them
 * (lc_gemm_wide_rows) without the results depending on the threads;
 * LC_PANELS_TALL: full panels of whole tall_rows row groups go through the
 * ISA's tall tile (lc_gemm_tall_fn), when it has one (the same sums). */
#define LC_PANELS_EPILOGUE 1
#define LC_PANELS_WIDE 2
#define LC_PANELS_TALL 4
/* LC_PANELS_A_FAR: A comes from beyond L2 though it is small enough to stay
 * there (one of several calls that stream one larger set of weights, as
 * Winograd's alpha^2 GEMMs do): its slices are prefetched as for a large A. */
#define LC_PANELS_A_FAR 8
/* LC_PANELS_TALL_FAR: as LC_PANELS_TALL, but only on calls the MR x NR tile
 * would run panel-major over C beyond L2 (lc_gemm_tall_far, in the driver). */
#define LC_PANELS_TALL_FAR 16
int lc_gemm_tall_far(const lc_isa_config *cfg, size_t Mg, size_t K, size_t rows, size_t n,
                     int how);
/* Whether lc_gemm_panels_rows runs a call of `rows` rows (of Mg, K deep) over
 * n columns panel-major on a kk-row slice, `units` tall groups and MR passes */
int lc_gemm_panel_major(const lc_isa_config *cfg, size_t Mg, size_t K, size_t rows, size_t n,
                        size_t units, size_t kk, int how);
/* b_pack: NULL, or room for min(K, kc) rows of the call's panels rounded up
 * to whole NR-wide ones, where each kc-row block of B is first copied into
 * contiguous panels (plain columns only: b_pstride == NR and no wide tile;
 * the sums are the same either way). */
void lc_gemm_panels_rows(const lc_isa_config *cfg, size_t Mg, size_t m_begin, size_t m_end,
                         size_t K, const float *a_packed, const float *b, size_t ldb,
                         size_t b_pstride, size_t n, float *c, size_t ldc, size_t c_pstride,
                         const float *bias, const float *residual, const lc_epilogue *ep,
                         int how, float *b_pack);
/* How many blocks of output channels each of `items` work items is split
 * into so that `nthreads` threads all get work (1 when items >= nthreads),
 * and the rows [begin, end) of block `chunk`. */
int64_t lc_row_chunks(int64_t items, int nthreads, int64_t Mg, int64_t mr);
void lc_row_chunk_range(int64_t chunk, int64_t chunks, int64_t Mg, int64_t mr, int64_t *begin,
                        int64_t *end);
void lc_gemm_panels(const lc_isa_config *cfg, size_t Mg, size_t K, const float *a_packed,
                    const float *b, size_t ldb, size_t b_pstride, size_t n, float *c, size_t ldc,
                    size_t c_pstride, const float *bias, const lc_epilogue *ep,
                    int apply_epilogue);
/* ---- blocking.c: cache budgets, from the detected cache sizes ---- */
typedef struct lc_blocking {
    int64_t gemm_b_l2;     /* bytes of L2 the kc-row slices of the B panels of one
                            * lc_gemm_panels call aim to stay within */
    int64_t gemm_b_l1;     /* bytes of L1 a K sub-block of narrow B rows (ldb <= 2 NR)
                            * aims to stay within */
    int64_t gemm_panel_l1; /* B panel slices of at least these bytes (and at most
                            * gemm_b_l1) are read by every MR pass of A in turn */
    int64_t gemm_a_stream; /* packed A bigger than this is prefetched slice by slice */
    int64_t gemm_b_whole;  /* a 1 x 1 layer's input of more bytes than this is split by
                            * pixels at 2+ threads (lc_gemm_split_pixels) */
    int64_t gemm_b_far;    /* B read in place spanning more bytes than this gets the
                            * prefetching kernel (lc_gemm_pf_fn) */
    int64_t gemm_a_far;    /* packed A of more bytes than this, over at least twice as
                            * many rows as columns, goes pass-major */
    int64_t gemm_c_far;    /* C the tall tile stores over more bytes than this is asked
                            * for a panel ahead (lc_tall_c_ahead) */
    int64_t wino_block;    /* bytes a Winograd block keeps its V and Mo buffers in */
    int64_t ir_band;       /* bytes of a fused inverted-residual block's expanded band
                            * (kernels/ir_block.c), per thread */
    int64_t ir_fuse_min;   /* expanded images of at least these bytes are fused band
                            * by band; smaller ones stay in cache between the steps */
} lc_blocking;
const lc_blocking *lc_blocking_get(void);
/* Whether the data a layer takes from and hands to channel-split neighbours
 * (depthwise layers) crosses fewer cores split by pixels than by channels. */
int lc_handover_prefers_pixels(const lc_conv_desc *d, int64_t threads);
/* Panels per lc_gemm_panels call for the layer's GEMM (one group, one image) on d->nthreads. */
int64_t lc_gemm_chunk_panels(const lc_conv_desc *d);
/* C[Mg x n] = A * B + bias, epilogue applied; B is K rows of n floats at stride ldb. */
void lc_gemm_panel(const lc_isa_config *cfg, size_t Mg, size_t K, const float *a_packed,
                   const float *b, size_t ldb, size_t n, float *c, size_t ldc,
                   const float *bias, const lc_epilogue *ep, int apply_epilogue);
/* Unwraps the patches of output pixels [p0, p0 + n) of one group's input planes
 * into a K x NR panel (row k = (c, ky, kx), n floats used per row). */
void lc_pack_patch_panel(const lc_conv_desc *d, const float *xg, int64_t p0, int64_t n,
                         size_t nr, float *panel);
/* Is B the input itself (1x1, stride 1, no padding)? */
int lc_gemm_is_pointwise(const lc_conv_desc *d);
/* Whether n columns start with the ISA's wide GEMM tile (given
 * LC_PANELS_WIDE: the callers must not split such rows between threads). */
int lc_gemm_wide_rows(const lc_isa_config *cfg, size_t n);

/* ---- drivers: workspace, tiling and run, one file each ----
 * res: the residual (NULL, or laid out like y, possibly y itself); d->epilogue
 * has `clamp` set when the activation is a clamp (lc_conv_run).
 * lc_<driver>_tiling derives from the descriptor alone the driver's blocking
 * and work items into `tiling` (its own struct copied in: LC_TILING_FITS
 * checks it fits the setup's words after lc_conv_tiling's head); reshape
 * does it once per geometry and run takes it (depthwise picks its path per
 * call, as an in-place residual changes it; direct has nothing to derive).
 * The tiling must come from the very descriptor the run gets, thread count
 * included (lc_conv_run_tiled checks the head): the workspace is sized by it. */
#define LC_TILING_HEAD 2
#define LC_TILING_FITS(type) \
    typedef char lc_tiling_fits_##type[sizeof(type) <= \
        (LC_CONV_TILING_WORDS - LC_TILING_HEAD) * sizeof(int64_t) ? 1 : -1]
/* static TYPE NAME(d): the tiling TILING_FN(d, words) writes, read back as
 * its struct (for the entry points that need one field of it). */
#define LC_TILING_GETTER(type, name, tiling_fn)              \
    static type name(const lc_conv_desc *d) {                \
        int64_t words_[LC_CONV_TILING_WORDS];                \
        type b_;                                             \
        tiling_fn(d, words_);                                \
        memcpy(&b_, words_, sizeof b_);                      \
        return b_;                                           \
    }
void lc_conv_tiling(const lc_conv_desc *d, int64_t *tiling);
/* A convolution's multiply-adds; its work for the thread rule (the unit of
 * lc_threads_for_work: GEMM multiply-adds, so the multiply-adds weighted by
 * what one costs in its kind of kernel, LC_WORK_PER_DEPTHWISE_MAC); and the
 * descriptor as it runs: its thread count cut to what that work repays, from
 * which the workspace, the tiling and the choice's prices all derive
 * (kernels/conv.c). */
double lc_conv_macs(const lc_conv_desc *d);
double lc_conv_work(const lc_conv_desc *d);
lc_conv_desc lc_conv_as_run(const lc_conv_desc *d);
int lc_conv_run_tiled(const lc_conv_desc *d, const int64_t *tiling, int64_t need,
                      const float *x, const float *packed, const float *bias, const float *res,
                      float *y, void *workspace, int64_t workspace_bytes);
int64_t lc_im2col_workspace(const lc_conv_desc *d, int *ok);
void lc_im2col_tiling(const lc_conv_desc *d, int64_t *tiling);
/* Im2Col's GEMM items: *nchunks chunks of at most *chunk panels x *mchunks
 * output-channel blocks (lc_row_chunks) */
void lc_im2col_split(const lc_conv_desc *d, int64_t *chunk, int64_t *nchunks, int64_t *mchunks);
int lc_im2col_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                  const float *packed, const float *bias, const float *res, float *y, char *ws);
int64_t lc_patch2vec_workspace(const lc_conv_desc *d, int *ok);
void lc_patch2vec_tiling(const lc_conv_desc *d, int64_t *tiling);
int lc_patch2vec_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                     const float *packed, const float *bias, const float *res, float *y,
                     char *ws);
/* kernels/direct_lanes.c (the ISA's dl_cols output channels a block, at
 * most LC_DL_MAX_COLS; dl_lanes, dl_rows at most LC_DL_MAX_LANES, _ROWS) */
#define LC_DL_MAX_COLS 64
#define LC_DL_MAX_LANES 16
#define LC_DL_MAX_ROWS 12
/* The channel block a layer runs in: the ISA's kernel, or its half- or
 * quarter-width one (dl_kernel_half, dl_kernel_quarter) where that pads
 * fewer output channels. */
typedef struct {
    lc_dl_kernel_fn kernel;
    lc_pw_kernel_fn pw;  /* its 1 x 1 form */
    int64_t cols, rows; /* its CW and R */
    int64_t pw_rows;    /* the 1 x 1 form's R */
} lc_dl_block;
lc_dl_block lc_direct_lanes_block(const lc_conv_desc *d);
/* What a call of each channel-lanes driver (direct_lanes' modes) carries:
 * its arguments, its channel block and its epilogue split between the
 * kernels and the post-op. */
typedef struct {
    const lc_conv_desc *d;
    const float *x, *packed, *bias, *res;
    float *y;
    char *ws;
    lc_dl_block blk;
    lc_epilogue ep, kep; /* the whole epilogue; the kernels' part */
    int post;            /* an activation the kernels do not do, or a residual */
} lc_lanes_call;
lc_lanes_call lc_lanes_call_of(const lc_conv_desc *d, const float *x, const float *packed,
                               const float *bias, const float *res, float *y, char *ws);
int64_t lc_direct_lanes_packed_floats(const lc_conv_desc *d, int *ok);
void lc_direct_lanes_pack_weights(const lc_conv_desc *d, const float *w, float *packed);
int64_t lc_direct_lanes_workspace(const lc_conv_desc *d, int *ok);
void lc_direct_lanes_tiling(const lc_conv_desc *d, int64_t *tiling);
/* input channels a pass over a block of pixels (its weights within half of L2) */
int64_t lc_direct_lanes_pass_channels(const lc_conv_desc *d);
/* its work items (image, group, channel block, row band) */
int64_t lc_direct_lanes_items(const lc_conv_desc *d);
/* values its padded input copies and output transposes move, per image and group */
int64_t lc_direct_lanes_moved(const lc_conv_desc *d);
/* pixel segments per image and group (each reads the group's packed weights once) */
int64_t lc_direct_lanes_segments(const lc_conv_desc *d);
/* whether the whole output plane fits one segment (small images, which
 * kernels/choose.c weighs it for at stride 1) */
int lc_direct_lanes_one_segment(const lc_conv_desc *d);
int lc_direct_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                        const float *packed, const float *bias, const float *res, float *y,
                        char *ws);
/* A finished tile of output channels [o0, o0 + valid), lanes innermost, into
 * the planes of image n from pixel `at` on, with the rest of the epilogue. */
const float *lc_dl_block_bias(const float *bias, int64_t o0, int64_t cw, int64_t valid,
                              float *out);
void lc_dl_write_tile(const lc_conv_desc *d, int64_t n, int64_t o0, int64_t valid, int64_t at,
                      int64_t sn, int64_t cap, float *tile, float *stage, float *y,
                      const float *res, const lc_epilogue *ep, int post);
/* kernels/pointwise_lanes.c: direct_lanes on 1 x 1 / stride-1 / unpadded
 * layers (the entry points above hand those to it) */
void lc_pointwise_lanes_tiling(const lc_conv_desc *d, int64_t *tiling);
int64_t lc_pointwise_lanes_items(const lc_conv_desc *d);
int64_t lc_pointwise_lanes_chunks(const lc_conv_desc *d);
/* Whether the items go chunk-major, each thread over every block of its pixels. */
int lc_pointwise_lanes_by_pixels(const lc_conv_desc *d);
/* Chunk c's pixel count; *at: its first pixel (for the tests). */
int64_t lc_pointwise_lanes_chunk(const lc_conv_desc *d, int64_t c, int64_t *at);
/* pixels its kernel calls are priced at: each chunk's rounded up to R */
int64_t lc_pointwise_lanes_pixels(const lc_conv_desc *d);
/* whether "auto" weighs it: small images (one chunk), on ISAs with a price,
 * where Im2Col reads B in place */
int lc_pointwise_lanes_weighed(const lc_conv_desc *d);
int64_t lc_pointwise_lanes_workspace(const lc_conv_desc *d, int *ok);
int lc_pointwise_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                           const float *packed, const float *bias, const float *res, float *y,
                           char *ws);
/* kernels/stem_lanes.c: direct_lanes on layers of a few input channels
 * (the stem), output pixels in the lanes, where the ISA has its kernel (the
 * entry points above hand those to it; checked before the 1 x 1 form) */
int lc_stem_lanes_applies(const lc_conv_desc *d);
int lc_stem_lanes_few_outputs(const lc_conv_desc *d);
void lc_stem_lanes_tiling(const lc_conv_desc *d, int64_t *tiling);
int64_t lc_stem_lanes_items(const lc_conv_desc *d);
/* values its padded, phase-split input copy moves, per image */
int64_t lc_stem_lanes_moved(const lc_conv_desc *d);
/* lanes x output channels its kernel computes per image (R and L rounding) */
int64_t lc_stem_lanes_lanes(const lc_conv_desc *d);
int64_t lc_stem_lanes_packed_floats(const lc_conv_desc *d, int *ok);
void lc_stem_lanes_pack_weights(const lc_conv_desc *d, const float *w, float *packed);
int64_t lc_stem_lanes_workspace(const lc_conv_desc *d, int *ok);
int lc_stem_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                      const float *packed, const float *bias, const float *res, float *y,
                      char *ws);
/* kernels/tap_lanes.c: direct_lanes on dilated layers whose taps read
 * padding at most outputs: only the (tap, output) pairs that read the input
 * (the entry points above hand those to it, after the stem check; packed as
 * direct_lanes packs) */
int lc_tap_lanes_applies(const lc_conv_desc *d);
/* (tap, output) pairs of one image's plane that read the input (-1: a
 * kernel wider or taller than tap mode takes) */
int64_t lc_tap_lanes_live_pairs(const lc_conv_desc *d);
/* windows of outputs of one image's plane, each reading its live taps'
 * weights once */
int64_t lc_tap_lanes_windows(const lc_conv_desc *d);
void lc_tap_lanes_tiling(const lc_conv_desc *d, int64_t *tiling);
int64_t lc_tap_lanes_items(const lc_conv_desc *d);
int64_t lc_tap_lanes_workspace(const lc_conv_desc *d, int *ok);
int lc_tap_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                     const float *packed, const float *bias, const float *res, float *y,
                     char *ws);
int64_t lc_winograd_packed_floats(const lc_conv_desc *d, int *ok);
void lc_winograd_pack_weights(const lc_conv_desc *d, const float *w, float *packed);
int64_t lc_winograd_workspace(const lc_conv_desc *d, int *ok);
/* Tile blocks of one image and group (each streams all of U once); *items:
 * the work items of the call's busiest parallel loop. */
int64_t lc_winograd_blocks(const lc_conv_desc *d, int64_t *items);
/* How the threads share a call (for the tests): 0 whole blocks, 1 two
 * phases, 2 output-channel ranges; -1 on overflow. */
int lc_winograd_split(const lc_conv_desc *d);
void lc_winograd_tiling(const lc_conv_desc *d, int64_t *tiling);
int lc_winograd_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                    const float *packed, const float *bias, const float *res, float *y,
                    char *ws);
/* Channel-lanes Winograd GEMM (U packed [panel][c][CW] per alpha^2 point)
 * for groups of at least this many input channels, whose Cg x CW slice of U
 * is at most this many bytes (measured on AVX-512 against the MR x NR GEMM,
 * with U prefetched: 256 at 14 x 14 and 512 at 7 x 7 gain, 128 at 28 x 28
 * loses 6%). */
#define LC_WINO_CL_MIN_C 256
#define LC_WINO_CL_MAX_SLICE (64 * 1024)
/* what the cost model charges per streamed byte of its U, as a share of the
 * ISA's stream_byte (kernels/choose.c) */
#define LC_WINO_CL_STREAM_SHARE 0.6
/* what a value of U the lean algorithms transform on each call costs, as a
 * share of an F4 tile's transformed value (the ISA's wino_elem of F4), for
 * F2 lean as for F4 lean: a filter's transform is ~5 flops and one store a
 * U value at either size (F2: 84 flops for 16 values, F4: 162 for 36),
 * where an F4 tile value costs more than an F2 one.  Priced at F2's own
 * tile value, F2 lean came out at half its cost: on an Intel Xeon (AVX-512,
 * 1 thread, plan calls of each algorithm taking turns) its extra time over
 * F2 was 210-230 ps a U value on 256@14, 256@8, 512@7 and 512@4 (17-18 of
 * the model's units there), F4 lean's over F4 120-160 ps on 128@16 and
 * 256@14 (9-12 units), against 9.4 and 16.2 units priced; ResNet-18 128's
 * 256@8 went to F2 lean (0.54 ms) where direct_lanes ran 0.50.  The share
 * itself set by hand from one CPU (AMD EPYC Zen 4, AVX-512, 1 thread,
 * weights cold: 256>256 @14 F4 lean 1.40 ms against F4 0.87, F2 1.45,
 * direct_lanes 2.3; 512>512 @7 F2 lean 2.4 against direct_lanes 2.4;
 * 128>128 @28 F4 lean 1.14 against F2 1.25), not fitted by
 * bench/fit_cost_model.py */
#define LC_WINO_LEAN_WEIGHT_SHARE 0.5
int lc_wino_channel_lanes(const lc_conv_desc *d);
/* Whether the lean Winograd algorithms can run d (its ISA's channel-lanes
 * GEMM and weight transform, output channels a multiple of their width). */
int lc_wino_lean_supports(const lc_conv_desc *d);
/* U of output channel o, input channel c of group grp at every alpha^2
 * point, in double: read from a Winograd packing, or transformed from a
 * lean one's raw filter. */
void lc_wino_u_double(const lc_conv_desc *d, const float *packed, int64_t grp, int64_t o,
                      int64_t c, double *u);
/* Where U[x] (alpha^2 point x) of output channel o, input channel c of
 * group grp lies in the packed weights, in either orientation. */
size_t lc_wino_u_index(const lc_conv_desc *d, int64_t x, int64_t grp, int64_t o, int64_t c);
/* winograd_exact.c: the output-transform result of one tile (th, tw) and
 * output channel o of group grp, whose float transforms overflowed,
 * recomputed in double from the packed U: `tile` receives its m x m values
 * (m per row, rows row_stride apart, as in the transform's output) with bias
 * and the clamp of `ep`.  xg: the group's input planes of one image.  Returns
 * 0, leaving `tile` alone, when the tile's input window holds an Inf or NaN. */
int lc_wino_exact_lane(const lc_conv_desc *d, const float *xg, const float *packed, int64_t grp,
                       int64_t th, int64_t tw, int64_t o, float bias, const lc_epilogue *ep,
                       float *tile, size_t row_stride);
/* One depthwise call as the channel-blocked and tiny-plane paths' tasks see
 * it: d->epilogue is the kernels' clamp, ep the whole epilogue (run as the
 * post-op when post). */
typedef struct {
    const lc_conv_desc *d;
    const float *x, *w, *bias, *res;
    float *y;
    lc_epilogue ep;
    int post;
} lc_dw_call;

static inline lc_dw_call lc_dw_call_of(const lc_conv_desc *d, const lc_epilogue *ep,
                                       const float *x, const float *w, const float *bias,
                                       const float *res, float *y) {
    lc_dw_call c;
    c.d = d; c.x = x; c.w = w; c.bias = bias; c.res = res; c.y = y;
    c.ep = *ep;
    c.post = lc_needs_postop(ep, res != NULL);
    return c;
}

/* The channel-blocked depthwise path (kernels/depthwise_cblock.c): runs the
 * layer and returns 1 when it serves it, else returns 0 having done nothing.
 * d->epilogue is the kernels' clamp, ep the whole epilogue. */
int lc_depthwise_cblock_run(const lc_conv_desc *d, const lc_epilogue *ep, const float *x,
                            const float *w, const float *bias, const float *res, float *y);
/* The tiny-plane depthwise path (kernels/depthwise_tiny.c), the same contract. */
int lc_depthwise_tiny_run(const lc_conv_desc *d, const lc_epilogue *ep, const float *x,
                          const float *w, const float *bias, const float *res, float *y);
/* One phase of rows split by a horizontal stride sw (the depthwise band
 * path's and the stem's padded rows): dst[r * ldd + q] = src[r * lds + q *
 * sw] for r < rows, q < n, through the ISA's strided copy where it has one. */
void lc_phase_copy(const lc_isa_config *isa, float *dst, int64_t ldd, const float *src,
                   int64_t lds, int64_t rows, int64_t n, int64_t sw);
/* Zero-padded input rows laid out so that every tap of an output row is a
 * unit-stride run (the depthwise band path's and the grouped path's
 * buffers): each padded row is rs = stride_w * wq floats, a stride-s row
 * stored as s phases of wq (column c at phase c % s, position c / s);
 * phase ph holds in-image columns at positions [phase_lo, phase_hi); tap kx
 * of output column ox is at coff[kx] + ox (lc_dw_band_fn's contract). */
#define LC_BAND_MAX_SW 8  /* largest horizontal stride (one row copy per phase) */
#define LC_BAND_MAX_KW 64 /* widest kernel (its column offsets live on the stack) */
typedef struct {
    int64_t wq, rs;
    int64_t phase_lo[LC_BAND_MAX_SW], phase_hi[LC_BAND_MAX_SW];
    size_t coff[LC_BAND_MAX_KW];
} lc_band_geom;
/* Fills g for d's geometry; returns 0 when the kernel is too wide or the
 * stride too large for it. */
int lc_band_geom_init(const lc_conv_desc *d, lc_band_geom *g);
/* Fills buf with padded rows [iy0, iy0 + nrows) of one input plane (iy0 in
 * image rows, may be negative): the in-image floats always, the padding
 * (rows and columns outside the image, the slack) only when `pad_too`, for
 * callers whose buffer keeps it from one plane to the next. */
void lc_band_fill(const lc_conv_desc *d, const lc_band_geom *g, const float *in, int64_t iy0,
                  int64_t nrows, int pad_too, float *buf);
/* Grouped convolutions with few channels per group (kernels/grouped.c),
 * run by the depthwise algorithm.  Does it take d (groups > 1 but not
 * depthwise, C/groups <= LC_GROUPED_MAX_CG, the ISA has the kernel)?  Its
 * work items for the cost model (0: rows too wide for its buffer, where it
 * falls back to the naive loops), the output lanes it computes per row (the
 * row rounded up to whole vectors), and the run itself. */
#define LC_GROUPED_MAX_CG 16
int lc_grouped_supports(const lc_conv_desc *d);
int64_t lc_grouped_items(const lc_conv_desc *d);
int64_t lc_grouped_row_lanes(const lc_conv_desc *d);
int lc_grouped_run(const lc_conv_desc *d, const float *x, const float *w, const float *bias,
                   const float *res, float *y);
int lc_depthwise_run(const lc_conv_desc *d, const float *x, const float *w,
                     const float *bias, const float *res, float *y);
/* Depthwise (multiplier 1) of `channels` planes in the calling thread, with
 * d describing one of them (N = C = M = groups = 1; d->epilogue the whole
 * epilogue, no residual): plane c is read at x + c*x_plane, written at
 * y + c*y_plane (OH rows of OW floats), weights w + c*kH*kW, bias[c] (bias
 * may be NULL).  For drivers that hold a band of a layer's rows
 * (kernels/ir_block.c). */
void lc_depthwise_rows(const lc_conv_desc *d, const float *x, int64_t x_plane, const float *w,
                       const float *bias, float *y, int64_t y_plane, int64_t channels);
int lc_direct_run(const lc_conv_desc *d, const float *x, const float *w,
                  const float *bias, const float *res, float *y);

#endif
