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

void LC_POOL_PLANE_NAME(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g,
                        float *r) {
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
