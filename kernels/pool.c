/* Max and average pooling, one plane per task (see include/leanconv/pool.h).
 *
 * Per output row the window's rows are first reduced column by column (max
 * or sum) into one row buffer, then the columns of each window are reduced
 * from it.  For each output column the window's first and last in-image
 * input column are computed once per call (they do not depend on the row),
 * so the inner loops run over in-image positions only: no padding is
 * materialised and no position is tested. */
#include <math.h>
#include <stdlib.h>

#include "leanconv/pool.h"
#include "internal.h"
#include "pool_flat.h"

typedef struct {
    const lc_pool_desc *d;
    lc_pool_rows_fn rows_fn;          /* the ISA's row primitives, or NULL (portable loops) */
    lc_pool_cols_fn cols_fn;          /* (for strides 1 and 2) */
    const float *x;
    float *y;
    const int64_t *col_lo, *col_hi;   /* per output column: kernel taps [lo, hi) in the image */
    int64_t interior_a, interior_b;   /* output columns [a, b): every tap in the image */
    float *rows;                      /* per thread: row_floats floats */
    int64_t row_floats;               /* W, or block * OH * W for max_same_block */
    int same;                         /* max_same_block applies */
    int64_t block;                    /* its planes per task */
} lc_pool_ctx;

/* Kernel taps [lo, hi) of a window starting at `start` that land in [0, size). */
static void taps_in(int64_t start, int64_t k, int64_t dil, int64_t size, int64_t *lo,
                    int64_t *hi) {
    int64_t a = 0, b = k;
    while (a < k && start + a * dil < 0) a++;
    while (b > a && start + (b - 1) * dil >= size) b--;
    *lo = a;
    *hi = b;
}

/* Positions of a window inside [-pad_begin, size + pad_end) (count_include_pad). */
static int64_t taps_padded(int64_t start, int64_t k, int64_t dil, int64_t size,
                           int64_t pad_begin, int64_t pad_end) {
    int64_t n = 0;
    for (int64_t i = 0; i < k; i++) {
        const int64_t p = start + i * dil;
        n += p >= -pad_begin && p < size + pad_end;
    }
    return n;
}

/* A NaN sticks once taken (v != v takes it; nothing is greater than it
 * after); | rather than || keeps it free of branches, so loops of it vectorise. */
#define LC_MAX_NAN(m, v) (((v) > (m)) | ((v) != (v)) ? (v) : (m))

/* The window's rows [rlo, rhi) reduced column by column into r[0, W): max or
 * sum, contiguous and independent across columns (vectorised).  The columns
 * are then reduced per output from r, so each input is read kh times per
 * output row rather than kh * kw times per output. */
static void reduce_rows(const lc_pool_ctx *t, const float *x, int64_t h0, int64_t rlo,
                        int64_t rhi, float *restrict r) {
    const lc_pool_desc *d = t->d;
    const int64_t W = d->W;
    if (rhi <= rlo) {
        for (int64_t w = 0; w < W; w++) r[w] = d->is_max ? -INFINITY : 0.0f;
        return;
    }
    const float *restrict x0 = x + (h0 + rlo * d->dh) * W;
    if (t->rows_fn) {
        t->rows_fn(r, x0, (size_t)(d->dh * W), (size_t)(rhi - rlo), (size_t)W, d->is_max);
        return;
    }
    for (int64_t w = 0; w < W; w++) r[w] = x0[w];
    for (int64_t i = rlo + 1; i < rhi; i++) {
        const float *restrict xr = x + (h0 + i * d->dh) * W;
        if (d->is_max)
            for (int64_t w = 0; w < W; w++) r[w] = LC_MAX_NAN(r[w], xr[w]);
        else
            for (int64_t w = 0; w < W; w++) r[w] += xr[w];
    }
}

/* Max over the output columns [a, b) whose windows lie wholly inside the row
 * (the interior): tap by tap across the row, so neighbouring outputs are
 * independent (no chain of dependent maxes per output). */
