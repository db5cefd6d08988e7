/* A dense layer over many rows (include/leanconv/token_gemm.h): y = x W^T
 * + b for a transformer's tokens, x (m x k) and y (m x n) row-major as the
 * model holds them.  It is the ISA's GEMM micro-kernel with the roles of a
 * convolution's GEMM turned round: the tokens are its A operand (MR rows,
 * broadcast), packed per call into MR-row panels -- m*k floats, against
 * m*k*n multiply-adds -- and the weights its B operand (NR-column panels,
 * vector loads), packed once; C is y itself at ld n, so the output needs no
 * transpose either.  NumPy's BLAS took ViT-B's 197 x 768 x 3072 at ~85
 * GFLOP/s on Zen 4 where this micro-kernel runs ~105; and the bias, an
 * activation and a residual add come in the same pass over y (a separate
 * Add per bias was ~2% of ViT-B).
 *
 * Loops: for each column chunk (whole panels whose k rows fit L2's budget
 * for them), for each MR-row panel of x, for each panel of the chunk one
 * micro-kernel call over the whole of k: C is written once.  Blocking k as
 * a convolution's GEMM does (kc 256, C revisited per block) was up to 10%
 * slower on every transformer shape tried (Zen 4, 1 thread: Swin-T's
 * 3136 x 384 x 96 3.30 -> 2.97 ms, 196 x 1536 x 384 2.52 -> 2.39, ViT-B's
 * 197 x 3072 x 768 the same).
 * Work items are (column chunk, row group): columns are split
 * between the threads where the panels divide evenly enough (each thread
 * then reads only its share of W, the big operand), rows otherwise. */
#include <string.h>
#include "internal.h"
#include "leanconv/token_gemm.h"


typedef struct {
    const lc_isa_config *isa;
    const float *x, *wp, *b, *res;
    float *y, *ap;
    const lc_epilogue *ep;
    lc_epilogue kep;   /* what the micro-kernel applies itself */
    int64_t m, k, n, mr, nr;   /* nr: the panel width (tg_width) */
    int64_t mblocks, panels, chunks, groups;
    int post;          /* the post-op runs after the micro-kernel */
} lc_tg_ctx;

/* The weights' panel width: the wide tile's where the ISA has one (8 x 48
 * on AVX-512: 11 loads per 24 FMAs where the 8 x 32 tile does 10 per 16),
 * else NR.  On Zen 4 the two came out even within the noise (+-7% either
 * way) on ViT-B's and Swin-T's shapes. */
int64_t lc_tg_width(const lc_isa_config *isa) {
    return isa->gemm_wide ? isa->wide_nr : isa->nr;
}

void lc_tg_tile(const lc_isa_config *isa, int64_t rows, int64_t cols, int64_t k, const float *a,
                const float *b, int64_t ldb, float *c, int64_t ldc, const lc_epilogue *kep,
                unsigned flags) {
    if (isa->gemm_wide && cols >= isa->wide_nr)   /* a wide panel (and its tail) */
        isa->gemm_wide((size_t)rows, (size_t)cols, (size_t)k, a, b, (size_t)ldb, c, (size_t)ldc,
                       NULL, kep, flags);
    else   /* NR columns a call (a wide panel's remainder) */
        for (int64_t c0 = 0; c0 < cols; c0 += isa->nr)
            isa->gemm((size_t)rows, (size_t)lc_min64(isa->nr, cols - c0), (size_t)k, a, b + c0,
                      (size_t)ldb, c + c0, (size_t)ldc, NULL, kep, flags);
}

void lc_tg_row(const lc_isa_config *isa, int64_t rows, int64_t n, int64_t k, const float *a,
               const float *b, int64_t ldb, float *c, int64_t ldc, const lc_epilogue *kep,
               unsigned flags) {
    const int64_t nr = lc_tg_width(isa);
    for (int64_t c0 = 0; c0 < n;) {
        int64_t cols = lc_min64(nr, n - c0);
        /* a few columns past the last whole panel go in its call (ViT's 197
         * keys: 4 x 48 + 5; Swin's 49: 48 + 1) */
        if (cols == nr && isa->gemm_wide && n - c0 - nr <= LC_GEMM_NARROW_TAIL) cols = n - c0;
        lc_tg_tile(isa, rows, cols, k, a, b + c0, ldb, c + c0, ldc, kep, flags);
        c0 += cols;
    }
}

