/* An inverted-residual block's expanding 1x1 and depthwise convolutions
 * fused band by band (include/leanconv/ir_block.h).
 *
 * Unfused, the expanded tensor (MobileNetV2's 96 x 112 x 112 = 4.8 MB) is
 * written by the 1x1 and read back by the depthwise from L3 or memory.  Here,
 * for each band of output rows of one image, the GEMM panel loop
 * (lc_gemm_panels_rows, the 1x1 path's: the input planes are B directly)
 * computes the expanded rows the band reads, every channel, bias and
 * activation included, into the thread's band buffer (about L2); the
 * depthwise reads them from there (the ISA's 3x3 plane kernel, else
 * lc_depthwise_rows) and writes the band's output rows.  A task is a run of
 * consecutive bands of one image: each band keeps the halo rows (kH - 1 at
 * stride 1) the band before computed, moved to the top of the buffer, so
 * only a run's first band computes its halo.  Runs are fixed per image, not
 * per thread: the same bits at any thread count and in any order.
 *
 * Where it pays (lc_ir_block_pays): the ISA's 3x3 plane kernel serves the
 * depthwise (the other depthwise paths, run per channel on a band, lost
 * everywhere: 0.65-0.97x) and the expanded tensor is at least 3/4 of L2
 * (ir_fuse_min; docs/ir_block.md says why).  On an Intel Xeon (2 MiB L2) every such
 * block from 3.1 MiB up won at 1 thread (1.16-1.39x) and at 2 (1.13-1.34x;
 * 0.93x where 3 runs fell 2:1 on 2 threads, hence even runs below); smaller
 * blocks won at 1 thread (1.08-1.25x) but lost at 2 (0.63-0.81x) while an
 * image that fits one band made one task.  Runs (lc_irb_runs) now split it,
 * and the 1.5-1.7 MiB blocks win at 2 threads too (1.02-1.44x), so they
 * fuse; 0.6 MiB ties and 0.3 MiB loses, below 3/4 of L2.
 * On a Zen 5 (1 MiB L2, 32 MiB L3, 1 thread) fused and unfused tied within
 * noise while the expanded tensor stayed in L3, and the fused block won at
 * 18 MiB (1.1-1.3x).  Bands of a few rows lost to the kernels' per-call
 * edges, whatever cache they fit in.
 *
 * Tried for the blocks below ir_fuse_min and not kept: tasks of (image,
 * block of expanded channels) instead of bands, each computing its channels'
 * rows of the 1x1 over the whole image into an L2 buffer and running the
 * layer's own depthwise path on them, so that at 2 threads a channel block
 * stays on the core that computed it.  Alone (bench/ir_block.py's harness)
 * MobileNetV2's 28 x 28, 14 x 14 and 7 x 7 blocks ran 1.04-1.17x the two
 * layers, but inside the model (bound steps, weights arriving from L3) the
 * 7 x 7 blocks ran 0.17-0.20 ms against 0.157 unfused and the 14 x 14 ones
 * tied, and the whole model moved within noise at 1 and 2 threads
 * (bench/onnx_models.py, two interleaved rounds each, AMD EPYC Zen 4).
 *
 * With the projecting 1x1 after the depthwise fused as well, the band's
 * depthwise rows go to a second per-thread buffer (E x band x OW) instead of
 * y, and the projection's GEMM (the same panel loop, B read in place from
 * that buffer) writes the block's output rows, residual and activation
 * included.  Unfused, the depthwise output (MobileNetV2's 96 x 56 x 56 =
 * 1.2 MB) is written past L2 and read back by the projection from L3.
 * Below ir_fuse_min it does not pay: every MobileNetV2 block fused at 224 px
 * (the rule forced, AMD EPYC Zen 4, 1 MiB L2, 1 thread, per-step medians):
 * features.4 (144 x 28 x 28 after the depthwise) tied, 5-14 ran 5-16%
 * slower, the 7 x 7 blocks 15-17 35-42%; the model 11% slower.
 *
 * Without the expanding 1x1 (e NULL: MobileNetV2's and MnasNet's first
 * block, depthwise 32 @112 then 32>16) there are no expanded rows: the
 * depthwise reads x's planes in place and the projection fuses on the same
 * rule, the 1.5 MiB depthwise output never stored (bench/ir_block.py: 1.3-1.5x
 * the two layers alone; features.1 in MobileNetV2 224 ~10%, Zen 4). */
