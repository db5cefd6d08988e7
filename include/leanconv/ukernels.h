/* leanconv micro-kernel signatures and the per-ISA dispatch table.
 *
 * Micro-kernels are the only ISA-specific code.  Each ISA folder kernels/<isa>/
 * provides the same set (gemm.c, winograd.c, depthwise.c) and a config filler;
 * kernels/dispatch.c starts from the scalar table and lets the best ISA the CPU
 * has override entries (as BLIS does). */
#ifndef LEANCONV_UKERNELS_H
#define LEANCONV_UKERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "leanconv/conv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of the GEMM micro-kernel. */
#define LC_GEMM_ACCUMULATE 1u  /* C += A*B (a later K block); else C = bias + A*B */
#define LC_GEMM_FINAL 2u       /* last K block: apply the epilogue clamp */
#define LC_PW_PREFETCH 4u      /* lc_pw_kernel_fn only: weights asked for ahead (see there) */
#define LC_GEMM_PF_WRITE 8u    /* lc_gemm_tall_fn only: its prefetch cursor is C the driver
                                * writes next, asked for to write, into L1 (see there) */
#define LC_PW_PREFETCH_X 16u   /* lc_pw_kernel_fn only: the next call's input lines asked for */

/* C[m x n] (+)= A[m x k] * B[k x n], the one GEMM every algorithm calls.
 *   a:    packed weights, k groups of MR floats (rows >= m are zero padding)
 *   b:    k rows of n floats, row i at b + i*ldb.  When n < NR the kernel reads
 *         only n floats of each row (b may be the caller's image itself).
 *   c:    m rows of n floats, row i at c + i*ldc
 *   bias: m floats or NULL, added when LC_GEMM_ACCUMULATE is not set
 *   ep:   clamp applied when LC_GEMM_FINAL is set and ep->clamp
 * Requires 1 <= m <= MR, 1 <= n <= NR, k >= 1. */
typedef void (*lc_gemm_ukernel_fn)(size_t m, size_t n, size_t k,
                                   const float *a, const float *b, size_t ldb,
                                   float *c, size_t ldc, const float *bias,
                                   const lc_epilogue *ep, unsigned flags);

/* Winograd F(m x m, 3 x 3) input transform of NR tiles at once, lanes innermost:
 *   d: alpha x alpha x NR floats (tile rows, tile columns, lanes)
 *   v: alpha*alpha outputs of NR floats, output xi at v + xi*xi_stride
 *   lanes: 1 <= lanes <= NR, the tiles in use: only the vectors holding lanes
 *          [0, lanes) are transformed and stored (the rest of v is untouched),
 *          so a partial panel costs its vectors, not NR lanes. */
typedef void (*lc_wino_input_fn)(const float *d, float *v, size_t xi_stride, size_t lanes);

/* Winograd input transform of NR tiles from a phase strip (optional: NULL
 * means the driver gathers lanes-innermost and calls lc_wino_input_fn).  The
 * strip has alpha rows, row k at s + k*lds: first m*NR floats, tile l's
 * window columns j < m at m*l + j (a run of tiles on one tile row is one
 * contiguous copy of the image row), so its columns m, m+1 are the next
 * tile's first two, m*(l+1) + j - m; except for the lanes set in `ends` (the
 * last tile of each run, NR <= 64), whose columns m and m+1 are at
 * (m + j - m)*NR + l instead.  v as for lc_wino_input_fn; same arithmetic. */
typedef void (*lc_wino_input_strip_fn)(const float *s, size_t lds, uint64_t ends, float *v,
                                       size_t xi_stride, size_t lanes);

/* Winograd input transform of NR tiles straight from the channel planes
 * (optional: NULL means the driver builds a phase strip or gathers).  The
 * panel's lanes are cut into vectors of wino_direct_lanes lanes, and each
 * vector q into segments segs[vseg[q] .. vseg[q + 1]): lanes of one tile row
 * whose windows sit side by side in the image.  Seen from a vector, a
 * segment is a window on a "virtual strip" of image columns: lane l's window
 * column j < m is strip float m*l + j = image column xoff + m*l + j, for
 * image rows row0 .. row0 + alpha - 1; only strip floats [lo, hi) are inside
 * the image (the rest, and rows outside [0, H), read as zero).  Column m + j
 * of the segment's last lane `end` is image column xoff + m*(end + 1) + j,
 * inside the image when bit j of `halo` is set.  Lanes no segment covers are
 * zero.  Channel c (c < nchan) is read from x + c*plane and written at
 * v + c*c_stride (xi_stride and lanes as for lc_wino_input_fn); same
 * arithmetic as lc_wino_input_strip_fn, so the same bits.  Reads nothing of
 * x outside the windows' in-image floats. */
typedef struct lc_wino_seg {
    int64_t row0, xoff;
    int32_t lo, hi, end, halo;
} lc_wino_seg;
typedef void (*lc_wino_input_direct_fn)(const float *x, size_t plane, size_t nchan, int64_t H,
                                        int64_t W, const lc_wino_seg *segs, const int32_t *vseg,
                                        float *v, size_t c_stride, size_t xi_stride,
                                        size_t lanes);

