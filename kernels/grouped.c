/* Grouped convolutions with few input channels per group (ResNeXt's 32
 * groups of 4, RegNet's group width 8): run by the depthwise algorithm,
 * whose band path this generalises.  Per group the GEMM would be Mg x Cg
 * (4 x 4): the GEMM-family algorithms' MR x NR tiles and their packing
 * wasted on it.  Here each item, (image, group, band of output rows), copies
 * the group's Cg input planes' rows into a zero-padded, phase-split buffer
 * on the stack (the depthwise band layout, lc_band_geom: every tap a
 * unit-stride vector load whatever the padding and stride), and the ISA's
 * grouped band kernel accumulates blocks of the group's output channels
 * over Cg x kH x kW taps with broadcast weights, a row of output pixels in
 * the vector lanes.  The post-op (activations, residual) runs on each band
 * right after it.  Every output is computed whole by one item in a fixed
 * order: bitwise identical for any thread count. */
#include "internal.h"
#include "isa_build.h"

/* The band buffer: 48 KiB, the group's padded rows (Cg x 3 rows of 240
 * floats: 224-wide images at Cg 16 fit). */
#define LC_GROUPED_BAND_FLOATS 12288
/* In place (res == y): a band's outputs are staged here before the
 * residual they overwrite is read. */
#define LC_GROUPED_STAGE 4096

typedef struct {
    lc_dw_call c; /* c.d->epilogue.clamp: what the kernel applies */
    lc_band_geom g;
    int64_t cg, mg, band_rows, bands;
} lc_grouped_ctx;

/* Output rows a band holds (0: not even one fits the buffer, or the stage
 * when in place). */
static int64_t lc_grouped_band_rows(const lc_conv_desc *d, const lc_band_geom *g, int in_place) {
    const int64_t cg = d->C / d->groups, mg = d->M / d->groups;
    const int64_t reach_h = (d->kH - 1) * d->dil_h;
    const int64_t fit = LC_GROUPED_BAND_FLOATS / (cg * g->rs); /* padded rows per channel */
    if (fit < reach_h + 1) return 0;
    int64_t rows = lc_min64((fit - reach_h - 1) / d->stride_h + 1, d->OH);
    if (in_place) rows = lc_min64(rows, LC_GROUPED_STAGE / (mg * d->OW));
    /* bands of equal height (56 rows as 28 + 28, not 36 + 20): the threads'
     * static shares of items stay equal in work */
    return rows > 0 ? lc_div_up(d->OH, lc_div_up(d->OH, rows)) : 0;
}

int lc_grouped_supports(const lc_conv_desc *d) {
    return d->groups > 1 && d->groups != d->C && d->C % d->groups == 0 &&
           d->M % d->groups == 0 && d->C / d->groups <= LC_GROUPED_MAX_CG &&
           d->isa->grouped_band != NULL;
}

int64_t lc_grouped_row_lanes(const lc_conv_desc *d) {
    const int64_t L = d->isa->grouped_lanes > 0 ? d->isa->grouped_lanes : 1;
    return lc_div_up(d->OW, L) * L;
}

int64_t lc_grouped_items(const lc_conv_desc *d) {
    lc_band_geom g;
    if (!lc_grouped_supports(d) || !lc_band_geom_init(d, &g)) return 0;
    const int64_t rows = lc_grouped_band_rows(d, &g, 0);
    return rows > 0 ? d->N * d->groups * lc_div_up(d->OH, rows) : 0;
}

static void lc_grouped_task(void *vctx, int64_t item, int thread) {
    const lc_grouped_ctx *t = (const lc_grouped_ctx *)vctx;
    const lc_dw_call *c = &t->c;
    const lc_conv_desc *d = c->d;
    (void)thread;
    LC_ALIGNED_STACK(float, buf, LC_GROUPED_BAND_FLOATS);
    LC_ALIGNED_STACK(float, stage, LC_GROUPED_STAGE);
    const int64_t ng = item / t->bands, band = item - ng * t->bands;
    const int64_t n = ng / d->groups, grp = ng - n * d->groups;
    const int64_t oy0 = band * t->band_rows, rows = lc_min64(t->band_rows, d->OH - oy0);
    const int64_t nrows = (rows - 1) * d->stride_h + (d->kH - 1) * d->dil_h + 1;
    const int64_t chan_step = nrows * t->g.rs, plane = d->OH * d->OW;
    const float *in = c->x + (n * d->C + grp * t->cg) * d->H * d->W;
    for (int64_t ch = 0; ch < t->cg; ch++)
        lc_band_fill(d, &t->g, in + ch * d->H * d->W, oy0 * d->stride_h - d->pad_t, nrows, 1,
                     buf + ch * chan_step);
    const int64_t yoff = (n * d->M + grp * t->mg) * plane + oy0 * d->OW;
    float *out = c->y + yoff;
    const float *res = c->res ? c->res + yoff : NULL;
    const int in_place = res != NULL && res == out;
    float *dst = in_place ? stage : out;
    const int64_t dst_plane = in_place ? rows * d->OW : plane;
    d->isa->grouped_band(dst, (size_t)dst_plane, (size_t)d->OW, (size_t)rows, (size_t)d->OW,
                         (size_t)t->mg, buf, (size_t)chan_step, (size_t)t->cg,
                         (size_t)(d->stride_h * t->g.rs), (size_t)(d->dil_h * t->g.rs), t->g.coff,
                         c->w + grp * t->mg * t->cg * d->kH * d->kW, (size_t)d->kH, (size_t)d->kW,
                         c->bias ? c->bias + grp * t->mg : NULL, &d->epilogue);
    if (c->post)
        for (int64_t m = 0; m < t->mg; m++)
            d->isa->postop(out + m * plane, dst + m * dst_plane, (size_t)(rows * d->OW),
                           res ? res + m * plane : NULL, 0.0f, &c->ep);
}

int lc_grouped_run(const lc_conv_desc *dp, const float *x, const float *w, const float *bias,
                   const float *res, float *y) {
    /* the kernel clamps only when nothing is added after it */
    lc_conv_desc dk = *dp;
    const lc_conv_desc *d = &dk;
    dk.epilogue = lc_kernel_epilogue(&dp->epilogue, res != NULL);
    lc_grouped_ctx t;
    t.c = lc_dw_call_of(d, &dp->epilogue, x, w, bias, res, y);
    t.cg = d->C / d->groups;
    t.mg = d->M / d->groups;
    t.band_rows = 0;
    if (lc_grouped_supports(d) && lc_band_geom_init(d, &t.g))
        t.band_rows = lc_grouped_band_rows(d, &t.g, res != NULL && res == y);
    /* rows too wide for the buffer (or, in place, the stage): the naive loops */
    if (t.band_rows <= 0) return lc_direct_run(dp, x, w, bias, res, y);
    t.bands = lc_div_up(d->OH, t.band_rows);
    lc_parallel_for(d->nthreads, d->N * d->groups * t.bands, lc_conv_work(d), lc_grouped_task,
                    &t);
    return LC_OK;
}