int64_t lc_token_packed_floats(const lc_isa_config *isa, int64_t n, int64_t k) {
    return lc_div_up(n, lc_tg_width(isa)) * lc_tg_width(isa) * k;
}

void lc_token_pack(const lc_isa_config *isa, const float *w, int64_t n, int64_t k, int64_t rs,
                   int64_t ks, float *out) {
    const int64_t nr = lc_tg_width(isa);
    for (int64_t p = 0; p < lc_div_up(n, nr); p++)
        for (int64_t j = 0; j < k; j++) {
            float *dst = out + (p * k + j) * nr;
            for (int64_t c = 0; c < nr; c++) {
                const int64_t r = p * nr + c;
                dst[c] = r < n ? w[r * rs + j * ks] : 0.0f;
            }
        }
}

/* the GEMM tiles' MR at most (12 on NEON) */
#define LC_TG_MR_MAX 16
/* MR a constant in the common cases (12 on NEON, 8 on AVX-512, 6 on AVX2, 4
 * scalar) so the loads and stores unroll: as stores at stride MR from one
 * row at a time it ran ~4 cycles a float. */
#define LC_TG_PACK_GROUPS(MR)                                                               \
    for (int64_t j = 0; j < k; j++)                                                         \
        for (int64_t i = 0; i < (MR); i++) dst[j * (MR) + i] = row[i][j * xc];

void lc_tg_pack_a(const lc_isa_config *isa, float *dst, const float *x, int64_t rows,
                  int64_t k, int64_t xr, int64_t xc) {
    const int64_t mr = isa->mr;
    const float *row[LC_TG_MR_MAX];
    if (rows < mr) {   /* the last panel: zero rows past m */
        for (int64_t j = 0; j < k; j++)
            for (int64_t i = 0; i < mr; i++) dst[j * mr + i] = i < rows ? x[i * xr + j * xc] : 0.0f;
        return;
    }
    if (isa->pack_rows && xc == 1) {
        isa->pack_rows(dst, (size_t)mr, x, (size_t)xr, (size_t)k);
        return;
    }
    for (int64_t i = 0; i < mr; i++) row[i] = x + i * xr;
    switch (mr) {
    case 12: LC_TG_PACK_GROUPS(12) break;
    case 8: LC_TG_PACK_GROUPS(8) break;
    case 6: LC_TG_PACK_GROUPS(6) break;
    case 4: LC_TG_PACK_GROUPS(4) break;
    default: LC_TG_PACK_GROUPS(mr) break;
    }
}
#undef LC_TG_PACK_GROUPS

int64_t lc_token_gemm_workspace(const lc_isa_config *isa, int64_t m, int64_t k) {
    return lc_div_up(m, isa->mr) * isa->mr * k * (int64_t)sizeof(float);
}

/* Row panel mb of x into ap (lc_tg_pack_a). */
static void tg_pack_task(void *vctx, int64_t mb, int thread) {
    const lc_tg_ctx *t = (const lc_tg_ctx *)vctx;
    (void)thread;
    lc_tg_pack_a(t->isa, t->ap + mb * t->mr * t->k, t->x + mb * t->mr * t->k,
                 lc_min64(t->mr, t->m - mb * t->mr), t->k, t->k, 1);
}

/* A C row's start: b + res, b or res (cols floats; either may be NULL). */
static void tg_start_row(float *c, const float *b, const float *res, int64_t cols) {
    if (b && res)
        for (int64_t j = 0; j < cols; j++) c[j] = b[j] + res[j];
    else
        memmove(c, b ? b : res, (size_t)cols * sizeof(float));
}

