/* The GEMM family's shared pieces: weight packing, the panel GEMM loop and the
 * patch unwrapping that Im2Col and Patch2Vec both use.
 *
 * Per group: Y[Mg x P] = W[Mg x K] * B[K x P], K = Cg*kH*kW, P = OH*OW.
 * Im2Col builds every NR-wide panel of B first; Patch2Vec builds one panel per
 * thread right before it is used; a 1x1/stride-1/unpadded layer uses the input
 * planes as B directly. */
#include <string.h>
#include "internal.h"

int lc_gemm_is_pointwise(const lc_conv_desc *d) {
    return d->kH == 1 && d->kW == 1 && d->stride_h == 1 && d->stride_w == 1 &&
           d->pad_t == 0 && d->pad_b == 0 && d->pad_l == 0 && d->pad_r == 0;
}

int64_t lc_gemm_packed_floats(const lc_conv_desc *d, int *ok) {
    int64_t mr = d->isa->mr;
    int64_t Mg = d->M / d->groups;
    int64_t K = lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
    return lc_mul(lc_mul(d->groups, lc_round_up(Mg, mr, ok), ok), K, ok);
}

void lc_pack_a_panels(const float *w, size_t lda, size_t Mg, size_t K, size_t mr, float *packed) {
    /* Panel i holds rows [i*mr, i*mr + mr) interleaved: packed[k*mr + r]; rows
     * past Mg are zero so the micro-kernel can always compute a full tile. */
    for (size_t m0 = 0; m0 < Mg; m0 += mr) {
        size_t rows = Mg - m0 < mr ? Mg - m0 : mr;
        for (size_t k = 0; k < K; k++) {
            for (size_t r = 0; r < mr; r++)
                packed[k * mr + r] = r < rows ? w[(m0 + r) * lda + k] : 0.0f;
        }
        packed += K * mr;
    }
}

void lc_gemm_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    int ok = 1;
    size_t mr = (size_t)d->isa->mr;
    size_t Mg = (size_t)(d->M / d->groups);
    size_t K = (size_t)(d->C / d->groups * d->kH * d->kW);
    size_t per_group = (size_t)lc_round_up((int64_t)Mg, (int64_t)mr, &ok) * K;
    for (int64_t g = 0; g < d->groups; g++)
        lc_pack_a_panels(w + (size_t)g * Mg * K, K, Mg, K, mr, packed + (size_t)g * per_group);
}

void lc_gemm_panel(const lc_isa_config *cfg, size_t Mg, size_t K, const float *a_packed,
                   const float *b, size_t ldb, size_t n, float *c, size_t ldc,
                   const float *bias, const lc_epilogue *ep, int apply_epilogue) {
    /* K outer in blocks of kc so the kc x NR slice of B stays in L1 while every
     * MR panel of A streams past it; C tiles are revisited once per K block. */
    const size_t mr = (size_t)cfg->mr, kc = (size_t)cfg->kc;
    for (size_t k0 = 0; k0 < K; k0 += kc) {
        size_t kb = K - k0 < kc ? K - k0 : kc;
        unsigned flags = (k0 ? LC_GEMM_ACCUMULATE : 0u) |
                         (k0 + kb == K && apply_epilogue ? LC_GEMM_FINAL : 0u);
        for (size_t m0 = 0; m0 < Mg; m0 += mr) {
            size_t m = Mg - m0 < mr ? Mg - m0 : mr;
            cfg->gemm(m, n, kb, a_packed + m0 * K + k0 * mr, b + k0 * ldb, ldb,
                      c + m0 * ldc, ldc, bias ? bias + m0 : NULL, ep, flags);
        }
    }
}

/* One row of the panel: taps (c, ky, kx) for pixels [p0, p0 + n). */
static void lc_unwrap_row(const lc_conv_desc *d, const float *plane, int64_t ky, int64_t kx,
                          int64_t p0, int64_t n, float *dst) {
    const int64_t OW = d->OW, H = d->H, W = d->W;
    int64_t oy = p0 / OW, ox = p0 % OW, j = 0;
    while (j < n) {
        /* a run of pixels on output row oy */
        int64_t run = lc_min64(n - j, OW - ox);
        int64_t iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
        if (iy < 0 || iy >= H) {
            memset(dst + j, 0, (size_t)run * sizeof(float));
        } else {
            const float *row = plane + iy * W;
            int64_t ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
            int64_t sw = d->stride_w;
            if (sw == 1 && ix >= 0 && ix + run <= W) {
                memcpy(dst + j, row + ix, (size_t)run * sizeof(float));
            } else {
                for (int64_t r = 0; r < run; r++, ix += sw)
                    dst[j + r] = (ix >= 0 && ix < W) ? row[ix] : 0.0f;
            }
        }
        j += run;
        ox = 0;
        oy++;
    }
}

void lc_pack_patch_panel(const lc_conv_desc *d, const float *xg, int64_t p0, int64_t n,
                         size_t nr, float *panel) {
    const int64_t Cg = d->C / d->groups, plane = d->H * d->W;
    size_t k = 0;
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t ky = 0; ky < d->kH; ky++)
            for (int64_t kx = 0; kx < d->kW; kx++, k++)
                lc_unwrap_row(d, xg + c * plane, ky, kx, p0, n, panel + k * nr);
}