/* Winograd output transform of NR tiles at once:
 *   mo: alpha*alpha inputs of NR floats at mo + xi*xi_stride
 *   o:  m x m x NR floats, bias added and the epilogue applied, in m rows of
 *       m*NR floats laid out like image rows: output (i, j) of lane l at
 *       i*m*NR + l*m + j, so a run of tiles on one tile row is a contiguous
 *       segment of each output row
 *   lanes: 1 <= lanes <= NR, the tiles in use: only the vectors holding lanes
 *          [0, lanes) are computed and stored, and mo's lanes >= lanes are
 *          never used (read as zero in the last vector: the GEMM leaves them
 *          unwritten, and stale data must not cost denormal stalls).
 * Returns the lanes (bit l = lane l) with an Inf or NaN among their m x m
 * transform results before the bias and epilogue: the driver recomputes
 * those tiles when the transforms, not the inputs, made them (overflow). */
typedef uint64_t (*lc_wino_output_fn)(const float *mo, size_t xi_stride, float *o,
                                      float bias, const lc_epilogue *ep, size_t lanes);

/* Depthwise row: for ox in [0, n)
 *   out[ox] = clamp(bias + sum_{r < rows, j < kW} w[r*kW + j] * in[r*in_row_stride + ox*stride + j*dil])
 * All taps are inside the image (the driver handles borders). */
typedef void (*lc_dw_row_fn)(float *out, size_t n, const float *in, size_t in_row_stride,
                             size_t rows, const float *w, size_t kW, size_t stride,
                             size_t dil, float bias, const lc_epilogue *ep);

/* Depthwise 3x3 over one whole channel plane, dilation 1 (optional entry:
 * NULL means the driver runs dw_row per output row):
 *   out[oy*OW + ox] = clamp(bias + sum_{ky,kx < 3} w[ky*3 + kx] * x(oy*stride_h - pad_t + ky,
 *                                                                  ox*stride_w - pad_l + kx))
 * where x(iy, ix) = in[iy*W + ix] inside the H x W image and 0 outside (any
 * padding, including bottom/right as OH, OW imply).  Requires stride_w 1 or 2,
 * stride_h >= 1, pad_t, pad_l >= 0.  Reads only in[0 .. H*W). */
typedef void (*lc_dw3x3_plane_fn)(float *out, size_t OH, size_t OW, const float *in, size_t H,
                                  size_t W, size_t stride_h, size_t stride_w, size_t pad_t,
                                  size_t pad_l, const float *w, float bias,
                                  const lc_epilogue *ep);
/* Depthwise 3x3 at `stride` (both ways), dilation 1, over `channels` planes
 * of one image (optional entry, NULL: the plane kernel per channel): plane c
 * reads in + c*in_plane and writes out + c*out_plane with weights w + 9c and
 * bias bias[c] (bias may be NULL: 0), each output as lc_dw3x3_plane_fn
 * computes it, same bits.  For planes small enough that a call and a task
 * per plane show (on AVX-512, stride 1: OW <= 16; two planes share a vector
 * where W + pad_l <= 8, OW + 2 <= 8 + pad_l, OW <= 8: 7x7; stride 2: two
 * planes to a vector where W + pad_l <= 16 and OW <= 7: 14x14 -> 7x7).
 * Returns 0, touching nothing, for a geometry it does not take (channels 0
 * only asks), else 1. */
typedef int (*lc_dw3x3_planes_fn)(float *out, size_t out_plane, const float *in, size_t in_plane,
                                  size_t channels, size_t OH, size_t OW, size_t H, size_t W,
                                  size_t stride, size_t pad_t, size_t pad_l, const float *w,
                                  const float *bias, const lc_epilogue *ep);
/* Depthwise over tiny planes (optional entry, NULL: the other paths), for
 * planes of at most LC_DW_TINY_PIXELS input and output pixels (a 4x4 map of a
 * 128-pixel MobileNet): one vector holds a whole plane, and each tap is one
 * in-register permute of it.  The taps that reach the image at all are given
 * as tables the driver builds once per layer (kernels/depthwise_tiny.c): for
 * tap t, output pixel q reads input pixel idx[t][q] where bit q of mask[t]
 * is set, else 0.  For channels o < channels (planes of `in_plane` and
 * `out_plane` floats, input plane o / mult):
 *   out[o][q] = clamp(bias[o] + sum_t w[o * ktaps + tap[t]] * x[o / mult][idx[t][q]])
 * with clamp = ep->clamp's (bias may be NULL: 0). */
