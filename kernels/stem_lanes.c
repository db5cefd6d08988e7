/* direct_lanes on layers of a few input channels (lc_stem_lanes_applies:
 * the stem of every image network, 3 channels on the full-size image), with
 * output pixels in the vector lanes (kernels/stem_lanes_template.h), as
 * ONNX Runtime runs its NCHW-input convolution.  With K = C x kH x kW of
 * 27-147 taps, Im2Col's GEMM is too short to hide the unwrapping of K x P
 * patch values, and direct_lanes' channel lanes write every output twice
 * (its tile, then the transpose into the planes).  Here each output is
 * written once, straight into its plane, with the bias and the clamp in
 * registers.
 *
 * A work item is (image, band of output rows).  It first copies the input
 * rows its band reads into a zero-padded buffer, each row split into its
 * stride's phases (column c of the padded row at phase c % s, position
 * c / s), so that every tap of a row of outputs is one unit-stride run of
 * the buffer whatever the stride and dilation.  Then for every output row
 * of the band, every block of R output channels and every run of at most V
 * pixel vectors of the row (near-equal runs: 7 vectors are 4 + 3), one
 * kernel call computes all K taps.  Weights are packed [channel block][k]
 * [R] (k in (c, ky, kx) order, missing channels zero, never stored).  Each
 * output is summed over k in that order by one call whatever the bands and
 * threads: the bits do not depend on the thread count.
 *
 * Epilogue: the clamp in the kernel when it is the whole of it; another
 * activation over the rows just written; a residual (possibly the output
 * itself) through a staging row, added by the post-op as the row is
 * written. */
#include <string.h>
#include "internal.h"
#include "leanconv/cpu.h"

/* Input channels at most (the stem's 3, and RGBA or grey images), the
 * horizontal stride (its phases), and taps K = C x kH x kW.  Short K only:
 * there channel lanes pay their padded copy and output transpose over too
 * few multiply-adds, and this kernel ran ahead (AVX-512, 1 thread, Intel
 * Xeon, load ~4: 3x3/2 3>64@224 0.46 against Im2Col's 0.52-0.54 ms and
 * channel lanes' 0.55, 3>32 0.235 against 0.26 and 0.33, 3>16 0.133 against
 * 0.16 and 0.27).  On the 7 x 7 and 11 x 11 stems (K = 147, 363) the channel
 * lanes' kernel runs at ~95% of the FMA peak and this one at 70-78% (its
 * unaligned input loads: offsets rounded to whole vectors ran it ~10%
 * faster), which its saved transpose does not make up: 3>64@224 7x7/2 1.64
 * against 1.84 ms, 11x11/4 1.01 against 1.22. */
#define LC_ST_MAX_C 4
#define LC_ST_MAX_SW 8
#define LC_ST_MAX_TAPS 64
/* output channels and pixel vectors a kernel call covers at most (the
 * template's unroll) */
#define LC_ST_MAX_R 8
#define LC_ST_MAX_V 6

typedef struct {
    int64_t wq;        /* floats a phase of a padded row (a multiple of 16) */
    int64_t rs;        /* floats a padded row: stride_w phases */
    int64_t bands;     /* per image, near-equal */
    int64_t band_rows; /* output rows of the largest band */
    int64_t in_rows;   /* padded input rows the largest band reads */
    int64_t items, threads;
} lc_st_tiles;
LC_TILING_FITS(lc_st_tiles);

/* From the filter alone (the packing is made before the input size is
 * known, kernels/conv_op.c). */
int lc_stem_lanes_applies(const lc_conv_desc *d) {
    const lc_isa_config *isa = d->isa;
    return isa && isa->stem_kernel && d->groups == 1 && d->stride_w <= LC_ST_MAX_SW &&
           isa->stem_rows <= LC_ST_MAX_R && isa->stem_vecs <= LC_ST_MAX_V &&
           ((d->C <= LC_ST_MAX_C && d->C * d->kH * d->kW <= LC_ST_MAX_TAPS) ||
            lc_stem_lanes_few_outputs(d));
}

/* The other layers it serves: an image-to-image network's last layer, a few
 * output channels (RGB, a mask, a depth map) from many input channels (a
 * fast-neural-style network's 32>3 9x9 at 224 x 224).  The GEMMs give each
 * output channel a row of their MR (3 of 8 rows used) and the channel lanes
 * one lane of 64, where the stem kernel's R rows are its 4 channels: AVX-512,
 * 1 thread, AMD EPYC Zen 4, 32>3 9x9 @232: Patch2Vec 28.5 ms, channel
 * lanes 73.5, Im2Col 353.  Any K: the taps' offsets then go in the
 * workspace. */
