/* Im2Col + GEMM: the patch matrix B (K x P, row k = tap (c, ky, kx) of every
 * output pixel) is built first, as a plain row-major matrix, then the GEMM
 * runs over it in NR-column panels straight from the matrix (ldb = P, or a
 * little more: lc_im2col_ldb).
 * B is built one output row at a time (a task each), with Patch2Vec's
 * unwrapping: per tap the copies of a whole run of OW pixels are batched
 * over the channels (or the kx taps), so on small images, where a B row is
 * a handful of 7-pixel runs, the setup is paid once per tap and not once per
 * run and channel (conv 3x3 512@7: -10%; the 7x7/2 stem: -10%).
 * Workspace: K x ldb floats, reused across groups and images.  A
 * 1x1/stride-1/unpadded layer skips the matrix: B is the input. */
#include <string.h>
#include "internal.h"

/* The leading dimension of B: P, unless P floats are a multiple of 1 KiB.
 * Then the GEMM's loads of one panel (the same columns of consecutive rows)
 * all map to the same L1 sets and the same 4 KiB-alias slots (32x32 CIFAR
 * images, P = 1024: Im2Col took twice Patch2Vec's time), so such rows get
 * one cache line more. */
static int64_t lc_im2col_ldb(int64_t P) {
    return P % 256 == 0 ? P + 16 : P;
}

typedef struct {
    const lc_conv_desc *d;
    const float *xg, *ag, *bias, *rg; /* rg: the residual of yg, or NULL */
    float *yg, *bmat;
    int64_t K, Mg, P;
    int64_t ldb;     /* B's leading dimension (lc_im2col_ldb; P when B is the input) */
    int64_t chunk;   /* panels per GEMM task */
    int64_t nchunks; /* GEMM tasks per channel block */
    int64_t mchunks; /* output-channel blocks (lc_row_chunks) */
    int whole_rows;  /* one chunk of all panels, the wide GEMM tile's (lc_gemm_wide_rows) */
} lc_im2col_ctx;

static void lc_im2col_outrow_task(void *vctx, int64_t oy, int thread) {
    /* output row oy of every B row: the patches of OW pixels, unwrapped the
     * way Patch2Vec does (copies batched over channels), straight into B */
    const lc_im2col_ctx *t = (const lc_im2col_ctx *)vctx;
    const int64_t OW = t->d->OW;
    (void)thread;
    lc_pack_patch_panel(t->d, t->xg, oy * OW, OW, (size_t)t->ldb, t->bmat + oy * OW);
}

static void lc_im2col_gemm_task(void *vctx, int64_t item, int thread) {
    /* a chunk of panels per task, so A is read once per chunk (lc_gemm_panels),
     * for one block of output channels (item = (channel block, chunk)) */
    const lc_im2col_ctx *t = (const lc_im2col_ctx *)vctx;
    const int64_t chunk = item % t->nchunks, mchunk = item / t->nchunks;
    const int64_t nr = t->d->isa->nr, p0 = chunk * t->chunk * nr;
    const int64_t cols = lc_min64(t->chunk * nr, t->P - p0);
    int64_t m_begin, m_end;
    (void)thread;
    lc_row_chunk_range(mchunk, t->mchunks, t->Mg, t->d->isa->mr, &m_begin, &m_end);
    if (m_begin >= m_end) return;
    lc_gemm_panels_rows(t->d->isa, (size_t)t->Mg, (size_t)m_begin, (size_t)m_end, (size_t)t->K,
                        t->ag, t->bmat + p0, (size_t)t->ldb, (size_t)nr, (size_t)cols,
                        t->yg + p0, (size_t)t->P, (size_t)nr, t->bias,
                        t->rg ? t->rg + p0 : NULL, &t->d->epilogue,
                        LC_PANELS_EPILOGUE | (t->whole_rows ? LC_PANELS_WIDE : 0));
}

int64_t lc_im2col_workspace(const lc_conv_desc *d, int *ok) {
    if (lc_gemm_is_pointwise(d)) return 0;
    int64_t K = lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
    int64_t P = lc_mul(d->OH, d->OW, ok);
    return lc_aligned_floats_bytes(lc_mul(K, lc_im2col_ldb(P), ok), ok);
}

/* The GEMM's work items: chunks of panels x blocks of output channels. */
typedef struct {
    int64_t chunk, nchunks, mchunks;
} lc_im2col_tiles;
LC_TILING_FITS(lc_im2col_tiles);

void lc_im2col_tiling(const lc_conv_desc *d, int64_t *tiling) {
    const int64_t Mg = d->M / d->groups;
    const int64_t npanels = lc_div_up(d->OH * d->OW, d->isa->nr);
    lc_im2col_tiles b;
    b.chunk = lc_gemm_chunk_panels(d);
    b.nchunks = lc_div_up(npanels, b.chunk);
    /* rows the wide tile takes whole are shared out by channels only */
    const int whole_rows = lc_gemm_wide_rows(d->isa, (size_t)(d->OH * d->OW));
    b.mchunks = lc_row_chunks(whole_rows ? 1 : b.nchunks, d->nthreads, Mg, d->isa->mr);
    if (b.mchunks > 1 || whole_rows) { /* few panels: one chunk of them all, split by channels */
        b.chunk = npanels;
        b.nchunks = 1;
    }
    memcpy(tiling, &b, sizeof b);
}

int lc_im2col_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                  const float *packed, const float *bias, const float *res, float *y, char *ws) {
    int ok = 1;
    lc_im2col_ctx t;
    lc_im2col_tiles b;
    memcpy(&b, tiling, sizeof b);
    t.d = d;
    t.K = d->C / d->groups * d->kH * d->kW;
    t.Mg = d->M / d->groups;
    t.P = d->OH * d->OW;
    const int pointwise = lc_gemm_is_pointwise(d);
    t.ldb = pointwise ? t.P : lc_im2col_ldb(t.P);
    const int64_t a_group = lc_round_up(t.Mg, d->isa->mr, &ok) * t.K;
    t.chunk = b.chunk;
    t.nchunks = b.nchunks;
    t.mchunks = b.mchunks;
    t.whole_rows = lc_gemm_wide_rows(d->isa, (size_t)t.P); /* as lc_im2col_tiling decided */
    for (int64_t n = 0; n < d->N; n++) {
        for (int64_t g = 0; g < d->groups; g++) {
            t.xg = x + (n * d->C + g * (d->C / d->groups)) * d->H * d->W;
            t.yg = y + (n * d->M + g * t.Mg) * t.P;
            t.rg = res ? res + (n * d->M + g * t.Mg) * t.P : NULL;
            t.ag = packed + g * a_group;
            t.bias = bias ? bias + g * t.Mg : NULL;
            t.bmat = pointwise ? (float *)t.xg : (float *)ws;
            if (!pointwise) lc_parallel_for(d->nthreads, d->OH, lc_conv_macs(d), lc_im2col_outrow_task, &t);
            lc_parallel_for(d->nthreads, t.nchunks * t.mchunks, lc_conv_macs(d), lc_im2col_gemm_task, &t);
        }
    }
    return LC_OK;
}
