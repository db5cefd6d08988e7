/* A per-channel affine map with an optional ReLU over NCHW float32 planes
 * (a BatchNormalization that no convolution absorbs, with its ReLU: DenseNet's
 * pre-activation norms), threaded over blocks of planes.  Portable C. */
#ifndef LEANCONV_CHANNEL_AFFINE_H
#define LEANCONV_CHANNEL_AFFINE_H

#include <stdint.h>

/* y[p][i] = x[p][i] * scale[p % channels] + shift[p % channels], then with
 * relu: 0 where that is below 0 (NaN passes through), for planes p of hw
 * floats.  y may be x.  Returns 0. */
int lc_channel_affine(const float *x, float *y, int64_t planes, int64_t channels, int64_t hw,
                      const float *scale, const float *shift, int relu, int nthreads);

#endif
