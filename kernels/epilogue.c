/* The epilogue outside the micro-kernels: the post-op over a GEMM's rows,
 * and the elementwise entry (lc_activate) the adapters use for activations
 * and residual adds that do not follow a convolution. */
#include "internal.h"

void lc_postop_rows(const lc_isa_config *cfg, float *y, size_t m, size_t n, size_t ld,
                    const float *res, const float *bias, const lc_epilogue *ep) {
    for (size_t i = 0; i < m; i++)
        cfg->postop(y + i * ld, y + i * ld, n, res ? res + i * ld : NULL, bias ? bias[i] : 0.0f,
                    ep);
}

/* Floats per task: big enough to hide the scheduling, small enough to share
 * a mid-sized tensor between threads.  Elementwise, so the split does not
 * change a bit. */
#define LC_ACTIVATE_CHUNK 16384

typedef struct {
    const lc_isa_config *isa;
    float *y;
    const float *x, *res;
    int64_t n;
    const lc_epilogue *ep;
} lc_activate_ctx;

static void lc_activate_task(void *vctx, int64_t item, int thread) {
    const lc_activate_ctx *t = (const lc_activate_ctx *)vctx;
    const int64_t i0 = item * LC_ACTIVATE_CHUNK, len = lc_min64(LC_ACTIVATE_CHUNK, t->n - i0);
    (void)thread;
    t->isa->postop(t->y + i0, t->x + i0, (size_t)len, t->res ? t->res + i0 : NULL, 0.0f, t->ep);
}

int lc_activate(const lc_isa_config *isa, float *y, const float *x, const float *residual,
                int64_t n, const lc_epilogue *ep, int nthreads) {
    if (ep->act < 0 || ep->act >= LC_ACT_COUNT) return LC_ERR_UNSUPPORTED;
    if (n <= 0) return LC_OK;
    lc_activate_ctx t;
    t.isa = isa; t.y = y; t.x = x; t.res = residual; t.n = n; t.ep = ep;
    lc_parallel_for(nthreads, lc_div_up(n, LC_ACTIVATE_CHUNK), (double)n, lc_activate_task, &t);
    return LC_OK;
}
