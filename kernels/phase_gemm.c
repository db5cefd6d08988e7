/* Phase GEMM (EXPERIMENT, measured slower than Im2Col on AVX-512 Zen 5; see
 * docs/performance.md "Where the time goes"): a direct convolution with no patch unwrapping, for strided
 * layers (3x3/2, 1x1/2 downsampling) where building the patch matrix is
 * 15-20% of Im2Col's time.
 *
 * The input is split once into its s x s stride phases, zero-padded: phase
 * (py, px) of channel c is the plane xp(c, py + s*qy, px + s*qx) of the
 * padded image, Hq x Wq.  Tap (ky, kx) of output pixel (oy, ox) then reads
 * phase ((ky*dh) % s, (kx*dw) % s) at (oy + ky*dh/s, ox + kx*dw/s): for a
 * fixed tap, the output pixels read one contiguous run of the phase plane,
 * if the output is taken "wide" (Wq columns per row, the last Wq - OW of
 * them junk).  So the convolution is one GEMM per tap, over the channels:
 *   Yw[Mg x OH*Wq] += W_tap[Mg x Cg] * X_tap[Cg x OH*Wq],
 * X_tap row c = the phase plane of channel c shifted by the tap's offset:
 * the image itself at row stride = one channel's phases (ldb), as the 1x1
 * path reads it.  The same micro-kernels run it; taps after the first
 * accumulate onto the wide result (lc_gemm_panels_rows in place).  The
 * epilogue pass copies the OW real columns of each row out to the output
 * planes with bias, residual and activation (the ISA's post-op), while the
 * block is in cache.
 *
 * Work: per image, the phase split (by channel), then items (group, pixel
 * chunk, channel block); each item runs every tap for its chunk, in order.
 * An output value is summed by the same kernel calls in the same order
 * however the items fall to threads (chunks are whole NR panels, so a
 * column's place in its panel never changes), and K is never split among
 * threads: bitwise identical results for any thread count.
 *
 * Workspace: the phase planes of one image (C x s*s x Hq x Wq floats, 64-byte
 * aligned), then per thread the wide result of one chunk (Mg rows x the
 * chunk's columns). */
#include <string.h>
#include "internal.h"

/* Bytes the wide result of one chunk aims to stay within (L2-resident
 * while the taps accumulate onto it). */
#define LC_PG_CHUNK_BYTES (128 * 1024)

typedef struct {
    int64_t s_h, s_w;      /* strides */
    int64_t Hq, Wq;        /* phase plane size */
    int64_t plane;         /* floats per phase plane */
    int64_t cstride;       /* floats per channel: s_h*s_w planes */
    int64_t wide;          /* wide output positions computed: (OH-1)*Wq + OW */
    int64_t chunk;         /* wide positions per chunk (a multiple of NR) */
    int64_t chunks;        /* chunks per (image, group) */
} lc_pg_geom;

static void lc_pg_geometry(const lc_conv_desc *d, lc_pg_geom *g, int *ok) {
    const int64_t nr = d->isa->nr, Mg = d->M / d->groups;
    g->s_h = d->stride_h;
    g->s_w = d->stride_w;
    g->Hq = d->OH + (d->kH - 1) * d->dil_h / g->s_h;
    g->Wq = d->OW + (d->kW - 1) * d->dil_w / g->s_w;
    g->plane = lc_mul(g->Hq, g->Wq, ok);
    g->cstride = lc_mul(lc_mul(g->s_h, g->s_w, ok), g->plane, ok);
    g->wide = lc_add(lc_mul(d->OH - 1, g->Wq, ok), d->OW, ok);
    const int64_t panels = lc_max64(1, LC_PG_CHUNK_BYTES / lc_max64(1, Mg * nr * 4));
    g->chunk = lc_min64(lc_mul(panels, nr, ok), lc_round_up(g->wide, nr, ok));
    g->chunks = lc_div_up(g->wide, g->chunk);
}

static int64_t lc_pg_taps(const lc_conv_desc *d) { return d->kH * d->kW; }

int64_t lc_phase_gemm_packed_floats(const lc_conv_desc *d, int *ok) {
    const int64_t Mg = d->M / d->groups;
    const int64_t per_tap = lc_mul(lc_round_up(Mg, d->isa->mr, ok), d->C / d->groups, ok);
    return lc_mul(lc_mul(d->groups, lc_pg_taps(d), ok), per_tap, ok);
}

void lc_phase_gemm_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    /* group g, tap t: the Mg x Cg matrix w[m][c][t] in the GEMM's A packing */
    int ok = 1;
    const size_t mr = (size_t)d->isa->mr, kc = (size_t)d->isa->kc;
    const size_t Mg = (size_t)(d->M / d->groups), Cg = (size_t)(d->C / d->groups);
    const size_t taps = (size_t)lc_pg_taps(d), mpad = (size_t)lc_round_up((int64_t)Mg, (int64_t)mr, &ok);
    for (size_t g = 0; g < (size_t)d->groups; g++)
        for (size_t t = 0; t < taps; t++) {
            float *pt = packed + (g * taps + t) * mpad * Cg;
            for (size_t m = 0; m < mpad; m++)
                for (size_t c = 0; c < Cg; c++)
                    pt[lc_packed_a_offset(Mg, Cg, mr, kc, m, c)] =
                        m < Mg ? w[((g * Mg + m) * Cg + c) * taps + t] : 0.0f;
        }
}

