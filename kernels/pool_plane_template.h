/* Pooling's whole-plane primitive (lc_pool_plane_fn, include/leanconv/ukernels.h)
 * in plain C loops, for an ISA file to include inside its target region:
 * the loops are contiguous runs with a constant stride (1 or 2) and no
 * branch, so the compiler vectorises them at that ISA's width (AVX2: 8
 * lanes, NEON: 4; a stride-2 tap is an even-lane load or shuffle).  The
 * algorithm is the AVX-512 one's (kernels/avx512/pool.c): chunks of output
 * rows, each row's window rows reduced into the row buffer first, its
 * columns after, every output through the same loop since r holds the fill
 * where the padding is.  Max keeps the first of equal values and a NaN once
 * taken (LC_PP_MAX, pool.c's LC_MAX_NAN); sums run in order from the first
 * row and from 0 over the columns: the portable loops' bits.
 * Define LC_POOL_PLANE_NAME before including. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pool_flat.h"

#define LC_PP_MAX(m, v) (((v) > (m)) | ((v) != (v)) ? (v) : (m))

/* r[w] = op over i < nrows of x[i * step + w], w < n */
static inline void LC_CAT(LC_POOL_PLANE_NAME, _rows)(float *restrict r, const float *restrict x,
                                                     size_t step, size_t nrows, size_t n,
                                                     int is_max) {
    for (size_t w = 0; w < n; w++) r[w] = x[w];
    for (size_t i = 1; i < nrows; i++) {
        const float *restrict xr = x + i * step;
        if (is_max)
            for (size_t w = 0; w < n; w++) r[w] = LC_PP_MAX(r[w], xr[w]);
        else
            for (size_t w = 0; w < n; w++) r[w] += xr[w];
    }
}

/* out[o] = op over j < kw of in[o * S + j * dw], o < n (S a constant: 1 or 2) */
#define LC_PP_COLS(S)                                                                   \
    do {                                                                                \
        if (is_max) {                                                                   \
            for (size_t o = 0; o < n; o++) out[o] = in[o * (S)];                        \
            for (size_t j = 1; j < kw; j++) {                                           \
                const float *restrict t = in + j * dw;                                  \
                for (size_t o = 0; o < n; o++) out[o] = LC_PP_MAX(out[o], t[o * (S)]);  \
            }                                                                           \
        } else {                                                                        \
            for (size_t o = 0; o < n; o++) out[o] = 0.0f;                               \
            for (size_t j = 0; j < kw; j++) {                                           \
                const float *restrict t = in + j * dw;                                  \
                for (size_t o = 0; o < n; o++) out[o] += t[o * (S)];                    \
            }                                                                           \
        }                                                                               \
    } while (0)

static inline void LC_CAT(LC_POOL_PLANE_NAME, _cols)(float *restrict out,
                                                     const float *restrict in, size_t n,
                                                     size_t kw, size_t dw, size_t sw,
                                                     int is_max) {
    if (sw == 1)
        LC_PP_COLS(1);
    else
        LC_PP_COLS(2);
}
#undef LC_PP_COLS

/* Small planes as flat runs (kernels/pool_flat.h; AVX-512's lc_pool_flat_op
 * with masks): a plane's window rows reduced as one run per tap (the tap's
 * in-plane outputs a contiguous range), then its window columns as one run
 * per tap, a tap whose column leaves its row selecting the fill (a table of
 * per-position flags: no per-row loops, which on rows of 4 or 8 floats ran
 * the compiler's scalar remainders).  Same bits as the row loops: rows from
 * the fill (-inf, or -0 which changes no sum) in order, columns from -inf or
 * +0 with the fill (+0 for a sum) where the row loops read the padding.
 * r: 16 floats of room, the pass's planes, 16 of room (a column tap reads up
 * to kw - 1 past either end, then discards it), the divisors, the flags. */
