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

/* Lanes [a, b) of a vector (a <= b <= 16). */
static inline __mmask16 lc_pool_lanes(ptrdiff_t a, ptrdiff_t b) {
    return b <= a ? 0 : (__mmask16)(lc_pool_mask((size_t)b) & ~lc_pool_mask((size_t)a));
}

/* Small planes as flat runs (kernels/pool_flat.h): r takes each pass's planes'
 * window-row reductions, row after row with no gaps; a window row above or
 * below the plane is a lane past the plane's ends, masked off.  The columns
 * then go over all of a pass's planes at once: out[i] = op over j of
 * r[i + j - pad_l] where i's column plus j - pad_l lies in its row (a
 * per-lane mask from the column of the vector's first lane).  The order of
 * taps is the row primitive's, and so are the bits: max from -inf (which
 * changes no max) over the taps in the image; a sum over rows from -0 (which
 * changes no sum: the first row's value itself), over columns from +0 with
 * +0 for the taps outside (the row primitive's fill); an average then
 * divided by row_cnt * col_cnt, NaN where that is 0. */
/* vectors in flight per pass of lc_pool_flat_op (4 chains of 8 cycles a tap
 * keep two vector ports busy) and the floats they cover */
#define LC_POOL_FLAT_UNROLL 4
#define LC_POOL_FLAT_LANES (16 * LC_POOL_FLAT_UNROLL)

static LC_ALWAYS_INLINE void lc_pool_flat_op(
    float *y, const float *x, size_t planes, const lc_pool_plane_geom *g, float *r,
    const int is_max) {
    const ptrdiff_t W = (ptrdiff_t)g->W, HW = (ptrdiff_t)(g->H * g->W);
    const size_t kh = g->kh, kw = g->kw;
    const ptrdiff_t pt = (ptrdiff_t)g->pad_t, pl = (ptrdiff_t)g->pad_l;
    const __m512 row_fill = _mm512_set1_ps(is_max ? -INFINITY : -0.0f);
    const __m512 col_fill = _mm512_set1_ps(is_max ? -INFINITY : 0.0f);
    /* colmask[c * kw + j]: lanes whose column (c + lane) mod W, moved by
     * j - pad_l, stays in its row */
    __mmask16 colmask[LC_POOL_FLAT_MAX_W * LC_POOL_FLAT_MAX_K];
    for (ptrdiff_t c = 0; c < W; c++) {
        __mmask16 *cm = colmask + c * (ptrdiff_t)kw;
        for (size_t j = 0; j < kw; j++) cm[j] = 0;
        /* lane l's column, wrapped by counting: the tables are built per
         * call, and a division per lane and tap cost avg 256@14 30 -> 25 us */
        ptrdiff_t col = c;
        for (ptrdiff_t l = 0; l < 16; l++) {
            for (size_t j = 0; j < kw; j++) {
                const ptrdiff_t w = col + (ptrdiff_t)j - pl;
                cm[j] = (__mmask16)(cm[j] | (unsigned)(w >= 0 && w < W) << l);
            }
            if (++col == W) col = 0;
        }
    }
    /* rowmask[v * kh + j]: lanes of a plane's vector v (positions 16 v ..)
     * whose window row j lies in the plane and which are in the plane; the
     * same for every plane */
    const ptrdiff_t nv = (HW + 15) / 16;
    __mmask16 rowmask[(LC_POOL_FLAT_RUN / 16) * LC_POOL_FLAT_MAX_K];
    for (ptrdiff_t v = 0; v < nv; v++) {
        const ptrdiff_t i = 16 * v, n = HW - i < 16 ? HW - i : 16;
        for (size_t j = 0; j < kh; j++) {
            const ptrdiff_t lo = i + ((ptrdiff_t)j - pt) * W;   /* lane 0's input */
            rowmask[v * (ptrdiff_t)kh + (ptrdiff_t)j] =
                lc_pool_lanes(lo < 0 ? -lo : 0, HW - lo < n ? HW - lo : n);
        }
    }
    const size_t per = lc_pool_flat_planes(g);
    /* an average's divisors, per position of a plane and 16 past its end
     * (a vector running into the next plane starts it again) */
    float *div = r + per * (size_t)HW;
    if (!is_max)
        for (ptrdiff_t k = 0, h = 0, w = 0; k < HW + 16; k++) {
            div[k] = (float)(g->row_cnt[h] * g->col_cnt[w]);
            if (++w == W) {
                w = 0;
                if (++h == (ptrdiff_t)g->H) h = 0;
            }
        }
    /* Both passes run LC_POOL_FLAT_UNROLL vectors at once, tap by tap: one
     * vector's taps are a chain of dependent max + fixup (8 cycles a tap),
     * and independent vectors fill it.  A masked-off tap loads the fill,
     * which changes no max (max(-inf, m) is m) and no sum (s + -0 is s) --
     * so there is no branch, and the bits are one vector at a time's. */
    for (size_t p0 = 0; p0 < planes; p0 += per) {
        const size_t np = planes - p0 < per ? planes - p0 : per;
        /* window rows: vector slots (plane, v) in order, U at a time */
        const ptrdiff_t slots = (ptrdiff_t)np * nv;
        ptrdiff_t sp = 0, sv = 0;   /* plane and vector of the first slot */
        for (ptrdiff_t s = 0; s < slots; s += LC_POOL_FLAT_UNROLL) {
            __m512 acc[LC_POOL_FLAT_UNROLL];
            const float *xs[LC_POOL_FLAT_UNROLL];
            const __mmask16 *ms[LC_POOL_FLAT_UNROLL];
            float *rs[LC_POOL_FLAT_UNROLL];
            __mmask16 st[LC_POOL_FLAT_UNROLL];
            for (int u = 0; u < LC_POOL_FLAT_UNROLL; u++) {
                acc[u] = row_fill;
                const int live = s + u < slots;
                /* a slot past the end repeats the first with no store */
                const ptrdiff_t pu = live ? sp : 0, vu = live ? sv : 0;
                xs[u] = x + (p0 + (size_t)pu) * (size_t)HW + 16 * vu;
                rs[u] = r + pu * HW + 16 * vu;
                ms[u] = rowmask + vu * (ptrdiff_t)kh;
                st[u] = live ? lc_pool_mask((size_t)(HW - 16 * vu)) : 0;
                if (live && ++sv == nv) {
                    sv = 0;
                    sp++;
                }
            }
            for (size_t j = 0; j < kh; j++) {
                const ptrdiff_t d = ((ptrdiff_t)j - pt) * W;
                for (int u = 0; u < LC_POOL_FLAT_UNROLL; u++) {
                    const __m512 v = _mm512_mask_loadu_ps(row_fill, ms[u][j], xs[u] + d);
                    acc[u] = is_max ? lc_pool_max(acc[u], v) : _mm512_add_ps(acc[u], v);
                }
            }
            for (int u = 0; u < LC_POOL_FLAT_UNROLL; u++)
                _mm512_mask_storeu_ps(rs[u], st[u], acc[u]);
        }
        /* window columns: the pass's planes as one run */
        const ptrdiff_t total = (ptrdiff_t)np * HW;
        float *yp = y + p0 * (size_t)HW;
        ptrdiff_t c = 0, at = 0;   /* column and plane position of lane 0 */
        for (ptrdiff_t i = 0; i < total; i += LC_POOL_FLAT_LANES) {
            __m512 acc[LC_POOL_FLAT_UNROLL];
            const __mmask16 *cm[LC_POOL_FLAT_UNROLL];
            __mmask16 tail[LC_POOL_FLAT_UNROLL];
            ptrdiff_t ats[LC_POOL_FLAT_UNROLL];
            for (int u = 0; u < LC_POOL_FLAT_UNROLL; u++) {
                const ptrdiff_t iu = i + 16 * u;
                tail[u] = iu < total ? lc_pool_mask((size_t)(total - iu)) : 0;
                cm[u] = colmask + c * (ptrdiff_t)kw;
                ats[u] = at;
                acc[u] = is_max ? col_fill : _mm512_setzero_ps();
                /* the next vector's column and position: + 16, wrapped
                 * (W may be under 16: subtract, no division) */
                c += 16;
                while (c >= W) c -= W;
                at += 16;
                while (at >= HW) at -= HW;
            }
            for (size_t j = 0; j < kw; j++) {
                const ptrdiff_t d = (ptrdiff_t)j - pl;
                for (int u = 0; u < LC_POOL_FLAT_UNROLL; u++) {
                    const __m512 v = _mm512_mask_loadu_ps(col_fill, cm[u][j] & tail[u],
                                                          r + i + 16 * u + d);
                    acc[u] = is_max ? lc_pool_max(acc[u], v) : _mm512_add_ps(acc[u], v);
                }
            }
            for (int u = 0; u < LC_POOL_FLAT_UNROLL; u++) {
                if (!is_max) {
                    const __m512 dv = _mm512_loadu_ps(div + ats[u]);
                    acc[u] = _mm512_mask_mov_ps(
                        _mm512_div_ps(acc[u], dv),
                        _mm512_cmp_ps_mask(dv, _mm512_setzero_ps(), _CMP_EQ_OQ),
                        _mm512_set1_ps(NAN));
                }
                _mm512_mask_storeu_ps(yp + i + 16 * u, tail[u], acc[u]);
            }
        }
    }
}