#define LC_DW_TINY_PIXELS 16
#define LC_DW_TINY_TAPS 64
typedef struct {
    int n;                                          /* taps that reach the image */
    int32_t tap[LC_DW_TINY_TAPS];                   /* ky * kW + kx of each */
    uint32_t mask[LC_DW_TINY_TAPS];
    int32_t idx[LC_DW_TINY_TAPS][LC_DW_TINY_PIXELS];
} lc_dw_tiny_taps;
typedef void (*lc_dw_tiny_fn)(float *out, const float *in, size_t channels, size_t mult,
                              size_t in_plane, size_t out_plane, const lc_dw_tiny_taps *taps,
                              const float *w, size_t ktaps, const float *bias,
                              const lc_epilogue *ep);
/* Depthwise over a band of a zero-padded plane laid out so that every tap is
 * a unit-stride run (any kernel size, stride, dilation): for r < rows, ox < n
 *   out[r*ldo + ox] = clamp(bias + sum_{ky < kH, kx < kW} w[ky*kW + kx] *
 *                           p[r*row_step + ky*tap_step + coff[kx] + ox])
 * The driver (kernels/depthwise.c) stores a stride-s row as s phases, column
 * c at phase c % s, position c / s, so output column ox's taps are
 * p[.. + coff[kx] + ox] whatever the stride.  From each tap row, at
 * R = r*row_step + ky*tap_step, the kernel may read p[R + c] for
 * c < round_up(max coff + 1, LC_DW_BAND_LANES) + round_up(n, LC_DW_BAND_LANES)
 * (whole vectors, and one more for the ISA's shifted taps: the driver's
 * padded rows hold that slack, 64-byte aligned); it writes out[r*ldo + ox],
 * ox < n, only. */
#define LC_DW_BAND_LANES 16
typedef void (*lc_dw_band_fn)(float *out, size_t ldo, size_t rows, size_t n, const float *p,
                              size_t row_step, size_t tap_step, const size_t *coff,
                              const float *w, size_t kH, size_t kW, float bias,
                              const lc_epilogue *ep);
/* Grouped convolution over a band of Cg zero-padded input planes laid out
 * as lc_dw_band_fn's (channel c's rows at p + c*chan_step), mg output
 * channels of one group: for m < mg, r < rows, ox < n
 *   out[m*out_plane + r*ldo + ox] = clamp(bias[m] + sum_{c < cg, ky < kH, kx < kW}
 *       w[((m*cg + c)*kH + ky)*kW + kx] * p[c*chan_step + r*row_step + ky*tap_step + coff[kx] + ox])
 * (bias may be NULL: 0), summed in that order of (c, ky, kx) whatever the
 * blocking.  Reads as lc_dw_band_fn does from each channel's rows; writes
 * those outputs only.  `lanes` in lc_isa_config: its vector width. */
typedef void (*lc_grouped_band_fn)(float *out, size_t out_plane, size_t ldo, size_t rows,
                                   size_t n, size_t mg, const float *p, size_t chan_step,
                                   size_t cg, size_t row_step, size_t tap_step,
                                   const size_t *coff, const float *w, size_t kH, size_t kW,
                                   const float *bias, const lc_epilogue *ep);
/* Channel-blocked depthwise (optional entry, kernels/depthwise_cblock.c):
 * L = `lanes` channels side by side, pixel-major ("interleaved": float
 * x*L + c is channel c at pixel x), so that a vector holds one pixel of L
 * channels and every tap is a broadcast-free vector FMA whatever the image
 * width.
 *   row: for ox < n, c < L
 *     out[ox*L + c] = clamp(bias[c] + sum_{ky < kH, kx < kW} w[(ky*kW + kx)*L + c] *
 *                                     rows[ky][(ox*stride + kx*dil)*L + c])
 *   interleave:   dst[x*L + c] = src[c][off + x]  for x < n, c < L
 *   deinterleave: dst[c][off + x] = src[x*L + c]  for x < n, c < L, in order
 *                 of c (a later lane may repeat an earlier lane's plane)
 * Each reads and writes exactly those floats. */
typedef void (*lc_dw_cblock_row_fn)(float *out, size_t n, const float *const *rows,
                                    size_t stride, size_t dil, const float *w, size_t kH,
                                    size_t kW, const float *bias, const lc_epilogue *ep);
typedef void (*lc_dw_interleave_fn)(float *dst, const float *const *src, size_t off, size_t n);
typedef void (*lc_dw_deinterleave_fn)(float *const *dst, size_t off, const float *src,
                                      size_t n);
typedef struct {
    size_t lanes; /* L; 0: the ISA has no channel-blocked kernels */
    lc_dw_cblock_row_fn row;
    lc_dw_interleave_fn interleave;
    lc_dw_deinterleave_fn deinterleave;
} lc_dw_cblock_kernels;
/* Narrow GEMM over two MR panels at once, for a panel's column remainder:
 * like lc_gemm_ukernel_fn with 1 <= m <= 2*MR and
 * 1 <= n <= NR/2 + LC_GEMM_NARROW_TAIL (a few columns past NR/2 are cheaper
 * in the same call than in a call of their own); rows
 * [0, MR) come from a (k groups of MR floats), rows [MR, 2*MR) from
 * a + a_pstride (read only when m > MR; rows >= m are zero padding).  Twice
 * the rows of the full kernel at half its width keeps as many accumulators
 * busy, where the full kernel on n <= NR/2 columns would use half of them. */
