/* Pooling's row primitives, AVX-512 (lc_pool_rows_fn / lc_pool_cols_fn in
 * include/leanconv/ukernels.h): 16 outputs per vector.  The portable loops
 * in kernels/pool.c vectorise only at the build's baseline width, and not at
 * all for stride 2, where the taps of neighbouring outputs are two floats
 * apart: here a stride-2 tap is two loads and one permute (the even lanes).
 *
 * Max: _mm512_max_ps(v, m) is (v > m ? v : m) and gives m when either is a
 * NaN, which is pool.c's LC_MAX_NAN except for a NaN v, put back after:
 * the same bits as the portable loops, signed zeros included. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include <math.h>
#include "target_begin.h"
#include "../ukernel_decls.h"
#include "../pool_flat.h"

static inline __mmask16 lc_pool_mask(size_t cnt) {
    return cnt >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cnt) - 1u);
}

/* max(v, m), then v itself where v is a NaN (quiet or signalling: VFIXUPIMM's
 * token 1 for those two classes returns its source unchanged, token 0 keeps
 * the max): one instruction where a compare and a blend took two. */
static inline __m512 lc_pool_max(__m512 m, __m512 v) {
    return _mm512_fixupimm_ps(_mm512_max_ps(v, m), v, _mm512_set1_epi32(0x11), 0);
}

void lc_f32_pool_rows__avx512(float *r, const float *x, size_t step, size_t nrows, size_t n,
                              int is_max) {
    for (size_t w = 0; w < n; w += 16) {
        const __mmask16 k = lc_pool_mask(n - w);
        __m512 acc = _mm512_maskz_loadu_ps(k, x + w);
        for (size_t i = 1; i < nrows; i++) {
            const __m512 v = _mm512_maskz_loadu_ps(k, x + i * step + w);
            acc = is_max ? lc_pool_max(acc, v) : _mm512_add_ps(acc, v);
        }
        _mm512_mask_storeu_ps(r + w, k, acc);
    }
}

/* A window's rows [lo, hi) reduced into r[0, n) (lc_f32_pool_rows__avx512), or
 * `fill` where none of them is in the image (a window wholly in the padding). */
static inline void lc_pool_window_rows(float *r, const float *x, size_t step, ptrdiff_t nrows,
                                       size_t n, int is_max, __m512 fill) {
    if (nrows > 0) {
        lc_f32_pool_rows__avx512(r, x, step, (size_t)nrows, n, is_max);
        return;
    }
    for (size_t w = 0; w < n; w += 16) _mm512_mask_storeu_ps(r + w, lc_pool_mask(n - w), fill);
}

/* in[2k], k < cnt (<= 16), into lanes k: the even lanes of two loads that
 * read exactly in[0 .. 2 cnt - 1). */
static inline __m512 lc_pool_even(const float *in, size_t cnt, __m512i even) {
    const size_t used = 2 * cnt - 1;
    const __m512 lo = _mm512_maskz_loadu_ps(lc_pool_mask(used), in);
    const __m512 hi = used > 16 ? _mm512_maskz_loadu_ps(lc_pool_mask(used - 16), in + 16)
                                : _mm512_setzero_ps();
    return _mm512_permutex2var_ps(lo, even, hi);
}

void lc_f32_pool_cols__avx512(float *out, const float *in, size_t n, size_t kw, size_t dil,
                              size_t stride, int is_max) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    for (size_t o = 0; o < n; o += 16) {
        const size_t cnt = n - o < 16 ? n - o : 16;
        const __mmask16 k = lc_pool_mask(cnt);
        const float *base = in + o * stride;
        __m512 acc = is_max ? _mm512_set1_ps(0.0f) : _mm512_setzero_ps();
        for (size_t j = 0; j < kw; j++) {
            const float *t = base + j * dil;
            const __m512 v = stride == 1 ? _mm512_maskz_loadu_ps(k, t) : lc_pool_even(t, cnt, even);
            if (!is_max)
                acc = _mm512_add_ps(acc, v);
            else
                acc = j == 0 ? v : lc_pool_max(acc, v);
        }
        _mm512_mask_storeu_ps(out + o, k, acc);
    }
}

/* A tap of 16 outputs from the filled row buffer: stride 1 one load, stride 2
 * the even lanes of two (r has room past every vector, filled). */
static inline __m512 lc_pool_tap(const float *in, size_t sw, __m512i even) {
    if (sw == 1) return _mm512_loadu_ps(in);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(in), even, _mm512_loadu_ps(in + 16));
}