#include <string.h>

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

const char *lc_ir_block_unsupported(const lc_conv_desc *e, const lc_conv_desc *d,
                                    const lc_conv_desc *p) {
    if (!e && !p) return "a block without the expanding 1x1 needs the projection";
    if (e && (!lc_gemm_is_pointwise(e) || e->groups != 1))
        return "the first convolution must be 1x1, stride 1, unpadded, one group";
    if (d->groups != d->C || d->M != d->C || (e && d->C != e->M))
        return "the second convolution must be depthwise over the first's outputs";
    if (e && (e->N != d->N || e->H != d->H || e->W != d->W || e->OH != e->H || e->OW != e->W))
        return "the two convolutions' shapes do not chain";
    if (e && e->isa != d->isa)
        return "the two convolutions must use one ISA";
    const int64_t reach_h = (d->kH - 1) * d->dil_h, reach_w = (d->kW - 1) * d->dil_w;
    if (d->pad_t < 0 || d->pad_l < 0 || d->pad_b < 0 || d->pad_r < 0 || d->pad_t > reach_h ||
        d->pad_b > reach_h || d->pad_l > reach_w || d->pad_r > reach_w)
        return "the depthwise padding must be within its kernel's reach";
    if (d->OH < 1 || d->OW < 1 || d->N < 1 || d->C < 1 || (e && e->C < 1))
        return "empty tensors";
    if (p) {
        if (!lc_gemm_is_pointwise(p) || p->groups != 1)
            return "the projection must be 1x1, stride 1, unpadded, one group";
        if (p->C != d->M || p->N != d->N || p->H != d->OH || p->W != d->OW || p->M < 1)
            return "the projection's shape does not chain to the depthwise's output";
        if (p->isa != d->isa)
            return "the three convolutions must use one ISA";
    }
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

/* Runs of consecutive bands per image: each run is one task, its bands in
 * order on one thread, each band keeping the halo rows the one before
 * computed; so a run's first band alone computes its halo (the `overlap`
 * expanded rows two adjacent bands both read: kH - 1 at stride 1).  Fixed
 * per image from its shape (never from the thread count: the same runs, so
 * the same bits, at any thread count): LC_IRB_RUNS shared out over the
 * batch, enough for 2-3 threads; fewer where the halos recomputed would add
 * more than 1/LC_IRB_HALO_SHARE to the image's expansion; and never one for
 * a lone image, whose bands would otherwise all fall to one thread when the
 * image fits one band of the cache budget (MobileNetV2's 144 x 56 x 56 in a
 * 2 MiB L2: the fused block ran no faster on 2 threads than on 1). */
#define LC_IRB_RUNS 6
#define LC_IRB_HALO_SHARE 8

static int64_t lc_irb_runs(const lc_conv_desc *d) {
    const int64_t overlap = (d->kH - 1) * d->dil_h + 1 - d->stride_h;
    int64_t runs = lc_max64(1, LC_IRB_RUNS / d->N);
    if (overlap > 0) runs = lc_min64(runs, 1 + d->H / (LC_IRB_HALO_SHARE * overlap));
    if (d->N == 1) runs = lc_max64(2, runs - runs % 2); /* even: shared out on 2 */
    return lc_min64(runs, d->OH);
}

int64_t lc_ir_block_band_rows(const lc_conv_desc *e, const lc_conv_desc *d,
                              const lc_conv_desc *p) {
    if (lc_ir_block_unsupported(e, d, p)) return 0;
    if (lc_irb_forced_band) return lc_min64(lc_irb_forced_band, d->OH);
    /* the budget in floats per expanded channel: a band's expanded rows (W
     * floats each), and with a projection its depthwise rows too (OW each):
     * the projection reads them back, so both buffers share the budget (the
     * expanded rows alone unchanged without one; without the expanding 1x1
     * the depthwise reads x in place and its rows alone count) */
    const int64_t fit = lc_blocking_get()->ir_band / (d->M * (int64_t)sizeof(float));
    const int64_t reach = (d->kH - 1) * d->dil_h;
    const int64_t first = (e ? (reach + 1) * d->W : 0) + (p ? d->OW : 0); /* the first output row's */
    const int64_t next = (e ? d->stride_h * d->W : 0) + (p ? d->OW : 0);  /* each further one's */
    /* rows too wide for the budget: one output row a band all the same (the
     * buffer then outgrows it; lc_ir_block_pays says whether that pays) */
    int64_t most = fit < first ? 1 : lc_min64((fit - first) / next + 1, d->OH);
    /* no fewer bands than the image's runs */
    most = lc_min64(most, lc_div_up(d->OH, lc_irb_runs(d)));
    /* as many bands as that takes, evened out (the last one not a sliver) */
    return lc_div_up(d->OH, lc_div_up(d->OH, most));
}

int lc_ir_block_pays(const lc_conv_desc *e, const lc_conv_desc *d) {
    if (!e || lc_ir_block_band_rows(e, d, NULL) < 1) return 0;
    if (lc_irb_forced_pays >= 0) return lc_irb_forced_pays;
    if (!lc_irb_plane_kernel(d)) return 0;
    const int64_t fit = lc_blocking_get()->ir_band / (e->M * d->W * (int64_t)sizeof(float));
    if (fit < (d->kH - 1) * d->dil_h + 1) return 0; /* not even one band fits the budget */
    const double expanded =
        (double)e->N * (double)e->M * (double)e->H * (double)e->W * sizeof(float);
    return expanded >= (double)lc_blocking_get()->ir_fuse_min;
}

/* The projection pays fused where the depthwise's output would not stay in
 * one core's L2 between two steps: the same threshold as the expansion's.
 * Without the expanding 1x1 (MobileNetV2's first block: depthwise 32 @112,
 * then 32>16) that is the whole rule, with the plane kernel serving the
 * depthwise as in a block that expands. */
int lc_ir_block_project_pays(const lc_conv_desc *e, const lc_conv_desc *d,
                             const lc_conv_desc *p) {
    if (lc_ir_block_unsupported(e, d, p) || lc_ir_block_band_rows(e, d, p) < 1) return 0;
    if (lc_irb_forced_pays >= 0) return lc_irb_forced_pays;
    if (e ? !lc_ir_block_pays(e, d) : !lc_irb_plane_kernel(d)) return 0;
    const double out = (double)d->N * (double)d->M * (double)d->OH * (double)d->OW * sizeof(float);
    return out >= (double)lc_blocking_get()->ir_fuse_min;
}

int64_t lc_ir_block_packed_floats(const lc_conv_desc *e) {
    int ok = 1;
    const int64_t n = lc_gemm_packed_floats(e, &ok);
    return ok ? n : -1;
}

void lc_ir_block_pack(const lc_conv_desc *e, const float *we, float *packed) {
    lc_gemm_pack_weights(e, we, packed);
}

/* Expanded rows a band buffer holds per channel: the largest band's (none
 * without the expanding 1x1: the depthwise reads x). */
static int64_t lc_irb_cap(const lc_conv_desc *e, const lc_conv_desc *d,
                          const lc_conv_desc *p) {
    return e ? lc_min64(d->H, lc_irb_rows_in(d, lc_ir_block_band_rows(e, d, p))) : 0;
}

/* Per-thread band buffer: cap rows of every expanded channel. */
static int64_t lc_irb_slice_bytes(const lc_conv_desc *e, const lc_conv_desc *d,
                                  const lc_conv_desc *p, int *ok) {
    return lc_aligned_floats_bytes(lc_mul(lc_mul(d->M, lc_irb_cap(e, d, p), ok), d->W, ok), ok);
}

/* Per-thread depthwise band buffer where a projection follows: a band's
 * output rows of every channel (0 without one). */
static int64_t lc_irb_dw_bytes(const lc_conv_desc *e, const lc_conv_desc *d,
                               const lc_conv_desc *p, int *ok) {
    if (!p) return 0;
    return lc_aligned_floats_bytes(
        lc_mul(lc_mul(d->M, lc_ir_block_band_rows(e, d, p), ok), d->OW, ok), ok);
}

static double lc_irb_work(const lc_conv_desc *e, const lc_conv_desc *d,
                          const lc_conv_desc *p) {
    return (e ? lc_conv_work(e) : 0.0) + lc_conv_work(d) + (p ? lc_conv_work(p) : 0.0);
}

static int64_t lc_irb_run_bands(const lc_conv_desc *d, int64_t band) {
    const int64_t bands = lc_div_up(d->OH, band);
    return lc_div_up(bands, lc_min64(bands, lc_irb_runs(d)));
}

static int64_t lc_irb_items(const lc_conv_desc *d, int64_t band) {
    return d->N * lc_div_up(lc_div_up(d->OH, band), lc_irb_run_bands(d, band));
}

int64_t lc_ir_block_workspace_bytes(const lc_conv_desc *e, const lc_conv_desc *d,
                                    const lc_conv_desc *p) {
    const int64_t band = lc_ir_block_band_rows(e, d, p);
    if (band < 1) return -1;
    int ok = 1;
    const int threads =
        lc_threads_used(d->nthreads, lc_irb_items(d, band), lc_irb_work(e, d, p));
    const int64_t slice =
        lc_add(lc_irb_slice_bytes(e, d, p, &ok), lc_irb_dw_bytes(e, d, p, &ok), &ok);
    const int64_t bytes = lc_mul(threads, slice, &ok);
    return ok ? bytes : -1;
}

typedef struct {
    lc_conv_desc e, d, p; /* clamp flags derived; e valid where `expand`, p where `project` */
    int expand;          /* the expanding 1x1 computes the band's rows (else x is read in place) */
    int project;         /* the projection runs on each band's depthwise rows */
    lc_ir_project proj;
    lc_epilogue kep;     /* the plane kernel's part of d's epilogue */
    int post;            /* the rest runs as the post-op */
    int plane;           /* the ISA's 3x3 plane kernel serves d */
    const float *x, *we, *be, *wd, *bd;
    float *y;
    void *ws;
    int64_t slice, dw_offset, band, run_bands, runs, cap;
} lc_irb_ctx;

/* Expanded rows [r0, r1) of image n into the buffer at row r0 - base (every
 * channel's cap rows apart): the 1x1 with its bias and activation, the
 * input rows read in place as the GEMM's right-hand side. */
static void lc_irb_expand(const lc_irb_ctx *t, int64_t n, int64_t r0, int64_t r1, int64_t base,
                          float *buf) {
    const lc_conv_desc *e = &t->e;
    const lc_isa_config *isa = e->isa;
    if (r1 <= r0) return;
    lc_gemm_panels_rows(isa, (size_t)e->M, 0, (size_t)e->M, (size_t)e->C, t->we,
                        t->x + (n * e->C * e->H + r0) * e->W, (size_t)(e->H * e->W),
                        (size_t)isa->nr, (size_t)((r1 - r0) * e->W), buf + (r0 - base) * e->W,
                        (size_t)(t->cap * e->W), (size_t)isa->nr, t->be, NULL, &e->epilogue,
                        LC_PANELS_EPILOGUE | LC_PANELS_WIDE, NULL);
}

/* The depthwise of output rows [oy0, oy0 + rows) from input rows [iy0,
 * iy1), `in` pointing at the first one's first channel, the channels
 * `in_plane` floats apart (the band buffer's expanded rows, or x's planes),
 * into yb (channels `plane` floats apart). */
static void lc_irb_depthwise(const lc_irb_ctx *t, int64_t oy0, int64_t rows, int64_t iy0,
                             int64_t iy1, const float *in, int64_t in_plane, float *yb,
                             int64_t plane) {
    const lc_conv_desc *d = &t->d;
    const lc_isa_config *isa = d->isa;
    const int64_t top = oy0 * d->stride_h - d->pad_t, h = iy1 - iy0, E = d->M;
    if (!t->plane) {
        /* the band as a small layer of its own: padded where the image is */
        lc_conv_desc sub = *d;
        sub.N = sub.C = sub.M = sub.groups = 1;
        sub.H = h;
        sub.OH = rows;
        sub.pad_t = iy0 - top;
        sub.pad_b = top + lc_irb_rows_in(d, rows) - iy1;
        sub.nthreads = 1;
        lc_depthwise_rows(&sub, in, in_plane, t->wd, t->bd, yb, plane, E);
        return;
    }
    for (int64_t c = 0; c < E; c++) {
        float *out = yb + c * plane;
        isa->dw3x3_plane(out, (size_t)rows, (size_t)d->OW, in + c * in_plane, (size_t)h,
                         (size_t)d->W, (size_t)d->stride_h, (size_t)d->stride_w,
                         (size_t)(iy0 - top), (size_t)d->pad_l, t->wd + c * 9,
                         t->bd ? t->bd[c] : 0.0f, &t->kep);
        if (t->post)
            isa->postop(out, out, (size_t)(rows * d->OW), NULL, 0.0f, &d->epilogue);
    }
}

/* The projection of output rows [oy0, oy0 + rows) of image n from their
 * depthwise rows in dw (channels band x OW floats apart). */
static void lc_irb_project(const lc_irb_ctx *t, int64_t n, int64_t oy0, int64_t rows,
                           const float *dw) {
    const lc_conv_desc *p = &t->p;
    const lc_isa_config *isa = p->isa;
    const int64_t at = (n * p->M * p->H + oy0) * p->W;
    lc_gemm_panels_rows(isa, (size_t)p->M, 0, (size_t)p->M, (size_t)p->C, t->proj.wp_packed, dw,
                        (size_t)(t->band * p->W), (size_t)isa->nr, (size_t)(rows * p->W),
                        t->y + at, (size_t)(p->H * p->W), (size_t)isa->nr, t->proj.bp,
                        t->proj.residual ? t->proj.residual + at : NULL, &p->epilogue,
                        LC_PANELS_EPILOGUE | LC_PANELS_WIDE, NULL);
}

/* One run of bands of one image, in order: each band's expanded rows
 * (those the band before left in the buffer moved to its top, the rest
 * computed below them; none without the expanding 1x1), then its
 * depthwise, then its projection if any. */
static void lc_irb_task(void *vctx, int64_t item, int thread) {
    const lc_irb_ctx *t = (const lc_irb_ctx *)vctx;
    const lc_conv_desc *d = &t->d;
    const int64_t n = item / t->runs, first = (item - n * t->runs) * t->run_bands;
    const int64_t E = d->M, W = d->W;
    float *buf = (float *)lc_thread_scratch(t->ws, t->slice, thread);
    float *dw = (float *)((char *)buf + t->dw_offset);
    int64_t base = 0, have = 0; /* the buffer holds image rows [base, base + have) */
    for (int64_t b = first; b < first + t->run_bands; b++) {
        const int64_t oy0 = b * t->band;
        if (oy0 >= d->OH) break;
        const int64_t rows = lc_min64(t->band, d->OH - oy0);
        const int64_t top = oy0 * d->stride_h - d->pad_t;
        const int64_t iy0 = lc_max64(0, top);
        const int64_t iy1 = lc_min64(d->H, top + lc_irb_rows_in(d, rows));
        /* the depthwise's input rows: x's planes in place, or the band
         * buffer's expanded rows */
        const float *in;
        int64_t in_plane;
        if (!t->expand) {
            in = t->x + (n * E * d->H + iy0) * W;
            in_plane = d->H * W;
        } else {
            /* keep rows [iy0, base + have) from the band before, at the top */
            const int64_t keep = b > first ? lc_max64(0, base + have - iy0) : 0;
            if (keep > 0 && iy0 > base)
                for (int64_t c = 0; c < E; c++)
                    memmove(buf + c * t->cap * W, buf + (c * t->cap + iy0 - base) * W,
                            (size_t)(keep * W) * sizeof(float));
            base = iy0;
            lc_irb_expand(t, n, iy0 + keep, iy1, base, buf);
            have = iy1 - iy0;
            in = buf;
            in_plane = t->cap * W;
        }
        if (t->project) {
            lc_irb_depthwise(t, oy0, rows, iy0, iy1, in, in_plane, dw, t->band * d->OW);
            lc_irb_project(t, n, oy0, rows, dw);
        } else {
            lc_irb_depthwise(t, oy0, rows, iy0, iy1, in, in_plane,
                             t->y + (n * E * d->OH + oy0) * d->OW, d->OH * d->OW);
        }
    }
}

int lc_ir_block_run(const lc_conv_desc *e, const lc_conv_desc *d, const lc_conv_desc *p,
                    const float *x, const float *we_packed, const float *be, const float *wd,
                    const float *bd, const lc_ir_project *proj, float *y, void *workspace,
                    int64_t workspace_bytes) {
    const int64_t need = lc_ir_block_workspace_bytes(e, d, p);
    if (need < 0 || workspace_bytes < need || (need > 0 && !workspace) || !p != !proj ||
        (proj && !proj->wp_packed) || (e && !we_packed))
        return LC_ERR_UNSUPPORTED;
    lc_irb_ctx t;
    memset(&t, 0, sizeof t);
    t.expand = e != NULL;
    if (e) {
        t.e = *e;
        t.e.epilogue.clamp = e->epilogue.act == LC_ACT_CLAMP;
    }
    t.d = *d;
    t.project = p != NULL;
    if (p) {
        t.p = *p;
        t.p.epilogue.clamp = p->epilogue.act == LC_ACT_CLAMP;
        t.proj = *proj;
    }
    /* the drivers see `clamp` set exactly when the activation is a clamp */
    t.d.epilogue.clamp = d->epilogue.act == LC_ACT_CLAMP;
    t.kep = lc_kernel_epilogue(&t.d.epilogue, 0);
    t.post = lc_needs_postop(&t.d.epilogue, 0);
    t.plane = lc_irb_plane_kernel(d);
    t.x = x; t.we = we_packed; t.be = be; t.wd = wd; t.bd = bd; t.y = y;
    t.ws = workspace;
    int ok = 1;
    t.dw_offset = lc_irb_slice_bytes(e, d, p, &ok);
    t.slice = t.dw_offset + lc_irb_dw_bytes(e, d, p, &ok);
    t.band = lc_ir_block_band_rows(e, d, p);
    t.cap = lc_irb_cap(e, d, p);
    t.run_bands = lc_irb_run_bands(d, t.band);
    t.runs = lc_div_up(lc_div_up(d->OH, t.band), t.run_bands);
    lc_parallel_for(d->nthreads, lc_irb_items(d, t.band), lc_irb_work(e, d, p), lc_irb_task, &t);
    return LC_OK;
}
