/* Local response normalisation across channels (ONNX LRN) of NCHW float32
 * (any spatial rank: hw is the product of the spatial sizes), threaded over
 * images and blocks of pixels.  Portable C. */
#ifndef LEANCONV_LRN_H
#define LEANCONV_LRN_H

#include <stdint.h>

struct lc_isa_config;

/* y[n][c][p] = x[n][c][p] / (bias + alpha / size * s)^beta, s the sum of
 * x[n][i][p]^2 over channels i in [c - (size - 1) / 2, c + size / 2] inside
 * [0, C), summed in channel order in float from 0.  size >= 1.  With isa's
 * divide when it has one (isa may be NULL: the portable loop; the bits are
 * the same).  Returns 0. */
int lc_lrn(const struct lc_isa_config *isa, const float *x, float *y, int64_t n,
           int64_t channels, int64_t hw, int64_t size, float alpha, float beta, float bias,
           int nthreads);

#endif