/* Same-size pools as flat runs (kernels/pool_flat.h) in one pass: a call's
 * planes are one contiguous run of positions, 16 a vector.  Vector v's window
 * rows are reduced in registers (V: a tap a load, masked where the window row
 * leaves its plane), and its window columns taken from V and its neighbours
 * V_prev and V_next by a lane permute, masked where the column leaves its
 * row: no row buffer is stored and read back, and no lane is idle but the
 * run's last vector's.  The masks (and an average's divisors) depend on where
 * a vector starts in its plane (16 v mod H*W), which repeats every
 * lc_pool_flat_period vectors: one table of them per geometry, built once
 * by kernels/pool.c's plan (g->table, pool_flat.h's layout) and shared by
 * the threads.
 * The order of taps is the row primitive's, and so are the bits: rows in
 * order from the first in the plane (max from -inf, a sum from -0: a missing
 * row is that identity, so its op is masked off); columns max from -inf, a
 * sum from +0 (0 + the first column, +0 where it is missing: after it the sum
 * is never -0, so adding the +0 of a missing column changes nothing and is
 * masked off too); an average then divided by row_cnt * col_cnt, which is
 * never 0 here (pad_t < kh and pad_l < kw: each window holds its own
 * position).  Against the two-pass form it replaced (window rows into r,
 * then columns with the fill; one thread, hot, Intel Xeon): 3x3/1 average
 * 576@14 58 -> 29 us, 1024@7 27 -> 13; max 1024@7 27 -> 14, 512@13 44 -> 24,
 * 832@6 18 -> 8; on rows wider than 16 (the row primitive before) 3x3/1
 * average 256@28 ~100 -> 54 (where the table stays small: pool_flat.h's
 * LC_POOL_TABLE_MAX_BYTES). */

/* acc op v in the lanes of k; the others keep acc (max: lc_pool_max) */
static LC_ALWAYS_INLINE __m512 lc_pool_mask_op(__m512 acc, __mmask16 k, __m512 v,
                                               const int is_max) {
    if (!is_max) return _mm512_mask_add_ps(acc, k, acc, v);
    return _mm512_mask_fixupimm_ps(_mm512_mask_max_ps(acc, k, v, acc), k, v,
                                   _mm512_set1_epi32(0x11), 0);
}

/* The first tap t of a window-column loop, in the lanes of k: max takes t
 * there and -inf elsewhere (a missing column); a sum +0 + t there (so a -0
 * becomes +0, as in the row primitive's sums from 0) and +0 elsewhere.  The
 * later taps go through lc_pool_mask_op. */
static LC_ALWAYS_INLINE __m512 lc_pool_mask_first(__mmask16 k, __m512 t, const int is_max) {
    if (is_max) return _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), k, t);
    return _mm512_maskz_add_ps(k, _mm512_setzero_ps(), t);
}

/* The window rows of the 16 positions from x + i (rows of W floats): tap j
 * where rm[j] & live. */
static LC_ALWAYS_INLINE __m512 lc_pool_flat_rows(const float *x, ptrdiff_t W, ptrdiff_t pt,
                                                 size_t kh, const uint16_t *rm, __mmask16 live,
                                                 __m512 fill, const int is_max) {
    __m512 acc = fill;
    for (size_t j = 0; j < kh; j++) {
        const __mmask16 k = (__mmask16)(rm[j] & live);
        acc = lc_pool_mask_op(acc, k, _mm512_maskz_loadu_ps(k, x + ((ptrdiff_t)j - pt) * W),
                              is_max);
    }
    return acc;
}

static LC_ALWAYS_INLINE void lc_pool_flat_op(
    float *y, const float *x, size_t planes, const lc_pool_plane_geom *g, float *r,
    const int is_max, const size_t kh, const size_t kw) {
    const ptrdiff_t W = (ptrdiff_t)g->W, H = (ptrdiff_t)g->H, HW = H * W;
    const ptrdiff_t pt = (ptrdiff_t)g->pad_t, pl = (ptrdiff_t)g->pad_l;
    const ptrdiff_t total = (ptrdiff_t)planes * HW, nvec = (total + 15) / 16;
    /* the plan's table (kernels/pool_flat.h): per entry the divisors of its
     * 16 positions (averages), kh row masks and kw column masks */
    const size_t period = g->entries;
    const float *div = lc_pool_table_div(g);
    const uint16_t *masks = lc_pool_table_mask(g);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* column tap j's lanes from (V_prev, V) or (V, V_next): lane l takes
     * position l + j - pad_l */
    __m512i idx[LC_POOL_FLAT_MAX_K];
    for (size_t j = 0; j < kw; j++) {
        const ptrdiff_t d = (ptrdiff_t)j - pl;
        idx[j] = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(d < 0 ? 16 + d : d)));
    }
    const __m512 fill = _mm512_set1_ps(is_max ? -INFINITY : -0.0f);
    __m512 vp = fill, vc, vn;
    vc = lc_pool_flat_rows(x, W, pt, kh, masks, lc_pool_mask((size_t)total), fill, is_max);
    ptrdiff_t p = 0;
    for (ptrdiff_t v = 0; v < nvec; v++) {
        const ptrdiff_t i = 16 * v;
        const ptrdiff_t pn = p + 1 == (ptrdiff_t)period ? 0 : p + 1;
        vn = v + 1 < nvec ?
            lc_pool_flat_rows(x + i + 16, W, pt, kh, masks + (size_t)pn * (kh + kw),
                              lc_pool_mask((size_t)(total - i - 16)), fill, is_max) : fill;
        const uint16_t *cm = masks + (size_t)p * (kh + kw) + kh;
        __m512 acc = _mm512_setzero_ps();
        for (size_t j = 0; j < kw; j++) {
            const ptrdiff_t d = (ptrdiff_t)j - pl;
            const __m512 t = d == 0 ? vc : d < 0 ? _mm512_permutex2var_ps(vp, idx[j], vc)
                                                 : _mm512_permutex2var_ps(vc, idx[j], vn);
            const __mmask16 k = (__mmask16)cm[j];
            acc = j > 0 ? lc_pool_mask_op(acc, k, t, is_max) : lc_pool_mask_first(k, t, is_max);
        }
        if (!is_max) acc = _mm512_div_ps(acc, _mm512_loadu_ps(div + 16 * p));
        _mm512_mask_storeu_ps(y + i, lc_pool_mask((size_t)(total - i)), acc);
        vp = vc;
        vc = vn;
        p = pn;
    }
}

