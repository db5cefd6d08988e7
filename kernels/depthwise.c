/* Depthwise convolution (groups == C, any channel multiplier): output channel
 * o reads input channel o / multiplier.  Six paths, per layer:
 *  - planes of at most LC_DW_TINY_PIXELS pixels, when the ISA has a dw_tiny
 *    kernel: a plane per vector (kernels/depthwise_tiny.c);
 *  - 3x3, stride 1 or 2, dilation 1, planes small enough (7x7, 14x14; at
 *    stride 2 14x14 -> 7x7), when the ISA has a multi-plane kernel that
 *    takes them: runs of channels per call
 *    (lc_dw_planes_run);
 *  - 3x3, dilation 1, stride_w 1 or 2: the ISA's whole-plane kernel when it
 *    has one, which does its borders in vector code;
 *  - any other kernel, at least a vector's width of channels: channel
 *    blocks (kernels/depthwise_cblock.c), when its row buffers fit;
 *  - else: bands of output rows from a zero-padded copy of the
 *    input rows they read, in a fixed buffer on the stack (each stride-s row
 *    split into s phases so that every tap is a unit-stride vector load), by
 *    the ISA's band kernel: no border pixels left, whatever the kernel size;
 *  - rows too wide for that buffer: per output row, the interior by the
 *    ISA's row kernel and the border pixels here with bounds checks.
 * The fused epilogue's post-op (activations, residual) runs on each band or
 * plane right after the kernel, while it is in cache.  No workspace: the band
 * buffer is LC_DW_BAND_FLOATS floats of stack.
 * The algorithm also runs grouped layers with a few channels per group
 * (groups != C): kernels/grouped.c, over the same band layout. */
#include <string.h>
#include "internal.h"
#include "isa_build.h"

/* The band buffer: 24 KiB, in L1 next to the output rows it feeds, and small
 * enough for any thread's stack. */
#define LC_DW_BAND_FLOATS 6144

typedef struct {
    const lc_conv_desc *d;   /* epilogue.clamp: what the kernels apply */
    const float *x, *w, *bias, *res;
    float *y;
    lc_dw3x3_plane_fn plane; /* the ISA's 3x3 plane kernel when it serves this layer, else NULL */
    lc_epilogue ep;          /* the whole epilogue, for the post-op */
    int post;                /* the post-op runs after the kernels */
    float *stage;            /* res == y with rows wider than LC_DW_STAGE: OW floats per thread */
    /* band path (band_rows > 0): padded rows laid out by g, band_rows
     * output rows per band */
    lc_band_geom g;
    int64_t band_rows, chunk;
} lc_dw_ctx;

/* A residual that is the output itself is read row by row before the row is
 * stored: the row (band) is computed into a staging buffer first, on the
 * stack up to this many floats. */
#define LC_DW_STAGE 2048

int lc_band_geom_init(const lc_conv_desc *d, lc_band_geom *g) {
    const int64_t sw = d->stride_w, reach_w = (d->kW - 1) * d->dil_w;
    if (d->kW > LC_BAND_MAX_KW || sw > LC_BAND_MAX_SW) return 0;
    /* a phase holds the outputs' columns and the furthest tap position, each
     * rounded up to the kernel's vector slack (lc_dw_band_fn's read
     * contract); a multiple of 16 floats, so rows stay 64-byte aligned */
    g->wq = (lc_div_up(d->OW, LC_DW_BAND_LANES) + lc_div_up(reach_w / sw + 1, LC_DW_BAND_LANES)) *
            LC_DW_BAND_LANES;
    g->rs = sw * g->wq;
    for (int64_t ph = 0; ph < sw; ph++) {
        const int64_t ix0 = ph - d->pad_l;
        int64_t lo = ix0 >= 0 ? 0 : lc_div_up(-ix0, sw);
        int64_t hi = ix0 < d->W ? lc_div_up(d->W - ix0, sw) : 0;
        g->phase_hi[ph] = lc_min64(hi, g->wq);
        g->phase_lo[ph] = lc_min64(lo, g->phase_hi[ph]);
    }
    for (int64_t kx = 0; kx < d->kW; kx++) {
        const int64_t c = kx * d->dil_w;
        g->coff[kx] = (size_t)((c % sw) * g->wq + c / sw);
    }
    return 1;
}