static void max_interior(const lc_pool_ctx *t, const float *r, int64_t a, int64_t b,
                         float *yrow) {
    const lc_pool_desc *d = t->d;
    float *restrict out = yrow + a;
    const int64_t sw = d->sw, n = b - a;
    const float *in = r + (a * sw - d->pad_l);   /* + ow * sw >= 0 in the interior */
    if (t->cols_fn && sw <= 2) {
        t->cols_fn(out, in, (size_t)n, (size_t)d->kw, (size_t)d->dw, (size_t)sw, 1);
        return;
    }
    /* strides 1 and 2 as constants: the compiler then vectorises the loads
     * (stride 2 as two loads and a shuffle) */
#define LC_MAX_TAPS(S)                                                               \
    do {                                                                             \
        for (int64_t k = 0; k < n; k++) out[k] = in[k * (S)];                        \
        for (int64_t j = 1; j < d->kw; j++) {                                        \
            const float *restrict t = in + j * d->dw;                                \
            for (int64_t k = 0; k < n; k++) out[k] = LC_MAX_NAN(out[k], t[k * (S)]); \
        }                                                                            \
    } while (0)
    if (sw == 1)
        LC_MAX_TAPS(1);
    else if (sw == 2)
        LC_MAX_TAPS(2);
    else
        LC_MAX_TAPS(sw);
#undef LC_MAX_TAPS
}

/* Max pooling at stride 1 (no dilation) that keeps the width (OW == W, e.g.
 * 3x3 with padding 1), over `np` consecutive planes at once (np > 1 only when
 * OH == H too): the planes are one tall image of np * OH rows, reduced whole,
 * not row by row, so small planes (GoogLeNet's 8x8 and 4x4) do not pay a
 * row's or a plane's loop overheads each.  The rows whose windows are all
 * inside their plane are reduced into r as one contiguous run (rows near a
 * plane boundary get values from the neighbouring plane there, redone plane by
 * plane after); then the interior columns of every row as one run over the
 * flattened output (the outputs between a row's last and the next row's first
 * interior column are computed from neighbouring rows' values there, and
 * overwritten by the edge pass); then the edge columns one by one. */
static void max_same_block(const lc_pool_ctx *t, const float *x, float *y, float *r, int64_t np) {
    const lc_pool_desc *d = t->d;
    const int64_t W = d->W, H = d->H, OH = d->OH, a = t->interior_a, b = t->interior_b;
    int64_t ra = OH, rb = OH;   /* rows [ra, rb): every tap in the image */
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t rlo, rhi;
        taps_in(oh - d->pad_t, d->kh, 1, H, &rlo, &rhi);
        if (rlo == 0 && rhi == d->kh) {
            if (ra == OH) ra = oh;
            rb = oh + 1;
        }
    }
    if (rb > ra) {
        /* reads end at row rb - 1 - pad_t + kh - 1 <= H - 1 of the last plane */
        const float *restrict in = x + (ra - d->pad_t) * W;
        float *restrict rr = r + ra * W;
        const int64_t n = ((np - 1) * OH + rb - ra) * W;
        if (t->rows_fn) {
            t->rows_fn(rr, in, (size_t)W, (size_t)d->kh, (size_t)n, 1);
        } else {
            for (int64_t k = 0; k < n; k++) rr[k] = in[k];
            for (int64_t i = 1; i < d->kh; i++)
                for (int64_t k = 0; k < n; k++) rr[k] = LC_MAX_NAN(rr[k], in[i * W + k]);
        }
    }
    /* every plane's other rows (the run took those between two planes across
     * the boundary) */
    for (int64_t p = 0; p < np; p++)
        for (int64_t oh = 0; oh < OH; oh++) {
            if (oh == ra) oh = rb;
            if (oh >= OH) break;
            int64_t rlo, rhi;
            taps_in(oh - d->pad_t, d->kh, 1, H, &rlo, &rhi);
            reduce_rows(t, x + p * H * W, oh - d->pad_t, rlo, rhi, r + (p * OH + oh) * W);
        }
    const int64_t rows = np * OH;
    {
        /* windows of interior columns start at >= 0 and end at <= W - 1 of their
         * row, so every read stays inside r */
        const float *in = r + (a - d->pad_l);
        const int64_t n = (rows - 1) * W + b - a;
        float *restrict out = y + a;
        if (t->cols_fn) {
            t->cols_fn(out, in, (size_t)n, (size_t)d->kw, 1, 1, 1);
        } else {
            for (int64_t k = 0; k < n; k++) out[k] = in[k];
            for (int64_t j = 1; j < d->kw; j++) {
                const float *restrict tj = in + j;
                for (int64_t k = 0; k < n; k++) out[k] = LC_MAX_NAN(out[k], tj[k]);
            }
        }
    }
    for (int64_t oh = 0; oh < rows; oh++) {
        const float *row = r + oh * W;
        for (int64_t ow = 0; ow < W; ow++) {
            if (ow == a) ow = b;   /* the interior is done */
            if (ow >= W) break;
            const int64_t w0 = ow - d->pad_l;
            float m = -INFINITY;
            for (int64_t j = t->col_lo[ow]; j < t->col_hi[ow]; j++)
                m = LC_MAX_NAN(m, row[w0 + j]);
            y[oh * W + ow] = m;
        }
    }
}

