/* InstanceNormalization and LayerNormalization over contiguous rows (see
 * include/leanconv/instance_norm.h): both normalise runs of contiguous
 * floats, InstanceNormalization a plane with one scale, LayerNormalization a
 * row (a token's features) with a scale per feature.
 *
 * In NumPy (float64 statistics, then the affine map: five full-size passes
 * and a float64 copy) it was 44% of a fast-neural-style network at 224 x 224
 * on 2 threads (52 of 117 ms), every plane on one thread.  Here a task is a
 * plane: one read for its sum, one for the centred squares and one to write
 * it, the second and third from L2 for planes up to ~L2 size (a 224 x 224
 * plane is 196 KiB).  The sums run in double over eight interleaved
 * partial sums (the compiler vectorises them without reordering anything,
 * so the bits are the same at any thread count and on every ISA); the map
 * itself in float, ((x - m_hi) - m_lo) * a + bias with a = scale /
 * sqrt(v + eps) and m = m_hi + m_lo. */
#include <math.h>
#include <stddef.h>

#include "leanconv/instance_norm.h"
#include "leanconv/ukernels.h"
#include "internal.h"
#include "ukernel_decls.h"


typedef struct {
    const float *x;
    float *y;
    const float *scale, *bias;
    int64_t channels, hw;
    int64_t rows, rows_per_task; /* lc_layer_norm_rows: all, and a task's */
    lc_ln_row_fn row;            /* lc_layer_norm_rows: the ISA's or the portable one */
    float eps;
} lc_in_ctx;

/* the row's loops (also the ISAs' ln_row): lc_ln_row_portable_sum is the
 * sum of (x[p] - centre) or of its square, in double over 8 lanes */
#define LC_LN_ROW_NAME lc_ln_row_portable
#include "layer_norm_row_template.h"
#undef LC_LN_ROW_NAME

/* The mean of a run of n floats, split into a float and the float of what
 * that misses (x - m_hi is exact for x near the mean, within a factor of 2,
 * so a large offset over a small spread keeps its digits: 1000 + N(0, 0.01)
 * with the float mean alone was off by 0.002 of the output's unit), and
 * 1 / sqrt(variance + eps). */
static double lc_in_stats(const float *x, int64_t n, float eps, float *m_hi, float *m_lo) {
    const double mean = lc_ln_row_portable_sum(x, n, 0.0, 0) / (double)n;
    const double var = lc_ln_row_portable_sum(x, n, mean, 1) / (double)n;
    *m_hi = (float)mean;
    *m_lo = (float)(mean - (double)*m_hi);
    return 1.0 / sqrt(var + (double)eps);
}

static void lc_in_task(void *vctx, int64_t plane, int thread) {
    const lc_in_ctx *t = (const lc_in_ctx *)vctx;
    const int64_t hw = t->hw, c = plane % t->channels;
    const float *x = t->x + plane * hw;
    float *y = t->y + plane * hw;
    (void)thread;
    float m_hi, m_lo;
    const double inv = lc_in_stats(x, hw, t->eps, &m_hi, &m_lo);
    const float a = (float)((t->scale ? (double)t->scale[c] : 1.0) * inv);
    const float b = t->bias ? t->bias[c] : 0.0f;
    for (int64_t p = 0; p < hw; p++) y[p] = ((x[p] - m_hi) - m_lo) * a + b;
}

static void lc_ln_task(void *vctx, int64_t item, int thread) {
    const lc_in_ctx *t = (const lc_in_ctx *)vctx;
    const int64_t n = t->hw, r0 = item * t->rows_per_task;
    const int64_t r1 = lc_min64(r0 + t->rows_per_task, t->rows);
    (void)thread;
    for (int64_t r = r0; r < r1; r++)
        t->row(t->y + r * n, t->x + r * n, (size_t)n, t->eps, t->scale, t->bias);
}

int lc_instance_norm(const float *x, float *y, int64_t planes, int64_t channels, int64_t hw,
                     float eps, const float *scale, const float *bias, int nthreads) {
    if (planes <= 0 || channels <= 0 || hw <= 0) return LC_OK;
    lc_in_ctx t;
    t.x = x; t.y = y; t.scale = scale; t.bias = bias;
    t.channels = channels; t.hw = hw; t.eps = eps;
    /* three passes over each value, the first from beyond L1 */
    const double work = 3.0 * (double)planes * (double)hw * LC_WORK_PER_STREAMED_FLOAT;
    lc_parallel_for(nthreads, planes, work, lc_in_task, &t);
    return LC_OK;
}

int lc_layer_norm_rows(const lc_isa_config *isa, const float *x, float *y, int64_t rows,
                       int64_t width, float eps, const float *scale, const float *bias,
                       int nthreads) {
    if (rows <= 0 || width <= 0) return LC_OK;
    lc_in_ctx t;
    t.row = isa && isa->ln_row ? isa->ln_row : lc_ln_row_portable;
    t.x = x; t.y = y; t.scale = scale; t.bias = bias;
    t.channels = 1; t.rows = rows;
    t.hw = width; t.eps = eps;
    /* Swin's rows are 96-768 features: tasks of whole rows near
     * LC_STREAM_TASK_FLOATS, not a task a row */
    t.rows_per_task = lc_max64(1, LC_STREAM_TASK_FLOATS / width);
    const double work = 3.0 * (double)rows * (double)width * LC_WORK_PER_STREAMED_FLOAT;
    lc_parallel_for(nthreads, lc_div_up(rows, t.rows_per_task), work, lc_ln_task, &t);
    return LC_OK;
}
