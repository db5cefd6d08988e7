/* Pixel rows (EXPERIMENT, measured slower than Im2Col on AVX-512 Zen 5; see
 * docs/performance.md "Where the time goes"): the GEMM turned around for
 * small images.
 *
 * Im2Col and Patch2Vec put output channels on the micro-kernel's rows and
 * pixels on its vector lanes.  Here the pixels are the rows and the output
 * channels the lanes:  Y^T[P x Mg] = X^T[P x K] * W^T[K x Mg]
 * (the channel-blocked direct convolution of oneDNN and OpenVINO, in GEMM
 * form).  The same micro-kernels run it: their packed "A" is MR output pixels
 * of the unwrapped patches (lc_pack_patch_panel with MR columns), their "B"
 * panels NR output channels of the transposed weights, packed at plan time.
 * The pixel-major result is transposed back to the channel planes by the
 * epilogue pass (bias, residual, activation through the ISA's post-op).
 *
 * Work items: (channel block, image, group, pixel block); K never split:
 * bitwise identical for any thread count. */
#include <string.h>
#include "internal.h"

#define LC_PR_BLOCK_PIXELS 256
#define LC_PR_SEGMENT 256

typedef struct {
    const lc_conv_desc *d;
    const float *x, *packed, *bias, *res;
    float *y;
    char *ws;
    int64_t K, Mg, P, w_group;
    int64_t block_panels, blocks, items, mchunks;
    int64_t x_floats, ct_floats;
} lc_pr_ctx;

static int64_t lc_pr_K(const lc_conv_desc *d, int *ok) {
    return lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
}

int64_t lc_pixel_rows_packed_floats(const lc_conv_desc *d, int *ok) {
    const int64_t Mg = d->M / d->groups;
    return lc_mul(lc_mul(d->groups, lc_round_up(Mg, d->isa->nr, ok), ok), lc_pr_K(d, ok), ok);
}

void lc_pixel_rows_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    const int64_t nr = d->isa->nr, Mg = d->M / d->groups;
    int ok = 1;
    const int64_t K = lc_pr_K(d, &ok), mpad = lc_round_up(Mg, nr, &ok);
    for (int64_t g = 0; g < d->groups; g++) {
        const float *wg = w + g * Mg * K;
        float *pg = packed + g * mpad * K;
        for (int64_t j = 0; j < mpad; j += nr)
            for (int64_t k = 0; k < K; k++)
                for (int64_t o = 0; o < nr; o++)
                    pg[j * K + k * nr + o] = j + o < Mg ? wg[(j + o) * K + k] : 0.0f;
    }
}

static int64_t lc_pr_block_panels(const lc_conv_desc *d) {
    const int64_t mr = d->isa->mr;
    return lc_min64(lc_max64(1, LC_PR_BLOCK_PIXELS / mr), lc_div_up(d->OH * d->OW, mr));
}

static int64_t lc_pr_items(const lc_conv_desc *d, int64_t *mchunks, int *ok) {
    const int64_t P = lc_mul(d->OH, d->OW, ok);
    const int64_t blocks = lc_div_up(lc_div_up(P, d->isa->mr), lc_pr_block_panels(d));
    const int64_t items = lc_mul(lc_mul(d->N, d->groups, ok), blocks, ok);
    *mchunks = lc_row_chunks(items, d->nthreads, d->M / d->groups, lc_max64(1, d->isa->nr / 2));
    return items;
}

static void lc_pr_sizes(const lc_conv_desc *d, int64_t mchunks, int64_t *x_floats,
                        int64_t *ct_floats, int *ok) {
    const int64_t nr = d->isa->nr, Mg = d->M / d->groups;
    const int64_t pb = lc_mul(lc_pr_block_panels(d), d->isa->mr, ok);
    int64_t begin, end;
    lc_row_chunk_range(0, mchunks, Mg, lc_max64(1, nr / 2), &begin, &end);
    *x_floats = lc_mul(lc_pr_K(d, ok), pb, ok);
    *ct_floats = lc_mul(pb, lc_round_up(end - begin, nr, ok), ok);
}

int64_t lc_pixel_rows_workspace(const lc_conv_desc *d, int *ok) {
    int64_t mchunks, xf, cf;
    const int64_t items = lc_pr_items(d, &mchunks, ok);
    lc_pr_sizes(d, mchunks, &xf, &cf, ok);
    const int threads = lc_threads_used(d->nthreads, lc_mul(items, mchunks, ok));
    return lc_mul(threads, lc_aligned_floats_bytes(lc_add(xf, cf, ok), ok), ok);
}