/* One task of max_same_block: planes [item * block, ...) */
static void same_block(void *vctx, int64_t item, int thread) {
    const lc_pool_ctx *t = (const lc_pool_ctx *)vctx;
    const lc_pool_desc *d = t->d;
    const int64_t p0 = item * t->block;
    const int64_t np = d->planes - p0 < t->block ? d->planes - p0 : t->block;
    max_same_block(t, t->x + p0 * d->H * d->W, t->y + p0 * d->OH * d->OW,
                   (float *)lc_thread_scratch(t->rows, t->row_floats * (int64_t)sizeof(float), thread), np);
}

static void pool_plane(void *vctx, int64_t plane, int thread) {
    const lc_pool_ctx *t = (const lc_pool_ctx *)vctx;
    const lc_pool_desc *d = t->d;
    const float *x = t->x + plane * d->H * d->W;
    float *y = t->y + plane * d->OH * d->OW;
    float *r = (float *)lc_thread_scratch(t->rows, t->row_floats * (int64_t)sizeof(float), thread);
    /* the interior's windows all have kw in-image columns: max, or a sum with
     * one count per row (the ISA's column primitive, when there is one) */
    const int interior = t->interior_b > t->interior_a &&
                         (d->is_max || (t->cols_fn && d->sw <= 2));
    for (int64_t oh = 0; oh < d->OH; oh++) {
        const int64_t h0 = oh * d->sh - d->pad_t;
        int64_t rlo, rhi;
        taps_in(h0, d->kh, d->dh, d->H, &rlo, &rhi);
        const int64_t rows_padded = d->count_include_pad ?
            taps_padded(h0, d->kh, d->dh, d->H, d->pad_t, d->pad_b) : rhi - rlo;
        float *yrow = y + oh * d->OW;
        reduce_rows(t, x, h0, rlo, rhi, r);
        if (interior && d->is_max) {
            max_interior(t, r, t->interior_a, t->interior_b, yrow);
        } else if (interior) {
            const int64_t a = t->interior_a, n = t->interior_b - a;
            const float count = (float)(rows_padded * d->kw);
            t->cols_fn(yrow + a, r + (a * d->sw - d->pad_l), (size_t)n, (size_t)d->kw,
                       (size_t)d->dw, (size_t)d->sw, 0);
            for (int64_t k = 0; k < n; k++) yrow[a + k] = count > 0 ? yrow[a + k] / count : NAN;
        }
        for (int64_t ow = 0; ow < d->OW; ow++) {
            if (interior && ow == t->interior_a) {
                ow = t->interior_b - 1;   /* done above */
                continue;
            }
            const int64_t w0 = ow * d->sw - d->pad_l;
            const int64_t clo = t->col_lo[ow], chi = t->col_hi[ow];
            if (d->is_max) {
                float m = -INFINITY;
                for (int64_t j = clo; j < chi; j++) m = LC_MAX_NAN(m, r[w0 + j * d->dw]);
                yrow[ow] = m;
            } else {
                float s = 0.0f;
                for (int64_t j = clo; j < chi; j++) s += r[w0 + j * d->dw];
                const int64_t cols_padded = d->count_include_pad ?
                    taps_padded(w0, d->kw, d->dw, d->W, d->pad_l, d->pad_r) : chi - clo;
                const int64_t count = rows_padded * cols_padded;
                yrow[ow] = count > 0 ? s / (float)count : NAN;
            }
        }
    }
}

