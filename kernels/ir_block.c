/* An inverted-residual block's expanding 1x1 and depthwise convolutions
 * fused band by band (include/leanconv/ir_block.h).
 *
 * Unfused, the expanded tensor (MobileNetV2's 96 x 112 x 112 = 4.8 MB) is
 * written by the 1x1 and read back by the depthwise from L3 or memory.  Here
 * a task is one band of output rows of one image: the GEMM panel loop
 * (lc_gemm_panels_rows, the 1x1 path's: the input planes are B directly)
 * computes the expanded rows the band reads, every channel, bias and
 * activation included, into the thread's band buffer (half of L2); the
 * depthwise reads them from there (the ISA's 3x3 plane kernel, else
 * lc_depthwise_rows) and writes the band's output rows.  A band's halo rows
 * (kH - 1 of them at stride 1) are computed again by the next band rather
 * than kept, so a band depends on nothing but its own rows: the same bits
 * at any thread count and in any order.
 *
 * Where it pays (lc_ir_block_pays): measured on a Zen 5 (1 MiB L2, 32 MiB
 * L3, bench/ir_block.py), fused and unfused tie within noise while the
 * expanded tensor stays in L3 between the steps (both are then bound by
 * their arithmetic: the stride-2 depthwise as much as the 1x1), and the
 * fused block wins once it does not; the depthwise paths other than the 3x3
 * plane kernel, run per channel on a band, lost everywhere measured. */
#include "internal.h"
#include "leanconv/ir_block.h"

/* Set by tests: output rows per band (0: the cache budget's), and the
 * rule's answer (-1: the rule's own). */
static int64_t lc_irb_forced_band;
static int lc_irb_forced_pays = -1;

void lc_ir_block_debug(int64_t rows, int pays) {
    lc_irb_forced_band = rows > 0 ? rows : 0;
    lc_irb_forced_pays = pays < 0 ? -1 : pays != 0;
}

const char *lc_ir_block_unsupported(const lc_conv_desc *e, const lc_conv_desc *d) {
    if (!lc_gemm_is_pointwise(e) || e->groups != 1)
        return "the first convolution must be 1x1, stride 1, unpadded, one group";
    if (d->groups != d->C || d->M != d->C || d->C != e->M)
        return "the second convolution must be depthwise over the first's outputs";
    if (e->N != d->N || e->H != d->H || e->W != d->W || e->OH != e->H || e->OW != e->W)
        return "the two convolutions' shapes do not chain";
    if (e->isa != d->isa)
        return "the two convolutions must use one ISA";
    const int64_t reach_h = (d->kH - 1) * d->dil_h, reach_w = (d->kW - 1) * d->dil_w;
    if (d->pad_t < 0 || d->pad_l < 0 || d->pad_b < 0 || d->pad_r < 0 || d->pad_t > reach_h ||
        d->pad_b > reach_h || d->pad_l > reach_w || d->pad_r > reach_w)
        return "the depthwise padding must be within its kernel's reach";
    if (d->OH < 1 || d->OW < 1 || e->N < 1 || e->C < 1)
        return "empty tensors";
    return NULL;
}

/* Expanded rows a band of `rows` output rows reads (halo included). */
static int64_t lc_irb_rows_in(const lc_conv_desc *d, int64_t rows) {
    return (rows - 1) * d->stride_h + (d->kH - 1) * d->dil_h + 1;
}

/* The ISA's 3x3 plane kernel serves the depthwise (the other depthwise
 * paths, run per channel on a band, lost to the unfused layers). */
static int lc_irb_plane_kernel(const lc_conv_desc *d) {
    return d->isa->dw3x3_plane && d->kH == 3 && d->kW == 3 && d->dil_h == 1 && d->dil_w == 1 &&
           (d->stride_w == 1 || d->stride_w == 2);
}

