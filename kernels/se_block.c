/* The squeeze-and-excitation block in one call (include/leanconv/se_block.h):
 * the pool, both fully connected layers and the scaling with no Python
 * between them, the tensor read twice and written once.  The two layers are
 * matrix-vector products (a 1x1 image): the ISA's gemv16 streams their
 * weights once, panel by panel, where the convolution's GEMM would tile a
 * one-column right-hand side. */
#include <stdlib.h>

#include "internal.h"
#include "leanconv/pool.h"
#include "leanconv/se_block.h"

#define LC_SE_PANEL 16

int64_t lc_se_packed_floats(int64_t rows, int64_t k) {
    return (rows + LC_SE_PANEL - 1) / LC_SE_PANEL * LC_SE_PANEL * k;
}

void lc_se_pack(float *dst, const float *w, int64_t rows, int64_t k) {
    for (int64_t p = 0; p * LC_SE_PANEL < rows; p++)
        for (int64_t j = 0; j < k; j++)
            for (int64_t i = 0; i < LC_SE_PANEL; i++) {
                const int64_t row = p * LC_SE_PANEL + i;
                dst[(p * k + j) * LC_SE_PANEL + i] = row < rows ? w[row * k + j] : 0.0f;
            }
}

typedef struct {
    const lc_isa_config *isa;
    float *y;
    const float *wp, *x;
    int64_t rows, k;
} lc_se_gemv_ctx;

static void lc_se_gemv_panel(void *vctx, int64_t p, int thread) {
    const lc_se_gemv_ctx *t = (const lc_se_gemv_ctx *)vctx;
    const int64_t rows = lc_min64(LC_SE_PANEL, t->rows - p * LC_SE_PANEL);
    (void)thread;
    t->isa->gemv16(t->y + p * LC_SE_PANEL, t->wp + p * LC_SE_PANEL * t->k, t->x, (size_t)rows,
                   (size_t)t->k);
}

/* y = act(W v + b), W packed (rows x k) */
static void lc_se_dense(const lc_isa_config *isa, float *y, const float *wp, const float *b,
                        const float *v, int64_t rows, int64_t k, const lc_epilogue *ep,
                        int nthreads) {
    lc_se_gemv_ctx t;
    t.isa = isa; t.y = y; t.wp = wp; t.x = v; t.rows = rows; t.k = k;
    lc_parallel_for(nthreads, (rows + LC_SE_PANEL - 1) / LC_SE_PANEL, (double)rows * (double)k,
                    lc_se_gemv_panel, &t);
    if (b)
        for (int64_t i = 0; i < rows; i++) y[i] += b[i];
    isa->postop(y, y, (size_t)rows, NULL, 0.0f, ep);
}

typedef struct {
    const float *x, *g;
    float *y;
    int64_t hw;
} lc_se_scale_ctx;

/* Locals and restrict: the build has -fno-strict-aliasing, so a store through
 * y could otherwise change t->hw and the loop would neither hoist it nor
 * vectorise. */
static void lc_se_scale_plane(void *vctx, int64_t p, int thread) {
    const lc_se_scale_ctx *t = (const lc_se_scale_ctx *)vctx;
    const int64_t hw = t->hw;
    const float s = t->g[p];
    (void)thread;
    if (t->x == t->y) {
        float *y = t->y + p * hw;
        for (int64_t i = 0; i < hw; i++) y[i] *= s;
    } else {
        const float *restrict x = t->x + p * hw;
        float *restrict y = t->y + p * hw;
        for (int64_t i = 0; i < hw; i++) y[i] = x[i] * s;
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
    for (int64_t img = 0; img < n; img++) {
        const float *xi = x + img * c * hw;
        lc_global_avg_pool(xi, pooled, c, hw, nthreads);
        lc_se_dense(isa, hidden, w1p, b1, pooled, r, c, act1, nthreads);
        lc_se_dense(isa, g, w2p, b2, hidden, c, r, gate, nthreads);
        lc_se_scale_ctx t;
        t.x = xi; t.g = g; t.y = y + img * c * hw; t.hw = hw;
        lc_parallel_for(nthreads, c, (double)c * (double)hw, lc_se_scale_plane, &t);
    }
    free(buf);
    return LC_OK;
}
