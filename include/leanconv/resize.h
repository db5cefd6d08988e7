/* 2-D resize of NCHW float32 planes (ONNX Resize, nearest and bilinear, over H
 * and W), from per-axis tables the caller computes (its coordinate transform
 * and rounding rules): threaded over planes.  Portable C. */
#ifndef LEANCONV_RESIZE_H
#define LEANCONV_RESIZE_H

#include <stdint.h>

/* Output row oh reads input rows row0[oh] and row1[oh], weighted
 * 1 - row_w[oh] and row_w[oh]; likewise columns.  Bilinear: the columns
 * are interpolated first (each input row once), then the rows, each as
 * a + (b - a) * w; a weight of 0 reads the first input alone.
 * Nearest (linear == 0): y = x[row0][col0], the other tables unused.  Indices
 * must lie in [0, H) / [0, W).
 * Returns 0, or LC_ERR_NOMEM. */
int lc_resize2d(const float *x, float *y, int64_t planes, int64_t H, int64_t W, int64_t OH,
                int64_t OW, const int64_t *row0, const int64_t *row1, const float *row_w,
                const int64_t *col0, const int64_t *col1, const float *col_w, int linear,
                int nthreads);

#endif
