/* Same-size pooling (stride 1, no dilation, output the input's size:
 * GoogLeNet's 3x3 branch pools, Inception-v2's 3x3 averages on 28x28, 14x14
 * and 7x7) over planes as flat runs, not row by row: a row of 7 or 14 floats
 * fills part of a vector and pays a row's loop each.  Whole planes are one
 * contiguous run of positions (a window row above or below the plane is a
 * masked-off lane, so plane boundaries need no padding), and a window column
 * outside the row a masked-off lane too.  Same bits as the row primitive
 * (the same order of taps).  Two forms:
 *  - the plain-C template (kernels/pool_plane_template.h, AVX2 and NEON):
 *    window rows reduced into r, then window columns with per-lane flags,
 *    for rows of up to 16 floats (lc_pool_flat_fits);
 *  - AVX-512 (kernels/avx512/pool.c): one pass in registers, the columns
 *    from neighbouring vectors by a lane permute, whatever the width, for
 *    planes whose table of masks stays small (lc_pool_run_fits).
 * AVX-512 runs two more shapes' outputs flat: stride-2 columns where the
 * input is twice the output's width (lc_pool_s2_fits), and one window a
 * plane, 16 planes a vector (lc_pool_one_fits).
 *
 * One place decides where they apply and how much of r they take: pool.c
 * sizes r by these, the kernels branch on the fits. */
#ifndef LEANCONV_POOL_FLAT_H
#define LEANCONV_POOL_FLAT_H

#include "leanconv/ukernels.h"

#define LC_POOL_FLAT_MAX_W 16   /* a row of 16+ floats fills the template's row loops' vectors (16x16: flat measured 19 -> 23 us) */
#define LC_POOL_FLAT_MAX_K 8    /* window taps per axis (the mask tables' size) */
#define LC_POOL_FLAT_RUN 4096   /* floats of r per pass: in L1 while its columns are read */
/* AVX-512's planes: its masks are tabled per call (per task of about 16 K
 * outputs, pool.c) for every place a vector can start in a plane,
 * lc_pool_period of them, each about two vectors' work.  7x7, 14x14 and
 * 28x28 hold 49 places, 13x13 169 (GoogLeNet's 512@13 3x3 max at 1 thread,
 * a task of 96 planes: 8.4 -> 5.6 us), 27x27 729 (192@27: a task of 22
 * planes 8.4 -> 11.0 us, so it keeps the row primitive). */
#define LC_POOL_RUN_MAX_HW 1024
#define LC_POOL_RUN_MAX_PERIOD 256

/* Stride 1, no dilation, the input's size, windows of up to 8x8 with their
 * own position inside (pad < kernel). */
static inline int lc_pool_same_size(const lc_pool_plane_geom *g) {
    return g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->OH == g->H &&
           g->OW == g->W && g->kh <= LC_POOL_FLAT_MAX_K && g->kw <= LC_POOL_FLAT_MAX_K &&
           g->pad_t < g->kh && g->pad_l < g->kw;
}

/* The plain-C template's flat form. */
static inline int lc_pool_flat_fits(const lc_pool_plane_geom *g) {
    return lc_pool_same_size(g) && g->W <= LC_POOL_FLAT_MAX_W &&
           g->H * g->W <= LC_POOL_FLAT_RUN;
}


/* Planes reduced per pass of the template (r holds their window rows' reductions). */
static inline size_t lc_pool_flat_planes(const lc_pool_plane_geom *g) {
    const size_t n = LC_POOL_FLAT_RUN / (g->H * g->W);
    return n < 1 ? 1 : n;
}

/* Vectors of 16 positions after which a run of planes of n positions starts
 * a vector at the same place in its plane again: n / gcd(16, n) (AVX-512's
 * tables, an entry each). */
static inline size_t lc_pool_period(size_t n) {
    size_t a = n, b = 16;
    while (b) {
        const size_t t = a % b;
        a = b;
        b = t;
    }
    return n / a;
}

static inline size_t lc_pool_flat_period(const lc_pool_plane_geom *g) {
    return lc_pool_period(g->H * g->W);
}

/* AVX-512's one-pass form. */
static inline int lc_pool_run_fits(const lc_pool_plane_geom *g) {
    return lc_pool_same_size(g) && g->H * g->W <= LC_POOL_RUN_MAX_HW &&
           lc_pool_flat_period(g) <= LC_POOL_RUN_MAX_PERIOD;
}

/* AVX-512's stride-2 columns (kernels/avx512/pool.c lc_pool_s2_op): column
 * stride 2 with W == 2 OW (so output o's columns start at 2 o in rows of W
 * packed without gaps), no dilation, up to 8 columns a window, output
 * planes within the run form's limits (its tables are alike). */
static inline int lc_pool_s2_fits(const lc_pool_plane_geom *g) {
    return g->sw == 2 && g->W == 2 * g->OW && g->dh == 1 && g->dw == 1 &&
           g->kw <= LC_POOL_FLAT_MAX_K && g->pad_l < g->kw &&
           g->OH * g->OW <= LC_POOL_RUN_MAX_HW &&
           lc_pool_period(g->OH * g->OW) <= LC_POOL_RUN_MAX_PERIOD;
}

/* Its planes per pass (r holds their output rows' window rows, in L1). */
static inline size_t lc_pool_s2_planes(const lc_pool_plane_geom *g) {
    const size_t n = LC_POOL_FLAT_RUN / (g->OH * g->W);
    return n < 1 ? 1 : n;
}

/* Its table entries (over output planes). */
static inline size_t lc_pool_s2_period(const lc_pool_plane_geom *g) {
    return lc_pool_period(g->OH * g->OW);
}

/* AVX-512's one window a plane (kernels/avx512/pool.c lc_pool_one_op): OH =
 * OW = 1 on rows of up to 16 floats; r holds a 16x16 block. */
static inline int lc_pool_one_fits(const lc_pool_plane_geom *g) {
    return g->OH == 1 && g->OW == 1 && g->W <= 16;
}

/* Floats of r the forms that fit take (0: none): the template's a pass's
 * planes with 16 floats of room either side, a divisor and kw flags per
 * position; AVX-512's one-pass form per table entry 16 divisors and kh + kw
 * 16-bit masks, its stride-2 form a pass's rows with room either side and
 * its table, its one-window form a 16x16 block. */
static inline size_t lc_pool_flat_r_floats(const lc_pool_plane_geom *g) {
    const size_t HW = g->H * g->W;
    const size_t plain = lc_pool_flat_fits(g) ? (lc_pool_flat_planes(g) + 1 + g->kw) * HW + 32 : 0;
    const size_t period = lc_pool_flat_period(g);
    const size_t avx512 = lc_pool_run_fits(g) ? 16 * period + (period * (g->kh + g->kw) + 1) / 2 : 0;
    const size_t s2 = lc_pool_s2_fits(g) ?
        16 + lc_pool_s2_planes(g) * g->OH * g->W + 48 + 16 * lc_pool_s2_period(g) +
        (lc_pool_s2_period(g) * g->kw + 1) / 2 : 0;
    const size_t one = lc_pool_one_fits(g) ? 256 : 0;
    size_t m = plain > avx512 ? plain : avx512;
    m = m > s2 ? m : s2;
    return m > one ? m : one;
}

#endif
