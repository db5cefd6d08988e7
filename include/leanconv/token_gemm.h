/* A dense layer over many rows (kernels/token_gemm.c): a transformer's
 * tokens through a constant matrix, ONNX MatMul/Gemm x W (+ b), as laid out
 * (rows of k floats), no transposes around it.
 *
 *   y[i][r] = act((b[r] + res[i][r]) + sum over j < k of W[r][j] x[i][j]),
 *   i < m, r < n  (b, res: 0 where NULL)
 *
 * W packed by lc_token_pack into the ISA's NR-column panels (the GEMM
 * micro-kernel's B operand: panel p holds outputs p*NR .. p*NR + NR-1,
 * k-major, zero past n); x is packed per call into MR-row panels (its A
 * operand) in the caller's workspace (lc_token_gemm_workspace bytes,
 * 64-byte aligned).  b and res may be NULL; y must not overlap x, res may be
 * y (each element is read before it is written).  Every output's sum runs over k in the same order whatever the thread
 * count: the bits do not depend on it. */
#ifndef LEANCONV_TOKEN_GEMM_H
#define LEANCONV_TOKEN_GEMM_H

#include <stdint.h>
#include "leanconv/conv.h"

struct lc_isa_config;

/* Floats lc_token_pack writes for W of n outputs by k inputs. */
int64_t lc_token_packed_floats(const struct lc_isa_config *isa, int64_t n, int64_t k);
/* Pack W[r][j] = w[r * rs + j * ks] (r < n, j < k): row-major W is (k, 1),
 * its transpose as stored by MatMul (k x n) is (1, n). */
void lc_token_pack(const struct lc_isa_config *isa, const float *w, int64_t n, int64_t k,
                   int64_t rs, int64_t ks, float *out);
/* Workspace bytes a call on m rows of k needs. */
int64_t lc_token_gemm_workspace(const struct lc_isa_config *isa, int64_t m, int64_t k);
/* Returns LC_OK, LC_ERR_WORKSPACE (ws_bytes too small) or LC_ERR_UNSUPPORTED
 * (an activation out of range). */
int lc_token_gemm(const struct lc_isa_config *isa, const float *x, int64_t m, int64_t k,
                  const float *wp, int64_t n, const float *b, const float *res,
                  const lc_epilogue *ep, float *y, char *ws, int64_t ws_bytes, int nthreads);

#endif