int lc_stem_lanes_few_outputs(const lc_conv_desc *d) {
    return d->isa && d->M <= d->isa->stem_rows && d->C > LC_ST_MAX_C;
}

/* Bytes of the taps' offset table in the workspace (none where it fits the
 * driver's own, LC_ST_MAX_TAPS). */
static int64_t lc_st_off_bytes(const lc_conv_desc *d, int *ok) {
    const int64_t K = lc_mul(lc_mul(d->C, d->kH, ok), d->kW, ok);
    return K <= LC_ST_MAX_TAPS ? 0 : lc_round_up(lc_mul(K, (int64_t)sizeof(size_t), ok), 64, ok);
}

static int64_t lc_st_in_rows(const lc_conv_desc *d, int64_t rows) {
    return (rows - 1) * d->stride_h + (d->kH - 1) * d->dil_h + 1;
}

void lc_stem_lanes_tiling(const lc_conv_desc *d, int64_t *tiling) {
    int ok = 1;
    lc_st_tiles b;
    const int64_t L = d->isa->stem_lanes, sw = d->stride_w;
    /* a phase holds the row's outputs in whole vectors plus the furthest
     * tap's shift (the kernel reads whole vectors: lc_stem_kernel_fn) */
    b.wq = lc_round_up(lc_round_up(d->OW, L, &ok) + ((d->kW - 1) * d->dil_w) / sw + 1, 16, &ok);
    b.rs = lc_mul(sw, b.wq, &ok);
    /* bands: a band's buffer within a quarter of L2 (the rest holds the
     * weights and the output rows being written), and at least two items a
     * thread where the images are fewer */
    /* (half of L2 for a few output channels: their weights and output rows
     * are small, and a quarter made 9 x 9 bands of one row, each input row
     * copied 9 times) */
    const int64_t l2 = (int64_t)lc_cpu_caches()->l2;
    const int64_t budget = lc_max64(32 * 1024, lc_stem_lanes_few_outputs(d) ? l2 / 2 : l2 / 4);
    const int64_t row_bytes = lc_mul(lc_mul(d->C, b.rs, &ok), (int64_t)sizeof(float), &ok);
    int64_t rows = d->OH;
    while (rows > 1 && lc_mul(row_bytes, lc_st_in_rows(d, rows), &ok) > budget)
        rows = lc_div_up(rows, 2);
    b.bands = lc_div_up(d->OH, rows);
    const int64_t T = d->nthreads;
    if (T > 1 && d->N < 2 * T) b.bands = lc_max64(b.bands, lc_div_up(2 * T, d->N));
    b.bands = lc_min64(b.bands, d->OH);
    b.band_rows = lc_div_up(d->OH, b.bands);
    b.in_rows = lc_st_in_rows(d, b.band_rows);
    b.items = lc_mul(d->N, b.bands, &ok);
    b.threads = lc_threads_used(d->nthreads, b.items, lc_conv_macs(d));
    memcpy(tiling, &b, sizeof b);
}

LC_TILING_GETTER(lc_st_tiles, lc_st_get_tiles, lc_stem_lanes_tiling)

int64_t lc_stem_lanes_items(const lc_conv_desc *d) { return lc_st_get_tiles(d).items; }

int64_t lc_stem_lanes_moved(const lc_conv_desc *d) {
    const lc_st_tiles b = lc_st_get_tiles(d);
    return b.bands * d->C * b.in_rows * b.rs;
}

int64_t lc_stem_lanes_lanes(const lc_conv_desc *d) {
    const int64_t L = d->isa->stem_lanes, R = d->isa->stem_rows;
    return lc_div_up(d->M, R) * R * d->OH * lc_div_up(d->OW, L) * L;
}

int64_t lc_stem_lanes_packed_floats(const lc_conv_desc *d, int *ok) {
    const int64_t R = d->isa->stem_rows;
    return lc_mul(lc_mul(lc_div_up(d->M, R) * R, d->C, ok), d->kH * d->kW, ok);
}