/* Sets up the band path when the padded rows of at least one output row fit
 * the buffer; else leaves band_rows 0. */
static void lc_dw_band_layout(lc_dw_ctx *t) {
    const lc_conv_desc *d = t->d;
    const int64_t reach_h = (d->kH - 1) * d->dil_h;
    t->band_rows = 0;
    if (!d->isa->dw_band || !lc_band_geom_init(d, &t->g)) return;
    const int64_t fit = LC_DW_BAND_FLOATS / t->g.rs; /* padded rows the buffer holds */
    if (fit < reach_h + 1) return;
    t->band_rows = lc_min64((fit - reach_h - 1) / d->stride_h + 1, d->OH);
    /* in place (res == y): each band goes through the stack stage first */
    if (t->res && t->res == t->y) t->band_rows = lc_min64(t->band_rows, LC_DW_STAGE / d->OW);
}

void lc_band_fill(const lc_conv_desc *d, const lc_band_geom *g, const float *in, int64_t iy0,
                  int64_t nrows, int pad_too, float *buf) {
    const int64_t sw = d->stride_w, wq = g->wq, rs = g->rs;
    const int64_t r_lo = lc_min64(nrows, lc_max64(0, -iy0));
    const int64_t r_hi = lc_max64(r_lo, lc_min64(nrows, d->H - iy0));
    if (pad_too) {
        memset(buf, 0, (size_t)(r_lo * rs) * sizeof(float));
        memset(buf + r_hi * rs, 0, (size_t)((nrows - r_hi) * rs) * sizeof(float));
    }
    if (r_hi <= r_lo) return;
    const float *src0 = in + (iy0 + r_lo) * d->W;
    for (int64_t ph = 0; ph < sw; ph++) {
        /* phase ph, position q holds image column ph - pad_l + q*sw: inside
         * the image for q in [lo, hi) */
        float *dp = buf + r_lo * rs + ph * wq;
        const int64_t lo = g->phase_lo[ph], hi = g->phase_hi[ph];
        if (pad_too)
            for (int64_t r = 0; r < r_hi - r_lo; r++) {
                for (int64_t q = 0; q < lo; q++) dp[r * rs + q] = 0.0f;
                for (int64_t q = hi; q < wq; q++) dp[r * rs + q] = 0.0f;
            }
        if (hi > lo)
            lc_phase_copy(d->isa, dp + lo, rs, src0 + ph - d->pad_l + lo * sw, d->W, r_hi - r_lo,
                          hi - lo, sw);
    }
}

void lc_phase_copy(const lc_isa_config *isa, float *dst, int64_t ldd, const float *src,
                   int64_t lds, int64_t rows, int64_t n, int64_t sw) {
    if (isa->strided_copy) {
        isa->strided_copy(dst, (size_t)ldd, src, (size_t)lds, (size_t)rows, (size_t)n, (size_t)sw);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        float *dr = dst + r * ldd;
        const float *sr = src + r * lds;
        if (sw == 1)
            for (int64_t q = 0; q < n; q++) dr[q] = sr[q];
        else
            for (int64_t q = 0; q < n; q++) dr[q] = sr[q * sw];
    }
}

/* Band path: item = a run of t->chunk planes (batch x output channel), one
 * buffer for the run.  A plane that is one band leaves the same padding in
 * the buffer for the next, so it is zeroed once per run. */
