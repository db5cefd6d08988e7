/* Patch2Vec: each thread unwraps the patches of NR output pixels into one
 * packed K x NR panel and applies every filter of the group to it before it
 * moves on.  Workspace: K x NR floats per thread, whatever the image size
 * (none for a 1x1/stride-1/unpadded layer, whose patches are the input's
 * pixel columns as they are). */
#include <string.h>
#include "internal.h"

typedef struct {
    const lc_conv_desc *d;
    const float *x, *packed, *bias, *res;
    float *y;
    char *ws;
    int64_t K, Mg, P, npanels, a_group, slice_bytes;
    int64_t items;   /* (image, group, panel) items per channel block */
    int64_t mchunks; /* output-channel blocks (lc_row_chunks) */
} lc_p2v_ctx;

static void lc_p2v_task(void *vctx, int64_t item, int thread) {
    const lc_p2v_ctx *t = (const lc_p2v_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const int64_t nr = d->isa->nr;
    /* item = (channel block, image, group, panel); a channel block repeats
     * the panel's unwrapping, which only happens on images too small to give
     * every thread its own panels */
    const int64_t mchunk = item / t->items, pitem = item % t->items;
    const int64_t panel = pitem % t->npanels, ng = pitem / t->npanels;
    const int64_t g = ng % d->groups, n = ng / d->groups;
    const int64_t p0 = panel * nr, cols = lc_min64(nr, t->P - p0);
    const float *xg = t->x + (n * d->C + g * (d->C / d->groups)) * d->H * d->W;
    const float *b;
    size_t ldb;
    if (lc_gemm_is_pointwise(d)) {
        /* a 1x1 patch is the pixel's column of the input: nothing to unwrap */
        b = xg + p0;
        ldb = (size_t)t->P;
    } else {
        float *buf = (float *)lc_thread_scratch(t->ws, t->slice_bytes, thread);
        lc_pack_patch_panel(d, xg, p0, cols, (size_t)nr, buf);
        b = buf;
        ldb = (size_t)nr;
    }
    int64_t m_begin, m_end;
    lc_row_chunk_range(mchunk, t->mchunks, t->Mg, d->isa->mr, &m_begin, &m_end);
    if (m_begin >= m_end) return;
    const int64_t yoff = (n * d->M + g * t->Mg) * t->P + p0;
    lc_gemm_panels_rows(d->isa, (size_t)t->Mg, (size_t)m_begin, (size_t)m_end, (size_t)t->K,
                        t->packed + g * t->a_group, b, ldb, 0, (size_t)cols, t->y + yoff,
                        (size_t)t->P, 0, t->bias ? t->bias + g * t->Mg : NULL,
                        t->res ? t->res + yoff : NULL, &d->epilogue, 1, NULL);
}

static int64_t lc_p2v_panel_items(const lc_conv_desc *d, int *ok) {
    int64_t P = lc_mul(d->OH, d->OW, ok);
    return lc_mul(lc_mul(d->N, d->groups, ok), lc_div_up(P, d->isa->nr), ok);
}

static int64_t lc_p2v_items(const lc_conv_desc *d, int *ok) {
    int64_t items = lc_p2v_panel_items(d, ok);
    return lc_mul(items, lc_row_chunks(items, d->nthreads, d->M / d->groups, d->isa->mr), ok);
}

static int64_t lc_p2v_slice(const lc_conv_desc *d, int *ok) {
    int64_t K = lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
    /* Not rounded up: NR*4 bytes is already a multiple of the 32 bytes the
     * kernels like, and the promise is exactly K*NR*4 bytes per thread. */
    return lc_mul(lc_mul(K, d->isa->nr, ok), (int64_t)sizeof(float), ok);
}

int64_t lc_patch2vec_workspace(const lc_conv_desc *d, int *ok) {
    if (lc_gemm_is_pointwise(d)) return 0; /* B is the input itself */
    int threads = lc_threads_used(d->nthreads, lc_p2v_items(d, ok), lc_conv_macs(d));
    return lc_mul(threads, lc_p2v_slice(d, ok), ok);
}

/* The work items: (image, group, panel) items x blocks of output channels. */
typedef struct {
    int64_t items, mchunks, total;
} lc_p2v_tiles;
LC_TILING_FITS(lc_p2v_tiles);

void lc_patch2vec_tiling(const lc_conv_desc *d, int64_t *tiling) {
    int ok = 1;
    lc_p2v_tiles b;
    b.items = lc_p2v_panel_items(d, &ok);
    b.mchunks = lc_row_chunks(b.items, d->nthreads, d->M / d->groups, d->isa->mr);
    b.total = lc_p2v_items(d, &ok);
    memcpy(tiling, &b, sizeof b);
}

int lc_patch2vec_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                     const float *packed, const float *bias, const float *res, float *y,
                     char *ws) {
    int ok = 1;
    lc_p2v_ctx t;
    lc_p2v_tiles b;
    memcpy(&b, tiling, sizeof b);
    t.d = d; t.x = x; t.packed = packed; t.bias = bias; t.res = res; t.y = y; t.ws = ws;
    t.K = d->C / d->groups * d->kH * d->kW;
    t.Mg = d->M / d->groups;
    t.P = d->OH * d->OW;
    t.npanels = lc_div_up(t.P, d->isa->nr);
    t.a_group = lc_round_up(t.Mg, d->isa->mr, &ok) * t.K;
    t.slice_bytes = lc_p2v_slice(d, &ok);
    t.items = b.items;
    t.mchunks = b.mchunks;
    lc_parallel_for(d->nthreads, b.total, lc_conv_macs(d), lc_p2v_task, &t);
    return LC_OK;
}
