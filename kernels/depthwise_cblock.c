/* Channel-blocked depthwise (the layout oneDNN and ONNX Runtime run as
 * NCHWc): a task takes L = the ISA's vector width output channels of one
 * image, interleaves their input rows (pixel-major, L channels a pixel) into
 * a ring of zero-padded rows on the stack as the output rows need them, runs
 * the ISA's row kernel (a vector per pixel, so narrow images fill every lane
 * and no tap needs a shuffle) and de-interleaves each output row back into
 * the L planes.  The post-op (activations beyond the clamp, residual) runs
 * per plane once the task's rows are done, while they are in cache.
 *
 * Taken for kernels other than the 3x3 plane kernel's when the ring and the
 * row fit their stack buffers, there are at least L channels, and the
 * residual is not the output itself (that needs a staging copy: the band
 * path's).  Each input row is interleaved once per block, each output row
 * de-interleaved once: about 4 shuffles per pixel vector each way against
 * k x k FMAs (7x7: 49). */
#include <string.h>
#include "internal.h"
#include "isa_build.h"

/* The ring of padded interleaved rows: 32 KiB, next to the L1-resident
 * output row it feeds (L1d is 32-48 KiB on the CPUs this targets). */
#define LC_DWC_RING_FLOATS 8192
/* One output row, interleaved: up to 128 pixels of 16 channels.  Tried
 * (AVX-512, Zen 4): keeping rows interleaved to de-interleave whole vectors
 * across the row ends (the planes' rows are contiguous: full transposes and
 * stores instead of a 14-pixel one with masked stores a row), and a whole
 * 14x14 plane at once: no gain on dw 7x7 384@14, 5x5 480@14, 7x7 96@56
 * (B/A 0.94-1.10 in repeated A/Bs, noise +-5%; the whole plane 2-4% slower,
 * its stores no longer overlapping the FMAs): the transposes' shuffles
 * bound it, not the partial stores. */
#define LC_DWC_ROW_FLOATS 2048
/* Taps of the kernel (7x7 = 49, 8x8 = 64), interleaved weights. */
#define LC_DWC_MAX_TAPS 64
#define LC_DWC_MAX_LANES 16

typedef struct {
    lc_dw_call c;
    int64_t L, wp, ring;  /* lanes; padded row width (pixels); rows in the ring */
    int64_t blocks;       /* channel blocks per image */
    int64_t band_rows;    /* output rows per task (all of them, unless blocks are few) */
    int64_t bands;        /* tasks per block */
} lc_dwc_ctx;

/* Zeroes what of the ring no interleave writes: each slot's pad columns
 * [0, pad_l) and [pad_l + wcols, wp), and the zero row (if any). */
static void lc_dwc_zero_pads(float *buf, int64_t ring, int64_t wp, int64_t L, int64_t pad_l,
                             int64_t wcols, float *zrow) {
    const int64_t rowf = wp * L, right = lc_min64(wp, pad_l + wcols);
    for (int64_t s = 0; s < ring; s++) {
        memset(buf + s * rowf, 0, (size_t)(pad_l * L) * sizeof(float));
        memset(buf + s * rowf + right * L, 0, (size_t)((wp - right) * L) * sizeof(float));
    }
    if (zrow) memset(zrow, 0, (size_t)rowf * sizeof(float));
}

/* One task: output rows [oy0, oy1) of output channels [o0, o0 + L) of image
 * n (channels >= M: a repeat of the last channel). */