static void lc_dw_band_task(void *vctx, int64_t item, int thread) {
    const lc_dw_ctx *t = (const lc_dw_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    (void)thread;
    LC_ALIGNED_STACK(float, buf, LC_DW_BAND_FLOATS);
    LC_ALIGNED_STACK(float, stage, LC_DW_STAGE);
    const int64_t p0 = item * t->chunk, p1 = lc_min64(p0 + t->chunk, d->N * d->M);
    const int one_band = t->band_rows >= d->OH;
    const int64_t mult = d->M / d->C;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t n = p / d->M, o = p - n * d->M;
        const float *in = t->x + (n * d->C + o / mult) * d->H * d->W;
        const float *w = t->w + o * d->kH * d->kW;
        float *out = t->y + p * d->OH * d->OW;
        const float *res = t->res ? t->res + p * d->OH * d->OW : NULL;
        const int in_place = res != NULL && res == out;
        const float bias = t->bias ? t->bias[o] : 0.0f;
        for (int64_t oy0 = 0; oy0 < d->OH; oy0 += t->band_rows) {
            const int64_t rows = lc_min64(t->band_rows, d->OH - oy0);
            const int64_t nrows = (rows - 1) * d->stride_h + (d->kH - 1) * d->dil_h + 1;
            lc_band_fill(d, &t->g, in, oy0 * d->stride_h - d->pad_t, nrows, !one_band || p == p0, buf);
            float *dst = in_place ? stage : out + oy0 * d->OW;
            d->isa->dw_band(dst, (size_t)d->OW, (size_t)rows, (size_t)d->OW, buf,
                            (size_t)(d->stride_h * t->g.rs), (size_t)(d->dil_h * t->g.rs), t->g.coff,
                            w, (size_t)d->kH, (size_t)d->kW, bias, &d->epilogue);
            if (t->post)
                d->isa->postop(out + oy0 * d->OW, dst, (size_t)(rows * d->OW),
                               res ? res + oy0 * d->OW : NULL, 0.0f, &t->ep);
        }
    }
}

/* One border pixel, taps checked against the image. */
static float lc_dw_pixel(const lc_conv_desc *d, const float *in, const float *w, int64_t oy,
                         int64_t ox, float bias) {
    float acc = bias;
    for (int64_t ky = 0; ky < d->kH; ky++) {
        int64_t iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
        if (iy < 0 || iy >= d->H) continue;
        for (int64_t kx = 0; kx < d->kW; kx++) {
            int64_t ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
            if (ix >= 0 && ix < d->W) acc += w[ky * d->kW + kx] * in[iy * d->W + ix];
        }
    }
    return lc_clampf(acc, &d->epilogue);
}

/* Taps kx in [kx0, kx1) of output column ox land inside the image. */
static void lc_dw_kx_range(const lc_conv_desc *d, int64_t ox, int64_t *kx0, int64_t *kx1) {
    const int64_t ix0 = ox * d->stride_w - d->pad_l;
    *kx0 = ix0 >= 0 ? 0 : lc_min64(d->kW, lc_div_up(-ix0, d->dil_w));
    *kx1 = d->W - 1 - ix0 >= 0 ? lc_min64(d->kW, (d->W - 1 - ix0) / d->dil_w + 1) : 0;
    if (*kx1 < *kx0) *kx1 = *kx0;
}

/* A border pixel whose in-image taps are ky in [ky0, ky1), kx in [kx0, kx1):
 * no bounds checks left in the loop. */
static float lc_dw_border(const lc_conv_desc *d, const float *in, const float *w, int64_t iy0,
                          int64_t ky0, int64_t ky1, int64_t ox, int64_t kx0, int64_t kx1,
                          float bias) {
    const int64_t ix0 = ox * d->stride_w - d->pad_l;
    float acc = bias;
    for (int64_t ky = ky0; ky < ky1; ky++) {
        const float *row = in + (iy0 + ky * d->dil_h) * d->W + ix0;
        for (int64_t kx = kx0; kx < kx1; kx++) acc += w[ky * d->kW + kx] * row[kx * d->dil_w];
    }
    return lc_clampf(acc, &d->epilogue);
}

/* Border columns whose tap ranges are worked out once per task. */
#define LC_DW_BORDER_COLS 8

/* One output row whose in-image taps are ky in [ky0, ky1) (not empty):
 * the border columns here, the interior through the ISA's row kernel. */
static void lc_dw_row_taps(const lc_conv_desc *d, const float *in, const float *w, int64_t oy,
                           int64_t iy0, int64_t ky0, int64_t ky1, int64_t ox_lo, int64_t ox_hi,
                           int fast_borders, const int64_t *lkx0, const int64_t *lkx1,
                           const int64_t *rkx0, const int64_t *rkx1, float bias, float *orow) {
    if (fast_borders) {
        for (int64_t b = 0; b < ox_lo; b++)
            orow[b] = lc_dw_border(d, in, w, iy0, ky0, ky1, b, lkx0[b], lkx1[b], bias);
        for (int64_t b = 0; b < d->OW - ox_hi; b++)
            orow[ox_hi + b] = lc_dw_border(d, in, w, iy0, ky0, ky1, ox_hi + b, rkx0[b],
                                           rkx1[b], bias);
    } else {
        for (int64_t ox = 0; ox < ox_lo; ox++) orow[ox] = lc_dw_pixel(d, in, w, oy, ox, bias);
        for (int64_t ox = ox_hi; ox < d->OW; ox++) orow[ox] = lc_dw_pixel(d, in, w, oy, ox, bias);
    }
    if (ox_hi > ox_lo)
        d->isa->dw_row(orow + ox_lo, (size_t)(ox_hi - ox_lo),
                       in + (iy0 + ky0 * d->dil_h) * d->W + ox_lo * d->stride_w - d->pad_l,
                       (size_t)(d->dil_h * d->W), (size_t)(ky1 - ky0), w + ky0 * d->kW,
                       (size_t)d->kW, (size_t)d->stride_w, (size_t)d->dil_w, bias, &d->epilogue);
}