static void lc_pr_store(const lc_pr_ctx *t, const float *ct, int64_t pb, int64_t o0, int64_t o1,
                        int64_t n, int64_t g, int64_t p0, int64_t np) {
    const lc_conv_desc *d = t->d;
    const int64_t nr = d->isa->nr;
    float seg[LC_PR_SEGMENT];
    for (int64_t o = o0; o < o1; o++) {
        const float *col = ct + ((o - o0) / nr) * pb * nr + (o - o0) % nr;
        const int64_t plane = (n * d->M + g * t->Mg + o) * t->P + p0;
        const float b = t->bias ? t->bias[g * t->Mg + o] : 0.0f;
        for (int64_t s = 0; s < np; s += LC_PR_SEGMENT) {
            const int64_t len = lc_min64(LC_PR_SEGMENT, np - s);
            for (int64_t q = 0; q < len; q++) seg[q] = col[(s + q) * nr];
            d->isa->postop(t->y + plane + s, seg, (size_t)len,
                           t->res ? t->res + plane + s : NULL, b, &d->epilogue);
        }
    }
}

static void lc_pr_task(void *vctx, int64_t item, int thread) {
    const lc_pr_ctx *t = (const lc_pr_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const lc_isa_config *isa = d->isa;
    const int64_t mr = isa->mr, nr = isa->nr, kc = isa->kc, K = t->K;
    const int64_t mchunk = item / t->items, pitem = item % t->items;
    const int64_t blk = pitem % t->blocks, ng = pitem / t->blocks;
    const int64_t g = ng % d->groups, n = ng / d->groups;
    int64_t o0, o1;
    lc_row_chunk_range(mchunk, t->mchunks, t->Mg, lc_max64(1, nr / 2), &o0, &o1);
    if (o0 >= o1) return;
    const int64_t p0 = blk * t->block_panels * mr, np = lc_min64(t->block_panels * mr, t->P - p0);
    const int64_t panels = lc_div_up(np, mr), pb = panels * mr;
    int ok = 1;
    float *xb = (float *)(t->ws + thread * lc_aligned_floats_bytes(t->x_floats + t->ct_floats, &ok));
    float *ct = xb + t->x_floats;
    const float *xg = t->x + (n * d->C + g * (d->C / d->groups)) * d->H * d->W;
    for (int64_t i = 0; i < panels; i++) {
        const int64_t q0 = i * mr, cols = lc_min64(mr, np - q0);
        float *panel = xb + i * K * mr;
        if (cols < mr) memset(panel, 0, (size_t)(K * mr) * sizeof(float));
        lc_pack_patch_panel(d, xg, p0 + q0, cols, (size_t)mr, panel);
    }
    const lc_epilogue none = lc_identity_epilogue();
    const float *wg = t->packed + g * t->w_group;
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
        const int64_t kb = lc_min64(kc, K - k0);
        const unsigned flags = k0 ? LC_GEMM_ACCUMULATE : 0u;
        for (int64_t j = o0; j < o1; j += nr) {
            const int64_t cols = lc_min64(nr, o1 - j);
            float *cj = ct + ((j - o0) / nr) * pb * nr;
            for (int64_t i = 0; i < panels; i++)
                isa->gemm((size_t)lc_min64(mr, np - i * mr), (size_t)cols, (size_t)kb,
                          xb + i * K * mr + k0 * mr, wg + j * K + k0 * nr, (size_t)nr,
                          cj + i * mr * nr, (size_t)nr, NULL, &none, flags);
        }
    }
    lc_pr_store(t, ct, pb, o0, o1, n, g, p0, np);
}

int lc_pixel_rows_run(const lc_conv_desc *d, const float *x, const float *packed,
                      const float *bias, const float *res, float *y, char *ws) {
    int ok = 1;
    lc_pr_ctx t;
    t.d = d; t.x = x; t.packed = packed; t.bias = bias; t.res = res; t.y = y; t.ws = ws;
    t.K = lc_pr_K(d, &ok);
    t.Mg = d->M / d->groups;
    t.P = d->OH * d->OW;
    t.w_group = lc_round_up(t.Mg, d->isa->nr, &ok) * t.K;
    t.block_panels = lc_pr_block_panels(d);
    t.blocks = lc_div_up(lc_div_up(t.P, d->isa->mr), t.block_panels);
    t.items = lc_pr_items(d, &t.mchunks, &ok);
    lc_pr_sizes(d, t.mchunks, &t.x_floats, &t.ct_floats, &ok);
    if (!ok) return LC_ERR_OVERFLOW;
    lc_parallel_for(d->nthreads, t.items * t.mchunks, lc_pr_task, &t);
    return LC_OK;
}