void lc_stem_lanes_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    const int64_t R = d->isa->stem_rows, K = d->C * d->kH * d->kW;
    const int64_t blocks = lc_div_up(d->M, R);
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t r = 0; r < R; r++) {
                const int64_t m = b * R + r;
                packed[(b * K + k) * R + r] = m < d->M ? w[m * K + k] : 0.0f;
            }
}

/* Floats of one thread's workspace: the band's buffer and a staging row
 * of R channels (for a residual). */
static void lc_st_parts(const lc_conv_desc *d, const lc_st_tiles *b, int64_t *in, int64_t *stage,
                        int *ok) {
    *in = lc_round_up(lc_mul(lc_mul(d->C, b->in_rows, ok), b->rs, ok), 16, ok);
    *stage = lc_round_up(lc_mul(d->isa->stem_rows, b->wq, ok), 16, ok);
}

int64_t lc_stem_lanes_workspace(const lc_conv_desc *d, int *ok) {
    const lc_st_tiles b = lc_st_get_tiles(d);
    int64_t in, stage;
    lc_st_parts(d, &b, &in, &stage, ok);
    return lc_add(lc_st_off_bytes(d, ok),
                  lc_mul(b.threads, lc_mul(lc_add(in, stage, ok), (int64_t)sizeof(float), ok), ok),
                  ok);
}

typedef struct {
    const lc_conv_desc *d;
    const float *x, *packed, *bias, *res;
    float *y;
    char *ws;
    lc_st_tiles b;
    lc_epilogue ep, kep; /* the whole epilogue; the kernel's part */
    int post;            /* an activation the kernel does not do, or a residual */
    int64_t in, stage;   /* floats */
    int64_t lo[LC_ST_MAX_SW], hi[LC_ST_MAX_SW]; /* a phase's in-image positions */
    size_t *off;                                /* each tap's offset in the buffer */
    size_t own_off[LC_ST_MAX_TAPS];             /* off, up to LC_ST_MAX_TAPS taps */
} lc_st_ctx;

/* The padded, phase-split input rows of output rows [oy0, oy0 + rows) of
 * image n into buf (channel c's padded row r at (c * in_rows + r) * rs). */
static void lc_st_fill(const lc_st_ctx *t, const float *xn, int64_t oy0, int64_t rows, float *buf) {
    const lc_conv_desc *d = t->d;
    const int64_t sw = d->stride_w, wq = t->b.wq, rs = t->b.rs, in_rows = t->b.in_rows;
    const int64_t nr = lc_st_in_rows(d, rows), top = oy0 * d->stride_h - d->pad_t;
    const int64_t r_lo = lc_min64(nr, lc_max64(0, -top));
    const int64_t r_hi = lc_max64(r_lo, lc_min64(nr, d->H - top));
    for (int64_t c = 0; c < d->C; c++) {
        float *bc = buf + c * in_rows * rs;
        memset(bc, 0, (size_t)(r_lo * rs) * sizeof(float));
        memset(bc + r_hi * rs, 0, (size_t)((nr - r_hi) * rs) * sizeof(float));
        if (r_hi <= r_lo) continue;
        const float *src0 = xn + (c * d->H + top + r_lo) * d->W;
        for (int64_t ph = 0; ph < sw; ph++) {
            /* phase ph, position q holds image column ph - pad_l + q * sw */
            float *dp = bc + r_lo * rs + ph * wq;
            const int64_t lo = t->lo[ph], hi = t->hi[ph];
            for (int64_t r = 0; r < r_hi - r_lo; r++) {
                for (int64_t q = 0; q < lo; q++) dp[r * rs + q] = 0.0f;
                for (int64_t q = hi; q < wq; q++) dp[r * rs + q] = 0.0f;
            }
            if (hi > lo)
                lc_phase_copy(d->isa, dp + lo, rs, src0 + ph - d->pad_l + lo * sw, d->W,
                              r_hi - r_lo, hi - lo, sw);
        }
    }
}

