/* Batched matrix products of run-time operands (kernels/batched_gemm.c):
 * attention's Q K^T and A V, ONNX MatMul of two activations.
 *
 *   y[b][i][c] = alpha * sum over j < k of x[b][i][j] w[b][j][c],  b < batch, i < m, c < n
 *
 * with x[b][i][j] = x[xoff[b] + i*xr + j*xc] and w[b][j][c] = w[woff[b] +
 * j*wr + c*wc] (any strides: views of transposes and gathers run as they
 * are), y contiguous (batch x m x n); alpha the scalars folded in from
 * Muls of its operands (attention's 1/sqrt(d)), applied to each output once.  Each output is one micro-kernel sum
 * over k, so the bits do not depend on the thread count. */
#ifndef LEANCONV_BATCHED_GEMM_H
#define LEANCONV_BATCHED_GEMM_H

#include <stdint.h>

struct lc_isa_config;

/* Workspace bytes (64-byte aligned) of a call at nthreads. */
int64_t lc_batched_gemm_workspace(const struct lc_isa_config *isa, int64_t batch, int64_t m,
                                  int64_t k, int64_t n, int64_t wc, int nthreads);
/* Returns LC_OK, or LC_ERR_WORKSPACE when ws_bytes is too small. */
int lc_batched_gemm(const struct lc_isa_config *isa, const float *x, const int64_t *xoff,
                    int64_t xr, int64_t xc, const float *w, const int64_t *woff, int64_t wr,
                    int64_t wc, float alpha, float *y, int64_t batch, int64_t m, int64_t k,
                    int64_t n, char *ws, int64_t ws_bytes, int nthreads);

#endif
