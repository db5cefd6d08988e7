/* One image's block of pixels of the channel LayerNorm (channel_norm.c),
 * every channel, as plain loops: the including file names it
 * (LC_LN_BLOCK_FN) and sets the ISA (kernels/<isa>/target_begin.h), and the
 * compiler vectorises the pixel loops at that width (the ISA copies fuse the
 * multiply-adds: their bits may differ from the portable build's by that
 * rounding, never with the thread count or the block split -- each pixel's
 * sums run over the channels in order).  The row arrays hold LC_LN_BLOCK
 * pixels (include/leanconv/ukernels.h, lc_layernorm_block_fn).
 * The first pass copies the block's channel rows into `pack` (channels x np
 * floats, contiguous) as it sums them, and the other two read the copy: x's
 * rows are hw floats apart, and when that is a multiple of 1 K floats (32x32
 * planes, ConvNeXt's first stage) every row falls in the same L1 sets, so
 * the block did not stay in L1 between passes however small it was. */
void LC_LN_BLOCK_FN(float *y, const float *x, size_t channels, size_t hw, size_t np, float eps,
                    const float *scale, const float *bias, float *pack) {
    const float count = (float)channels;
    float mean[LC_LN_BLOCK], acc[LC_LN_BLOCK];
    for (size_t p = 0; p < np; p++) acc[p] = 0.0f;
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * hw;
        if (pack) {
            float *pc = pack + c * np;
            for (size_t p = 0; p < np; p++) {
                pc[p] = xc[p];
                acc[p] += xc[p];
            }
        } else {
            for (size_t p = 0; p < np; p++) acc[p] += xc[p];
        }
    }
    /* the second and third reads: the packed rows, else x's */
    const float *src = pack ? pack : x;
    const size_t ld = pack ? np : hw;
    for (size_t p = 0; p < np; p++) {
        mean[p] = acc[p] / count;
        acc[p] = 0.0f;
    }
    for (size_t c = 0; c < channels; c++) {
        const float *xc = src + c * ld;
        for (size_t p = 0; p < np; p++) {
            const float d = xc[p] - mean[p];
            acc[p] += d * d;
        }
    }
    /* one divide and root a pixel, then multiplies (sqrtf sets errno, so
     * this short loop stays scalar; the channel loops are the work) */
    for (size_t p = 0; p < np; p++) acc[p] = 1.0f / sqrtf(acc[p] / count + eps);
    for (size_t c = 0; c < channels; c++) {
        const float *xc = src + c * ld;
        float *yc = y + c * hw;
        const float s = scale ? scale[c] : 1.0f, sh = bias ? bias[c] : 0.0f;
        for (size_t p = 0; p < np; p++) yc[p] = (xc[p] - mean[p]) * acc[p] * s + sh;
    }
}
