/* A fully connected layer on a few vectors (kernels/dense.c): ONNX Gemm or
 * MatMul by a constant matrix, a CNN's classifier.
 *
 *   y[i][r] = act(sum over j < k of W[r][j] x[i][j]  (+ b[r])),  i < n, r < rows
 *
 * W packed by lc_se_pack (leanconv/se_block.h: 16-row panels, the layout of
 * the ISA's lc_gemv16_fn), b may be NULL, act the epilogue ep's activation
 * (ep NULL: none; its clamp field is ignored, as the post-op does).  x[n][k], y[n][rows] row-major, not
 * overlapping.  Threaded over images and panels; every output's sum is one
 * gemv16 call, so the bits do not depend on the thread count. */
#ifndef LEANCONV_DENSE_H
#define LEANCONV_DENSE_H

#include <stdint.h>

struct lc_isa_config;
struct lc_epilogue;

/* Returns 0. */
int lc_dense(const struct lc_isa_config *isa, const float *x, float *y, int64_t n, int64_t rows,
             int64_t k, const float *wp, const float *b, const struct lc_epilogue *ep,
             int nthreads);

#endif