/* max and average compiled apart, 3x3 (every flat pool in the models
 * measured) with its tap counts constant too */
static void lc_pool_flat_max(float *y, const float *x, size_t planes,
                             const lc_pool_plane_geom *g, float *r) {
    if (g->kh == 3 && g->kw == 3)
        lc_pool_flat_op(y, x, planes, g, r, 1, 3, 3);
    else
        lc_pool_flat_op(y, x, planes, g, r, 1, g->kh, g->kw);
}

static void lc_pool_flat_avg(float *y, const float *x, size_t planes,
                             const lc_pool_plane_geom *g, float *r) {
    if (g->kh == 3 && g->kw == 3)
        lc_pool_flat_op(y, x, planes, g, r, 0, 3, 3);
    else
        lc_pool_flat_op(y, x, planes, g, r, 0, g->kh, g->kw);
}

/* Stride-2 columns (pool_flat.h lc_pool_s2_fits: W == 2 OW: 3x3/2 with one
 * or two columns of padding, 2x2/2 without; Inception-v2's max pools 14 ->
 * 7, 28 -> 14, 56 -> 28, DenseNet's 2x2/2 averages; W == 2 OW + 1: odd
 * widths, averages only), in two passes over a pass
 * of planes: each output row's window rows reduced into r (rows of W floats
 * at a pitch of P = 2 OWv), then the window columns over the pass's outputs
 * as one run: output o's tap j is r[2 o + j - pad_l] for every row at once
 * (row oh starts at oh P = 2 oh OWv), the even lanes of two loads, masked
 * where the column leaves its row.  Where OWv = OW + 1, each row's extra
 * output is computed too and dropped at the store (the lanes of the real
 * ones packed by a register compress).  The row primitive's per-row loop
 * took a vector of 16 lanes for 7 outputs.  Masks and divisors are tabled
 * per place a vector starts in its output plane (lc_pool_s2_period;
 * g->table, the plan's).  The taps and their order are the row
 * primitive's: the same bits (the columns as in lc_pool_flat_op). */