#define LC_GEMM_NARROW_TAIL 3
typedef void (*lc_gemm_narrow_fn)(size_t m, size_t n, size_t k, const float *a,
                                  size_t a_pstride, const float *b, size_t ldb, float *c,
                                  size_t ldc, const float *bias, const lc_epilogue *ep,
                                  unsigned flags);
/* lc_gemm_narrow_fn with lc_gemm_pf_fn's prefetch cursor (rows of NR floats,
 * one at a time spread over its k loop; used where it covers two panels,
 * m > MR, and NR/2 columns or a few fewer -- elsewhere its kernel may
 * prefetch nothing).  Prefetches never fault.  Same results as gemm_narrow. */
typedef void (*lc_gemm_narrow_pf_fn)(size_t m, size_t n, size_t k, const float *a,
                                     size_t a_pstride, const float *b, size_t ldb, float *c,
                                     size_t ldc, const float *bias, const lc_epilogue *ep,
                                     unsigned flags, const float *pf, size_t pf_ld,
                                     size_t pf_rows);

/* lc_gemm_ukernel_fn that also asks for pf_rows rows of NR floats (row r at
 * pf + r*pf_ld) to be brought towards the core (L2), one at a time spread
 * over its k loop, on full-width tiles (n == NR; otherwise it prefetches
 * nothing).  The drivers point it at the B rows their next call will read
 * from memory, so those reads overlap the FMAs instead of following them.
 * Prefetches never fault: pf may point anywhere.  Same results as gemm. */
typedef void (*lc_gemm_pf_fn)(size_t m, size_t n, size_t k, const float *a, const float *b,
                              size_t ldb, float *c, size_t ldc, const float *bias,
                              const lc_epilogue *ep, unsigned flags, const float *pf,
                              size_t pf_ld, size_t pf_rows);

/* A's packing from rows (optional: NULL, the drivers' portable loop): MR
 * rows of k floats, row i at src + i*lds, into k groups of MR floats, group
 * j at dst + j*ldd (dst[j*ldd + i] = src[i*lds + j]): with ldd MR the GEMM
 * micro-kernel's A operand, with ldd n a transposed copy's MR columns (the
 * batched GEMM's K^T).  The token GEMM (kernels/token_gemm.c) packs its
 * input rows so on every call, m*k floats a call; as scalar loads and
 * stores that was 5-20% of a Swin-T layer with 96 output channels. */
typedef void (*lc_pack_rows_fn)(float *dst, size_t ldd, const float *src, size_t lds,
                                size_t k);

/* Tall GEMM tile (optional): like lc_gemm_narrow_fn over tall_rows / MR
 * panels of packed A (panel q at a + q*a_pstride, read only where rows of it
 * are < m) and 1 <= n <= tall_cols columns, 1 <= m <= tall_rows, with
 * lc_gemm_pf_fn's prefetch cursor (rows of NR floats, a panel's: used when
 * n == tall_cols; the driver asks on a panel's first tile; with
 * LC_GEMM_PF_WRITE in flags the cursor is C rows, asked for with intent to
 * write, into L1).  One B load feeds tall_rows FMAs, so B (a 1 x 1 layer's
 * input planes) is read once per tall_rows output channels instead of once
 * per MR.  Each C element is one FMA chain over k from the bias, as in
 * lc_gemm_ukernel_fn's vector columns. */
typedef void (*lc_gemm_tall_fn)(size_t m, size_t n, size_t k, const float *a,
                                size_t a_pstride, const float *b, size_t ldb, float *c,
                                size_t ldc, const float *bias, const lc_epilogue *ep,
                                unsigned flags, const float *pf, size_t pf_ld, size_t pf_rows);

/* Wide GEMM tile (optional): like lc_gemm_ukernel_fn with m <= MR and
 * wide_nr <= n <= wide_nr + LC_GEMM_NARROW_TAIL columns, the columns past
 * wide_nr computed the other way in the same call.  The drivers use it on
 * whole rows of a plain row-major B and C (Im2Col, 1x1), where a wider tile
 * leaves a smaller remainder on small images.  Each C element is one FMA
 * chain over k from the bias, as in lc_gemm_ukernel_fn's vector columns. */
typedef void (*lc_gemm_wide_fn)(size_t m, size_t n, size_t k, const float *a, const float *b,
                                size_t ldb, float *c, size_t ldc, const float *bias,
                                const lc_epilogue *ep, unsigned flags);

/* Strided row copies, `rows` of them:
 *   dst[i*dst_stride + r] = src[i*src_step + r*stride], i < rows, r < n,
 * rows, n, stride >= 1.  Reads only the elements named (a row may end right
 * at the last one) and writes only dst[i*dst_stride + r].  The patch
 * unwrapping of Im2Col/Patch2Vec calls it once per input row and run for all
 * the kx taps that fall inside the image (src_step = dilation, dst_stride =
 * the panel width); stride 1 and 2 are the cases worth vectorising. */