/* ---- whole planes through the ISA's plane primitive (lc_pool_plane_fn) ---- */

/* A pool's geometry with everything that depends on it alone, built once
 * (lc_pool_plan_new) and read-only after: the plane primitive's geometry
 * and its tables (row taps in the image, the divisor's row and column
 * factors: the counts pool_plane divides by; the form's masks and
 * divisors, pool_flat.h), in one block of `bytes`. */
struct lc_pool_plan {
    lc_pool_desc d;
    const lc_isa_config *isa;
    lc_pool_plane_fn fn;   /* NULL: pool_by_rows */
    lc_pool_plane_geom g;
    void *tables;
    int64_t bytes;
};

typedef struct {
    const lc_pool_plan *plan;
    const float *x;
    float *y;
    float *rows;        /* per thread: g.r_floats floats */
    int64_t items, in_plane, out_plane;
} lc_pool_planes_ctx;

/* Item i: planes [i * planes / items, (i + 1) * planes / items), so items
 * differ by at most one plane. */
static void planes_task(void *vctx, int64_t item, int thread) {
    const lc_pool_planes_ctx *t = (const lc_pool_planes_ctx *)vctx;
    const lc_pool_plan *pl = t->plan;
    const int64_t p0 = item * pl->d.planes / t->items;
    const int64_t np = (item + 1) * pl->d.planes / t->items - p0;
    float *r = (float *)lc_thread_scratch(t->rows, (int64_t)pl->g.r_floats * (int64_t)sizeof(float),
                                          thread);
    pl->fn(t->y + p0 * t->out_plane, t->x + p0 * t->in_plane, (size_t)np, &pl->g, r);
}

/* The table of g's form (pool_flat.h's layout): lane l of entry p is the
 * position q = (16 p + l) mod n of a run of planes of n positions, row
 * q / width and column q mod width (RUN: over the input plane; S2: over the
 * output plane of OWv columns a row, the column's first input column 2 col). */
static void build_table(const lc_pool_plane_geom *g, void *tab) {
    const size_t width = g->form == LC_POOL_FORM_RUN ? g->W : lc_pool_s2_width(g);
    const size_t n = (g->form == LC_POOL_FORM_RUN ? g->H : g->OH) * width;
    const size_t nm = lc_pool_table_masks(g);
    float *div = g->is_max ? NULL : (float *)tab;
    uint16_t *mask = (uint16_t *)((char *)tab + lc_pool_table_mask_offset(g));
    for (size_t p = 0; p < g->entries; p++) {
        uint16_t *m = mask + p * nm;
        for (size_t j = 0; j < nm; j++) m[j] = 0;
        for (size_t l = 0; l < 16; l++) {
            const size_t q = (16 * p + l) % n, row = q / width, col = q % width;
            const int32_t cc = g->form == LC_POOL_FORM_S2 && col >= g->OW ? 1 : g->col_cnt[col];
            if (div) div[16 * p + l] = (float)(g->row_cnt[row] * cc);
            if (g->form == LC_POOL_FORM_RUN) {
                for (size_t j = 0; j < g->kh; j++)   /* window row j in the plane */
                    m[j] |= (uint16_t)((row + j >= g->pad_t && row + j - g->pad_t < g->H) << l);
                for (size_t j = 0; j < g->kw; j++)   /* window column j in the row */
                    m[g->kh + j] |= (uint16_t)((col + j >= g->pad_l && col + j - g->pad_l < g->W)
                                               << l);
            } else {
                for (size_t j = 0; j < g->kw; j++)
                    m[j] |= (uint16_t)((2 * col + j >= g->pad_l && 2 * col + j - g->pad_l < g->W)
                                       << l);
                if (nm > g->kw) m[g->kw] |= (uint16_t)((col < g->OW) << l);   /* a real output */
            }
        }
    }
}

