/* Softmax over the last axis of float32 rows (ONNX Softmax once the axes
 * after the softmax axis are 1: a classifier's last op), threaded over rows.
 * Portable C. */
#ifndef LEANCONV_SOFTMAX_H
#define LEANCONV_SOFTMAX_H

#include <stdint.h>

/* y[r][i] = exp(x[r][i] - m) / s, m the row's max (a NaN if it holds one),
 * s the sum of the exps in float (8 running sums by i mod 8, added in a fixed
 * order: the same bits at any thread count), r < rows, i < n.  y may be x.
 * Returns 0. */
int lc_softmax(const float *x, float *y, int64_t rows, int64_t n, int nthreads);

#endif