typedef void (*lc_strided_copy_fn)(float *dst, size_t dst_stride, const float *src,
                                   size_t src_step, size_t rows, size_t n, size_t stride);

/* The epilogue's post-op over n contiguous floats:
 *   y[i] = act((src[i] + bias) + residual[i])   (residual NULL: act(src[i] + bias))
 * with act = ep->act and its parameters (the whole activation, LC_ACT_CLAMP
 * included; ep->clamp is ignored).  y may be src or residual: element i is
 * read before y[i] is written.  The drivers call it on each output region
 * right after they write it, while it is in cache. */
typedef void (*lc_postop_fn)(float *y, const float *src, size_t n, const float *residual,
                             float bias, const lc_epilogue *ep);

/* One 16-row panel of a matrix-vector product (kernels/se_gemv_template.h):
 *   y[i] = sum over j < k of wp[j * 16 + i] * x[j],  i < rows <= LC_GEMV_PANEL
 * (the dense layer, dense.c, and the squeeze-and-excitation block's fully
 * connected layers through it; lc_se_pack makes the panels). */
#define LC_GEMV_PANEL 16
typedef void (*lc_gemv16_fn)(float *y, const float *wp, const float *x, size_t rows, size_t k);

/* Pooling's row primitives (kernels/pool.c), optional (NULL: pool.c's
 * portable loops).  Each reduces in the order of the portable loops, so the
 * bits are the same: max keeps the first of equal values (signed zeros) and a
 * NaN sticks once taken; sums start from the first term (rows) or from 0 (cols).
 *   rows: r[w] = op over i < nrows (in order) of x[i * step + w], w < n; nrows >= 1
 *   cols: out[k] = op over j < kw (in order) of in[j * dil + k * stride], k < n;
 *         stride 1 or 2; reads only the elements named
 * op: max (is_max) or sum.  r and out may not overlap the inputs. */
typedef void (*lc_pool_rows_fn)(float *r, const float *x, size_t step, size_t nrows, size_t n,
                                int is_max);
typedef void (*lc_pool_cols_fn)(float *out, const float *in, size_t n, size_t kw, size_t dil,
                                size_t stride, int is_max);

/* Whole planes at once (optional; kernels/pool.c prepares the tables): no
 * call and no scalar edge loop per row.  Output rows (plane-major) go in
 * chunks of `chunk`: first each row's in-image window rows [row_lo, row_hi)
 * are reduced (max or sum, in order, from the first) into its row of r
 * (r + q * pitch) at offset pad_l; then its columns, every output through
 * the vector path: r's other floats hold the fill (-inf for max, 0 for sum)
 * that stands for the padding: out[ow] = op over j < kw of
 * row[ow * sw + j * dw] (max from its first tap, sum from 0: padding adds
 * +0, which changes no bits), an average divided by
 * (float)(row_cnt[oh] * col_cnt[ow]), or NaN where that is 0.  The same bits
 * as the portable loops.  pitch >= pad_l + W and >= (OW - 1) * sw +
 * (kw - 1) * dw + 1; r holds r_floats >= (chunk - 1) * pitch + sw * (OW
 * rounded up to 16) + (kw - 1) * dw + 32 floats; the kernel fills it (the row
 * form; the others take what kernels/pool_flat.h sizes). */
typedef struct {
    size_t H, W, OH, OW, kh, kw, sh, sw, dh, dw, pad_t, pad_l;
    size_t pitch, chunk, r_floats;
    const int32_t *row_lo, *row_hi;   /* per output row: row taps in the image */
    const int32_t *row_cnt, *col_cnt; /* per output row / column: the divisor's factors */
    int is_max;
    int form;                         /* which form runs (kernels/pool_flat.h lc_pool_form) */
    size_t entries;                   /* its table's entries (0: no table) */
    const void *table;                /* its masks and divisors, built once per geometry
                                         (pool_flat.h's layout), read-only: threads share it */
} lc_pool_plane_geom;
typedef void (*lc_pool_plane_fn)(float *y, const float *x, size_t planes,
                                 const lc_pool_plane_geom *g, float *r);

/* LRN's divide (kernels/lrn.c), optional: y[p] = x[p] / d^beta, d =
 * fmaf(scale, s[p], bias) (one rounding, as the portable loop), p < n, for beta = 1
 * (root 0), 0.5 (root 1: sqrt d) and 0.75 (root 2: sqrt d * sqrt(sqrt d)):
 * the portable loop's bits (IEEE square roots and division). */
typedef void (*lc_lrn_div_fn)(float *y, const float *x, const float *s, size_t n, float scale,
                              float bias, int root);

/* The channel LayerNorm of one image's block of np <= LC_LN_BLOCK pixels
 * (kernels/channel_norm.c), optional: x and y point at the block's first
 * pixel of channel 0, channels hw floats apart; scale and bias may be NULL.
 * The ISA blocks: kernels/channel_norm_lanes_template.h. */
