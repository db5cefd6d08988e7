/* The squeeze-and-excitation block in one call (include/leanconv/se_block.h):
 * the pool, both fully connected layers and the scaling with no Python
 * between them, the tensor read twice and written once.  The two layers are
 * matrix-vector products (a 1x1 image): the ISA's gemv16 streams their
 * weights once, panel by panel, where the convolution's GEMM would tile a
 * one-column right-hand side. */
#include <stdlib.h>

#include "internal.h"
#include "leanconv/dense.h"
#include "leanconv/se_block.h"

int64_t lc_se_packed_floats(int64_t rows, int64_t k) {
    return (rows + LC_GEMV_PANEL - 1) / LC_GEMV_PANEL * LC_GEMV_PANEL * k;
}

void lc_se_pack(float *dst, const float *w, int64_t rows, int64_t k) {
    for (int64_t p = 0; p * LC_GEMV_PANEL < rows; p++)
        for (int64_t j = 0; j < k; j++)
            for (int64_t i = 0; i < LC_GEMV_PANEL; i++) {
                const int64_t row = p * LC_GEMV_PANEL + i;
                dst[(p * k + j) * LC_GEMV_PANEL + i] = row < rows ? w[row * k + j] : 0.0f;
            }
}

/* y = act(W v + b), W packed (rows x k): the dense layer's kernel on one
 * vector, then the activation in place. */
static void lc_se_dense(const lc_isa_config *isa, float *y, const float *wp, const float *b,
                        const float *v, int64_t rows, int64_t k, const lc_epilogue *ep,
                        int nthreads) {
    lc_dense(isa, v, y, 1, rows, k, wp, b, NULL, nthreads);
    isa->postop(y, y, (size_t)rows, NULL, 0.0f, ep);
}

typedef struct {
    const float *x, *g;
    float *y, *pooled;
    int64_t c, hw, block; /* channels, pixels a plane, planes a task */
} lc_se_planes_ctx;

/* pooled[ch] = mean of plane ch, for the chunk's channels.  Eight partial
 * sums over i mod 8 (a vector register's worth, no reassociation needed),
 * added pairwise: a fixed order. */
static void lc_se_pool_chunk(void *vctx, int64_t item, int thread) {
    const lc_se_planes_ctx *t = (const lc_se_planes_ctx *)vctx;
    const int64_t hw = t->hw, c1 = lc_min64(t->c, (item + 1) * t->block);
    (void)thread;
    for (int64_t ch = item * t->block; ch < c1; ch++) {
        const float *x = t->x + ch * hw;
        float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= hw; i += 8)
            for (int k = 0; k < 8; k++) part[k] += x[i + k];
        for (int k = 0; i < hw; i++, k++) part[k] += x[i];
        const float sum = ((part[0] + part[1]) + (part[2] + part[3])) +
                          ((part[4] + part[5]) + (part[6] + part[7]));
        t->pooled[ch] = sum / (float)hw;
    }
}

/* y = x * g[ch] over the chunk's planes.  Locals and restrict: the build has
 * -fno-strict-aliasing, so a store through y could otherwise change t->hw
 * and the loop would neither hoist it nor vectorise. */
static void lc_se_scale_chunk(void *vctx, int64_t item, int thread) {
    const lc_se_planes_ctx *t = (const lc_se_planes_ctx *)vctx;
    const int64_t hw = t->hw, c0 = item * t->block, c1 = lc_min64(t->c, c0 + t->block);
    (void)thread;
    for (int64_t ch = c0; ch < c1; ch++) {
        const float s = t->g[ch];
        if (t->x == t->y) {
            float *y = t->y + ch * hw;
            for (int64_t i = 0; i < hw; i++) y[i] *= s;
        } else {
            const float *restrict x = t->x + ch * hw;
            float *restrict y = t->y + ch * hw;
            for (int64_t i = 0; i < hw; i++) y[i] = x[i] * s;
        }
    }
}

static int lc_se_act_ok(const lc_epilogue *ep) {
    return ep->act >= 0 && ep->act < LC_ACT_COUNT;
}

int lc_se_block(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t c,
                int64_t hw, const float *w1p, const float *b1, int64_t r,
                const lc_epilogue *act1, const float *w2p, const float *b2,
                const lc_epilogue *gate, int nthreads) {
    if (!lc_se_act_ok(act1) || !lc_se_act_ok(gate)) return LC_ERR_UNSUPPORTED;
    if (n <= 0 || c <= 0 || hw <= 0 || r <= 0) return LC_OK;
    float *buf = (float *)malloc(sizeof(float) * (size_t)(2 * c + r));
    if (!buf) return LC_ERR_NOMEM;
    float *pooled = buf, *hidden = buf + c, *g = buf + c + r;
    /* each pass streams the image's tensor once (the scaling's write goes
     * with its read); tasks of whole planes, at least one per thread */
    const double work = (double)c * (double)hw * LC_WORK_PER_STREAMED_FLOAT;
    const int threads = lc_threads_used(nthreads, c, work);
    const int64_t block = lc_max64(1, lc_min64(LC_STREAM_TASK_FLOATS / hw, lc_div_up(c, threads)));
    const int64_t chunks = lc_div_up(c, block);
    for (int64_t img = 0; img < n; img++) {
        lc_se_planes_ctx t;
        t.x = x + img * c * hw; t.y = y + img * c * hw; t.g = g; t.pooled = pooled;
        t.c = c; t.hw = hw; t.block = block;
        lc_parallel_for(threads, chunks, work, lc_se_pool_chunk, &t);
        lc_se_dense(isa, hidden, w1p, b1, pooled, r, c, act1, nthreads);
        lc_se_dense(isa, g, w2p, b2, hidden, c, r, gate, nthreads);
        lc_parallel_for(threads, chunks, work, lc_se_scale_chunk, &t);
    }
    free(buf);
    return LC_OK;
}
