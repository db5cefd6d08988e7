/* Depthwise over tiny planes (at most LC_DW_TINY_PIXELS pixels in and out:
 * the 4x4 maps of MobileNet-class models at 128 pixels, where a plane kernel
 * spends more on each plane's setup and borders than on its few taps).  The
 * ISA's dw_tiny kernel holds a whole plane in registers (one AVX-512 vector,
 * two AVX2 ones, a NEON TBL table) and computes a tap as a permute of it, from tables built here once per call: which taps
 * reach the image at all, and for each, the input pixel every output pixel
 * reads (lc_dw_tiny_fn); with more such taps than the ISA's dw_tiny_taps, the
 * other paths take the layer.  Channels go in chunks; the post-op (activations
 * beyond the clamp, residual) runs over each chunk's contiguous output right
 * after it. */
#include "internal.h"

/* Channels per task: a few hundred taps' work each, enough to hide the
 * scheduling; the chunk's output (<= 4 KiB) is still in L1 for the post-op. */
#define LC_DW_TINY_CHUNK 64

typedef struct {
    lc_dw_call c;
    int64_t chunks; /* per image */
    lc_dw_tiny_taps taps;
} lc_dw_tiny_ctx;

static void lc_dw_tiny_task(void *vctx, int64_t item, int thread) {
    const lc_dw_tiny_ctx *t = (const lc_dw_tiny_ctx *)vctx;
    const lc_conv_desc *d = t->c.d;
    const int64_t n = item / t->chunks, o0 = (item % t->chunks) * LC_DW_TINY_CHUNK;
    const int64_t count = lc_min64(LC_DW_TINY_CHUNK, d->M - o0), mult = d->M / d->C;
    const int64_t in_plane = d->H * d->W, out_plane = d->OH * d->OW;
    const int64_t base = (n * d->M + o0) * out_plane;
    (void)thread;
    /* channel o0 reads input plane o0 / mult: the kernel's channel 0 starts
     * at that plane, its o / mult counting on from o0's remainder */
    const int64_t first_in = o0 / mult, skew = o0 - first_in * mult;
    if (skew == 0) {
        d->isa->dw_tiny(t->c.y + base, t->c.x + (n * d->C + first_in) * in_plane, (size_t)count,
                        (size_t)mult, (size_t)in_plane, (size_t)out_plane, &t->taps,
                        t->c.w + o0 * d->kH * d->kW, (size_t)(d->kH * d->kW),
                        t->c.bias ? t->c.bias + o0 : NULL, &d->epilogue);
    } else {   /* a chunk starting inside one input plane's group: channel by channel */
        for (int64_t o = o0; o < o0 + count; o++)
            d->isa->dw_tiny(t->c.y + (n * d->M + o) * out_plane,
                            t->c.x + (n * d->C + o / mult) * in_plane, 1, 1, (size_t)in_plane,
                            (size_t)out_plane, &t->taps, t->c.w + o * d->kH * d->kW,
                            (size_t)(d->kH * d->kW), t->c.bias ? t->c.bias + o : NULL, &d->epilogue);
    }
    if (t->c.post)
        d->isa->postop(t->c.y + base, t->c.y + base, (size_t)(count * out_plane),
                       t->c.res ? t->c.res + base : NULL, 0.0f, &t->c.ep);
}

int lc_depthwise_tiny_run(const lc_conv_desc *d, const lc_epilogue *ep, const float *x,
                          const float *w, const float *bias, const float *res, float *y) {
    if (!d->isa->dw_tiny || d->H * d->W > LC_DW_TINY_PIXELS ||
        d->OH * d->OW > LC_DW_TINY_PIXELS || d->kH * d->kW > LC_DW_TINY_TAPS ||
        (res && res == y))   /* in place: the kernel would overwrite the residual */
        return 0;
    lc_dw_tiny_ctx t;
    t.taps.n = 0;
    for (int64_t ky = 0; ky < d->kH; ky++)
        for (int64_t kx = 0; kx < d->kW; kx++) {
            const int k = t.taps.n;
            uint32_t mask = 0;
            for (int64_t oy = 0, q = 0; oy < d->OH; oy++)
                for (int64_t ox = 0; ox < d->OW; ox++, q++) {
                    const int64_t iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
                    const int64_t ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
                    const int inside = iy >= 0 && iy < d->H && ix >= 0 && ix < d->W;
                    t.taps.idx[k][q] = inside ? (int32_t)(iy * d->W + ix) : 0;
                    if (inside) mask |= 1u << q;
                }
            if (!mask) continue;   /* the tap reads only padding */
            for (int64_t q = d->OH * d->OW; q < LC_DW_TINY_PIXELS; q++) t.taps.idx[k][q] = 0;
            t.taps.mask[k] = mask;
            t.taps.tap[k] = (int32_t)(ky * d->kW + kx);
            t.taps.n++;
        }
    if (t.taps.n > d->isa->dw_tiny_taps) return 0;   /* the other paths are faster there */
    t.c = lc_dw_call_of(d, ep, x, w, bias, res, y);
    t.chunks = lc_div_up(d->M, LC_DW_TINY_CHUNK);
    lc_parallel_for(d->nthreads, d->N * t.chunks, lc_conv_work(d), lc_dw_tiny_task, &t);
    return 1;
}