#define LC_LN_BLOCK 256
typedef void (*lc_layernorm_block_fn)(float *y, const float *x, size_t channels, size_t hw,
                                      size_t np, float eps, const float *scale,
                                      const float *bias);

/* LayerNormalization of one row of width floats (kernels/instance_norm.c's
 * lc_layer_norm_rows), optional: kernels/layer_norm_row_template.h compiled
 * for the ISA, the portable loop's bits. */
typedef void (*lc_ln_row_fn)(float *y, const float *x, size_t width, float eps,
                             const float *scale, const float *bias);

/* Softmax (kernels/softmax.c), optional: with inner == 1, cnt rows of n
 * contiguous values at x, each a softmax; else columns [0, cnt) of n rows
 * inner floats apart, each column a softmax.  y may be x.  The ISA forms:
 * kernels/softmax_lanes_template.h. */
typedef void (*lc_softmax_fn)(float *y, const float *x, size_t n, size_t inner, size_t cnt);

/* The per-channel affine map of one plane (kernels/channel_affine.c),
 * optional: y[i] = fmaf(x[i], scale, shift) (one rounding), then with relu
 * 0 where that is below 0 (a NaN passes), i < n; y may be x. */
typedef void (*lc_affine_fn)(float *y, const float *x, size_t n, float scale, float shift,
                             int relu);

/* The Winograd GEMM of one alpha^2 point with output channels in the vector
 * lanes (small images: few tiles, many channels), for `rows` <= R tiles and
 * `cols` <= CW output channels (R, CW: the ISA's wino_cl_rows/_cols):
 *   mo[o * ldo + r] = sum_{c < k} ut[c * CW + o] * v[c * ldv + r]
 * ut: transformed weights, k rows of CW channels (zero past the last);
 * v: transformed input, k rows of at least R tiles (lanes past `rows` are
 * read, and must be finite, but not stored).  The sum runs over c in order,
 * so the result does not depend on how callers split tiles or channels. */
typedef void (*lc_wino_cl_gemm_fn)(size_t k, const float *ut, const float *v, size_t ldv,
                                   float *mo, size_t ldo, size_t rows, size_t cols);

/* Direct convolution with output channels in the vector lanes (the
 * direct_lanes algorithm, kernels/direct_lanes.c): n <= R output pixels
 * times CW = NV * L output channels (R, CW, L: the ISA's dl_rows, dl_cols,
 * dl_lanes).  For j < n, o < CW, with v = o / L, l = o % L:
 *   t[v * ldt + j * L + l] = clamp(init + sum over c < C, ky < kH,
 *       kx < kW, in that order, of w[c * wcs + (ky * kW + kx) * CW + o] *
 *       x[c * xcs + ky * xrs + kx * xts + xoff[j]])
 * init: that t value itself with LC_GEMM_ACCUMULATE (a later block of input
 * channels), else bias[o] (bias NULL: 0); clamp when LC_GEMM_FINAL and
 * ep->clamp.  Reads only the x named, xoff[0..n) and CW floats of bias;
 * writes only those t.  Strides and offsets are in floats.
 * And where pf_lines > 0 it asks for (prefetches into L2, never reads) the
 * C x pf_lines 64-byte lines from pf, pf_lines in each input channel's step:
 * the driver's next weights, from beyond L2, arriving under these FMAs. */
typedef struct lc_dl_geom {
    size_t C, kH, kW;          /* input channels, kernel rows, kernel columns */
    size_t xcs, xrs, xts;      /* input: channel, kernel row, kernel column */
    const size_t *xoff;        /* input: the pixels' offsets */
    size_t wcs;                /* weights: channel */
    size_t ldt;                /* output tile: vector */
    const char *pf;            /* lines to prefetch (pf_lines 0: none) */
    size_t pf_lines;           /* of them per input channel */
} lc_dl_geom;
typedef void (*lc_dl_kernel_fn)(size_t n, const float *x, const float *w, float *t,
                                const float *bias, const lc_dl_geom *g, const lc_epilogue *ep,
                                unsigned flags);

/* The 1 x 1 / stride-1 form of it (kernels/pointwise_lanes.c): n <= R
 * consecutive pixels, the same R, CW and L as the ISA's dl kernel of that
 * width.  For j < n, o < CW, with v = o / L, l = o % L:
 *   t[v * ldt + j * L + l] = clamp(init + sum over c < k, in order, of
 *       w[c * CW + o] * x[c * ldx + j])
 * init, clamp and what is read and written as for lc_dl_kernel_fn.  With
 * LC_PW_PREFETCH in flags it also asks for (prefetches into L1, never
 * reads) the weights a fixed number of channels (LC_PW_PF_AHEAD) ahead of
 * each channel's step, within the k channels: for a call whose weights come
 * from beyond L2, the first of a pass in a model's run.  With
 * LC_PW_PREFETCH_X it asks, at each channel's step, for the line holding
 * x[c * ldx + 2n - 1] (the last pixel of a next call of n pixels, at most
 * one past the input's end), and with both flags also for the line of
 * x[(c + LC_PW_PF_AHEAD) * ldx + n - 1] (this call's own pixels that many
 * channels ahead): the driver sets it where another call on the pixels
 * that follow comes next. */
