/* An inverted-residual block's expanding 1x1 convolution and the depthwise
 * convolution after it in one call (kernels/ir_block.c), band by band:
 *
 *   t = act_e(We x + be)            (1x1, C -> E channels, stride 1, no padding)
 *   y = act_d(depthwise(t) + bd)    (k x k, groups E, any stride, padding,
 *                                    dilation)
 *
 * Each band of output rows computes the expanded rows it reads into a
 * per-thread buffer about the size of L2 (the halo rows the band before
 * computed are kept, except at the start of a run of bands), runs the
 * depthwise on it and writes only y: the expanded tensor never goes to
 * memory.  Bands and runs are the same whatever the thread count, so
 * results are bitwise identical for any number of threads.
 *
 * Optionally the projecting 1x1 after them too (p, NULL for none):
 *
 *   z = act_p(Wp y + bp [+ residual])  (1x1, E -> P channels)
 *
 * run on each band's depthwise rows while they are in the thread's cache,
 * so y is not stored either (lc_ir_block_project_pays says where).
 *
 * Or without the expanding 1x1 (e NULL; p then required): the depthwise
 * reads x (N, E, H, W) in place and each band's rows go to the projection,
 * so y is not stored (MobileNetV2's first block).
 *
 * e: the 1x1's descriptor (N, C, H, W -> E = e->M) or NULL; d: the depthwise's
 * (N, E, H, W -> E, OH, OW, groups E); p: the projection's (N, E, OH, OW ->
 * P) or NULL.  Each carries its whole epilogue (the clamp flag is derived
 * here); nthreads and isa are d's. */
#ifndef LEANCONV_IR_BLOCK_H
#define LEANCONV_IR_BLOCK_H

#include <stdint.h>

#include "leanconv/conv.h"

/* Whether e, d (and p, or NULL) make a block this driver runs: NULL, else
 * the reason. */
const char *lc_ir_block_unsupported(const lc_conv_desc *e, const lc_conv_desc *d,
                                    const lc_conv_desc *p);

/* Output rows per band (0: unsupported): as many as L2 holds the
 * expanded rows of (and with p the depthwise rows too), at least one. */
int64_t lc_ir_block_band_rows(const lc_conv_desc *e, const lc_conv_desc *d,
                              const lc_conv_desc *p);

/* Tests: bands of `rows` output rows whatever the cache (0: back to the
 * cache budget), and lc_ir_block_pays answering `pays` for every supported
 * block (-1: back to the rule).  Not thread-safe; set before the calls. */
void lc_ir_block_debug(int64_t rows, int pays);

/* Whether fusing pays on this CPU: the expanded tensor would not stay in L3
 * between the two steps (or L2 where there is no L3), a band fits L2, and
 * the ISA's 3x3 plane kernel serves the depthwise.  0 where e is NULL. */
int lc_ir_block_pays(const lc_conv_desc *e, const lc_conv_desc *d);

/* Whether, in a block that pays, the projection p pays fused as well: the
 * depthwise's output would not stay in one core's L2 between two steps.
 * With e NULL, whether the depthwise and p pay fused (the same size rule,
 * and the ISA's 3x3 plane kernel serving the depthwise). */
int lc_ir_block_project_pays(const lc_conv_desc *e, const lc_conv_desc *d,
                             const lc_conv_desc *p);

/* Floats of a 1x1's packed weights (lc_ir_block_pack's output; e or p). */
int64_t lc_ir_block_packed_floats(const lc_conv_desc *e);
void lc_ir_block_pack(const lc_conv_desc *e, const float *we, float *packed);

/* Bytes of workspace lc_ir_block_run needs (band buffers per thread), -1
 * when the sizes overflow or the block is unsupported. */
int64_t lc_ir_block_workspace_bytes(const lc_conv_desc *e, const lc_conv_desc *d,
                                    const lc_conv_desc *p);

/* The projection's part of a call (p non-NULL): wp_packed from
 * lc_ir_block_pack(p, ...), bp (P) and residual (N, P, OH, OW) may be NULL.
 * y must not overlap x (later bands read x after earlier ones wrote y);
 * the residual may be y itself (each band adds onto its own rows). */
typedef struct {
    const float *wp_packed, *bp, *residual;
} lc_ir_project;

/* y (N, E, OH, OW) -- or (N, P, OH, OW) with a projection -- from x (N, C,
 * H, W; C = E without e); we_packed from lc_ir_block_pack (NULL without
 * e), be (E) and bd (E) may be NULL, wd (E, 1, kH, kW); proj NULL exactly
 * when p is.  workspace: at least
 * lc_ir_block_workspace_bytes, 64-byte aligned.  Returns LC_OK, or
 * LC_ERR_UNSUPPORTED (shapes that do not make such a block, a workspace too
 * small). */
int lc_ir_block_run(const lc_conv_desc *e, const lc_conv_desc *d, const lc_conv_desc *p,
                    const float *x, const float *we_packed, const float *be, const float *wd,
                    const float *bd, const lc_ir_project *proj, float *y, void *workspace,
                    int64_t workspace_bytes);

#endif