static LC_ALWAYS_INLINE void lc_pool_s2_op(float *y, const float *x, size_t planes,
                                           const lc_pool_plane_geom *g, float *r,
                                           const int is_max, const size_t kw,
                                           const int drop) {
    /* drop: OWv = OW + 1, a column computed and dropped a row */
    const ptrdiff_t W = (ptrdiff_t)g->W, HW = (ptrdiff_t)(g->H * g->W);
    const ptrdiff_t OH = (ptrdiff_t)g->OH, OWv = (ptrdiff_t)g->OW + drop;
    const ptrdiff_t OHWv = OH * OWv, P = 2 * OWv, OHW = OH * (ptrdiff_t)g->OW;
    const ptrdiff_t pt = (ptrdiff_t)g->pad_t, pl = (ptrdiff_t)g->pad_l, sh = (ptrdiff_t)g->sh;
    const size_t per = lc_pool_s2_planes(g), period = g->entries, nm = kw + (size_t)drop;
    const __m512 fill = _mm512_set1_ps(is_max ? -INFINITY : 0.0f);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    /* r: 16 floats of room (a column tap reads up to pad_l before the
     * rows), a pass's rows at a pitch of P, 48 of room (up to 31 + kw past
     * them); the plan's table: per entry 16 divisors (averages), kw column
     * masks and (drop) the lanes of real outputs */
    float *rr = r + 16;
    const float *div = lc_pool_table_div(g);
    const uint16_t *cmask = lc_pool_table_mask(g);
    for (size_t p0 = 0; p0 < planes; p0 += per) {
        const size_t np = planes - p0 < per ? planes - p0 : per;
        /* window rows, in order from the first in the image */
        for (size_t p = 0; p < np; p++)
            for (ptrdiff_t oh = 0; oh < OH; oh++) {
                const ptrdiff_t lo = g->row_lo[oh], hi = g->row_hi[oh];
                float *rw = rr + ((ptrdiff_t)p * OH + oh) * P;
                const float *x0 = x + (p0 + p) * (size_t)HW + (oh * sh + lo - pt) * W;
                ptrdiff_t w = 0;
                if (hi - lo == 3)   /* whole vectors with the taps written out (same order) */
                    for (; w + 16 <= W; w += 16) {
                        const __m512 a = _mm512_loadu_ps(x0 + w), b = _mm512_loadu_ps(x0 + W + w),
                                     c = _mm512_loadu_ps(x0 + 2 * W + w);
                        _mm512_storeu_ps(rw + w, is_max ? lc_pool_max(lc_pool_max(a, b), c)
                                                        : _mm512_add_ps(_mm512_add_ps(a, b), c));
                    }
                lc_pool_window_rows(rw + w, x0 + w, (size_t)W, hi - lo, (size_t)(W - w), is_max,
                                    fill);
            }
        /* window columns over the pass's outputs */
        const ptrdiff_t total = (ptrdiff_t)np * OHWv;
        float *yp = y + p0 * (size_t)OHW;
        ptrdiff_t ph = 0;
        for (ptrdiff_t o = 0; o < total; o += 16) {
            const float *base = rr + 2 * o - pl;
            const uint16_t *cm = cmask + (size_t)ph * nm;
            __m512 acc = fill, lo = fill, hi = fill;
            for (size_t j = 0; j < kw; j++) {
                /* taps 2 m and 2 m + 1: the even and the odd lanes of one pair */
                if (j % 2 == 0) {
                    lo = _mm512_loadu_ps(base + j);
                    hi = _mm512_loadu_ps(base + j + 16);
                }
                const __m512 t = _mm512_permutex2var_ps(lo, j % 2 ? odd : even, hi);
                const __mmask16 k = (__mmask16)cm[j];
                acc = j > 0 ? lc_pool_mask_op(acc, k, t, is_max) : lc_pool_mask_first(k, t, is_max);
            }
            if (!is_max) {
                const __m512 dv = _mm512_loadu_ps(div + 16 * ph);
                acc = _mm512_mask_mov_ps(_mm512_div_ps(acc, dv),
                                         _mm512_cmp_ps_mask(dv, _mm512_setzero_ps(), _CMP_EQ_OQ),
                                         _mm512_set1_ps(NAN));
            }
            const __mmask16 tail = lc_pool_mask((size_t)(total - o));
            if (drop) {   /* the real outputs' lanes, packed (the register form: fast on all) */
                const __mmask16 live = (__mmask16)(cm[kw] & tail);
                const size_t n = (size_t)__builtin_popcount(live);
                _mm512_mask_storeu_ps(yp, lc_pool_mask(n), _mm512_maskz_compress_ps(live, acc));
                yp += n;
            } else {
                _mm512_mask_storeu_ps(yp + o, tail, acc);
            }
            if (++ph == (ptrdiff_t)period) ph = 0;
        }
    }
}

static void lc_pool_s2_max(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g,
                           float *r) {
    if (g->kw == 3)
        lc_pool_s2_op(y, x, planes, g, r, 1, 3, 0);
    else
        lc_pool_s2_op(y, x, planes, g, r, 1, g->kw, 0);
}

static void lc_pool_s2_avg(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g,
                           float *r) {
    if (lc_pool_s2_width(g) > g->OW)
        lc_pool_s2_op(y, x, planes, g, r, 0, g->kw, 1);
    else if (g->kw == 2)
        lc_pool_s2_op(y, x, planes, g, r, 0, 2, 0);
    else
        lc_pool_s2_op(y, x, planes, g, r, 0, g->kw, 0);
}

/* One window a plane (OH = OW = 1: Inception-v2's and ResNet's 7x7 averages
 * on 7x7, GoogLeNet's on 6x6 with padding), rows of up to 16 floats: each
 * plane's window rows reduced into one vector (its columns), stored as row
 * p % 16 of a 16x16 block in r; then per window column in the image the 16
 * planes' values gathered from the block and reduced, one plane a lane.  The
 * row primitive took a vector for one output and a row's loop for each plane.
 * The same taps in the same order (a column in the padding adds +0 after
 * the sum left -0 behind, or takes max(-inf): no op), the same bits. */