static void lc_dwc_task(void *vctx, int64_t item, int thread) {
    const lc_dwc_ctx *t = (const lc_dwc_ctx *)vctx;
    const lc_conv_desc *d = t->c.d;
    const lc_dw_cblock_kernels *k = &d->isa->dw_cblock;
    const int64_t L = t->L, wp = t->wp, ring = t->ring, rowf = wp * L;
    const int64_t band = item % t->bands, nb = item / t->bands;
    const int64_t n = nb / t->blocks, o0 = (nb - n * t->blocks) * L;
    const int64_t oy0 = band * t->band_rows, oy1 = lc_min64(d->OH, oy0 + t->band_rows);
    const int64_t valid = lc_min64(L, d->M - o0), mult = d->M / d->C, taps = d->kH * d->kW;
    (void)thread;
    LC_ALIGNED_STACK(float, buf, LC_DWC_RING_FLOATS);
    LC_ALIGNED_STACK(float, orow, LC_DWC_ROW_FLOATS);
    LC_ALIGNED_STACK(float, wi, LC_DWC_MAX_TAPS * LC_DWC_MAX_LANES);
    LC_ALIGNED_STACK(float, bi, LC_DWC_MAX_LANES);
    const float *src[LC_DWC_MAX_LANES];
    float *dst[LC_DWC_MAX_LANES];
    const float *rows[LC_DWC_MAX_TAPS];
    const float *wsrc[LC_DWC_MAX_LANES];
    /* lanes >= valid repeat the last channel: the same values, stored to
     * its plane again */
    for (int64_t c = 0; c < L; c++) {
        const int64_t o = o0 + lc_min64(c, valid - 1);
        src[c] = t->c.x + (n * d->C + o / mult) * d->H * d->W;
        wsrc[c] = t->c.w + o * taps;
        dst[c] = t->c.y + (n * d->M + o) * d->OH * d->OW;
        bi[c] = t->c.bias ? t->c.bias[o] : 0.0f;
    }
    k->interleave(wi, wsrc, 0, (size_t)taps); /* wi[tap*L + c]: channel c's weights */
    /* rows above and below the image read a zero row kept after the ring
     * when it fits (else their slots are zeroed); the slots' pad columns are
     * zeroed once here, the interleave writing only the image columns */
    float *zrow = (ring + 1) * rowf <= LC_DWC_RING_FLOATS ? buf + ring * rowf : NULL;
    const int64_t wcols = lc_max64(0, lc_min64(d->W, wp - d->pad_l)); /* image columns a row holds */
    lc_dwc_zero_pads(buf, ring, wp, L, lc_min64(d->pad_l, wp), wcols, zrow);
    /* image row iy lives in slot (iy - first row) mod ring: tracked by
     * additions, no division per row (a 14-row plane has ~5k cycles of FMAs) */
    int64_t filled = oy0 * d->stride_h - d->pad_t, fslot = 0; /* next row to interleave, its slot */
    int64_t tslot = 0;                      /* the slot of the output row's top row */
    const int64_t sh_slots = d->stride_h % ring, dh_slots = d->dil_h % ring;
    for (int64_t oy = oy0; oy < oy1; oy++) {
        const int64_t top = oy * d->stride_h - d->pad_t;
        const int64_t need = top + (d->kH - 1) * d->dil_h + 1;
        if (filled < top) { /* stride_h > ring: rows no output reads */
            fslot = tslot;
            filled = top;
        }
        for (; filled < need; filled++) {
            float *slot = buf + fslot * rowf;
            if (filled < 0 || filled >= d->H) {
                if (!zrow) memset(slot, 0, (size_t)rowf * sizeof(float));
            } else {
                k->interleave(slot + d->pad_l * L, src, (size_t)(filled * d->W), (size_t)wcols);
            }
            if (++fslot == ring) fslot = 0;
        }
        for (int64_t ky = 0, sl = tslot, iy = top; ky < d->kH; ky++, iy += d->dil_h) {
            rows[ky] = zrow && (iy < 0 || iy >= d->H) ? zrow : buf + sl * rowf;
            if ((sl += dh_slots) >= ring) sl -= ring;
        }
        if ((tslot += sh_slots) >= ring) tslot -= ring;
        k->row(orow, (size_t)d->OW, rows, (size_t)d->stride_w, (size_t)d->dil_w, wi,
               (size_t)d->kH, (size_t)d->kW, bi, &d->epilogue);
        k->deinterleave(dst, (size_t)(oy * d->OW), orow, (size_t)d->OW);
    }
    if (t->c.post)
        for (int64_t c = 0; c < valid; c++) {
            const int64_t plane = (n * d->M + o0 + c) * d->OH * d->OW + oy0 * d->OW;
            d->isa->postop(t->c.y + plane, t->c.y + plane, (size_t)((oy1 - oy0) * d->OW),
                           t->c.res ? t->c.res + plane : NULL, 0.0f, &t->c.ep);
        }
}

int lc_depthwise_cblock_run(const lc_conv_desc *d, const lc_epilogue *ep, const float *x,
                            const float *w, const float *bias, const float *res, float *y) {
    const lc_dw_cblock_kernels *k = &d->isa->dw_cblock;
    const int64_t L = (int64_t)k->lanes;
    if (L == 0 || L > LC_DWC_MAX_LANES || d->M < L || (res && res == y)) return 0;
    if (d->pad_t < 0 || d->pad_l < 0 || d->kH * d->kW > LC_DWC_MAX_TAPS) return 0;
    lc_dwc_ctx t;
    t.L = L;
    /* a padded row: every column the taps of the OW outputs reach */
    t.wp = (d->OW - 1) * d->stride_w + (d->kW - 1) * d->dil_w + 1;
    t.ring = (d->kH - 1) * d->dil_h + 1;
    if (d->OW * L > LC_DWC_ROW_FLOATS || t.ring * t.wp * L > LC_DWC_RING_FLOATS) return 0;
    t.c = lc_dw_call_of(d, ep, x, w, bias, res, y);
    t.blocks = lc_div_up(d->M, L);
    /* fewer blocks than 2 per thread (one image of 16-32 channels): split
     * the rows too, each band re-reading its kH - 1 halo rows */
    const int64_t blocks = d->N * t.blocks, threads = lc_threads_used(d->nthreads, d->OH, lc_conv_work(d));
    t.bands = blocks >= 2 * threads ? 1 : lc_min64(d->OH, lc_div_up(2 * threads, blocks));
    t.band_rows = lc_div_up(d->OH, t.bands);
    t.bands = lc_div_up(d->OH, t.band_rows);
    lc_parallel_for(d->nthreads, blocks * t.bands, lc_conv_work(d), lc_dwc_task, &t);
    return 1;
}
