/* leanconv: the C interface between the Python binding and the drivers.
 *
 * One descriptor (lc_conv_desc) says everything about a convolution call.
 * The operator (lc_conv_op_*, below) is the way in: it keeps the filters,
 * decides, sizes and packs per input geometry, and runs; the functions on
 * descriptors under it (supports, choose, sizes, pack, run) are its parts.
 * Every size here is computed with overflow checks and comes back as -1 when it
 * does not fit in 63 bits, so the Python layer can refuse absurd shapes before
 * it allocates anything. */
#ifndef LEANCONV_CONV_H
#define LEANCONV_CONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Algorithms, in the order of lc.algorithms(); the negative ones are
 * requests lc_conv_choose resolves. */
enum lc_algorithm {
    LC_ALGO_AUTO = -1,          /* the cheapest algorithm by the cost model */
    LC_ALGO_WINOGRAD_ANY = -2,  /* the cheapest Winograd size */
    LC_ALGO_DIRECT = 0,
    LC_ALGO_IM2COL = 1,
    LC_ALGO_PATCH2VEC = 2,
    LC_ALGO_WINOGRAD_F2 = 3,
    LC_ALGO_WINOGRAD_F4 = 4,
    LC_ALGO_WINOGRAD_F6 = 5,
    LC_ALGO_DEPTHWISE = 6,
    LC_ALGO_DIRECT_LANES = 7,   /* direct, output channels in the vector lanes */
    /* Winograd F2 and F4 whose packed weights are the raw ones (3 x 3 per
     * channel pair, laid out for vector loads): each call transforms a
     * panel of output channels' weights at a time into a per-thread buffer
     * (kernels/winograd.c).  Never what "auto" or "winograd" picks (the
     * transform costs time on every call); a memory budget trades to them. */
    LC_ALGO_WINOGRAD_F2_LEAN = 8,
    LC_ALGO_WINOGRAD_F4_LEAN = 9,
    LC_ALGO_COUNT = 10
};

/* Status codes returned by the drivers. */
enum lc_status {
    LC_OK = 0,
    LC_ERR_UNSUPPORTED = 1,  /* the algorithm cannot do this shape */
    LC_ERR_NOMEM = 2,        /* an allocation inside the driver failed */
    LC_ERR_OVERFLOW = 3,     /* a size does not fit in 63 bits */
    LC_ERR_WORKSPACE = 4     /* the caller's workspace is smaller than required */
};

/* Activations of the fused epilogue (lc_epilogue.act). */
enum lc_activation {
    LC_ACT_NONE = 0,
    LC_ACT_CLAMP = 1,       /* min(max(v, lo), hi): ReLU is (0, +inf), ReLU6 (0, 6) */
    LC_ACT_SIGMOID = 2,     /* 1 / (1 + exp(-v)) */
    LC_ACT_TANH = 3,
    LC_ACT_SILU = 4,        /* v * sigmoid(v) */
    LC_ACT_GELU = 5,        /* v * Phi(v) = v/2 * erfc(-v / sqrt 2), torch's exact GELU */
    LC_ACT_GELU_TANH = 6,   /* v/2 * (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))) */
    LC_ACT_HARDSWISH = 7,   /* v * relu6(v + 3) / 6 */
    LC_ACT_HARDSIGMOID = 8, /* max(0, min(1, alpha v + beta)) */
    LC_ACT_LEAKY_RELU = 9,  /* v > 0 ? v : alpha v */
    LC_ACT_COUNT = 10
};

/* The fused epilogue: y = act(conv + bias + residual).  The caller sets `act`
 * and its parameters (lo, hi for LC_ACT_CLAMP; alpha, beta as above).  NaN
 * passes through every activation; +-inf give the limits (sigmoid(-inf) = 0,
 * silu(-inf) = gelu(-inf) = hardswish(-inf) = 0).
 * `clamp` is the part the micro-kernels apply themselves (min/max to
 * [lo, hi] as they store): lc_conv_run derives it from `act`, and the
 * drivers turn it off where a residual is still to be added after the
 * kernel's store; whatever the kernels do not do runs as the ISA's post-op
 * (lc_postop_fn) over each output region right after it is written. */
typedef struct lc_epilogue {
    float lo, hi;
    int clamp;
    int act;              /* enum lc_activation */
    float alpha, beta;
} lc_epilogue;

struct lc_isa_config;