typedef void (*lc_pw_kernel_fn)(size_t n, size_t k, const float *x, size_t ldx, const float *w,
                                float *t, size_t ldt, const float *bias, const lc_epilogue *ep,
                                unsigned flags);

/* The stem kernel (kernels/stem_lanes.c, a mode of direct_lanes for layers
 * of a few input channels): output pixels in the vector lanes, `rows` <= R
 * output channels of one output row, n <= V x L of its pixels (R, V, L: the
 * ISA's stem_rows, stem_vecs, stem_lanes).  For r < rows, j < n:
 *   y[r * ldy + j] = clamp(init + sum over k < K, in order, of
 *       w[k * R + r] * x[off[k] + j])
 * init: bias[r] (bias NULL: 0); clamp when ep->clamp.  Reads x[off[k] + j]
 * for every j below n rounded up to whole vectors of L, R floats of bias
 * and K x R of w; writes only those y. */
typedef void (*lc_stem_kernel_fn)(size_t n, size_t rows, const float *x, const size_t *off,
                                  size_t K, const float *w, float *y, size_t ldy,
                                  const float *bias, const lc_epilogue *ep);

/* Winograd output sizes m served by the table, in index order. */
#define LC_WINO_VARIANTS 3
static const int lc_wino_m[LC_WINO_VARIANTS] = {2, 4, 6};

/* The Winograd size an algorithm runs (an index of lc_wino_m), -1 for one
 * that is not Winograd; and whether it transforms its weights per call. */
static inline int lc_wino_variant_of(int algorithm) {
    switch (algorithm) {
    case LC_ALGO_WINOGRAD_F2: case LC_ALGO_WINOGRAD_F2_LEAN: return 0;
    case LC_ALGO_WINOGRAD_F4: case LC_ALGO_WINOGRAD_F4_LEAN: return 1;
    case LC_ALGO_WINOGRAD_F6: return 2;
    default: return -1;
    }
}
static inline int lc_wino_is_lean(int algorithm) {
    return algorithm == LC_ALGO_WINOGRAD_F2_LEAN || algorithm == LC_ALGO_WINOGRAD_F4_LEAN;
}

/* The weight transform of a lean Winograd call: for c < cg, the 3 x 3
 * filters of CW = wino_cl_cols output channels, wl[(c * 9 + tap) * CW + o]
 * (tap = 3 * row + column), into u[x * u_xs + c * CW + o], x < alpha^2:
 * U = G g G^T in float, G of kernels/winograd_transforms.h. */
typedef void (*lc_wino_weight_fn)(const float *wl, size_t cg, float *u, size_t u_xs);

/* The cost model's per-ISA terms (kernels/choose.c), in units of one GEMM
 * micro-kernel multiply-add: what moving data costs next to arithmetic
 * depends on the FMA width. */
typedef struct lc_cost_terms {
    float stream_byte;                  /* a byte of weights streamed from beyond L2 */
    float pack_im2col, pack_patch2vec;  /* a patch value unwrapped */
    float wino_elem[LC_WINO_VARIANTS];  /* a value through the Winograd transforms */
    float dl_mac;                       /* a direct_lanes multiply-add */
    float dl_move;                      /* a value through direct_lanes' padded input
                                         * copy or its output transpose */
    float pw_mac;                       /* a direct_lanes 1 x 1 multiply-add (0: "auto"
                                         * does not weigh direct_lanes on 1 x 1 layers) */
    float stem_mac;                     /* a multiply-add of its stem kernel (stem_kernel) */
    float grouped_mac;                  /* a multiply-add of the grouped band kernel, per
                                         * lane (0: "auto" does not weigh it) */
} lc_cost_terms;