static LC_ALWAYS_INLINE void lc_pool_one_op(float *y, const float *x, size_t planes,
                                            const lc_pool_plane_geom *g, float *r,
                                            const int is_max) {
    const ptrdiff_t W = (ptrdiff_t)g->W, HW = (ptrdiff_t)(g->H * g->W);
    const ptrdiff_t lo = g->row_lo[0], hi = g->row_hi[0], step = (ptrdiff_t)g->dh * W;
    const __mmask16 kw = lc_pool_mask((size_t)W);
    const __m512 fill = _mm512_set1_ps(is_max ? -INFINITY : 0.0f);
    const __m512i rows16 = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(16));
    const int32_t cnt = g->row_cnt[0] * g->col_cnt[0];
    for (size_t p0 = 0; p0 < planes; p0 += 16) {
        const size_t np = planes - p0 < 16 ? planes - p0 : 16;
        for (size_t p = 0; p < np; p++) {
            const float *x0 = x + (p0 + p) * (size_t)HW + (lo * (ptrdiff_t)g->dh - (ptrdiff_t)g->pad_t) * W;
            __m512 acc = fill;   /* no window row in the image */
            if (hi > lo) {
                acc = _mm512_maskz_loadu_ps(kw, x0);
                for (ptrdiff_t i = 1; i < hi - lo; i++) {
                    const __m512 v = _mm512_maskz_loadu_ps(kw, x0 + i * step);
                    acc = is_max ? lc_pool_max(acc, v) : _mm512_add_ps(acc, v);
                }
            }
            _mm512_storeu_ps(r + 16 * p, acc);
        }
        const __mmask16 live = lc_pool_mask(np);
        __m512 acc = fill;
        int first = 1;
        for (size_t j = 0; j < g->kw; j++) {
            const ptrdiff_t c = (ptrdiff_t)(j * g->dw) - (ptrdiff_t)g->pad_l;
            if (c < 0 || c >= W) continue;
            const __m512 v = _mm512_mask_i32gather_ps(
                _mm512_setzero_ps(), live, _mm512_add_epi32(rows16, _mm512_set1_epi32((int)c)), r,
                4);
            if (is_max)
                acc = first ? v : lc_pool_max(acc, v);
            else
                acc = _mm512_add_ps(first ? _mm512_setzero_ps() : acc, v);
            first = 0;
        }
        if (!is_max)
            acc = cnt != 0 ? _mm512_div_ps(acc, _mm512_set1_ps((float)cnt)) : _mm512_set1_ps(NAN);
        _mm512_mask_storeu_ps(y + p0, live, acc);
    }
}

static void lc_pool_one_max(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g,
                            float *r) {
    lc_pool_one_op(y, x, planes, g, r, 1);
}

static void lc_pool_one_avg(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g,
                            float *r) {
    lc_pool_one_op(y, x, planes, g, r, 0);
}

/* Max of the window rows [0, n) (n >= 1, step floats apart) of the columns
 * k picks at x0, in order from the first (the row primitive's order, so its
 * bits); columns k leaves out load as 0 and feed only outputs not stored. */
static LC_ALWAYS_INLINE __m512 lc_pool_m3s2_rows(const float *x0, ptrdiff_t step, ptrdiff_t n,
                                                 __mmask16 k) {
    __m512 acc = _mm512_maskz_loadu_ps(k, x0);
    if (n == 3)
        return lc_pool_max(lc_pool_max(acc, _mm512_maskz_loadu_ps(k, x0 + step)),
                           _mm512_maskz_loadu_ps(k, x0 + 2 * step));
    for (ptrdiff_t i = 1; i < n; i++) acc = lc_pool_max(acc, _mm512_maskz_loadu_ps(k, x0 + i * step));
    return acc;
}

/* Rows of up to 16 floats (OW <= 7: SqueezeNet's 15 -> 7), two output rows
 * a vector: output rows q and q + 1 (of the call's planes' rows, one run in
 * y) reduced over their window rows into A and B, their taps picked from
 * both at once (lanes [0, OW) from A, [OW, 2 OW) from B), one store for
 * both: half the permutes and column maxima, all the lanes used. */