/* The plane primitive's geometry and tables, its row buffer's size, and the
 * form it runs (pool_flat.h lc_pool_form: decided here, once). */
static int plan_planes(lc_pool_plan *pl) {
    const lc_pool_desc *d = &pl->d;
    const int64_t lanes = 16;   /* the widest vector any plane primitive loads */
    const int64_t reach = (d->OW - 1) * d->sw + (d->kw - 1) * d->dw + 1;
    int64_t pitch = d->pad_l + d->W > reach ? d->pad_l + d->W : reach;
    pitch = (pitch + lanes - 1) / lanes * lanes;
    /* rows per chunk: about 16 KiB of row buffer (in L1 while its columns
     * are read), at least 16 vectors of stores before the first load */
    int64_t chunk = 4096 / pitch;
    if (chunk < 1) chunk = 1;
    int64_t r_floats = (chunk - 1) * pitch + d->sw * ((d->OW + lanes - 1) / lanes * lanes) +
                       (d->kw - 1) * d->dw + 2 * lanes;
    lc_pool_plane_geom *g = &pl->g;
    g->H = (size_t)d->H; g->W = (size_t)d->W; g->OH = (size_t)d->OH; g->OW = (size_t)d->OW;
    g->kh = (size_t)d->kh; g->kw = (size_t)d->kw; g->sh = (size_t)d->sh;
    g->sw = (size_t)d->sw; g->dh = (size_t)d->dh; g->dw = (size_t)d->dw;
    g->pad_t = (size_t)d->pad_t; g->pad_l = (size_t)d->pad_l;
    g->pitch = (size_t)pitch; g->chunk = (size_t)chunk;
    g->is_max = d->is_max;
    g->form = lc_pool_form(g, pl->isa->pool_plane_tabled);
    g->entries = lc_pool_table_entries(g);
    if (g->form != LC_POOL_FORM_ROWS)   /* the other forms' r (pool_flat.h; the one-pass none) */
        r_floats = lc_max64((int64_t)lc_pool_flat_r_floats(g), 16);
    g->r_floats = (size_t)r_floats;
    /* one block: the int32 tables, then (64-byte aligned) the form's */
    const int64_t ints = 3 * d->OH + d->OW;
    const int64_t head = (ints * (int64_t)sizeof(int32_t) + 63) / 64 * 64;
    const int64_t bytes = head + (int64_t)lc_pool_table_size(g, g->entries, lc_pool_table_masks(g));
    char *mem = (char *)lc_aligned_alloc(bytes);
    if (!mem) return LC_ERR_NOMEM;
    int32_t *tab = (int32_t *)mem;
    for (int64_t oh = 0; oh < d->OH; oh++) {
        const int64_t h0 = oh * d->sh - d->pad_t;
        int64_t lo, hi;
        taps_in(h0, d->kh, d->dh, d->H, &lo, &hi);
        tab[oh] = (int32_t)lo;
        tab[d->OH + oh] = (int32_t)hi;
        tab[2 * d->OH + oh] = (int32_t)(d->count_include_pad ?
            taps_padded(h0, d->kh, d->dh, d->H, d->pad_t, d->pad_b) : hi - lo);
    }
    for (int64_t ow = 0; ow < d->OW; ow++) {
        const int64_t w0 = ow * d->sw - d->pad_l;
        int64_t lo, hi;
        taps_in(w0, d->kw, d->dw, d->W, &lo, &hi);
        tab[3 * d->OH + ow] = (int32_t)(d->count_include_pad ?
            taps_padded(w0, d->kw, d->dw, d->W, d->pad_l, d->pad_r) : hi - lo);
    }
    g->row_lo = tab; g->row_hi = tab + d->OH; g->row_cnt = tab + 2 * d->OH;
    g->col_cnt = tab + 3 * d->OH;
    g->table = g->entries ? mem + head : NULL;
    if (g->entries) build_table(g, mem + head);
    pl->tables = mem;
    pl->bytes = bytes;
    return LC_OK;
}