/* (group, chunk) items and the channel blocks each is split into. */
static int64_t lc_pg_items(const lc_conv_desc *d, const lc_pg_geom *g, int64_t *mchunks, int *ok) {
    const int64_t items = lc_mul(d->groups, g->chunks, ok);
    *mchunks = lc_row_chunks(items, d->nthreads, d->M / d->groups, d->isa->mr);
    return items;
}

static int64_t lc_pg_split_bytes(const lc_pg_geom *g, const lc_conv_desc *d, int *ok) {
    return lc_aligned_floats_bytes(lc_mul(d->C, g->cstride, ok), ok);
}

static int64_t lc_pg_slice_bytes(const lc_pg_geom *g, const lc_conv_desc *d, int *ok) {
    return lc_aligned_floats_bytes(lc_mul(d->M / d->groups, g->chunk, ok), ok);
}

int64_t lc_phase_gemm_workspace(const lc_conv_desc *d, int *ok) {
    lc_pg_geom g;
    int64_t mchunks;
    lc_pg_geometry(d, &g, ok);
    const int64_t items = lc_pg_items(d, &g, &mchunks, ok);
    const int threads = lc_threads_used(d->nthreads, lc_mul(items, mchunks, ok));
    return lc_add(lc_pg_split_bytes(&g, d, ok), lc_mul(threads, lc_pg_slice_bytes(&g, d, ok), ok),
                  ok);
}

typedef struct {
    const lc_conv_desc *d;
    lc_pg_geom g;
    const float *x, *packed, *bias, *res;
    float *y, *xs;
    char *slices;
    int64_t n, slice_bytes, items, mchunks, Mg, Cg, P;
} lc_pg_ctx;

/* Is phase (py, px) read by some tap?  (A 1x1/2 layer reads one of four.) */
static int lc_pg_phase_used(const lc_conv_desc *d, int64_t py, int64_t px) {
    int rows = 0, cols = 0;
    for (int64_t ky = 0; ky < d->kH; ky++) rows |= (ky * d->dil_h) % d->stride_h == py;
    for (int64_t kx = 0; kx < d->kW; kx++) cols |= (kx * d->dil_w) % d->stride_w == px;
    return rows && cols;
}

/* Channel c of image n into its phase planes (zero outside the image).  The
 * inside of a plane is one strided copy of all its rows (a call per row of
 * 15-30 floats cost as much as Im2Col's whole patch packing); the padding
 * columns and rows are zeroed around it. */
