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
 *    planes within the caps (lc_pool_run_fits), with a table of lane masks
 *    and divisors built once per geometry by kernels/pool.c's plan.
 * AVX-512 runs two more shapes' outputs flat: stride-2 columns where the
 * input is about twice the output's width (lc_pool_s2_fits), and one window
 * a plane, 16 planes a vector (lc_pool_one_fits).
 *
 * One place decides which form runs, its table and how much of r it takes:
 * lc_pool_form, in pool.c's plan; the kernels branch on g->form. */
#ifndef LEANCONV_POOL_FLAT_H
#define LEANCONV_POOL_FLAT_H

#include "leanconv/ukernels.h"

#define LC_POOL_FLAT_MAX_W 16   /* a row of 16+ floats fills the template's row loops' vectors (16x16: flat measured 19 -> 23 us) */
#define LC_POOL_FLAT_MAX_K 8    /* window taps per axis (the mask tables' size) */
#define LC_POOL_FLAT_RUN 4096   /* floats of r per pass: in L1 while its columns are read */
/* AVX-512's one-pass forms read a table of masks (and an average's
 * divisors) per place a vector can start in a plane, lc_pool_period of
 * them (at most the plane's positions).  Built per call (per task) they
 * cost about two vectors' work an entry, which capped them at 256 entries
 * (GoogLeNet's 192@27, 729 entries: 8.4 -> 11.0 us a task); built once per
 * geometry (kernels/pool.c's plan) they are read once per pass over the
 * table's planes, about as many bytes as the output written.  One thread,
 * hot, Intel Xeon, against the row primitive the cap left them on: 3x3/1
 * max 192@27 69 -> 42 us, average 192@27 92 -> 44, 96@23 35 -> 15, 64@55
 * 96 -> 62, 64@56 101 -> 66 (period 196; 3x3/2 on 112 -> 56 no faster: the
 * stride-2 form stays at 1024 outputs a plane).  The byte cap bounds what a
 * plan holds: an average on 55x55 tables 230 KB. */
#define LC_POOL_RUN_MAX_HW 4096
#define LC_POOL_S2_MAX_HW 1024
#define LC_POOL_TABLE_MAX_BYTES (256 * 1024)

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

/* Bytes of an AVX-512 table of `entries` entries with `masks` 16-bit masks
 * each: per entry 16 divisors (averages), then the masks. */
static inline size_t lc_pool_table_size(const lc_pool_plane_geom *g, size_t entries,
                                        size_t masks) {
    return entries * ((g->is_max ? 0 : 16 * sizeof(float)) + masks * sizeof(uint16_t));
}

/* AVX-512's one-pass form. */
static inline int lc_pool_run_fits(const lc_pool_plane_geom *g) {
    return lc_pool_same_size(g) && g->H * g->W <= LC_POOL_RUN_MAX_HW &&
           lc_pool_table_size(g, lc_pool_flat_period(g), g->kh + g->kw) <= LC_POOL_TABLE_MAX_BYTES;
}

/* AVX-512's stride-2 columns (kernels/avx512/pool.c lc_pool_s2_op): column
 * stride 2, no dilation, up to 8 columns a window, with rows of W floats
 * laid out at a pitch of 2 OWv floats (lc_pool_s2_width) so that output o's
 * columns start at 2 o of a run of rows: W == 2 OW (3x3/2 with padding,
 * 2x2/2), or for averages 2 OW + 1 (3x3/2 without padding on odd widths:
 * one output column more a row, OWv = OW + 1, computed and dropped); output
 * planes within the caps.  Odd widths against the row form (one thread,
 * hot, interleaved processes, load 6): average 128@55 108 -> 94 us, 64@63
 * 51 -> 47; max 64@63 40 -> 48, 128@55 86 -> 97, 128@31 24 -> 27: the row
 * form's three taps from one pair of loads beat it; odd-width 3x3/2 max runs
 * in registers (lc_pool_m3s2_fits). */
static inline size_t lc_pool_s2_width(const lc_pool_plane_geom *g) {
    return g->W == 2 * g->OW + 1 ? g->OW + 1 : g->OW;
}

static inline int lc_pool_s2_fits(const lc_pool_plane_geom *g) {
    return g->sw == 2 && (g->W == 2 * g->OW || (g->W == 2 * g->OW + 1 && !g->is_max)) &&
           g->dh == 1 && g->dw == 1 && g->kw <= LC_POOL_FLAT_MAX_K && g->pad_l < g->kw &&
           g->OH * lc_pool_s2_width(g) <= LC_POOL_S2_MAX_HW &&
           lc_pool_table_size(g, lc_pool_period(g->OH * lc_pool_s2_width(g)),
                              g->kw + 1) <= LC_POOL_TABLE_MAX_BYTES;
}

/* Its planes per pass (r holds their output rows' window rows, in L1). */
static inline size_t lc_pool_s2_planes(const lc_pool_plane_geom *g) {
    const size_t n = LC_POOL_FLAT_RUN / (g->OH * 2 * lc_pool_s2_width(g));
    return n < 1 ? 1 : n;
}

/* Its table entries (over output planes of OWv columns a row). */
static inline size_t lc_pool_s2_period(const lc_pool_plane_geom *g) {
    return lc_pool_period(g->OH * lc_pool_s2_width(g));
}

