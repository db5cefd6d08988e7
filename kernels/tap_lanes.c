/* tap_lanes: direct_lanes on layers whose kernel taps read padding at most
 * outputs, computing only the (tap, output) pairs that read the input.
 *
 * deeplabv3's ASPP at 224 px runs a 3x3 convolution of dilation 12 on a
 * 14x14 map: each off-centre tap reads the input at 2 of the 14 rows (or
 * columns) and padding at the other 12, so 324 of the 1764 (tap, output)
 * pairs (18%) read the input.  direct_lanes and the GEMMs multiply the
 * padding's zeros too.  Here the output rows fall into classes (runs of rows
 * with the same kernel rows reading the input), the columns likewise, and
 * each (row class, column class) rectangle of outputs is convolved with its
 * own live taps only: direct_lanes' kernel (lc_dl_kernel_fn) with a 1 x 1
 * geometry, once per live tap, each pixel's offset into the unpadded input
 * (no padded copy), accumulating into the tile -- the first live tap starts
 * from the bias, the last applies the kernel's clamp -- which is then
 * written into the output planes row by row as direct_lanes writes its
 * segments (residual, activation).  Weights: direct_lanes' packing
 * ([group][channel block][c][ky][kx][CW]), a tap's read with the channel
 * stride kH*kW*CW.
 *
 * A work item is (image, group, channel block, band of output rows).  Each
 * output is summed over its live taps in (ky, kx) order, each over c in
 * order, whatever the bands and threads: the bits do not depend on the
 * thread count.  Workspace per thread: the tile and the staging segment
 * (CW x LC_TL_CHUNK floats each). */
#include <stdint.h>
#include <string.h>
#include "internal.h"

/* Output pixels a chunk (a rectangle of one class pair) holds at most. */
#define LC_TL_CHUNK 256
/* Kernel rows or columns at most (a class is a bit mask of them). */
#define LC_TL_MAX_K 32
/* Classes of rows (columns) at most: each kernel row reads the input over
 * one run of output rows, so the set changes at most 2 kH times. */
#define LC_TL_MAX_CLASSES (2 * LC_TL_MAX_K + 1)
/* Input channels a group at least: each (tap, chunk) call's C x CW weights
 * per R pixels are worth its call (MobileNetV3's dilated depthwise 5x5
 * layers on 8x8 maps are the depthwise algorithm's). */
#define LC_TL_MIN_CHANNELS 16
/* Share of all (tap, output) pairs the live ones are at most: deeplabv3's
 * ASPP at 224 px has 18%; undilated layers on small maps (3x3 on 2x2, 44%)
 * too, but are not taken (dilated only, as those keep direct_lanes' full
 * blocks of pixels). */
#define LC_TL_LIVE_SHARE 0.5

typedef struct {
    int64_t lo, hi; /* outputs [lo, hi) */
    uint32_t taps;  /* kernel rows (columns) that read the input there */
} lc_tl_class;