/* The plane primitive over tasks of about 16 K outputs, balanced over the
 * threads; a row buffer per thread, allocated per call (the plan holds no
 * per-thread memory). */
static int pool_by_planes(const lc_pool_plan *pl, const float *x, float *y, int threads,
                          double work) {
    const lc_pool_desc *d = &pl->d;
    float *rows = (float *)malloc(sizeof(float) * pl->g.r_floats * (size_t)threads);
    if (!rows) return LC_ERR_NOMEM;
    lc_pool_planes_ctx t;
    t.plan = pl;
    t.x = x; t.y = y; t.rows = rows;
    t.in_plane = d->H * d->W; t.out_plane = d->OH * d->OW;
    /* items of about 16 K outputs, their count a multiple of the threads
     * (at least one item each): 64 planes of 56x56 at 2 threads made 13
     * items of 5 planes (7 against 6, one thread 35 planes of 64), now 14
     * items of 4 or 5 planes (32 each) */
    int64_t block = 16384 / (d->OH * d->OW);
    block = block < 1 ? 1 : block;
    int64_t items = (d->planes + block - 1) / block;
    items = (items + threads - 1) / threads * threads;
    t.items = items < d->planes ? items : d->planes;
    lc_parallel_for(threads, t.items, work, planes_task, &t);
    free(rows);
    return LC_OK;
}

/* Whether the plane primitive takes this geometry: column strides 1 and 2,
 * the windows' first row and column never past the padding (a row buffer
 * offset by pad_l, rows addressed from oh * sh - pad_t), counts in int32. */
static int plane_fits(const lc_isa_config *isa, const lc_pool_desc *d) {
    return isa && isa->pool_plane && (d->sw == 1 || d->sw == 2) && d->pad_t >= 0 &&
           d->pad_l >= 0 && d->pad_l < (d->kw - 1) * d->dw + 1 && d->kh * d->kw < (1 << 20) &&
           d->W < ((int64_t)1 << 28) && d->OH < ((int64_t)1 << 28);
}

/* A pooling call's work for lc_threads_used, in multiply-add equivalents (its
 * unit: about 25 a ns on a Zen 5 core): the window taps, plus a fixed cost
 * per output row -- the row's loops, table reads and part-filled vectors at
 * its ends -- which on small planes outweighs the taps.  150 fits the
 * AVX-512 plane primitive's one-thread times on data in its own caches
 * (_core.pool2d, Zen 5): 3x3/2 on 192@32 30 us, on 480@16 26 us, on 64@63
 * 33 us; 2x2/2 on 832@8 20 us, 0.5-1.5 ns a row.  Counting taps alone ran
 * all but the first of GoogLeNet's pools on one thread at 2 threads (each
 * under the 2 x 262144 a split needs, kernels/parallel.c).  Inside a model
 * at 2 threads a pool's input was written by both threads, half of it in
 * the other core's L2, and one thread reading all of it is slower than at
 * 1 thread: SqueezeNet's last pool (3x3/2 on 256@15) took 18.4 us there
 * against 12.9 (bench/region_trace.py).  250 a row splits it. */
#define LC_POOL_ROW_MACS 250.0

