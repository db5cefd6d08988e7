/* Batched matrix products of run-time operands (include/leanconv/
 * batched_gemm.h), on the token GEMM's pieces (kernels/token_gemm.c): each
 * MR-row panel of x packed (lc_tg_pack_a) into the thread's scratch, then
 * micro-kernel calls across w's columns over the whole of k (lc_tg_row).
 * w's rows serve as the micro-kernel's B operand in place where its columns
 * are contiguous (A V: V's rows); otherwise (Q K^T, K^T a transposed view)
 * each w is first copied row-major, in a pass of its own.
 *
 * In C on leanconv's threads rather than NumPy's BLAS: attention's products
 * are small (ViT-B: 12 of 197 x 64 x 197; Swin-T: up to 192 of 49 x 32 x
 * 49), and at 2 threads BLAS on a second Python thread raced the pool's
 * spinning worker (Swin-T's 24 products 8.4 ms against onnxruntime's 4.2). */
#include <string.h>
#include "internal.h"
#include "leanconv/batched_gemm.h"

typedef struct {
    const lc_isa_config *isa;
    const float *x, *w;
    const int64_t *xoff, *woff;
    int64_t xr, xc, wr, wc, batch, m, k, n, mr, mblocks;
    float *wp;         /* w's row-major copies (NULL: w read in place) */
    char *scratch;     /* per thread: one packed A panel */
    int64_t slice;     /* its bytes */
    float *y;
    float alpha;
    lc_epilogue kep;
} lc_bg_ctx;

static int64_t bg_slice_bytes(const lc_isa_config *isa, int64_t k) {
    return lc_div_up(isa->mr * k * (int64_t)sizeof(float), LC_ALIGN) * LC_ALIGN;
}

/* Bytes of the row-major copies of w (none where its rows are read in place). */
static int64_t bg_copy_bytes(int64_t batch, int64_t k, int64_t n, int64_t wc) {
    return wc == 1 ? 0 : lc_div_up(batch * k * n * (int64_t)sizeof(float), LC_ALIGN) * LC_ALIGN;
}

int64_t lc_batched_gemm_workspace(const lc_isa_config *isa, int64_t batch, int64_t m,
                                  int64_t k, int64_t n, int64_t wc, int nthreads) {
    (void)m;
    return bg_copy_bytes(batch, k, n, wc) + (nthreads < 1 ? 1 : nthreads) * bg_slice_bytes(isa, k);
}

/* w[b] row-major (k x n) into wp: K^T's columns are K's rows, so blocks of
 * MR of them go through the ISA's row packing where it has one (an
 * in-register transpose) with groups n floats apart. */
static void bg_copy_w_task(void *vctx, int64_t b, int thread) {
    const lc_bg_ctx *t = (const lc_bg_ctx *)vctx;
    const float *w = t->w + t->woff[b];
    const int64_t k = t->k, n = t->n, mr = t->isa->mr;
    float *dst = t->wp + b * k * n;
    int64_t c = 0;
    (void)thread;
    if (t->isa->pack_rows && t->wr == 1)
        for (; c + mr <= n; c += mr)
            t->isa->pack_rows(dst + c, (size_t)n, w + c * t->wc, (size_t)t->wc, (size_t)k);
    for (; c < n; c++)
        for (int64_t j = 0; j < k; j++) dst[j * n + c] = w[j * t->wr + c * t->wc];
}

static void bg_task(void *vctx, int64_t item, int thread) {
    const lc_bg_ctx *t = (const lc_bg_ctx *)vctx;
    const int64_t b = item / t->mblocks, mb = item % t->mblocks;
    const int64_t mr = t->mr, k = t->k, n = t->n;
    const int64_t rows = lc_min64(mr, t->m - mb * mr);
    float *a = (float *)lc_thread_scratch(t->scratch, t->slice, thread);
    lc_tg_pack_a(t->isa, a, t->x + t->xoff[b] + mb * mr * t->xr, rows, k, t->xr, t->xc);
    float *c = t->y + (b * t->m + mb * mr) * n;
    const float *w = t->wp ? t->wp + b * k * n : t->w + t->woff[b];
    lc_tg_row(t->isa, rows, n, k, a, w, t->wp ? n : t->wr, c, n, &t->kep, 0);
    if (t->alpha != 1.0f)   /* the tile is still in L1 */
        for (int64_t i = 0; i < rows * n; i++) c[i] *= t->alpha;
}

int lc_batched_gemm(const lc_isa_config *isa, const float *x, const int64_t *xoff, int64_t xr,
                    int64_t xc, const float *w, const int64_t *woff, int64_t wr, int64_t wc,
                    float alpha, float *y, int64_t batch, int64_t m, int64_t k, int64_t n,
                    char *ws, int64_t ws_bytes, int nthreads) {
    if (batch <= 0 || m <= 0 || n <= 0) return LC_OK;
    if (k <= 0) {
        memset(y, 0, (size_t)(batch * m * n) * sizeof(float));
        return LC_OK;
    }
    if (ws_bytes < lc_batched_gemm_workspace(isa, batch, m, k, n, wc, nthreads))
        return LC_ERR_WORKSPACE;
    lc_bg_ctx t;
    t.isa = isa; t.x = x; t.w = w; t.xoff = xoff; t.woff = woff;
    t.xr = xr; t.xc = xc; t.wr = wr; t.wc = wc; t.batch = batch; t.m = m; t.k = k; t.n = n;
    t.mr = isa->mr;
    t.mblocks = lc_div_up(m, t.mr);
    t.y = y;
    t.alpha = alpha;
    t.kep = lc_identity_epilogue();
    const int64_t copies = bg_copy_bytes(batch, k, n, wc);
    t.wp = copies ? (float *)ws : NULL;
    t.scratch = ws + copies;
    t.slice = bg_slice_bytes(isa, k);
    if (t.wp)
        lc_parallel_for(nthreads, batch, (double)batch * (double)k * (double)n *
                        LC_WORK_PER_STREAMED_FLOAT, bg_copy_w_task, &t);
    lc_parallel_for(nthreads, batch * t.mblocks, (double)batch * (double)m * (double)k * (double)n,
                    bg_task, &t);
    return LC_OK;
}
