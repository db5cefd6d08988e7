/* The squeeze-and-excitation block in one call (kernels/se_block.c):
 *
 *   s = mean over the hw pixels of each channel of x     (global average pool)
 *   h = act1(W1 s + b1)                                   (1x1 conv, c -> r)
 *   g = gate(W2 h + b2)                                   (1x1 conv, r -> c)
 *   y = x * g, each channel's plane scaled by its gate
 *
 * for each of n images of x[n][c][hw].  W1 (r x c) and W2 (c x r) are packed
 * by lc_se_pack into 16-row panels (lc_gemv16_fn's layout); b1, b2 may be
 * NULL.  y may be x (in place), else must not overlap it. */
#ifndef LEANCONV_SE_BLOCK_H
#define LEANCONV_SE_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "leanconv/ukernels.h"

/* Floats of the packed form of a rows x k matrix. */
int64_t lc_se_packed_floats(int64_t rows, int64_t k);

/* Pack w (rows x k, row-major) into dst (lc_se_packed_floats floats). */
void lc_se_pack(float *dst, const float *w, int64_t rows, int64_t k);

/* Returns LC_OK, LC_ERR_NOMEM (its 4 (2c + r) bytes of scratch), or
 * LC_ERR_UNSUPPORTED for an activation code out of range. */
int lc_se_block(const lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t c,
                int64_t hw, const float *w1p, const float *b1, int64_t r,
                const lc_epilogue *act1, const float *w2p, const float *b2,
                const lc_epilogue *gate, int nthreads);

#endif