static double pool_work(const lc_pool_desc *d) {
    const double rows = (double)d->planes * (double)d->OH;
    return rows * ((double)d->OW * (double)(d->kh * d->kw) + LC_POOL_ROW_MACS);
}

/* The row loops (pool_plane, max_same_block): a plane or a block of planes a
 * task, with the ISA's row primitives where it has them. */
static int pool_by_rows(const lc_isa_config *isa, const lc_pool_desc *d, const float *x, float *y,
                        int threads, double work) {
    int64_t *cols = (int64_t *)malloc(sizeof(int64_t) * 2 * (size_t)d->OW);
    if (!cols) return LC_ERR_NOMEM;
    for (int64_t ow = 0; ow < d->OW; ow++)
        taps_in(ow * d->sw - d->pad_l, d->kw, d->dw, d->W, &cols[ow], &cols[d->OW + ow]);
    lc_pool_ctx t;
    t.d = d; t.x = x; t.y = y; t.col_lo = cols; t.col_hi = cols + d->OW;
    t.rows_fn = isa ? isa->pool_rows : NULL;
    t.cols_fn = isa ? isa->pool_cols : NULL;
    /* the interior is one run of columns (windows move right with ow) */
    t.interior_a = t.interior_b = 0;
    for (int64_t ow = 0; ow < d->OW; ow++) {
        if (cols[ow] == 0 && cols[d->OW + ow] == d->kw) {
            if (t.interior_b == t.interior_a) t.interior_a = ow;
            t.interior_b = ow + 1;
        } else if (t.interior_b > t.interior_a) {
            break;
        }
    }
    t.same = d->is_max && d->sh == 1 && d->sw == 1 && d->dh == 1 && d->dw == 1 &&
             d->OW == d->W && t.interior_b > t.interior_a;
    /* planes per task of max_same_block: about 16 KiB of output (small planes
     * share the row and plane overheads), one plane unless OH == H */
    t.block = 1;
    if (t.same && d->OH == d->H) {
        t.block = 4096 / (d->OH * d->W);
        t.block = t.block < 1 ? 1 : t.block > d->planes ? d->planes : t.block;
        /* keep a task per thread */
        const int64_t per_thread = (d->planes + threads - 1) / threads;
        if (t.block > per_thread) t.block = per_thread > 0 ? per_thread : 1;
    }
    t.row_floats = t.same ? t.block * d->OH * d->W : d->W;
    float *rows = (float *)malloc(sizeof(float) * (size_t)(t.row_floats * threads));
    if (!rows) {
        free(cols);
        return LC_ERR_NOMEM;
    }
    t.rows = rows;
    if (t.same)
        lc_parallel_for(threads, (d->planes + t.block - 1) / t.block, work, same_block, &t);
    else
        lc_parallel_for(threads, d->planes, work, pool_plane, &t);
    free(cols);
    free(rows);
    return LC_OK;
}


lc_pool_plan *lc_pool_plan_new(const lc_isa_config *isa, const lc_pool_desc *d) {
    lc_pool_plan *pl = (lc_pool_plan *)calloc(1, sizeof(lc_pool_plan));
    if (!pl) return NULL;
    pl->d = *d;
    pl->isa = isa;
    if (d->planes > 0 && d->OH > 0 && d->OW > 0 && plane_fits(isa, d)) {
        pl->fn = isa->pool_plane;
        if (plan_planes(pl) != LC_OK) {
            free(pl);
            return NULL;
        }
    }
    return pl;
}

int64_t lc_pool_plan_bytes(const lc_pool_plan *pl) {
    return pl ? (int64_t)sizeof(lc_pool_plan) + pl->bytes : 0;
}