int64_t lc_ir_block_band_rows(const lc_conv_desc *e, const lc_conv_desc *d) {
    if (lc_ir_block_unsupported(e, d)) return 0;
    if (lc_irb_forced_band) return lc_min64(lc_irb_forced_band, d->OH);
    const int64_t row_bytes = e->M * d->W * (int64_t)sizeof(float); /* an expanded row */
    const int64_t fit = lc_blocking_get()->ir_band / row_bytes;     /* rows the budget holds */
    const int64_t reach = (d->kH - 1) * d->dil_h;
    /* rows too wide for the budget: one output row a band all the same (the
     * buffer then outgrows it; lc_ir_block_pays says whether that pays) */
    const int64_t most = fit < reach + 1 ? 1 : lc_min64((fit - reach - 1) / d->stride_h + 1, d->OH);
    /* as many bands as that takes, evened out (the last one not a sliver) */
    return lc_div_up(d->OH, lc_div_up(d->OH, most));
}

int lc_ir_block_pays(const lc_conv_desc *e, const lc_conv_desc *d) {
    if (lc_ir_block_band_rows(e, d) < 1) return 0;
    if (lc_irb_forced_pays >= 0) return lc_irb_forced_pays;
    if (!lc_irb_plane_kernel(d)) return 0;
    const int64_t fit = lc_blocking_get()->ir_band / (e->M * d->W * (int64_t)sizeof(float));
    if (fit < (d->kH - 1) * d->dil_h + 1) return 0; /* not even one band fits the budget */
    const double expanded =
        (double)e->N * (double)e->M * (double)e->H * (double)e->W * sizeof(float);
    return expanded >= (double)lc_blocking_get()->ir_fuse_min;
}

int64_t lc_ir_block_packed_floats(const lc_conv_desc *e) {
    int ok = 1;
    const int64_t n = lc_gemm_packed_floats(e, &ok);
    return ok ? n : -1;
}

void lc_ir_block_pack(const lc_conv_desc *e, const float *we, float *packed) {
    lc_gemm_pack_weights(e, we, packed);
}

/* Per-thread band buffer: every expanded row of the largest band. */
static int64_t lc_irb_slice_bytes(const lc_conv_desc *e, const lc_conv_desc *d, int *ok) {
    const int64_t rows_in = lc_irb_rows_in(d, lc_ir_block_band_rows(e, d));
    return lc_aligned_floats_bytes(lc_mul(lc_mul(e->M, rows_in, ok), d->W, ok), ok);
}

static double lc_irb_macs(const lc_conv_desc *e, const lc_conv_desc *d) {
    return lc_conv_macs(e) + lc_conv_macs(d);
}

static int64_t lc_irb_items(const lc_conv_desc *d, int64_t band) {
    return d->N * lc_div_up(d->OH, band);
}

int64_t lc_ir_block_workspace_bytes(const lc_conv_desc *e, const lc_conv_desc *d) {
    const int64_t band = lc_ir_block_band_rows(e, d);
    if (band < 1) return -1;
    int ok = 1;
    const int threads = lc_threads_used(d->nthreads, lc_irb_items(d, band), lc_irb_macs(e, d));
    const int64_t bytes = lc_mul(threads, lc_irb_slice_bytes(e, d, &ok), &ok);
    return ok ? bytes : -1;
}

typedef struct {
    lc_conv_desc e, d;   /* clamp flags derived */
    lc_epilogue kep;     /* the plane kernel's part of d's epilogue */
    int post;            /* the rest runs as the post-op */
    int plane;           /* the ISA's 3x3 plane kernel serves d */
    const float *x, *we, *be, *wd, *bd;
    float *y;
    void *ws;
    int64_t slice, band, bands;
} lc_irb_ctx;

/* One band of output rows of one image: its expanded rows into the thread's
 * buffer as a plain h x W image per channel (the depthwise pads it where
 * the band meets the image's edge), the input rows read in place as the
 * 1x1's right-hand side; then the depthwise of every channel. */