typedef struct lc_isa_config {
    const char *name;
    int mr, nr;                 /* GEMM tile; packed weights depend on mr, panels on nr */
    int kc;                     /* K block that keeps an NR panel slice in L1 */
    lc_gemm_ukernel_fn gemm;
    lc_wino_input_fn wino_input[LC_WINO_VARIANTS];
    lc_wino_output_fn wino_output[LC_WINO_VARIANTS];
    lc_dw_row_fn dw_row;
    lc_dw3x3_plane_fn dw3x3_plane; /* optional (NULL: dw_row per output row) */
    lc_dw3x3_planes_fn dw3x3_planes; /* optional: small stride-1 planes, several a call */
    lc_dw_band_fn dw_band;         /* depthwise kernels other than the 3x3 plane's */
    lc_dw_cblock_kernels dw_cblock; /* optional (lanes 0): channel-blocked depthwise */
    lc_grouped_band_fn grouped_band; /* optional: grouped layers, few channels a group */
    int grouped_lanes;               /* its vector width */
    /* Optional entries (NULL: the drivers use their portable C path). */
    lc_strided_copy_fn strided_copy; /* patch unwrapping runs */
    lc_gemm_narrow_fn gemm_narrow;   /* column remainders <= NR/2, two MR panels */
    lc_gemm_narrow_pf_fn gemm_narrow_pf; /* gemm_narrow with a prefetch cursor (optional) */
    lc_gemm_wide_fn gemm_wide;       /* whole rows of B in wide_nr-column tiles */
    lc_gemm_pf_fn gemm_wide_pf;      /* gemm_wide with a prefetch cursor (optional) */
    lc_gemm_pf_fn gemm_pf;           /* gemm with a prefetch cursor (NULL: no prefetch) */
    int wide_nr;
    lc_gemm_tall_fn gemm_tall;       /* few output channels, one B vector (NULL: none) */
    lc_pack_rows_fn pack_rows;       /* optional: MR rows into the GEMM's A panel */
    int tall_rows, tall_cols;        /* its rows (a multiple of mr) and columns (divide nr) */
    lc_wino_input_strip_fn wino_input_strip[LC_WINO_VARIANTS]; /* optional, may be NULL */
    lc_wino_input_direct_fn wino_input_direct[LC_WINO_VARIANTS]; /* optional, may be NULL */
    int wino_direct_lanes;           /* its vector width (segments never straddle one) */
    lc_wino_cl_gemm_fn wino_cl_gemm; /* optional: channel-lanes Winograd GEMM */
    int wino_cl_rows, wino_cl_cols;  /* its tile rows R (divides nr) and channels CW */
    lc_wino_weight_fn wino_weight[2]; /* optional: F2's and F4's weight transform over CW
                                       * channels (the lean algorithms need it) */
    lc_dl_kernel_fn dl_kernel;       /* direct_lanes kernel */
    int dl_lanes, dl_cols, dl_rows;  /* its L, CW, R */
    lc_dl_kernel_fn dl_kernel_half;  /* optional: the same over dl_cols / 2 channels */
    int dl_rows_half;                /* its R */
    lc_dl_kernel_fn dl_kernel_quarter; /* optional: the same over dl_cols / 4 channels */
    int dl_rows_quarter;             /* its R (its 1 x 1 form's too) */
    lc_pw_kernel_fn pw_kernel;       /* 1 x 1 kernels of dl_kernel's and dl_kernel_half's widths */
    lc_pw_kernel_fn pw_kernel_half;
    lc_pw_kernel_fn pw_kernel_quarter; /* and of dl_kernel_quarter's */
    int pw_rows;                     /* pw_kernel's R (0: dl_rows); pw_kernel_half's is dl_rows_half */
    lc_stem_kernel_fn stem_kernel;   /* optional: direct_lanes on few input channels */
    int stem_lanes, stem_rows, stem_vecs; /* its L, R (at most 4) and V (at most 6) */
    lc_cost_terms cost;
    lc_postop_fn postop;             /* the epilogue beyond the kernels' clamp */
    lc_pool_rows_fn pool_rows;       /* optional: pooling's row primitives */
    lc_pool_cols_fn pool_cols;
    lc_pool_plane_fn pool_plane;     /* optional: whole planes (sw 1 or 2) */
    int pool_plane_tabled;           /* pool_plane runs the tabled one-pass forms
                                        (kernels/pool_flat.h lc_pool_form) */
    lc_lrn_div_fn lrn_div;           /* optional: LRN's divide for beta 1, 0.5, 0.75 */
    lc_affine_fn affine;             /* optional: a plane's affine map (channel_affine.c) */
    lc_layernorm_block_fn layernorm; /* optional: a block of the channel LayerNorm */
    lc_ln_row_fn ln_row;             /* optional: a row of LayerNormalization */
    lc_softmax_fn softmax;           /* optional: softmax rows / columns */
    lc_gemv16_fn gemv16;             /* matrix-vector panels (squeeze-and-excitation) */
    lc_dw_tiny_fn dw_tiny;           /* optional: depthwise over tiny planes */
    int dw_tiny_taps;                /* up to this many taps reaching the image: it beats the
                                        other paths there (<= LC_DW_TINY_TAPS) */
} lc_isa_config;

/* ISA identifiers, in preference order from worst to best. */
enum lc_isa {
    LC_ISA_SCALAR = 0,
    LC_ISA_AVX2 = 1,
    LC_ISA_AVX512 = 2,
    LC_ISA_NEON = 3,
    LC_ISA_COUNT = 4
};

/* Config of one ISA, or NULL when this build or this CPU lacks it. */
const lc_isa_config *lc_isa_get(int isa);
/* Name of an ISA id ("scalar", "avx2", "avx512", "neon"). */
const char *lc_isa_name(int isa);
/* Was the ISA compiled into this build (whatever the CPU)? */
int lc_isa_compiled(int isa);

/* Per-ISA table fillers: each overrides the entries its ISA implements. */
void lc_config_scalar(lc_isa_config *cfg);
void lc_config_avx2(lc_isa_config *cfg);
void lc_config_avx512(lc_isa_config *cfg);
void lc_config_neon(lc_isa_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