static void lc_pool_m3s2_pairs(float *y, const float *x, size_t planes,
                               const lc_pool_plane_geom *g) {
    const ptrdiff_t W = (ptrdiff_t)g->W, OH = (ptrdiff_t)g->OH, OW = (ptrdiff_t)g->OW;
    const ptrdiff_t HW = (ptrdiff_t)g->H * W, step = (ptrdiff_t)g->dh * W;
    int32_t ie[16];
    for (ptrdiff_t l = 0; l < 16; l++)
        ie[l] = (int32_t)(l < OW ? 2 * l : l < 2 * OW ? 16 + 2 * (l - OW) : 0);
    const __m512i even = _mm512_loadu_si512(ie), one = _mm512_set1_epi32(1);
    const __m512i odd = _mm512_add_epi32(even, one), even1 = _mm512_add_epi32(odd, one);
    const __m512 fill = _mm512_set1_ps(-INFINITY);
    const __mmask16 k = lc_pool_mask((size_t)W);
    const size_t rows = planes * (size_t)OH;
    size_t p = 0;
    ptrdiff_t oh = 0;
    __m512 v[2];
    for (size_t q = 0; q < rows; q += 2) {
        for (int h = 0; h < 2; h++) {
            const ptrdiff_t lo = g->row_lo[oh], n = g->row_hi[oh] - lo;
            v[h] = fill;   /* past the last row, or the window's rows all in the padding */
            if (q + (size_t)h < rows && n > 0)
                v[h] = lc_pool_m3s2_rows(x + p * (size_t)HW + (oh * (ptrdiff_t)g->sh +
                                         lo * (ptrdiff_t)g->dh - (ptrdiff_t)g->pad_t) * W,
                                         step, n, k);
            if (++oh == OH) oh = 0, p++;
        }
        const __m512 ev = _mm512_permutex2var_ps(v[0], even, v[1]);
        const __m512 od = _mm512_permutex2var_ps(v[0], odd, v[1]);
        const __m512 ev1 = _mm512_permutex2var_ps(v[0], even1, v[1]);
        const size_t n = (rows - q < 2 ? rows - q : 2) * (size_t)OW;
        _mm512_mask_storeu_ps(y + q * (size_t)OW, lc_pool_mask(n),
                              lc_pool_max(lc_pool_max(ev, od), ev1));
    }
}

/* 3x3/2 max on rows wide enough for every output's three columns
 * (pool_flat.h lc_pool_m3s2_fits: SqueezeNet's odd planes), in registers:
 * per output row, 16 outputs at a time, the window rows of their 33 input
 * columns reduced into three vectors (columns 2 o .. + 15, + 16 .. + 31, and
 * the next block's first, + 32 .. + 47, carried over as that block's first),
 * then the row form's taps: the even lanes, the odd lanes, and the even lanes
 * moved down one with column 2 o + 32 in the last lane.  The same taps in
 * the same order as the row form, so the same bits (NaN payloads and signed
 * zeros); no row buffer stored and read back, and no per-row chunk
 * bookkeeping, which on planes of 7 to 31 outputs a row took most of the
 * row form's time.  Each block's load and store masks are the same on
 * every row: worked out once a call (km).  The one-pass stride-2 form
 * (lc_pool_s2_op) was slower than the row form for odd-width max
 * (pool_flat.h).  Against the row form (with lc_pool_m3s2_pairs for rows of
 * up to 16 floats), hot, interleaved processes, load 2.3 (Intel Xeon), 1
 * thread: 64@63 -> 31 44 -> 31 us, 128@31 26 -> 15, 256@15 19 -> 10, 64@111
 * 208 -> 178, 128@55 94 -> 73, 256@27 43 -> 28; 2 threads: 27 -> 19, 16 ->
 * 17 (noisy), 19 -> 10, 154 -> 123, 40 -> 35, 42 -> 15. */
static void lc_pool_m3s2_op(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
                                          29, 31);
    const __m512 fill = _mm512_set1_ps(-INFINITY);
    const ptrdiff_t W = (ptrdiff_t)g->W, OH = (ptrdiff_t)g->OH, OW = (ptrdiff_t)g->OW;
    const ptrdiff_t HW = (ptrdiff_t)g->H * W, step = (ptrdiff_t)g->dh * W;
    if (W <= 16) {
        lc_pool_m3s2_pairs(y, x, planes, g);
        return;
    }
    const ptrdiff_t nb = (OW + 15) / 16;
    /* per block: the masks of its second and next vectors' loads (0: not
     * loaded, -inf; columns past W only where no output of the block reads
     * them) and of its store */
    __mmask16 km[LC_POOL_M3S2_BLOCKS][3];
    for (ptrdiff_t b = 0; b < nb; b++) {
        const ptrdiff_t c = 32 * b;
        km[b][0] = c + 16 < W ? lc_pool_mask((size_t)(W - c - 16)) : 0;
        km[b][1] = 16 * b + 16 <= OW && c + 32 < W ? lc_pool_mask((size_t)(W - c - 32)) : 0;
        km[b][2] = lc_pool_mask((size_t)(OW - 16 * b));
    }
    const __mmask16 k0 = lc_pool_mask((size_t)W);
    float *yr = y;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)HW;
        for (ptrdiff_t oh = 0; oh < OH; oh++, yr += OW) {
            const ptrdiff_t lo = g->row_lo[oh], n = g->row_hi[oh] - lo;
            if (n <= 0) {   /* the window's rows all in the padding */
                for (ptrdiff_t b = 0; b < nb; b++) _mm512_mask_storeu_ps(yr + 16 * b, km[b][2], fill);
                continue;
            }
            const float *x0 = xp + (oh * (ptrdiff_t)g->sh + lo * (ptrdiff_t)g->dh -
                                    (ptrdiff_t)g->pad_t) * W;
            __m512 a = lc_pool_m3s2_rows(x0, step, n, k0);
            for (ptrdiff_t b = 0; b < nb; b++) {
                const float *xc = x0 + 32 * b;
                __m512 hi = fill, next = fill;
                if (km[b][0]) hi = lc_pool_m3s2_rows(xc + 16, step, n, km[b][0]);
                if (km[b][1]) next = lc_pool_m3s2_rows(xc + 32, step, n, km[b][1]);
                const __m512 ev = _mm512_permutex2var_ps(a, even, hi);
                const __m512 od = _mm512_permutex2var_ps(a, odd, hi);
                const __m512 ev1 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                    _mm512_castps_si512(next), _mm512_castps_si512(ev), 1));
                _mm512_mask_storeu_ps(yr + 16 * b, km[b][2], lc_pool_max(lc_pool_max(ev, od), ev1));
                a = next;
            }
        }
    }
}