/* floor(a / b) for b > 0 */
static int64_t lc_tl_floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The classes of `out` outputs along one axis: runs with the same kernel
 * positions k reading the input (0 <= o * stride + k * dil - pad < in).
 * Each k reads it over one run of outputs [lo_k, hi_k), so the classes are
 * the runs between those runs' ends, sorted: O(kn^2) whatever the image
 * size (a layer's decision is taken several times a reshape). */
static int lc_tl_classes(int64_t out, int64_t kn, int64_t stride, int64_t dil, int64_t pad,
                         int64_t in, lc_tl_class *cls) {
    int64_t lo[LC_TL_MAX_K], hi[LC_TL_MAX_K], cut[2 * LC_TL_MAX_K + 2];
    int ncut = 0;
    cut[ncut++] = 0;
    cut[ncut++] = out;
    for (int64_t k = 0; k < kn; k++) {
        lo[k] = lc_min64(out, lc_max64(0, -lc_tl_floor_div(k * dil - pad, stride)));
        hi[k] = lc_min64(out, lc_max64(0, lc_tl_floor_div(in - 1 + pad - k * dil, stride) + 1));
        cut[ncut++] = lo[k];
        cut[ncut++] = hi[k];
    }
    for (int i = 1; i < ncut; i++) /* insertion sort: at most 66 values */
        for (int j = i; j > 0 && cut[j - 1] > cut[j]; j--) {
            const int64_t v = cut[j];
            cut[j] = cut[j - 1];
            cut[j - 1] = v;
        }
    int n = 0;
    for (int i = 0; i + 1 < ncut; i++) {
        if (cut[i] == cut[i + 1]) continue;
        uint32_t m = 0;
        for (int64_t k = 0; k < kn; k++)
            if (lo[k] <= cut[i] && cut[i] < hi[k]) m |= 1u << k;
        if (n > 0 && cls[n - 1].taps == m) {
            cls[n - 1].hi = cut[i + 1];
        } else {
            cls[n].lo = cut[i];
            cls[n].hi = cut[i + 1];
            cls[n].taps = m;
            n++;
        }
    }
    return n;
}

typedef struct {
    lc_tl_class rows[LC_TL_MAX_CLASSES], cols[LC_TL_MAX_CLASSES];
    int nrows, ncols;
} lc_tl_map;

static void lc_tl_map_of(const lc_conv_desc *d, lc_tl_map *m) {
    m->nrows = lc_tl_classes(d->OH, d->kH, d->stride_h, d->dil_h, d->pad_t, d->H, m->rows);
    m->ncols = lc_tl_classes(d->OW, d->kW, d->stride_w, d->dil_w, d->pad_l, d->W, m->cols);
}

/* (tap, output) pairs that read the input, in one image's plane (in
 * double: a huge plane's count does not overflow). */
static double lc_tl_live_pairs(const lc_tl_map *m) {
    double live = 0.0;
    for (int r = 0; r < m->nrows; r++)
        for (int c = 0; c < m->ncols; c++)
            live += (double)(m->rows[r].hi - m->rows[r].lo) *
                    (double)(m->cols[c].hi - m->cols[c].lo) *
                    __builtin_popcount(m->rows[r].taps) * __builtin_popcount(m->cols[c].taps);
    return live;
}

int lc_tap_lanes_applies(const lc_conv_desc *d) {
    if ((d->dil_h == 1 && d->dil_w == 1) || d->C / d->groups < LC_TL_MIN_CHANNELS ||
        d->kH > LC_TL_MAX_K || d->kW > LC_TL_MAX_K || d->OH <= 0 || d->OW <= 0 ||
        lc_stem_lanes_applies(d))
        return 0;
    lc_tl_map m;
    lc_tl_map_of(d, &m);
    return lc_tl_live_pairs(&m) <=
           LC_TL_LIVE_SHARE * (double)(d->kH * d->kW) * (double)(d->OH * d->OW);
}

int64_t lc_tap_lanes_live_pairs(const lc_conv_desc *d) {
    if (d->kH > LC_TL_MAX_K || d->kW > LC_TL_MAX_K) return -1;
    lc_tl_map m;
    lc_tl_map_of(d, &m);
    return (int64_t)lc_tl_live_pairs(&m);
}

typedef struct {
    int64_t blocks;      /* channel blocks per group */
    int64_t col_windows; /* windows across a row */
    int64_t row_windows; /* windows down the plane */
    int64_t items;
    int64_t threads;
} lc_tl_tiles;
LC_TILING_FITS(lc_tl_tiles);

/* A work item is (image, group, channel block, window of outputs); a window
 * holds at most LC_TL_CHUNK outputs (its tile), whole rows where they fit. */
void lc_tap_lanes_tiling(const lc_conv_desc *d, int64_t *tiling) {
    int ok = 1;
    lc_tl_tiles b;
    b.blocks = lc_div_up(d->M / d->groups, lc_direct_lanes_block(d).cols);
    b.col_windows = lc_div_up(d->OW, LC_TL_CHUNK);
    const int64_t width = lc_div_up(d->OW, b.col_windows);
    b.row_windows = lc_div_up(d->OH, LC_TL_CHUNK / width);
    const int64_t units = lc_mul(lc_mul(lc_mul(d->N, d->groups, &ok), b.blocks, &ok),
                                 b.col_windows, &ok);
    /* channel blocks first (each reads its own weights once); more row
     * windows only where there are fewer items than 2 a thread */
    const int64_t threads = lc_threads_used(d->nthreads, lc_mul(units, d->OH, &ok),
                                            lc_conv_macs(d));
    if (lc_mul(units, b.row_windows, &ok) < 2 * threads)
        b.row_windows = lc_min64(d->OH, lc_div_up(2 * threads, units));
    b.items = lc_mul(units, b.row_windows, &ok);
    b.threads = lc_threads_used(d->nthreads, b.items, lc_conv_macs(d));
    memcpy(tiling, &b, sizeof b);
}

LC_TILING_GETTER(lc_tl_tiles, lc_tl_get_tiles, lc_tap_lanes_tiling)

int64_t lc_tap_lanes_items(const lc_conv_desc *d) { return lc_tl_get_tiles(d).items; }

int64_t lc_tap_lanes_windows(const lc_conv_desc *d) {
    const lc_tl_tiles b = lc_tl_get_tiles(d);
    return b.col_windows * b.row_windows;
}

static int64_t lc_tl_tile_floats(const lc_conv_desc *d, int *ok) {
    return lc_round_up(lc_mul(lc_direct_lanes_block(d).cols, LC_TL_CHUNK, ok), 16, ok);
}

int64_t lc_tap_lanes_workspace(const lc_conv_desc *d, int *ok) {
    const lc_tl_tiles b = lc_tl_get_tiles(d);
    return lc_mul(b.threads, lc_mul(lc_mul(lc_tl_tile_floats(d, ok), 2, ok),
                                    (int64_t)sizeof(float), ok), ok);
}

typedef struct {
    lc_lanes_call c;
    lc_tl_tiles b;
    lc_tl_map map;
    int64_t tile;        /* floats */
} lc_tl_ctx;

/* A window's rectangle of one class pair: outputs rows [y0, y1) x columns
 * [x0, x1), its kernel rows rt and columns ct reading the input there, its
 * outputs at tile pixel `at` on, row-major. */
typedef struct {
    int64_t y0, y1, x0, x1, at;
    uint32_t rt, ct;
} lc_tl_piece;

/* The pieces of the window rows [oy0, oy1) x columns [ox0, ox1); returns
 * their count (at most its outputs, each piece holding one or more). */
static int lc_tl_pieces(const lc_tl_map *m, int64_t oy0, int64_t oy1, int64_t ox0, int64_t ox1,
                        lc_tl_piece *pc) {
    int n = 0;
    int64_t at = 0;
    for (int r = 0; r < m->nrows; r++) {
        const int64_t y0 = lc_max64(m->rows[r].lo, oy0), y1 = lc_min64(m->rows[r].hi, oy1);
        for (int c = 0; c < m->ncols && y0 < y1; c++) {
            const int64_t x0 = lc_max64(m->cols[c].lo, ox0), x1 = lc_min64(m->cols[c].hi, ox1);
            if (x0 >= x1) continue;
            pc[n] = (lc_tl_piece){y0, y1, x0, x1, at, m->rows[r].taps, m->cols[c].taps};
            at += (y1 - y0) * (x1 - x0);
            n++;
        }
    }
    return n;
}

static int lc_tl_lowest(uint32_t m) { return __builtin_ctz(m); }
static int lc_tl_highest(uint32_t m) { return 31 - __builtin_clz(m); }

/* The tile of a piece no tap reads the input at: the bias (clamped). */
static void lc_tl_fill_bias(const lc_tl_ctx *t, const float *bp, int64_t cw, int64_t L,
                            const lc_tl_piece *p, float *tile) {
    const int64_t sn = (p->y1 - p->y0) * (p->x1 - p->x0);
    for (int64_t v = 0; v * L < cw; v++)
        for (int64_t j = p->at; j < p->at + sn; j++)
            for (int64_t l = 0; l < L; l++) {
                float b = bp ? bp[v * L + l] : 0.0f;
                if (t->c.kep.clamp) b = b < t->c.kep.lo ? t->c.kep.lo : b > t->c.kep.hi ? t->c.kep.hi : b;
                tile[v * LC_TL_CHUNK * L + j * L + l] = b;
            }
}

static void lc_tl_task(void *vctx, int64_t item, int thread) {
    const lc_tl_ctx *t = (const lc_tl_ctx *)vctx;
    const lc_conv_desc *d = t->c.d;
    const lc_isa_config *isa = d->isa;
    const int64_t rw = item % t->b.row_windows, rest = item / t->b.row_windows;
    const int64_t cwin = rest % t->b.col_windows, unit = rest / t->b.col_windows;
    const int64_t blk = unit % t->b.blocks, ng = unit / t->b.blocks;
    const int64_t g = ng % d->groups, n = ng / d->groups;
    const int64_t oy0 = rw * d->OH / t->b.row_windows, oy1 = (rw + 1) * d->OH / t->b.row_windows;
    const int64_t ox0 = cwin * d->OW / t->b.col_windows;
    const int64_t ox1 = (cwin + 1) * d->OW / t->b.col_windows;
    const int64_t L = isa->dl_lanes, cw = t->c.blk.cols, R = t->c.blk.rows;
    const int64_t Cg = d->C / d->groups, Mg = d->M / d->groups, taps = d->kH * d->kW;
    const int64_t o0 = g * Mg + blk * cw, valid = lc_min64(cw, Mg - blk * cw);
    float *tile = (float *)lc_thread_scratch(t->c.ws, 2 * t->tile * (int64_t)sizeof(float), thread);
    float *stage = tile + t->tile;
    const float *xg = t->c.x + (n * d->C + g * Cg) * d->H * d->W;
    const float *wb = t->c.packed + (g * t->b.blocks + blk) * Cg * taps * cw;
    float bias[LC_DL_MAX_COLS];
    const float *bp = lc_dl_block_bias(t->c.bias, o0, cw, valid, bias);
    lc_tl_piece pc[LC_TL_CHUNK];
    const int np = lc_tl_pieces(&t->map, oy0, oy1, ox0, ox1, pc);
    for (int i = 0; i < np; i++)
        if (!pc[i].rt || !pc[i].ct) lc_tl_fill_bias(t, bp, cw, L, &pc[i], tile);
    size_t xoff[LC_TL_CHUNK];
    lc_dl_geom gm;
    gm.C = (size_t)Cg;
    gm.kH = gm.kW = 1;
    gm.xcs = (size_t)(d->H * d->W);
    gm.xrs = gm.xts = 0;
    gm.wcs = (size_t)(taps * cw);
    gm.ldt = (size_t)(LC_TL_CHUNK * L);
    gm.pf = NULL;
    gm.pf_lines = 0;
    /* Tap by tap, each over the pieces it is live in (none: skipped): each
     * tap's weights read once an item.  (They come from L3 in a model's
     * run: ASPP's 960>256 has 8.8 MB, the off-centre taps 7.8 MB for few
     * calls each.  The kernel's prefetch asks for a contiguous run, where a
     * tap's weights are kH*kW*CW floats apart a channel: asking for the
     * next tap's needs a strided prefetch or a tap-major packing first.) */
    for (int64_t tap = 0; tap < taps; tap++) {
        const int ky = (int)(tap / d->kW), kx = (int)(tap % d->kW);
        const float *wt = wb + tap * cw;
        for (int i = 0; i < np; i++) {
            const lc_tl_piece *p = &pc[i];
            if (!(p->rt >> ky & 1u) || !(p->ct >> kx & 1u)) continue;
            /* each pixel's input for this tap (inside the image: it is live) */
            int64_t j = 0;
            for (int64_t oy = p->y0; oy < p->y1; oy++) {
                const int64_t row = (oy * d->stride_h + ky * d->dil_h - d->pad_t) * d->W;
                for (int64_t ox = p->x0; ox < p->x1; ox++)
                    xoff[j++] = (size_t)(row + ox * d->stride_w + kx * d->dil_w - d->pad_l);
            }
            const unsigned flags =
                (ky == lc_tl_lowest(p->rt) && kx == lc_tl_lowest(p->ct) ? 0u
                                                                         : LC_GEMM_ACCUMULATE) |
                (ky == lc_tl_highest(p->rt) && kx == lc_tl_highest(p->ct) ? LC_GEMM_FINAL : 0u);
            const int64_t nblk = lc_div_up(j, R);
            for (int64_t bi = 0; bi < nblk; bi++) {
                /* blocks of near-equal size, at most R */
                const int64_t p0 = bi * j / nblk, cnt = (bi + 1) * j / nblk - p0;
                gm.xoff = xoff + p0;
                t->c.blk.kernel((size_t)cnt, xg, wt, tile + (p->at + p0) * L, bp, &gm, &t->c.kep,
                                flags);
            }
        }
    }
    /* the pieces into the output planes, row by row */
    for (int i = 0; i < np; i++) {
        const int64_t w = pc[i].x1 - pc[i].x0;
        for (int64_t oy = pc[i].y0; oy < pc[i].y1; oy++)
            lc_dl_write_tile(d, n, o0, valid, oy * d->OW + pc[i].x0, w, LC_TL_CHUNK,
                             tile + (pc[i].at + (oy - pc[i].y0) * w) * L, stage, t->c.y, t->c.res,
                             &t->c.ep, t->c.post);
    }
}

int lc_tap_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                     const float *packed, const float *bias, const float *res, float *y,
                     char *ws) {
    int ok = 1;
    lc_tl_ctx t;
    memcpy(&t.b, tiling, sizeof t.b);
    t.c = lc_lanes_call_of(d, x, packed, bias, res, y, ws);
    lc_tl_map_of(d, &t.map);
    t.tile = lc_tl_tile_floats(d, &ok);
    lc_parallel_for(d->nthreads, t.b.items, lc_conv_macs(d), lc_tl_task, &t);
    return LC_OK;
}
