/* Local response normalisation (see include/leanconv/lrn.h).
 *
 * A task is one image's block of pixels, every channel: for each channel the
 * squares of its window's channels are summed into a block-sized row (the
 * loads of neighbouring channels are LC_LRN_BLOCK floats apart, so each
 * channel's row stays in L1 while the `size` windows that read it pass), then
 * the divisor's power is taken per pixel.  beta = 0.75 (AlexNet, GoogLeNet,
 * ZFNet) and 0.5 take square roots instead of powf, which is far slower:
 * d^0.75 = sqrt(d) * sqrt(sqrt(d)), within 2 ulp; the ISA's lrn_div does
 * those in vectors (the C library's sqrtf sets errno, so the loop here does
 * not vectorise), with the same bits.  The divisor's bias + scale * s is
 * one fmaf: a compiler may fuse a product and sum in one build and not in
 * another, a written fma is the same everywhere. */
#include <math.h>

#include "leanconv/lrn.h"
#include "internal.h"

#define LC_LRN_BLOCK 256

typedef struct {
    lc_lrn_div_fn div;   /* the ISA's divide, or NULL: the loop below */
    int root;            /* its root for beta (lc_lrn_div_fn) */
    const float *x;
    float *y;
    int64_t channels, hw, blocks, before, after, size;
    float scale, beta, bias;
} lc_lrn_ctx;

static float lrn_power(float d, float beta) {
    if (beta == 0.75f) {
        const float r = sqrtf(d);
        return r * sqrtf(r);
    }
    if (beta == 0.5f) return sqrtf(d);
    if (beta == 1.0f) return d;
    return powf(d, beta);
}

static void lrn_task(void *vctx, int64_t item, int thread) {
    const lc_lrn_ctx *t = (const lc_lrn_ctx *)vctx;
    /* block b of an image: pixels [b * hw / blocks, (b + 1) * hw / blocks) */
    const int64_t img = item / t->blocks, b = item % t->blocks;
    const int64_t p0 = b * t->hw / t->blocks, np = (b + 1) * t->hw / t->blocks - p0;
    const float *x = t->x + img * t->channels * t->hw + p0;
    float *y = t->y + img * t->channels * t->hw + p0;
    float acc[LC_LRN_BLOCK];
    (void)thread;
    for (int64_t c = 0; c < t->channels; c++) {
        const int64_t a = c - t->before < 0 ? 0 : c - t->before;
        const int64_t e = c + t->after >= t->channels ? t->channels - 1 : c + t->after;
        for (int64_t p = 0; p < np; p++) acc[p] = 0.0f;
        for (int64_t i = a; i <= e; i++) {
            const float *xi = x + i * t->hw;
            for (int64_t p = 0; p < np; p++) acc[p] += xi[p] * xi[p];
        }
        const float *xc = x + c * t->hw;
        float *yc = y + c * t->hw;
        if (t->div) {
            t->div(yc, xc, acc, (size_t)np, t->scale, t->bias, t->root);
            continue;
        }
        for (int64_t p = 0; p < np; p++)
            yc[p] = xc[p] / lrn_power(fmaf(t->scale, acc[p], t->bias), t->beta);
    }
}

int lc_lrn(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t channels,
           int64_t hw, int64_t size, float alpha, float beta, float bias, int nthreads) {
    if (n <= 0 || channels <= 0 || hw <= 0) return LC_OK;
    lc_lrn_ctx t;
    t.root = beta == 1.0f ? 0 : beta == 0.5f ? 1 : beta == 0.75f ? 2 : -1;
    t.div = isa && t.root >= 0 ? isa->lrn_div : NULL;
    t.x = x; t.y = y; t.channels = channels; t.hw = hw; t.size = size;
    /* blocks of at most LC_LRN_BLOCK pixels, within one pixel of each other;
     * a single image's count rounded up to a multiple of the threads (at
     * least 32 pixels a block): 27x27 made blocks of 256, 256 and 217
     * pixels, one thread 512 of 729 (AlexNet's second LRN) */
    t.blocks = (hw + LC_LRN_BLOCK - 1) / LC_LRN_BLOCK;
    if (n == 1 && nthreads > 1) {
        int64_t balanced = (t.blocks + nthreads - 1) / nthreads * nthreads;
        const int64_t most = hw / 32 > t.blocks ? hw / 32 : t.blocks;
        t.blocks = balanced < most ? balanced : most;
    }
    t.before = (size - 1) / 2;
    t.after = size - 1 - t.before;
    t.scale = alpha / (float)size;
    t.beta = beta;
    t.bias = bias;
    lc_parallel_for(nthreads, n * t.blocks, (double)n * (double)channels * (double)hw *
                    (double)(size + 4), lrn_task, &t);
    return LC_OK;
}