void lc_f32_pool_plane__avx512(float *y, const float *x, size_t planes,
                               const lc_pool_plane_geom *g, float *r) {
    switch (g->form) {   /* decided once per geometry (pool_flat.h lc_pool_form) */
    case LC_POOL_FORM_RUN:
        (g->is_max ? lc_pool_flat_max : lc_pool_flat_avg)(y, x, planes, g, r);
        return;
    case LC_POOL_FORM_S2:
        (g->is_max ? lc_pool_s2_max : lc_pool_s2_avg)(y, x, planes, g, r);
        return;
    case LC_POOL_FORM_ONE:
        (g->is_max ? lc_pool_one_max : lc_pool_one_avg)(y, x, planes, g, r);
        return;
    case LC_POOL_FORM_M3S2:
        lc_pool_m3s2_op(y, x, planes, g);
        return;
    default:
        break;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27,
                                          29, 31);
    const int is_max = g->is_max;
    const size_t W = g->W, OH = g->OH, OW = g->OW, sw = g->sw, kw = g->kw, dw = g->dw;
    const int max3s2 = is_max && sw == 2 && kw == 3 && dw == 1;
    const int taps3s1 = sw == 1 && kw == 3 && dw == 1;
    const size_t pitch = g->pitch, rows = planes * OH;
    const __m512 fill = _mm512_set1_ps(is_max ? -INFINITY : 0.0f);
    for (size_t i = 0; i < g->r_floats; i += 16)
        _mm512_mask_storeu_ps(r + i, lc_pool_mask(g->r_floats - i), fill);
    /* chunks of rows: every row's window rows reduced into r first, its
     * columns after, so no load waits on a store it overlaps just before */
    /* plane and row of the chunk's first output row, counted (not divided:
     * a 64-bit division per row was a third of the time on 8x8 planes) */
    size_t p0 = 0, oh0 = 0;
    for (size_t q0 = 0; q0 < rows; q0 += g->chunk) {
        const size_t nq = rows - q0 < g->chunk ? rows - q0 : g->chunk;
        size_t p = p0, oh = oh0;
        for (size_t q = 0; q < nq; q++, oh = oh + 1 == OH ? (p++, 0) : oh + 1) {
            const size_t lo = (size_t)g->row_lo[oh], hi = (size_t)g->row_hi[oh];
            /* the window's first in-image row (formed only when there is one:
             * the padding may be taller than the window) */
            const float *x0 = hi > lo ?
                x + p * g->H * W + (oh * g->sh + lo * g->dh - g->pad_t) * W : x;
            const size_t step = g->dh * W;
            float *rw = r + q * pitch + g->pad_l;
            if (hi - lo == 3) {
                /* three window rows (a 3x3 pool's rows inside the image):
                 * the taps written out and whole vectors unmasked, so the
                 * vectors of a row and of the rows after are independent
                 * work with no inner loop (the general loop below keeps one
                 * vector's chain of taps in flight at a time).  The same
                 * taps in the same order: the same bits.  Thread CPU time,
                 * one thread: 3x3/2 max on 128@55 61 -> 51 us, 256@27
                 * 34 -> 29, 576@14 31 -> 27; 3x3/1 on 192@28 66 -> 63 */
                const float *x1 = x0 + step, *x2 = x0 + 2 * step;
                size_t w = 0;
                for (; w + 16 <= W; w += 16) {
                    const __m512 a = _mm512_loadu_ps(x0 + w), b = _mm512_loadu_ps(x1 + w),
                                 c = _mm512_loadu_ps(x2 + w);
                    _mm512_storeu_ps(rw + w, is_max ? lc_pool_max(lc_pool_max(a, b), c)
                                                    : _mm512_add_ps(_mm512_add_ps(a, b), c));
                }
                if (w < W) {
                    const __mmask16 k = lc_pool_mask(W - w);
                    const __m512 a = _mm512_maskz_loadu_ps(k, x0 + w),
                                 b = _mm512_maskz_loadu_ps(k, x1 + w),
                                 c = _mm512_maskz_loadu_ps(k, x2 + w);
                    _mm512_mask_storeu_ps(rw + w, k,
                                          is_max ? lc_pool_max(lc_pool_max(a, b), c)
                                                 : _mm512_add_ps(_mm512_add_ps(a, b), c));
                }
                continue;
            }
            lc_pool_window_rows(rw, x0, step, hi > lo ? (ptrdiff_t)(hi - lo) : 0, W, is_max, fill);
        }
        p = p0;
        oh = oh0;
        for (size_t q = 0; q < nq; q++, oh = oh + 1 == OH ? (p++, 0) : oh + 1) {
            float *yrow = y + (q0 + q) * OW;
            const __m512i rc = _mm512_set1_epi32(g->row_cnt[oh]);
            if (max3s2) {
                /* 3 taps at stride 2 (ResNet's, SqueezeNet's, GoogLeNet's
                 * max pools) from one pair of loads: the even lanes, the odd
                 * lanes, and the even lanes moved down one with the next
                 * vector's first tap (r[32], inside r's room past every
                 * vector) in the last lane; the taps in order, so the bits
                 * are the general loop's.  3 loads where that took 6: 64@63
                 * 33 -> 31 us, 128@31 19 -> 18 us (one thread, hot) */
                for (size_t o = 0; o < OW; o += 16) {
                    const float *base = r + q * pitch + 2 * o;
                    const __m512 lo = _mm512_loadu_ps(base), hi = _mm512_loadu_ps(base + 16);
                    const __m512 ev = _mm512_permutex2var_ps(lo, even, hi);
                    const __m512 od = _mm512_permutex2var_ps(lo, odd, hi);
                    const __m512 ev1 = _mm512_castsi512_ps(_mm512_alignr_epi32(
                        _mm512_castps_si512(_mm512_set1_ps(base[32])), _mm512_castps_si512(ev), 1));
                    _mm512_mask_storeu_ps(yrow + o, lc_pool_mask(OW - o),
                                          lc_pool_max(lc_pool_max(ev, od), ev1));
                }
                continue;
            }
            for (size_t o = 0; o < OW; o += 16) {
                const __mmask16 k = lc_pool_mask(OW - o);
                const float *base = r + q * pitch + o * sw;
                __m512 acc;
                if (taps3s1) {
                    /* 3 taps at stride 1 written out (the taps and their
                     * order the loops' below: the same bits) */
                    const __m512 t0 = _mm512_loadu_ps(base), t1 = _mm512_loadu_ps(base + 1),
                                 t2 = _mm512_loadu_ps(base + 2);
                    if (is_max) {
                        acc = lc_pool_max(lc_pool_max(t0, t1), t2);
                    } else {
                        acc = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_setzero_ps(), t0),
                                                          t1), t2);
                        const __m512i cnt = _mm512_mullo_epi32(
                            rc, _mm512_maskz_loadu_epi32(k, g->col_cnt + o));
                        acc = _mm512_mask_mov_ps(
                            _mm512_div_ps(acc, _mm512_cvtepi32_ps(cnt)),
                            _mm512_cmpeq_epi32_mask(cnt, _mm512_setzero_si512()),
                            _mm512_set1_ps(NAN));
                    }
                } else if (is_max) {
                    acc = lc_pool_tap(base, sw, even);
                    for (size_t j = 1; j < kw; j++)
                        acc = lc_pool_max(acc, lc_pool_tap(base + j * dw, sw, even));
                } else {
                    acc = _mm512_setzero_ps();
                    for (size_t j = 0; j < kw; j++)
                        acc = _mm512_add_ps(acc, lc_pool_tap(base + j * dw, sw, even));
                    const __m512i cnt = _mm512_mullo_epi32(
                        rc, _mm512_maskz_loadu_epi32(k, g->col_cnt + o));
                    const __mmask16 empty = _mm512_cmpeq_epi32_mask(cnt, _mm512_setzero_si512());
                    acc = _mm512_mask_mov_ps(_mm512_div_ps(acc, _mm512_cvtepi32_ps(cnt)), empty,
                                             _mm512_set1_ps(NAN));
                }
                _mm512_mask_storeu_ps(yrow + o, k, acc);
            }
        }
        p0 = p;
        oh0 = oh;
    }
}

#include "target_end.h"
#endif