static void lc_pg_split_task(void *vctx, int64_t c, int thread) {
    const lc_pg_ctx *t = (const lc_pg_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const lc_pg_geom *g = &t->g;
    const int64_t sh = g->s_h, sw = g->s_w, Hq = g->Hq, Wq = g->Wq;
    const float *xc = t->x + (t->n * d->C + c) * d->H * d->W;
    float *dst = t->xs + c * g->cstride;
    (void)thread;
    for (int64_t py = 0; py < sh; py++)
        for (int64_t px = 0; px < sw; px++) {
            if (!lc_pg_phase_used(d, py, px)) continue;
            float *pl = dst + (py * sw + px) * g->plane;
            /* plane row qy reads image row py + sh*qy - pad_t, column qx
             * image column px + sw*qx - pad_l: the ranges inside the image */
            const int64_t y0 = lc_min64(Hq, lc_max64(0, lc_div_up(d->pad_t - py, sh)));
            const int64_t y1 = lc_max64(y0, lc_min64(Hq, lc_div_up(d->H + d->pad_t - py, sh)));
            const int64_t x0 = lc_min64(Wq, lc_max64(0, lc_div_up(d->pad_l - px, sw)));
            const int64_t x1 = lc_max64(x0, lc_min64(Wq, lc_div_up(d->W + d->pad_l - px, sw)));
            memset(pl, 0, (size_t)(y0 * Wq) * sizeof(float));
            memset(pl + y1 * Wq, 0, (size_t)((Hq - y1) * Wq) * sizeof(float));
            for (int64_t qy = y0; qy < y1; qy++) {
                float *row = pl + qy * Wq;
                for (int64_t qx = 0; qx < x0; qx++) row[qx] = 0.0f;
                for (int64_t qx = x1; qx < Wq; qx++) row[qx] = 0.0f;
            }
            if (y1 > y0 && x1 > x0) {
                const float *src = xc + (py + sh * y0 - d->pad_t) * d->W + (px + sw * x0 - d->pad_l);
                float *out = pl + y0 * Wq + x0;
                if (d->isa->strided_copy)
                    d->isa->strided_copy(out, (size_t)Wq, src, (size_t)(sh * d->W),
                                         (size_t)(y1 - y0), (size_t)(x1 - x0), (size_t)sw);
                else
                    for (int64_t qy = y0; qy < y1; qy++, out += Wq, src += sh * d->W)
                        lc_copy_strided(out, src, d->W, 0, sw, x1 - x0);
            }
        }
}

/* Rows [m0, m1) of the wide result of positions [u0, u0 + n) out to the
 * output planes: the real columns of each output row, with the epilogue. */
static void lc_pg_store(const lc_pg_ctx *t, const float *wide, int64_t ldw, int64_t grp,
                        int64_t m0, int64_t m1, int64_t u0, int64_t n) {
    const lc_conv_desc *d = t->d;
    const int64_t Wq = t->g.Wq, OW = d->OW;
    for (int64_t u = u0; u < u0 + n;) {
        const int64_t oy = u / Wq, ox = u % Wq;
        const int64_t run = lc_min64(Wq - ox, u0 + n - u);
        if (ox < OW) {
            const int64_t len = lc_min64(run, OW - ox);
            for (int64_t i = m0; i < m1; i++) {
                const int64_t o = grp * t->Mg + i;
                const int64_t off = (t->n * d->M + o) * t->P + oy * OW + ox;
                d->isa->postop(t->y + off, wide + i * ldw + (u - u0), (size_t)len,
                               t->res ? t->res + off : NULL, t->bias ? t->bias[o] : 0.0f,
                               &d->epilogue);
            }
        }
        u += run;
    }
}

static void lc_pg_gemm_task(void *vctx, int64_t item, int thread) {
    const lc_pg_ctx *t = (const lc_pg_ctx *)vctx;
    const lc_conv_desc *d = t->d;
    const lc_pg_geom *g = &t->g;
    const int64_t mchunk = item / t->items, gitem = item % t->items;
    const int64_t chunk = gitem % g->chunks, grp = gitem / g->chunks;
    int64_t m0, m1;
    lc_row_chunk_range(mchunk, t->mchunks, t->Mg, d->isa->mr, &m0, &m1);
    if (m0 >= m1) return;
    const int64_t u0 = chunk * g->chunk, n = lc_min64(g->chunk, g->wide - u0);
    float *wide = (float *)(t->slices + thread * t->slice_bytes);
    const int64_t nr = d->isa->nr, taps = lc_pg_taps(d);
    const int64_t a_tap = lc_div_up(t->Mg, d->isa->mr) * d->isa->mr * t->Cg;
    const float *xg = t->xs + grp * t->Cg * g->cstride + u0;
    const lc_epilogue none = lc_identity_epilogue();
    for (int64_t tap = 0; tap < taps; tap++) {
        const int64_t ky = tap / d->kW, kx = tap % d->kW;
        const int64_t ry = ky * d->dil_h, rx = kx * d->dil_w;
        const int64_t off = ((ry % g->s_h) * g->s_w + rx % g->s_w) * g->plane +
                            (ry / g->s_h) * g->Wq + rx / g->s_w;
        /* the first tap stores, the others accumulate onto it (in place) */
        lc_gemm_panels_rows(d->isa, (size_t)t->Mg, (size_t)m0, (size_t)m1, (size_t)t->Cg,
                            t->packed + (grp * taps + tap) * a_tap, xg + off,
                            (size_t)g->cstride, (size_t)nr, (size_t)n, wide, (size_t)n,
                            (size_t)nr, NULL, tap ? wide : NULL, &none, tap ? 1 : 0);
    }
    lc_pg_store(t, wide, n, grp, m0, m1, u0, n);
}

int lc_phase_gemm_run(const lc_conv_desc *d, const float *x, const float *packed,
                      const float *bias, const float *res, float *y, char *ws) {
    int ok = 1;
    lc_pg_ctx t;
    lc_pg_geometry(d, &t.g, &ok);
    t.d = d; t.x = x; t.packed = packed; t.bias = bias; t.res = res; t.y = y;
    t.xs = (float *)ws;
    t.slices = ws + lc_pg_split_bytes(&t.g, d, &ok);
    t.slice_bytes = lc_pg_slice_bytes(&t.g, d, &ok);
    t.items = lc_pg_items(d, &t.g, &t.mchunks, &ok);
    t.Mg = d->M / d->groups;
    t.Cg = d->C / d->groups;
    t.P = d->OH * d->OW;
    if (!ok) return LC_ERR_OVERFLOW;
    for (t.n = 0; t.n < d->N; t.n++) {
        lc_parallel_for(d->nthreads, d->C, lc_pg_split_task, &t);
        lc_parallel_for(d->nthreads, t.items * t.mchunks, lc_pg_gemm_task, &t);
    }
    return LC_OK;
}