static void lc_dw_task(void *vctx, int64_t item, int thread) {
    const lc_dw_ctx *t = (const lc_dw_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    /* no divisions for batch 1 / multiplier 1: on 7x7 planes a channel is
     * ~100 cycles of work */
    int64_t n = 0, o = item;
    if (item >= d->M) {
        n = item / d->M;
        o = item - n * d->M;
    }
    const int64_t ci = d->M == d->C ? o : o / (d->M / d->C);
    const float *in = t->x + (n * d->C + ci) * d->H * d->W;
    const float *w = t->w + o * d->kH * d->kW;
    const int64_t yoff = (n * d->M + o) * d->OH * d->OW;
    float *out = t->y + yoff;
    const float *res = t->res ? t->res + yoff : NULL;
    const float bias = t->bias ? t->bias[o] : 0.0f;
    const int64_t sw = d->stride_w, dw = d->dil_w, reach = (d->kW - 1) * dw;
    /* in place (res == out): rows go through a staging row first */
    float stack_row[LC_DW_STAGE];
    float *stage = res != out ? NULL : t->stage ? (float *)lc_thread_scratch(t->stage, d->OW * (int64_t)sizeof(float), thread) : stack_row;
    if (t->plane && !stage) {
        /* the whole plane in one call, borders included */
        t->plane(out, (size_t)d->OH, (size_t)d->OW, in, (size_t)d->H, (size_t)d->W,
                 (size_t)d->stride_h, (size_t)sw, (size_t)d->pad_t, (size_t)d->pad_l, w, bias,
                 &d->epilogue);
        if (t->post)
            d->isa->postop(out, out, (size_t)(d->OH * d->OW), res, 0.0f, &t->ep);
        return;
    }
    /* interior columns: ox*sw - pad_l >= 0 and ox*sw - pad_l + reach <= W - 1 */
    int64_t ox_lo = lc_div_up(d->pad_l, sw);
    int64_t ox_hi = d->W - 1 - reach + d->pad_l >= 0 ? (d->W - 1 - reach + d->pad_l) / sw + 1 : 0;
    ox_lo = lc_min64(ox_lo, d->OW);
    ox_hi = lc_max64(lc_min64(ox_hi, d->OW), ox_lo);
    int64_t lkx0[LC_DW_BORDER_COLS], lkx1[LC_DW_BORDER_COLS];
    int64_t rkx0[LC_DW_BORDER_COLS], rkx1[LC_DW_BORDER_COLS];
    const int fast_borders = ox_lo <= LC_DW_BORDER_COLS && d->OW - ox_hi <= LC_DW_BORDER_COLS;
    if (fast_borders) {
        for (int64_t b = 0; b < ox_lo; b++) lc_dw_kx_range(d, b, &lkx0[b], &lkx1[b]);
        for (int64_t b = 0; b < d->OW - ox_hi; b++) lc_dw_kx_range(d, ox_hi + b, &rkx0[b], &rkx1[b]);
    }
    for (int64_t oy = 0; oy < d->OH; oy++) {
        float *orow = stage ? stage : out + oy * d->OW;
        const int64_t iy0 = oy * d->stride_h - d->pad_t;
        /* taps ky in [ky0, ky1) land inside the image (rows grow with ky) */
        int64_t ky0 = iy0 >= 0 ? 0 : lc_div_up(-iy0, d->dil_h);
        int64_t ky1 = d->H - 1 - iy0 >= 0 ? lc_min64(d->kH, (d->H - 1 - iy0) / d->dil_h + 1) : 0;
        if (ky1 <= ky0) {
            /* every tap of the row is padding */
            for (int64_t ox = 0; ox < d->OW; ox++) orow[ox] = lc_clampf(bias, &d->epilogue);
        } else {
            lc_dw_row_taps(d, in, w, oy, iy0, ky0, ky1, ox_lo, ox_hi, fast_borders, lkx0, lkx1,
                           rkx0, rkx1, bias, orow);
        }
        if (stage)
            d->isa->postop(out + oy * d->OW, stage, (size_t)d->OW, res + oy * d->OW, 0.0f, &t->ep);
    }
    if (t->post && !stage)
        d->isa->postop(out, out, (size_t)(d->OH * d->OW), res, 0.0f, &t->ep);
}

/* Small 3x3 planes (7x7, 14x14 at stride 1; 14x14 -> 7x7 at stride 2)
 * through the ISA's multi-plane
 * kernel: a task is a run of LC_DW_PLANES_RUN channels of one image, one
 * call, the post-op over the run's planes after it.  Per plane, a call of
 * the plane kernel and its task cost about what a 7x7 plane's arithmetic
 * does, a tenth of a 14x14 one's. */
#define LC_DW_PLANES_RUN 32

typedef struct {
    const lc_conv_desc *d; /* epilogue.clamp: what the kernel applies */
    const float *x, *w, *bias, *res;
    float *y;
    lc_epilogue ep;        /* the whole epilogue, for the post-op */
    int post;
    int64_t runs;          /* per image */
} lc_dw_planes_ctx;

static void lc_dw_planes_task(void *vctx, int64_t item, int thread) {
    const lc_dw_planes_ctx *t = (const lc_dw_planes_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    (void)thread;
    const int64_t n = item / t->runs, c0 = (item - n * t->runs) * LC_DW_PLANES_RUN;
    const int64_t count = lc_min64(LC_DW_PLANES_RUN, d->M - c0);
    const int64_t in_plane = d->H * d->W, out_plane = d->OH * d->OW;
    float *out = t->y + (n * d->M + c0) * out_plane;
    d->isa->dw3x3_planes(out, (size_t)out_plane, t->x + (n * d->C + c0) * in_plane,
                         (size_t)in_plane, (size_t)count, (size_t)d->OH, (size_t)d->OW,
                         (size_t)d->H, (size_t)d->W, (size_t)d->stride_h, (size_t)d->pad_t,
                         (size_t)d->pad_l,
                         t->w + c0 * 9, t->bias ? t->bias + c0 : NULL, &d->epilogue);
    if (t->post)
        d->isa->postop(out, out, (size_t)(count * out_plane),
                       t->res ? t->res + (n * d->M + c0) * out_plane : NULL, 0.0f, &t->ep);
}

/* Runs the layer through the multi-plane kernel when the ISA has one that
 * takes its geometry (3x3, stride 1 or 2 both ways, no channel multiplier,
 * not in place);
 * else returns 0.  d's epilogue is the kernel's part. */
static int lc_dw_planes_run(const lc_conv_desc *d, const lc_epilogue *whole, int post,
                            const float *x, const float *w, const float *bias, const float *res,
                            float *y) {
    if (!d->isa->dw3x3_planes || d->kH != 3 || d->kW != 3 || d->stride_h != d->stride_w ||
        d->stride_h > 2 || d->dil_h != 1 || d->dil_w != 1 || d->M != d->C || d->pad_t < 0 ||
        d->pad_l < 0 || (res && res == y))
        return 0;
    if (!d->isa->dw3x3_planes(NULL, 0, NULL, 0, 0, (size_t)d->OH, (size_t)d->OW, (size_t)d->H,
                              (size_t)d->W, (size_t)d->stride_h, (size_t)d->pad_t,
                              (size_t)d->pad_l, NULL, NULL, &d->epilogue))
        return 0;
    lc_dw_planes_ctx t;
    t.d = d; t.x = x; t.w = w; t.bias = bias; t.res = res; t.y = y;
    t.ep = *whole;
    t.post = post;
    t.runs = lc_div_up(d->M, LC_DW_PLANES_RUN);
    lc_parallel_for(d->nthreads, d->N * t.runs, lc_conv_work(d), lc_dw_planes_task, &t);
    return 1;
}

void lc_depthwise_rows(const lc_conv_desc *dp, const float *x, int64_t x_plane, const float *w,
                       const float *bias, float *y, int64_t y_plane, int64_t channels) {
    /* the layer's own choice of path, minus those that spread channels over
     * threads (tiny planes, channel blocks): the 3x3 plane kernel, else the
     * band kernel, else rows; set up once, then a task per channel */
    lc_conv_desc dk = *dp;
    const lc_conv_desc *d = &dk;
    dk.epilogue = lc_kernel_epilogue(&dp->epilogue, 0);
    lc_dw_ctx t;
    t.d = d; t.res = NULL; t.stage = NULL; t.chunk = 1;
    t.ep = dp->epilogue;
    t.post = lc_needs_postop(&dp->epilogue, 0);
    t.plane = d->isa->dw3x3_plane && d->kH == 3 && d->kW == 3 && d->dil_h == 1 &&
                      d->dil_w == 1 && (d->stride_w == 1 || d->stride_w == 2) &&
                      d->pad_t >= 0 && d->pad_l >= 0
                  ? d->isa->dw3x3_plane
                  : NULL;
    t.band_rows = 0;
    if (!t.plane) lc_dw_band_layout(&t);
    for (int64_t c = 0; c < channels; c++) {
        t.x = x + c * x_plane;
        t.y = y + c * y_plane;
        t.w = w + c * d->kH * d->kW;
        t.bias = bias ? bias + c : NULL;
        if (t.band_rows > 0) lc_dw_band_task(&t, 0, 0);
        else lc_dw_task(&t, 0, 0);
    }
}

int lc_depthwise_run(const lc_conv_desc *dp, const float *x, const float *w,
                     const float *bias, const float *res, float *y) {
    /* the kernels clamp only when nothing is added after them */
    lc_conv_desc dk = *dp;
    const lc_conv_desc *d = &dk;
    dk.epilogue = lc_kernel_epilogue(&dp->epilogue, res != NULL);
    lc_dw_ctx t;
    t.d = d; t.x = x; t.w = w; t.bias = bias; t.res = res; t.y = y;
    t.ep = dp->epilogue;
    t.post = lc_needs_postop(&dp->epilogue, res != NULL);
    t.stage = NULL;
    t.plane = d->isa->dw3x3_plane && d->kH == 3 && d->kW == 3 && d->dil_h == 1 &&
                      d->dil_w == 1 && (d->stride_w == 1 || d->stride_w == 2) &&
                      d->pad_t >= 0 && d->pad_l >= 0
                  ? d->isa->dw3x3_plane
                  : NULL;
    if (lc_depthwise_tiny_run(d, &dp->epilogue, x, w, bias, res, y)) return LC_OK;
    if (lc_dw_planes_run(d, &dp->epilogue, t.post, x, w, bias, res, y)) return LC_OK;
    if (!t.plane && lc_depthwise_cblock_run(d, &dp->epilogue, x, w, bias, res, y)) return LC_OK;
    t.band_rows = 0;
    if (!t.plane) lc_dw_band_layout(&t);
    if (t.band_rows > 0) {
        /* runs of planes: at least 4 per thread for balance, at most 64 */
        const int64_t planes = d->N * d->M;
        t.chunk = lc_max64(1, lc_min64(64, planes / (4 * (int64_t)lc_threads_used(d->nthreads, planes, lc_conv_work(d)))));
        lc_parallel_for(d->nthreads, lc_div_up(planes, t.chunk), lc_conv_work(d), lc_dw_band_task, &t);
        return LC_OK;
    }
    const int threads = lc_threads_used(d->nthreads, d->N * d->M, lc_conv_work(d));
    if (res == y && d->OW > LC_DW_STAGE) {
        /* in place with rows too wide for the stack: a row per thread */
        int ok = 1;
        t.stage = (float *)lc_aligned_alloc(lc_aligned_floats_bytes(lc_mul(threads, d->OW, &ok), &ok));
        if (!t.stage || !ok) {
            lc_aligned_free(t.stage);
            return LC_ERR_NOMEM;
        }
    }
    lc_parallel_for(threads, d->N * d->M, lc_conv_work(d), lc_dw_task, &t);
    lc_aligned_free(t.stage);
    return LC_OK;
}