static void lc_st_task(void *vctx, int64_t item, int thread) {
    const lc_st_ctx *t = (const lc_st_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const lc_isa_config *isa = d->isa;
    const int64_t band = item % t->b.bands, n = item / t->b.bands;
    const int64_t oy0 = band * d->OH / t->b.bands, oy1 = (band + 1) * d->OH / t->b.bands;
    const int64_t L = isa->stem_lanes, R = isa->stem_rows, K = d->C * d->kH * d->kW;
    const int64_t P = d->OH * d->OW, OW = d->OW, rs = t->b.rs;
    const int64_t per_thread = t->in + t->stage;
    float *buf = (float *)lc_thread_scratch(t->ws, per_thread * (int64_t)sizeof(float), thread);
    float *stage = buf + t->in;
    lc_st_fill(t, t->x + n * d->C * d->H * d->W, oy0, oy1 - oy0, buf);
    /* the row's vectors in near-equal runs of at most V */
    const int64_t nvec = lc_div_up(OW, L), runs = lc_div_up(nvec, isa->stem_vecs);
    for (int64_t oy = oy0; oy < oy1; oy++) {
        const float *xr = buf + (oy - oy0) * d->stride_h * rs;
        for (int64_t m0 = 0; m0 < d->M; m0 += R) {
            const int64_t rows = lc_min64(R, d->M - m0);
            const float *wb = t->packed + m0 * K;
            const float *bp = NULL;
            float bias[LC_ST_MAX_R];
            if (t->bias) {
                for (int64_t r = 0; r < R; r++) bias[r] = t->bias[lc_min64(m0 + r, d->M - 1)];
                bp = bias;
            }
            float *yr = t->y + (n * d->M + m0) * P + oy * OW;
            for (int64_t u = 0; u < runs; u++) {
                const int64_t p0 = u * nvec / runs * L;
                const int64_t cnt = lc_min64(OW, (u + 1) * nvec / runs * L) - p0;
                if (t->res) {
                    /* staged, then added as the row is written (the residual
                     * may be the output itself) */
                    isa->stem_kernel((size_t)cnt, (size_t)rows, xr + p0, t->off, (size_t)K, wb,
                                     stage, (size_t)t->b.wq, bp, &t->kep);
                    for (int64_t r = 0; r < rows; r++)
                        isa->postop(yr + r * P + p0, stage + r * t->b.wq, (size_t)cnt,
                                    t->res + (yr - t->y) + r * P + p0, 0.0f, &t->ep);
                    continue;
                }
                isa->stem_kernel((size_t)cnt, (size_t)rows, xr + p0, t->off, (size_t)K, wb,
                                 yr + p0, (size_t)P, bp, &t->kep);
                if (t->post)
                    for (int64_t r = 0; r < rows; r++)
                        isa->postop(yr + r * P + p0, yr + r * P + p0, (size_t)cnt, NULL, 0.0f,
                                    &t->ep);
            }
        }
    }
}

int lc_stem_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                      const float *packed, const float *bias, const float *res, float *y,
                      char *ws) {
    int ok = 1;
    lc_st_ctx t;
    memcpy(&t.b, tiling, sizeof t.b);
    /* the taps' offsets first where they outgrow the driver's table, the
     * threads' buffers after them */
    const int64_t off_bytes = lc_st_off_bytes(d, &ok);
    t.off = off_bytes ? (size_t *)ws : t.own_off;
    t.d = d; t.x = x; t.packed = packed; t.bias = bias; t.res = res; t.y = y;
    t.ws = ws + off_bytes;
    t.ep = d->epilogue;
    t.kep = lc_kernel_epilogue(&d->epilogue, res != NULL);
    t.post = lc_needs_postop(&d->epilogue, res != NULL);
    lc_st_parts(d, &t.b, &t.in, &t.stage, &ok);
    const int64_t sw = d->stride_w, wq = t.b.wq;
    for (int64_t ph = 0; ph < sw; ph++) {
        const int64_t ix0 = ph - d->pad_l;
        const int64_t lo = ix0 >= 0 ? 0 : lc_div_up(-ix0, sw);
        const int64_t hi = ix0 < d->W ? lc_div_up(d->W - ix0, sw) : 0;
        t.hi[ph] = lc_min64(hi, wq);
        t.lo[ph] = lc_min64(lo, t.hi[ph]);
    }
    size_t k = 0;
    for (int64_t c = 0; c < d->C; c++)
        for (int64_t ky = 0; ky < d->kH; ky++)
            for (int64_t kx = 0; kx < d->kW; kx++) {
                const int64_t col = kx * d->dil_w;
                t.off[k++] = (size_t)((c * t.b.in_rows + ky * d->dil_h) * t.b.rs +
                                      (col % sw) * wq + col / sw);
            }
    lc_parallel_for(d->nthreads, t.b.items, lc_conv_macs(d), lc_st_task, &t);
    return LC_OK;
}
