/* A per-channel affine map with an optional ReLU over NCHW float32 planes
 * (a BatchNormalization that no convolution absorbs, with its ReLU: DenseNet's
 * pre-activation norms), threaded over blocks of planes.  Portable C, with
 * the ISA's plane primitive where it has one. */
#ifndef LEANCONV_CHANNEL_AFFINE_H
#define LEANCONV_CHANNEL_AFFINE_H

#include <stdint.h>

struct lc_isa_config;

/* y[p][i] = x[p][i] * scale[p % channels] + shift[p % channels], then with
 * relu: 0 where that is below 0 (NaN passes through), for planes p of hw
 * floats.  y may be x.  With isa's primitive when it has one, which fuses the
 * multiply-add (isa may be NULL: the portable loop, whose product may be
 * rounded first).  The bits do not depend on nthreads.  Returns 0. */
int lc_channel_affine(const struct lc_isa_config *isa, const float *x, float *y, int64_t planes,
                      int64_t channels, int64_t hw, const float *scale, const float *shift,
                      int relu, int nthreads);

#endif