typedef struct lc_conv_desc {
    /* input (N, C, H, W) and filters (M, C/groups, kH, kW); output (N, M, OH, OW) */
    int64_t N, C, H, W;
    int64_t M, kH, kW;
    int64_t OH, OW;               /* filled by the caller (validated in Python) */
    int64_t stride_h, stride_w;
    int64_t dil_h, dil_w;
    int64_t pad_t, pad_b, pad_l, pad_r;
    int64_t groups;
    int algorithm;               /* enum lc_algorithm */
    int nthreads;                /* threads this call may use (>= 1); a call whose work
                                  * is too small to repay them uses fewer (the workspace
                                  * sizes agree: kernels/parallel.c) */
    lc_epilogue epilogue;
    const struct lc_isa_config *isa;
} lc_conv_desc;

/* Does `d->algorithm` support this shape?  Returns 1/0 and, when 0 and `why` is
 * not NULL, points it at a sentence naming the constraint. */
int lc_conv_supports(const lc_conv_desc *d, const char **why);

/* The concrete algorithm for d->algorithm: itself when it is one, else the
 * cheapest (by the cost model of kernels/choose.c, for d's whole geometry,
 * thread count and ISA) among those that support the shape. */
int lc_conv_choose(const lc_conv_desc *d);

/* The cost model's estimate for one algorithm (GEMM multiply-adds of this
 * ISA); `features`, when not NULL, receives the 4 quantities it prices (for
 * fitting the prices: bench/fit_cost_model.py). */
double lc_conv_cost(const lc_conv_desc *d, int algorithm, double *features);

/* Floats the packed weights of this algorithm take (-1 on overflow). */
int64_t lc_conv_packed_floats(const lc_conv_desc *d);

/* Packs weights w (M, C/groups, kH, kW) into `packed`, which holds
 * lc_conv_packed_floats(d) floats and is 64-byte aligned. */
void lc_conv_pack_weights(const lc_conv_desc *d, const float *w, float *packed);

/* Exact workspace bytes of one call with d->nthreads threads (-1 on overflow).
 * Zero means the call allocates nothing. */
int64_t lc_conv_workspace_bytes(const lc_conv_desc *d);

/* Runs the convolution: y = act(conv(x) + bias + residual).  x is
 * (N, C, H, W) C-contiguous; y is (N, M, OH, OW) C-contiguous and does not
 * overlap x; bias is M floats or NULL; residual is NULL or an array of y's
 * shape that either does not overlap y or IS y (residual == y: the output is
 * accumulated in place, every element read before it is overwritten);
 * workspace is 64-byte aligned and holds `workspace_bytes` bytes, at least
 * what lc_conv_workspace_bytes(d) says (the residual needs none, with one
 * exception: depthwise with residual == y stages each output row before it
 * overwrites the residual, on the stack up to 2048 floats a row, beyond that
 * in nthreads x OW floats it allocates itself: LC_ERR_NOMEM if it cannot). */
int lc_conv_run(const lc_conv_desc *d, const float *x, const float *packed,
                const float *bias, const float *residual, float *y, void *workspace,
                int64_t workspace_bytes);

/* The epilogue alone, elementwise over n floats with up to nthreads threads:
 * y[i] = act(x[i] + residual[i]) (residual NULL: act(x[i])), with the ISA's
 * post-op.  y may be x or residual; otherwise none overlap.  ep->clamp is
 * ignored (act says everything).  Returns LC_OK. */
int lc_activate(const struct lc_isa_config *isa, float *y, const float *x, const float *residual,
                int64_t n, const lc_epilogue *ep, int nthreads);

/* Packed layouts: algorithms of one layout share one packing (Im2Col and
 * Patch2Vec pack A alike; direct and depthwise read the weights as they are). */
enum lc_layout {
    LC_LAYOUT_RAW = 0,
    LC_LAYOUT_GEMM = 1,
    LC_LAYOUT_WINOGRAD_F2 = 2,
    LC_LAYOUT_WINOGRAD_F4 = 3,
    LC_LAYOUT_WINOGRAD_F6 = 4,
    LC_LAYOUT_DIRECT_LANES = 5,
    LC_LAYOUT_WINOGRAD_LEAN = 6,   /* both lean Winograd sizes */
    LC_LAYOUT_COUNT = 7
};

/* The packed layout an algorithm runs on (-1 for an unknown algorithm). */
int lc_conv_layout(int algorithm);

/* ---- The operator: create / reshape / run / destroy -------------------
 *
 * An operator holds one convolution's filters: geometry without the input
 * size, weights, bias, epilogue, ISA and the algorithm asked for (a named
 * one, or LC_ALGO_AUTO / LC_ALGO_WINOGRAD_ANY to decide per input geometry).
 * lc_conv_op_reshape decides, once per input geometry (N, H, W, threads),
 * the algorithm (the cost model of lc_conv_choose, or the caller's override,
 * e.g. a measured winner) and remembers it; it fixes the driver's tiling and
 * work items, sizes the exact workspace and packs the chosen layout if the
 * operator does not hold it yet.  An operator
 * that decides keeps at most `max_packings` packings, least recently used
 * out; one still held by a setup is freed when that setup is released.
 * lc_conv_op_run only runs.
 *
 * Threads: reshape, release, destroy and the queries must not run at the
 * same time on one operator (the caller serialises them); run may, on
 * separate setups, from any number of threads. */
