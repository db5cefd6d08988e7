/* 2-D pooling over NCHW float32 planes (ONNX MaxPool / AveragePool /
 * GlobalAveragePool semantics), threaded over planes.  Portable C (the
 * compiler vectorises it for the build's baseline ISA) plus, per ISA,
 * optional row primitives (lc_pool_rows_fn / lc_pool_cols_fn). */
#ifndef LEANCONV_POOL_H
#define LEANCONV_POOL_H

#include <stdint.h>

typedef struct {
    int64_t planes;          /* N * C */
    int64_t H, W, OH, OW;
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pad_t, pad_l;    /* leading padding */
    int64_t pad_b, pad_r;    /* explicit trailing padding (what count_include_pad counts) */
    int is_max;
    int count_include_pad;   /* average: divide by the window's positions inside the
                                explicitly padded input, else by those inside the input */
} lc_pool_desc;

struct lc_isa_config;

/* A pool of one geometry, planned once: what runs (the ISA's plane
 * primitive, or the row loops) and the tables that depend on the geometry
 * alone (taps in the image, divisors, the plane primitive's lane masks),
 * built here and read-only after, so calls and threads share them.  isa may
 * be NULL (the portable loops; the bits are the same).  NULL when out of
 * memory.  The plan copies d. */
typedef struct lc_pool_plan lc_pool_plan;
lc_pool_plan *lc_pool_plan_new(const struct lc_isa_config *isa, const lc_pool_desc *d);
/* Bytes the plan holds (its tables and itself). */
int64_t lc_pool_plan_bytes(const lc_pool_plan *plan);
/* Bytes a call at nthreads allocates (its row buffers; at most). */
int64_t lc_pool_plan_scratch_bytes(const lc_pool_plan *plan, int nthreads);
/* The plane primitive's form it runs (kernels/pool_flat.h LC_POOL_FORM_*),
 * -1 for the row loops: for tests. */
int lc_pool_plan_form(const lc_pool_plan *plan);
/* y[planes][OH][OW] = pool(x[planes][H][W]).  Allocates a row buffer per
 * thread per call.  Returns 0, or LC_ERR_NOMEM. */
int lc_pool_plan_run(const lc_pool_plan *plan, const float *x, float *y, int nthreads);
void lc_pool_plan_free(lc_pool_plan *plan);

/* One call: plan, run, free. */
int lc_pool2d(const struct lc_isa_config *isa, const lc_pool_desc *d, const float *x, float *y,
              int nthreads);

/* y[p] = mean of plane p of x[planes][hw]. */
int lc_global_avg_pool(const float *x, float *y, int64_t planes, int64_t hw, int nthreads);

#endif
