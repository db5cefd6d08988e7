/* Broadcasting element-wise Add, Sub, Mul and Div of float32 arrays (ONNX's
 * binary ops; kernels/binary.c): y written and a and b read through strides
 * (a broadcast axis has stride 0 in a or b), threaded over runs of rows. */
#ifndef LEANCONV_BINARY_H
#define LEANCONV_BINARY_H

#include <stdint.h>

/* LC_BINARY_COPY: y = a, b not read (a strided view copied contiguous: a
 * Reshape of a permuted view, a Pad by nothing) */
enum { LC_BINARY_ADD = 0, LC_BINARY_SUB = 1, LC_BINARY_MUL = 2, LC_BINARY_DIV = 3,
       LC_BINARY_COPY = 4 };

/* Most axes a call takes (after the caller merged the axes it could). */
#define LC_BINARY_DIMS 6

/* y[i] = a[i] op b[i] for every index i of `shape` (ndim axes, each >= 1),
 * y's element i at y + sum(i[k] * sy[k]) floats (a's and b's likewise;
 * their strides may be 0 or negative; y's last stride must be 1 and y's
 * elements distinct).  One IEEE operation per element, so the bits are
 * NumPy's and do not depend on the thread count.  y may be a or b where that
 * one is read with y's own strides.  Returns 0, or -1 for an unknown op,
 * ndim outside 1..LC_BINARY_DIMS or y's last stride not 1. */
int lc_binary(int op, float *y, const int64_t *sy, const float *a, const int64_t *sa,
              const float *b, const int64_t *sb, const int64_t *shape, int ndim, int nthreads);

#endif
