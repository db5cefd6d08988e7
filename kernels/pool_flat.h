/* Small-plane max and average pooling as flat runs (AVX-512's plane
 * primitive, kernels/avx512/pool.c): stride 1, no dilation, output the
 * input's size (GoogLeNet's 3x3 branch pools on 8x8 and 4x4 planes,
 * Inception-v2's 3x3 averages on 14x14 and 7x7).  The row
 * primitive walks a plane row by row, and a row of 8 or 4 floats fills half
 * or a quarter of a 16-lane vector and pays a row's loop each; here whole
 * planes are one contiguous run (a window row above or below the plane is
 * a masked-off lane, so plane boundaries need no padding), reduced over
 * window rows into r, then over window columns with per-lane masks for the
 * row edges.  Same bits as the row primitive (the same order of taps).
 *
 * One place decides where it applies and how much of r it takes: pool.c
 * sizes r by these, the kernel branches on lc_pool_flat_fits. */
#ifndef LEANCONV_POOL_FLAT_H
#define LEANCONV_POOL_FLAT_H

#include "leanconv/ukernels.h"

#define LC_POOL_FLAT_MAX_W 16   /* a row of 16+ floats fills the row primitive's vectors (16x16: flat measured 19 -> 23 us) */
#define LC_POOL_FLAT_MAX_K 8    /* window taps per axis (the mask table's size) */
#define LC_POOL_FLAT_RUN 4096   /* floats of r per pass: in L1 while its columns are read */

static inline int lc_pool_flat_fits(const lc_pool_plane_geom *g) {
    return g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           g->OH == g->H && g->OW == g->W && g->W <= LC_POOL_FLAT_MAX_W &&
           g->H * g->W <= LC_POOL_FLAT_RUN && g->kh <= LC_POOL_FLAT_MAX_K &&
           g->kw <= LC_POOL_FLAT_MAX_K && g->pad_t < g->kh && g->pad_l < g->kw;
}

/* Planes reduced per pass (r holds their window rows' reductions). */
static inline size_t lc_pool_flat_planes(const lc_pool_plane_geom *g) {
    const size_t n = LC_POOL_FLAT_RUN / (g->H * g->W);
    return n < 1 ? 1 : n;
}

/* Floats of r the flat forms take: a pass's planes; for AVX-512's average
 * a divisor per position of a plane and 16 past it; for the plain-C
 * template's (kernels/pool_plane_template.h) 16 floats of room either side
 * of the planes, a divisor and kw flags per position. */
static inline size_t lc_pool_flat_r_floats(const lc_pool_plane_geom *g) {
    return (lc_pool_flat_planes(g) + 1 + g->kw) * g->H * g->W + 32;
}

#endif