static void lc_irb_task(void *vctx, int64_t item, int thread) {
    const lc_irb_ctx *t = (const lc_irb_ctx *)vctx;
    const lc_conv_desc *e = &t->e, *d = &t->d;
    const lc_isa_config *isa = d->isa;
    const int64_t n = item / t->bands, oy0 = (item - n * t->bands) * t->band;
    const int64_t rows = lc_min64(t->band, d->OH - oy0);
    const int64_t top = oy0 * d->stride_h - d->pad_t, nrows = lc_irb_rows_in(d, rows);
    const int64_t iy0 = lc_max64(0, top), iy1 = lc_min64(d->H, top + nrows);
    const int64_t h = iy1 - iy0, E = e->M, plane = h * d->W;
    float *buf = (float *)lc_thread_scratch(t->ws, t->slice, thread);
    lc_gemm_panels_rows(isa, (size_t)E, 0, (size_t)E, (size_t)e->C, t->we,
                        t->x + (n * e->C * e->H + iy0) * e->W, (size_t)(e->H * e->W),
                        (size_t)isa->nr, (size_t)plane, buf, (size_t)plane, (size_t)isa->nr,
                        t->be, NULL, &e->epilogue, LC_PANELS_EPILOGUE | LC_PANELS_WIDE);
    float *yb = t->y + (n * E * d->OH + oy0) * d->OW;
    if (!t->plane) {
        /* the band as a small layer of its own: padded where the image is */
        lc_conv_desc sub = *d;
        sub.N = sub.C = sub.M = sub.groups = 1;
        sub.H = h;
        sub.OH = rows;
        sub.pad_t = iy0 - top;
        sub.pad_b = top + nrows - iy1;
        sub.nthreads = 1;
        lc_depthwise_rows(&sub, buf, plane, t->wd, t->bd, yb, d->OH * d->OW, E);
        return;
    }
    for (int64_t c = 0; c < E; c++) {
        float *out = yb + c * d->OH * d->OW;
        isa->dw3x3_plane(out, (size_t)rows, (size_t)d->OW, buf + c * plane, (size_t)h,
                         (size_t)d->W, (size_t)d->stride_h, (size_t)d->stride_w,
                         (size_t)(iy0 - top), (size_t)d->pad_l, t->wd + c * 9,
                         t->bd ? t->bd[c] : 0.0f, &t->kep);
        if (t->post)
            isa->postop(out, out, (size_t)(rows * d->OW), NULL, 0.0f, &d->epilogue);
    }
}

int lc_ir_block_run(const lc_conv_desc *e, const lc_conv_desc *d, const float *x,
                    const float *we_packed, const float *be, const float *wd, const float *bd,
                    float *y, void *workspace, int64_t workspace_bytes) {
    const int64_t need = lc_ir_block_workspace_bytes(e, d);
    if (need < 0 || workspace_bytes < need || (need > 0 && !workspace))
        return LC_ERR_UNSUPPORTED;
    lc_irb_ctx t;
    t.e = *e;
    t.d = *d;
    /* the drivers see `clamp` set exactly when the activation is a clamp */
    t.e.epilogue.clamp = e->epilogue.act == LC_ACT_CLAMP;
    t.d.epilogue.clamp = d->epilogue.act == LC_ACT_CLAMP;
    t.kep = lc_kernel_epilogue(&t.d.epilogue, 0);
    t.post = lc_needs_postop(&t.d.epilogue, 0);
    t.plane = lc_irb_plane_kernel(d);
    t.x = x; t.we = we_packed; t.be = be; t.wd = wd; t.bd = bd; t.y = y;
    t.ws = workspace;
    int ok = 1;
    t.slice = lc_irb_slice_bytes(e, d, &ok);
    t.band = lc_ir_block_band_rows(e, d);
    t.bands = lc_div_up(d->OH, t.band);
    lc_parallel_for(d->nthreads, lc_irb_items(d, t.band), lc_irb_macs(e, d), lc_irb_task, &t);
    return LC_OK;
}
