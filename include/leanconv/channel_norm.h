/* LayerNorm over the channels of NCHW float32 (leanconv.onnx's
 * ChannelLayerNorm, frozen torch models' channels-last LayerNorm moved to
 * NCHW; any spatial rank: hw is the product of the spatial sizes), threaded
 * over images and blocks of pixels.  Portable C. */
#ifndef LEANCONV_CHANNEL_NORM_H
#define LEANCONV_CHANNEL_NORM_H

#include <stdint.h>

struct lc_isa_config;

/* y[n][c][p] = (x[n][c][p] - m) / sqrt(v + eps) * scale[c] + bias[c], m the
 * mean of x[n][.][p] over the channels, v the mean of (x[n][.][p] - m)^2 (the
 * centred values: no cancellation), both summed in channel order in float.
 * scale and bias may be NULL (1 and 0).  y may be x (in place) but must not
 * otherwise overlap it.  With isa's block when it has one (isa may be NULL:
 * the portable loops; the ISA's fused multiply-adds may change the last bit).
 * The bits do not depend on nthreads.  Returns 0. */
int lc_channel_layernorm(const struct lc_isa_config *isa, const float *x, float *y, int64_t n,
                         int64_t channels, int64_t hw, float eps, const float *scale,
                         const float *bias, int nthreads);

#endif