/* AVX-512's one window a plane (kernels/avx512/pool.c lc_pool_one_op): OH =
 * OW = 1 on rows of up to 16 floats; r holds a 16x16 block. */
static inline int lc_pool_one_fits(const lc_pool_plane_geom *g) {
    return g->OH == 1 && g->OW == 1 && g->W <= 16;
}

/* AVX-512's 3x3/2 max in registers (kernels/avx512/pool.c lc_pool_m3s2_op):
 * max, 3 columns at stride 2, no dilation across, no left padding and rows
 * wide enough for every output's three columns (W >= 2 OW + 1: SqueezeNet's
 * odd planes, 111 -> 55, 63 -> 31, 55 -> 27, 27 -> 13, 15 -> 7, with or
 * without ceil mode); any rows (the row tables); up to LC_POOL_M3S2_BLOCKS
 * vectors of outputs a row (its masks on the stack).  No r, no table. */
#define LC_POOL_M3S2_BLOCKS 64
static inline int lc_pool_m3s2_fits(const lc_pool_plane_geom *g) {
    return g->is_max && g->kw == 3 && g->sw == 2 && g->dw == 1 && g->pad_l == 0 &&
           g->W >= 2 * g->OW + 1 && g->OW <= 16 * LC_POOL_M3S2_BLOCKS;
}

/* The plane primitive's forms.  One place decides which runs: lc_pool_form,
 * once per geometry (kernels/pool.c's plan); the kernels branch on g->form. */
enum {
    LC_POOL_FORM_ROWS = 0,   /* row by row through a row buffer (every ISA) */
    LC_POOL_FORM_FLAT,       /* the plain-C template's flat runs */
    LC_POOL_FORM_RUN,        /* AVX-512: same-size, one pass (table: kh + kw masks an entry) */
    LC_POOL_FORM_S2,         /* AVX-512: stride-2 columns (table: kw masks, + 1 on odd widths) */
    LC_POOL_FORM_ONE,        /* AVX-512: one window a plane */
    LC_POOL_FORM_M3S2        /* AVX-512: 3x3/2 max in registers on wide enough rows */
};

/* `tabled`: the ISA's plane primitive has AVX-512's forms
 * (lc_isa_config.pool_plane_tabled), else the template's. */
static inline int lc_pool_form(const lc_pool_plane_geom *g, int tabled) {
    if (!tabled) return lc_pool_flat_fits(g) ? LC_POOL_FORM_FLAT : LC_POOL_FORM_ROWS;
    if (lc_pool_run_fits(g)) return LC_POOL_FORM_RUN;
    if (lc_pool_m3s2_fits(g)) return LC_POOL_FORM_M3S2;
    if (lc_pool_s2_fits(g)) return LC_POOL_FORM_S2;
    if (lc_pool_one_fits(g)) return LC_POOL_FORM_ONE;
    return LC_POOL_FORM_ROWS;
}

/* The form's table: its entries (0: none) and masks an entry.  Layout:
 * entries x 16 float divisors (averages only: row_cnt[row] * col_cnt[col]
 * of each lane's position), then entries x masks uint16 masks (RUN: kh row
 * masks, then kw column masks; S2: kw column masks, and where OWv > OW a
 * mask of the lanes of real outputs), lane l of entry p being position
 * 16 p + l of a run of planes (S2: of OWv columns a row; a dropped column's
 * divisor 1).  kernels/pool.c builds it. */
static inline size_t lc_pool_table_entries(const lc_pool_plane_geom *g) {
    return g->form == LC_POOL_FORM_RUN ? lc_pool_flat_period(g) :
           g->form == LC_POOL_FORM_S2 ? lc_pool_s2_period(g) : 0;
}

static inline size_t lc_pool_table_masks(const lc_pool_plane_geom *g) {
    return g->form == LC_POOL_FORM_RUN ? g->kh + g->kw :
           g->form == LC_POOL_FORM_S2 ? g->kw + (lc_pool_s2_width(g) > g->OW) : 0;
}

/* Where the masks start in the table: after the divisors (averages only). */
static inline size_t lc_pool_table_mask_offset(const lc_pool_plane_geom *g) {
    return g->is_max ? 0 : g->entries * 16 * sizeof(float);
}

static inline const float *lc_pool_table_div(const lc_pool_plane_geom *g) {
    return (const float *)g->table;
}

static inline const uint16_t *lc_pool_table_mask(const lc_pool_plane_geom *g) {
    return (const uint16_t *)((const char *)g->table + lc_pool_table_mask_offset(g));
}

/* Floats of r (per thread) g->form takes, the row form aside: the
 * template's a pass's planes with 16 floats of room either side, a divisor
 * and kw flags per position; the stride-2 form a pass's rows with room
 * either side; the one-window form a 16x16 block; the one-pass form none. */
static inline size_t lc_pool_flat_r_floats(const lc_pool_plane_geom *g) {
    const size_t HW = g->H * g->W;
    switch (g->form) {
    case LC_POOL_FORM_FLAT: return (lc_pool_flat_planes(g) + 1 + g->kw) * HW + 32;
    case LC_POOL_FORM_S2: return 16 + lc_pool_s2_planes(g) * g->OH * 2 * lc_pool_s2_width(g) + 48;
    case LC_POOL_FORM_ONE: return 256;
    default: return 0;
    }
}

#endif
