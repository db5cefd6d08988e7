/* LayerNorm over the channels of NCHW (see include/leanconv/channel_norm.h).
 *
 * The NumPy form made five full-size passes and a temporary (mean, centre,
 * square, mean, divide, then scale and bias): ~2.4 ms of ConvNeXt-tiny at
 * 128 on one thread against ~0.6 ms of onnxruntime's LayerNormalization.
 * Here a task is one image's block of pixels, every channel: the channel
 * sums go into a block-sized row, then the centred squares into another,
 * then each channel's row is written once.  The block's channel rows
 * (channels x block floats) are sized to half the detected L1d, so the
 * second and third reads of x may hit L1, never fewer than LC_LN_GROUP
 * pixels (an AVX-512 block's group of four vectors).  (A contiguous copy of
 * the block for those reads, against the L1 set conflicts of rows 4 KiB
 * apart in 32x32 planes, measured 0-10% slower, so there is none.)  A block runs through the ISA's isa->layernorm (kernels/<isa>/
 * channel_norm.c over channel_norm_lanes_template.h) or the portable loops
 * below. */
#include <math.h>
#include <stddef.h>

#include "leanconv/channel_norm.h"
#include "leanconv/cpu.h"
#include "leanconv/ukernels.h"
#include "internal.h"

#define LC_LN_MIN_BLOCK 16   /* the fewest pixels of a block split for the threads */
#define LC_LN_GROUP 64       /* the fewest pixels of a block otherwise */

/* The portable block (and NEON's: the build's baseline vectorises these
 * loops at its width), lc_layernorm_block_fn's contract.  The ISA blocks
 * (channel_norm_lanes_template.h) do the same operations per pixel with
 * their multiply-adds fused: the bits may differ from these by that rounding,
 * never with the thread count or the block split (each pixel's sums run over
 * the channels in order). */
static void lc_layernorm_block_portable(float *y, const float *x, size_t channels, size_t hw,
                                        size_t np, float eps, const float *scale,
                                        const float *bias) {
    const float count = (float)channels;
    float mean[LC_LN_BLOCK], acc[LC_LN_BLOCK];
    for (size_t p = 0; p < np; p++) acc[p] = 0.0f;
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * hw;
        for (size_t p = 0; p < np; p++) acc[p] += xc[p];
    }
    for (size_t p = 0; p < np; p++) {
        mean[p] = acc[p] / count;
        acc[p] = 0.0f;
    }
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * hw;
        for (size_t p = 0; p < np; p++) {
            const float d = xc[p] - mean[p];
            acc[p] += d * d;
        }
    }
    /* one divide and root a pixel, then multiplies (sqrtf sets errno, so
     * this short loop stays scalar; the channel loops are the work) */
    for (size_t p = 0; p < np; p++) acc[p] = 1.0f / sqrtf(acc[p] / count + eps);
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * hw;
        float *yc = y + c * hw;
        const float s = scale ? scale[c] : 1.0f, sh = bias ? bias[c] : 0.0f;
        for (size_t p = 0; p < np; p++) yc[p] = (xc[p] - mean[p]) * acc[p] * s + sh;
    }
}

typedef struct {
    lc_layernorm_block_fn fn;
    const float *x;
    float *y;
    const float *scale, *bias;
    int64_t channels, hw, blocks;
    float eps;
} lc_ln_ctx;

static void ln_task(void *vctx, int64_t item, int thread) {
    const lc_ln_ctx *t = (const lc_ln_ctx *)vctx;
    /* block b of an image: pixels [b * hw / blocks, (b + 1) * hw / blocks) */
    const int64_t img = item / t->blocks, b = item % t->blocks;
    const int64_t hw = t->hw;
    const int64_t p0 = b * hw / t->blocks, np = (b + 1) * hw / t->blocks - p0;
    const int64_t at = img * t->channels * hw + p0;
    (void)thread;
    t->fn(t->y + at, t->x + at, (size_t)t->channels, (size_t)hw, (size_t)np, t->eps, t->scale,
          t->bias);
}

int lc_channel_layernorm(const lc_isa_config *isa, const float *x, float *y, int64_t n,
                         int64_t channels, int64_t hw, float eps, const float *scale,
                         const float *bias, int nthreads) {
    if (n <= 0 || channels <= 0 || hw <= 0) return LC_OK;
    lc_ln_ctx t;
    t.fn = isa && isa->layernorm ? isa->layernorm : lc_layernorm_block_portable;
    t.x = x; t.y = y; t.scale = scale; t.bias = bias;
    t.channels = channels; t.hw = hw; t.eps = eps;
    /* pixels a block: its channel rows in half of L1d, within the bounds;
     * at least an AVX-512 block's group (four vectors), which keeps its sums
     * in registers down the channels however many there are */
    int64_t most = lc_cpu_caches()->l1d / 2 / ((int64_t)sizeof(float) * channels);
    most = most / LC_LN_MIN_BLOCK * LC_LN_MIN_BLOCK;
    if (most < LC_LN_GROUP) most = LC_LN_GROUP;
    if (most > LC_LN_BLOCK) most = LC_LN_BLOCK;
    t.blocks = (hw + most - 1) / most;
    /* one image over several threads: blocks a multiple of the threads
     * while they keep LC_LN_MIN_BLOCK pixels */
    /* two streamed floats' worth a float: x read once from beyond L1, the
     * other passes from the block's copy in L1 (~0.25 ns a float on one
     * Sapphire Rapids core, AVX-512, against the affine map's ~0.1); at 2
     * threads ConvNeXt's 24 K-float norms (384@8x8) gained nothing split */
    const double work = 2.0 * (double)n * (double)channels * (double)hw *
                        LC_WORK_PER_STREAMED_FLOAT;
    const int threads = lc_threads_used(nthreads, n * hw / LC_LN_MIN_BLOCK, work);
    if (n == 1 && threads > 1) {
        const int64_t balanced = (t.blocks + threads - 1) / threads * threads;
        const int64_t limit = hw / LC_LN_MIN_BLOCK > t.blocks ? hw / LC_LN_MIN_BLOCK : t.blocks;
        t.blocks = balanced < limit ? balanced : limit;
    }
    lc_parallel_for(threads, n * t.blocks, work, ln_task, &t);
    return LC_OK;
}