static LC_ALWAYS_INLINE void LC_CAT(LC_POOL_PLANE_NAME, _flat)(
    float *y, const float *x, size_t planes, const lc_pool_plane_geom *g, float *r,
    const int is_max) {
    const size_t W = g->W, HW = g->H * g->W, kh = g->kh, kw = g->kw, pl = g->pad_l;
    const ptrdiff_t pt = (ptrdiff_t)g->pad_t;
    const size_t per = lc_pool_flat_planes(g);
    const float row_fill = is_max ? -INFINITY : -0.0f, col_fill = is_max ? -INFINITY : 0.0f;
    float *rr = r + 16;
    float *cnt = rr + per * HW + 16;
    int32_t *ok = (int32_t *)(cnt + HW);
    uint32_t fill_bits;
    memcpy(&fill_bits, &col_fill, 4);
    for (size_t i = 0; i < 16; i++) r[i] = rr[per * HW + i] = col_fill;
    for (size_t k = 0, h = 0, c = 0; k < HW; k++) {
        cnt[k] = (float)(g->row_cnt[h] * g->col_cnt[c]);
        for (size_t j = 0; j < kw; j++)
            ok[j * HW + k] = -(int32_t)(c + j >= pl && c + j - pl < W);
        if (++c == W) {
            c = 0;
            h++;
        }
    }
    for (size_t p0 = 0; p0 < planes; p0 += per) {
        const size_t np = planes - p0 < per ? planes - p0 : per;
        for (size_t p = 0; p < np; p++) {
            const float *restrict xp = x + (p0 + p) * HW;
            float *restrict rp = rr + p * HW;
            for (size_t k = 0; k < HW; k++) rp[k] = row_fill;
            for (size_t j = 0; j < kh; j++) {
                const ptrdiff_t d = ((ptrdiff_t)j - pt) * (ptrdiff_t)W;
                const size_t a = d < 0 ? (size_t)-d : 0;
                const size_t b = d > 0 ? (HW > (size_t)d ? HW - (size_t)d : 0) : HW;
                const float *restrict xs = xp + d;
                if (is_max)
                    for (size_t k = a; k < b; k++) rp[k] = LC_PP_MAX(rp[k], xs[k]);
                else
                    for (size_t k = a; k < b; k++) rp[k] += xs[k];
            }
        }
        for (size_t p = 0; p < np; p++) {
            const float *rp = rr + p * HW;
            float *restrict yp = y + (p0 + p) * HW;
            for (size_t k = 0; k < HW; k++) yp[k] = is_max ? -INFINITY : 0.0f;
            for (size_t j = 0; j < kw; j++) {
                const float *restrict rs = rp + j - pl;
                const int32_t *restrict okj = ok + j * HW;
                /* okj all ones where the tap is in the row, else 0: the
                 * tap's bits or the fill's (bit operations, which vectorise
                 * where a select of a load did not) */
                for (size_t k = 0; k < HW; k++) {
                    uint32_t vb, tb;
                    memcpy(&vb, rs + k, 4);   /* read always (in r) */
                    tb = (vb & (uint32_t)okj[k]) | (fill_bits & ~(uint32_t)okj[k]);
                    float t;
                    memcpy(&t, &tb, 4);
                    yp[k] = is_max ? LC_PP_MAX(yp[k], t) : yp[k] + t;
                }
            }
            if (!is_max)
                for (size_t k = 0; k < HW; k++)
                    yp[k] = cnt[k] != 0.0f ? yp[k] / cnt[k] : NAN;
        }
    }
}

void LC_POOL_PLANE_NAME(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g,
                        float *r) {
    if (g->form == LC_POOL_FORM_FLAT) {   /* (pool_flat.h lc_pool_form) is_max a constant in each */
        if (g->is_max)
            LC_CAT(LC_POOL_PLANE_NAME, _flat)(y, x, planes, g, r, 1);
        else
            LC_CAT(LC_POOL_PLANE_NAME, _flat)(y, x, planes, g, r, 0);
        return;
    }
    const int is_max = g->is_max;
    const size_t W = g->W, OH = g->OH, OW = g->OW, pitch = g->pitch, rows = planes * OH;
    const float fill = is_max ? -INFINITY : 0.0f;
    for (size_t i = 0; i < g->r_floats; i++) r[i] = fill;
    /* plane and row of the chunk's first output row, counted */
    size_t p0 = 0, oh0 = 0;
    for (size_t q0 = 0; q0 < rows; q0 += g->chunk) {
        const size_t nq = rows - q0 < g->chunk ? rows - q0 : g->chunk;
        size_t p = p0, oh = oh0;
        for (size_t q = 0; q < nq; q++, oh = oh + 1 == OH ? (p++, 0) : oh + 1) {
            const size_t lo = (size_t)g->row_lo[oh], hi = (size_t)g->row_hi[oh];
            float *rw = r + q * pitch + g->pad_l;
            if (hi > lo) {
                const float *x0 = x + p * g->H * W + (oh * g->sh + lo * g->dh - g->pad_t) * W;
                LC_CAT(LC_POOL_PLANE_NAME, _rows)(rw, x0, g->dh * W, hi - lo, W, is_max);
            } else {   /* every window row in the padding */
                for (size_t w = 0; w < W; w++) rw[w] = fill;
            }
        }
        p = p0;
        oh = oh0;
        for (size_t q = 0; q < nq; q++, oh = oh + 1 == OH ? (p++, 0) : oh + 1) {
            float *yrow = y + (q0 + q) * OW;
            LC_CAT(LC_POOL_PLANE_NAME, _cols)(yrow, r + q * pitch, OW, g->kw, g->dw, g->sw,
                                              is_max);
            if (!is_max)
                for (size_t o = 0; o < OW; o++) {
                    const int32_t cnt = g->row_cnt[oh] * g->col_cnt[o];
                    yrow[o] = cnt != 0 ? yrow[o] / (float)cnt : NAN;
                }
        }
        p0 = p;
        oh0 = oh;
    }
}

#undef LC_PP_MAX
#undef LC_POOL_PLANE_NAME
