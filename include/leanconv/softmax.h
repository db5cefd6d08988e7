/* Softmax over one axis of a float32 array seen as outer x n x inner (ONNX
 * Softmax: n the softmax axis, inner the product of the axes after it; 1
 * for a classifier's last op), threaded over rows / column blocks. */
#ifndef LEANCONV_SOFTMAX_H
#define LEANCONV_SOFTMAX_H

#include <stdint.h>

struct lc_isa_config;

/* y[o][i][j] = exp(x[o][i][j] - m) / s over i < n, m the max over i (a NaN
 * anywhere along i: that softmax all NaN, as NumPy gives), s the sum of the
 * exps; o < outer, j < inner.  Through isa->softmax when the ISA has one
 * (vector exp, within 1e-6 relative of float64), else portable C (libm's
 * exp in double).  Either way the same bits at any thread count.  y may
 * be x.  Returns 0. */
int lc_softmax(const struct lc_isa_config *isa, const float *x, float *y, int64_t outer,
               int64_t n, int64_t inner, int nthreads);

#endif
