/* Per-channel affine map and ReLU (see include/leanconv/channel_affine.h).
 *
 * One pass that reads each input once and writes each output once: a fused
 * multiply-add and a compare per float.  Each plane goes through the ISA's
 * primitive (lc_affine_fn) where it has one, else plain C loops that
 * compilers vectorise at the build's baseline width (the ReLU as a compare
 * and select, which keeps NaN).  The primitives fuse the multiply-add (one
 * rounding); the portable loop may not (fmaf is a library call on x86
 * without FMA, 25 times slower), so their bits may differ by that rounding
 * -- never with the thread count.  A task is a block of planes of about 16 K
 * floats, so small planes (DenseNet's 8x8 and 4x4) do not pay a task each. */
#include "leanconv/channel_affine.h"
#include "internal.h"


typedef struct {
    lc_affine_fn fn;   /* the ISA's plane primitive, or NULL */
    const float *x;
    float *y;
    const float *scale, *shift;
    int64_t planes, channels, hw, block;
    int relu;
} lc_affine_ctx;

static void affine_task(void *vctx, int64_t item, int thread) {
    const lc_affine_ctx *t = (const lc_affine_ctx *)vctx;
    const int64_t p0 = item * t->block;
    const int64_t p1 = p0 + t->block < t->planes ? p0 + t->block : t->planes;
    /* locals: a store through y could otherwise alias t (the build keeps
     * -fno-strict-aliasing), and the loops would not vectorise */
    const int64_t hw = t->hw;
    (void)thread;
    for (int64_t p = p0; p < p1; p++) {
        const float s = t->scale[p % t->channels], b = t->shift[p % t->channels];
        const float *x = t->x + p * hw;
        float *y = t->y + p * hw;
        if (t->fn) {
            t->fn(y, x, (size_t)hw, s, b, t->relu);
        } else if (t->relu) {
            for (int64_t i = 0; i < hw; i++) {
                const float v = x[i] * s + b;
                y[i] = v < 0.0f ? 0.0f : v;
            }
        } else {
            for (int64_t i = 0; i < hw; i++) y[i] = x[i] * s + b;
        }
    }
}

int lc_channel_affine(const lc_isa_config *isa, const float *x, float *y, int64_t planes,
                      int64_t channels, int64_t hw, const float *scale, const float *shift,
                      int relu, int nthreads) {
    if (planes <= 0 || hw <= 0) return LC_OK;
    lc_affine_ctx t;
    t.fn = isa ? isa->affine : NULL;
    t.x = x; t.y = y; t.scale = scale; t.shift = shift;
    t.planes = planes; t.channels = channels; t.hw = hw; t.relu = relu;
    t.block = LC_STREAM_TASK_FLOATS / hw;
    if (t.block < 1) t.block = 1;
    const double work = (double)planes * (double)hw * LC_WORK_PER_STREAMED_FLOAT;
    const int threads = lc_threads_used(nthreads, (planes + t.block - 1) / t.block, work);
    const int64_t per_thread = (planes + threads - 1) / threads;
    if (t.block > per_thread) t.block = per_thread;
    lc_parallel_for(threads, (planes + t.block - 1) / t.block, work, affine_task, &t);
    return LC_OK;
}