static void tg_task(void *vctx, int64_t item, int thread) {
    const lc_tg_ctx *t = (const lc_tg_ctx *)vctx;
    const lc_isa_config *isa = t->isa;
    const int64_t chunk = item / t->groups, g = item % t->groups;
    const int64_t p0 = chunk * t->panels / t->chunks, p1 = (chunk + 1) * t->panels / t->chunks;
    const int64_t b0 = g * t->mblocks / t->groups, b1 = (g + 1) * t->mblocks / t->groups;
    const int64_t mr = t->mr, nr = t->nr, k = t->k, n = t->n;
    (void)thread;
    for (int64_t mb = b0; mb < b1; mb++) {
        const int64_t rows = lc_min64(mr, t->m - mb * mr);
        const float *a = t->ap + mb * mr * k;
        for (int64_t p = p0; p < p1; p++) {
            const int64_t cols = lc_min64(nr, n - p * nr);
            float *c = t->y + mb * mr * n + p * nr;
            /* the bias is per column, the micro-kernel's per row: C starts
             * as the bias rows (plus the residual's, read before the tile
             * is written: res may be y) and the products add to it */
            unsigned flags = t->post ? 0u : LC_GEMM_FINAL;
            if (t->b || t->res) {
                flags |= LC_GEMM_ACCUMULATE;
                for (int64_t i = 0; i < rows; i++)
                    tg_start_row(c + i * n, t->b ? t->b + p * nr : NULL,
                                 t->res ? t->res + (mb * mr + i) * n + p * nr : NULL, cols);
            }
            lc_tg_tile(isa, rows, cols, k, a, t->wp + p * k * nr, nr, c, n, &t->kep, flags);
            if (t->post)
                for (int64_t i = 0; i < rows; i++)
                    isa->postop(c + i * n, c + i * n, (size_t)cols, NULL, 0.0f, t->ep);
        }
    }
}

/* Column chunks and row groups for `threads` threads: chunks whose B slices
 * fit the convolution GEMM's budget for them (lc_blocking gemm_b_l2),
 * then made a multiple of the threads either way, whichever leaves the
 * busiest thread the smaller excess over an even share. */
static void tg_split(lc_tg_ctx *t, int threads) {
    const int64_t slice = t->k * t->nr * (int64_t)sizeof(float);
    const int64_t per_chunk = lc_min64(t->panels, lc_max64(1, lc_blocking_get()->gemm_b_l2 / slice));
    t->chunks = lc_div_up(t->panels, per_chunk);
    t->groups = 1;
    if (threads <= 1 || t->chunks % threads == 0) return;
    const int64_t cc = lc_div_up(t->chunks, threads) * threads;
    /* busiest thread's share over the even share, each way */
    const double by_cols = cc <= t->panels
        ? (double)lc_div_up(t->panels, cc) * (double)cc / (double)t->panels : 1e30;
    const double by_rows = (double)lc_div_up(t->mblocks, threads) * threads / (double)t->mblocks;
    if (by_cols <= by_rows)
        t->chunks = cc;
    else
        t->groups = threads;
}

int lc_token_gemm(const lc_isa_config *isa, const float *x, int64_t m, int64_t k,
                  const float *wp, int64_t n, const float *b, const float *res,
                  const lc_epilogue *ep, float *y, char *ws, int64_t ws_bytes, int nthreads) {
    if (ep->act < 0 || ep->act >= LC_ACT_COUNT) return LC_ERR_UNSUPPORTED;
    if (m <= 0 || n <= 0) return LC_OK;
    if (ws_bytes < lc_token_gemm_workspace(isa, m, k)) return LC_ERR_WORKSPACE;
    lc_tg_ctx t;
    t.isa = isa; t.x = x; t.wp = wp; t.b = b; t.res = res; t.y = y; t.ap = (float *)ws;
    t.ep = ep; t.m = m; t.k = k; t.n = n;
    t.mr = isa->mr; t.nr = lc_tg_width(isa);
    /* the residual is in C before the products: nothing is added after */
    t.post = lc_needs_postop(ep, 0);
    t.kep = lc_kernel_epilogue(ep, 0);
    t.mblocks = lc_div_up(m, t.mr);
    t.panels = lc_div_up(n, t.nr);
    if (k <= 0) {   /* an empty sum: the bias (or 0) through the epilogue */
        for (int64_t i = 0; i < m; i++) {
            if (b || res) tg_start_row(y + i * n, b, res ? res + i * n : NULL, n);
            else memset(y + i * n, 0, (size_t)n * sizeof(float));
            isa->postop(y + i * n, y + i * n, (size_t)n, NULL, 0.0f, ep);
        }
        return LC_OK;
    }
    const double work = (double)m * (double)n * (double)k;
    const int threads = lc_threads_used(nthreads, t.mblocks * t.panels, work);
    tg_split(&t, threads);
    lc_parallel_for(threads, t.mblocks, (double)m * (double)k * LC_WORK_PER_STREAMED_FLOAT,
                    tg_pack_task, &t);
    lc_parallel_for(threads, t.chunks * t.groups, work, tg_task, &t);
    return LC_OK;
}
