/* InstanceNormalization of NCHW float32 (leanconv.onnx's InstanceNormalization:
 * style-transfer and GAN generators normalise every plane after their
 * Convs; any spatial rank: hw is the product of the spatial sizes),
 * threaded over the planes; and LayerNormalization over contiguous rows
 * (a transformer's tokens, each normalised over its features).  Portable C. */
#ifndef LEANCONV_INSTANCE_NORM_H
#define LEANCONV_INSTANCE_NORM_H

#include <stdint.h>

/* For each of the `planes` planes of hw floats (plane i of channel
 * i % channels): y = (x - m) / sqrt(v + eps) * scale[c] + bias[c], m the
 * plane's mean, v the mean of its centred squares, both summed in double in
 * a fixed order (eight interleaved partial sums, then added in order): the
 * bits do not depend on nthreads.  y may be x (in place) but must not
 * otherwise overlap it.  Returns 0. */
int lc_instance_norm(const float *x, float *y, int64_t planes, int64_t channels, int64_t hw,
                     float eps, const float *scale, const float *bias, int nthreads);

/* For each of `rows` rows of `width` floats: y = (x - m) / sqrt(v + eps) *
 * scale[p] + bias[p] (bias may be NULL; scale may not), m and v the row's,
 * summed as lc_instance_norm sums them (kernels/layer_norm_row_template.h):
 * the bits do not depend on nthreads, nor on the ISA whose row entry runs
 * it (isa may be NULL: the portable loop).  y may be x but must not
 * otherwise overlap it.  Returns 0. */
struct lc_isa_config;
int lc_layer_norm_rows(const struct lc_isa_config *isa, const float *x, float *y, int64_t rows,
                       int64_t width, float eps, const float *scale, const float *bias,
                       int nthreads);

#endif