/* max and average compiled apart (is_max a constant in each: no test of it
 * in the loops; one generic body measured 9% slower on 8x8 max) */
static void lc_pool_flat_max(float *y, const float *x, size_t planes,
                             const lc_pool_plane_geom *g, float *r) {
    lc_pool_flat_op(y, x, planes, g, r, 1);
}

static void lc_pool_flat_avg(float *y, const float *x, size_t planes,
                             const lc_pool_plane_geom *g, float *r) {
    lc_pool_flat_op(y, x, planes, g, r, 0);
}

void lc_f32_pool_plane__avx512(float *y, const float *x, size_t planes,
                               const lc_pool_plane_geom *g, float *r) {
    if (lc_pool_flat_fits(g)) {
        (g->is_max ? lc_pool_flat_max : lc_pool_flat_avg)(y, x, planes, g, r);
        return;
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
            for (size_t w = 0; w < W; w += 16) {
                const __mmask16 k = lc_pool_mask(W - w);
                __m512 acc = fill;   /* where no row is in the image */
                if (hi > lo) {
                    acc = _mm512_maskz_loadu_ps(k, x0 + w);
                    for (size_t i = 1; i < hi - lo; i++) {
                        const __m512 v = _mm512_maskz_loadu_ps(k, x0 + i * step + w);
                        acc = is_max ? lc_pool_max(acc, v) : _mm512_add_ps(acc, v);
                    }
                }
                _mm512_mask_storeu_ps(rw + w, k, acc);
            }
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