int64_t lc_pool_plan_scratch_bytes(const lc_pool_plan *pl, int nthreads) {
    const lc_pool_desc *d = &pl->d;
    if (d->planes <= 0 || d->OH <= 0 || d->OW <= 0) return 0;
    const int64_t threads = lc_threads_used(nthreads, d->planes, pool_work(d));
    if (pl->fn) return threads * (int64_t)pl->g.r_floats * (int64_t)sizeof(float);
    /* pool_by_rows: the column tables, and a row (or max_same_block's block
     * of at most 4096 floats or one plane) per thread */
    const int same = d->is_max && d->sh == 1 && d->sw == 1 && d->dh == 1 && d->dw == 1 &&
                     d->OW == d->W;
    const int64_t rows = same ? lc_max64(d->OH * d->W, 4096) : d->W;
    return 2 * d->OW * (int64_t)sizeof(int64_t) + threads * rows * (int64_t)sizeof(float);
}

int lc_pool_plan_form(const lc_pool_plan *pl) {
    return pl->fn ? pl->g.form : -1;
}

int lc_pool_plan_run(const lc_pool_plan *pl, const float *x, float *y, int nthreads) {
    const lc_pool_desc *d = &pl->d;
    if (d->planes <= 0 || d->OH <= 0 || d->OW <= 0) return LC_OK;
    const double work = pool_work(d);
    const int threads = lc_threads_used(nthreads, d->planes, work);
    if (pl->fn) return pool_by_planes(pl, x, y, threads, work);
    return pool_by_rows(pl->isa, d, x, y, threads, work);
}

void lc_pool_plan_free(lc_pool_plan *pl) {
    if (!pl) return;
    lc_aligned_free(pl->tables);
    free(pl);
}

int lc_pool2d(const lc_isa_config *isa, const lc_pool_desc *d, const float *x, float *y,
              int nthreads) {
    lc_pool_plan *pl = lc_pool_plan_new(isa, d);
    if (!pl) return LC_ERR_NOMEM;
    const int rc = lc_pool_plan_run(pl, x, y, nthreads);
    lc_pool_plan_free(pl);
    return rc;
}

typedef struct {
    const float *x;
    float *y;
    int64_t hw, planes, block;   /* block: planes per task */
} lc_gap_ctx;

/* Eight running sums: independent lanes the compiler can keep in one vector
 * register without reassociating (the order is fixed by this code). */
static void gap_plane(const lc_gap_ctx *t, int64_t plane) {
    const float *x = t->x + plane * t->hw;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= t->hw; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < t->hw; i++) s += x[i];
    t->y[plane] = s / (float)t->hw;
}

static void gap_task(void *vctx, int64_t item, int thread) {
    const lc_gap_ctx *t = (const lc_gap_ctx *)vctx;
    (void)thread;
    const int64_t p1 = lc_min64((item + 1) * t->block, t->planes);
    for (int64_t p = item * t->block; p < p1; p++) gap_plane(t, p);
}

/* A pass streaming the tensor once, split as the other such passes
 * (internal.h's LC_WORK_PER_STREAMED_FLOAT, tasks of LC_STREAM_TASK_FLOATS):
 * counted as one addition a float, a model's last pool (1000@13x13 in
 * SqueezeNet, 1024@7x7) stayed on one thread at 2 threads, which read the
 * half of its input the other core had just written from that core's
 * cache: 17 -> 26 us in SqueezeNet at 2 threads against 1. */
int lc_global_avg_pool(const float *x, float *y, int64_t planes, int64_t hw, int nthreads) {
    if (planes <= 0 || hw <= 0) return LC_OK;
    lc_gap_ctx t;
    t.x = x; t.y = y; t.hw = hw; t.planes = planes;
    t.block = lc_max64(1, LC_STREAM_TASK_FLOATS / hw);
    const double work = (double)planes * (double)hw * LC_WORK_PER_STREAMED_FLOAT;
    const int threads = lc_threads_used(nthreads, lc_div_up(planes, t.block), work);
    t.block = lc_max64(1, lc_min64(t.block, lc_div_up(planes, threads)));
    lc_parallel_for(threads, lc_div_up(planes, t.block), work, gap_task, &t);
    return LC_OK;
}