typedef struct lc_conv_op lc_conv_op;

/* Words of a setup's tiling (room for every driver's; the drivers check it). */
#define LC_CONV_TILING_WORDS 48

/* What lc_conv_op_reshape decided for one call (owned by the caller). */
typedef struct lc_conv_setup {
    lc_conv_desc desc;        /* the whole call: geometry, concrete algorithm, threads */
    const float *packed;      /* the weights it runs on (NULL after LC_RESHAPE_NO_PACK) */
    int64_t workspace_bytes;  /* exact bytes lc_conv_op_run needs */
    void *held;               /* the packing it holds (lc_conv_op_release lets go) */
    int packed_now;           /* this reshape made a packing */
    /* the driver's blocking and how it cuts the work into items for the
     * threads, derived once here (opaque: the driver's own struct) */
    int64_t tiling[LC_CONV_TILING_WORDS];
} lc_conv_setup;

/* lc_conv_op_create flags */
#define LC_CONV_OP_BORROW_WEIGHTS 1  /* read `weights` in place for the operator's life */
/* lc_conv_op_reshape flags */
#define LC_RESHAPE_NO_PACK 1  /* decide and size only: no packing, the setup cannot run */
#define LC_RESHAPE_TRIAL 2    /* do not remember the decision (measuring, guessing) */

/* filter: every field of lc_conv_desc but N, H, W, OH, OW and nthreads;
 * filter->algorithm is the request.  weights (M, C/groups, kH, kW); bias M
 * floats or NULL (both copied unless flags say otherwise for the weights).
 * NULL with *status set: LC_ERR_UNSUPPORTED (a named algorithm that cannot
 * run these filters, or a bad ISA), LC_ERR_OVERFLOW, LC_ERR_NOMEM. */
lc_conv_op *lc_conv_op_create(const lc_conv_desc *filter, const float *weights,
                              const float *bias, int max_packings, int flags, int *status);

/* Decides and prepares a call on an (N, C, H, W) input with `nthreads`
 * threads into *setup.  algorithm: LC_ALGO_AUTO (the decision remembered for
 * this geometry, else the request resolved by lc_conv_choose) or a concrete
 * algorithm (an override: it must support the shape, and an operator of a
 * named algorithm accepts only algorithms of its packed layout).
 * Returns LC_OK, LC_ERR_UNSUPPORTED, LC_ERR_OVERFLOW or LC_ERR_NOMEM; on
 * LC_OK the setup holds its packing until lc_conv_op_release. */
int lc_conv_op_reshape(lc_conv_op *op, int64_t N, int64_t H, int64_t W, int nthreads,
                       int algorithm, int flags, lc_conv_setup *setup);

/* y = act(conv(x) + bias + residual) as lc_conv_run says; bias NULL: the
 * operator's own (which may be none). */
int lc_conv_op_run(const lc_conv_op *op, const lc_conv_setup *setup, const float *x,
                   const float *bias, const float *residual, float *y, void *workspace,
                   int64_t workspace_bytes);

/* Lets go of the packing a setup holds (idempotent). */
void lc_conv_op_release(lc_conv_op *op, lc_conv_setup *setup);

void lc_conv_op_destroy(lc_conv_op *op);

/* Queries.  The algorithm of the last reshape (-1 before the first of an
 * operator that decides); the one remembered for a geometry (-1: none yet);
 * bytes the operator allocated for weights (packings and its own copy);
 * bytes of its own records beside them (itself, its bias copy, its decision
 * table, its packings' headers: what a memory plan's bookkeeping counts);
 * packings it keeps; packings it has made in its life. */
int lc_conv_op_algorithm(const lc_conv_op *op);
int lc_conv_op_decided(const lc_conv_op *op, int64_t N, int64_t H, int64_t W, int nthreads);
int64_t lc_conv_op_packed_bytes(const lc_conv_op *op);
int64_t lc_conv_op_meta_bytes(const lc_conv_op *op);
int lc_conv_op_packings(const lc_conv_op *op);
int64_t lc_conv_op_packings_made(const lc_conv_op *op);

/* 64-byte aligned allocation that returns NULL on failure (never aborts). */
void *lc_aligned_alloc(int64_t bytes);
void lc_aligned_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
