/* Portable C GEMM micro-kernel, 4 x 16.  Plain loops over a fixed tile that a
 * compiler can keep in registers (and vectorise with the baseline ISA). */
#include "../ukernel_decls.h"

#include "tile.h"
#define MR LC_TILE_MR
#define NR LC_TILE_NR

void lc_f32_gemm_4x16__scalar(size_t m, size_t n, size_t k, const float *a, const float *b,
                              size_t ldb, float *c, size_t ldc, const float *bias,
                              const lc_epilogue *ep, unsigned flags) {
    float acc[MR][NR];
    for (size_t i = 0; i < MR; i++)
        for (size_t j = 0; j < NR; j++)
            acc[i][j] = (flags & LC_GEMM_ACCUMULATE) ? (i < m && j < n ? c[i * ldc + j] : 0.0f)
                                                     : (bias && i < m ? bias[i] : 0.0f);
    if (n == NR) {
        for (size_t p = 0; p < k; p++, a += MR, b += ldb)
            for (size_t i = 0; i < MR; i++)
                for (size_t j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
    } else {
        /* edge tile: read only n columns of B (it may be the caller's image) */
        for (size_t p = 0; p < k; p++, a += MR, b += ldb) {
            float bp[NR] = {0};
            for (size_t j = 0; j < n; j++) bp[j] = b[j];
            for (size_t i = 0; i < MR; i++)
                for (size_t j = 0; j < NR; j++) acc[i][j] += a[i] * bp[j];
        }
    }
    const int clamp = (flags & LC_GEMM_FINAL) && ep->clamp;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float v = acc[i][j];
            if (clamp) {
                if (v < ep->lo) v = ep->lo;
                if (v > ep->hi) v = ep->hi;
            }
            c[i * ldc + j] = v;
        }
    }
}

/* Direct convolution, output channels in the lanes (../direct_lanes_template.h),
 * over one-float "vectors": 4 pixels x 4 channels, the portable reference of
 * the ISA kernels' arithmetic order. */
#define LC_V float
#define LC_VL 1
#define LC_VZERO() 0.0f
#define LC_VSET1(f) (f)
#define LC_VLOADU(p) (*(p))
#define LC_VSTOREU(p, v) (*(p) = (v))
#define LC_VFMA(a, b, c) ((a) * (b) + (c))
/* as the vector kernels: the second operand when either is NaN */
#define LC_VMAX(a, b) ((a) > (b) ? (a) : (b))
#define LC_VMIN(a, b) ((a) < (b) ? (a) : (b))
#define LC_DL_NV 4
#define LC_DL_R 4
#define LC_DL_NAME lc_f32_dl_4x4__scalar
#include "../isa_build.h"
#include "../direct_lanes_template.h"
/* its 1 x 1 form (../pointwise_lanes_template.h), not auto-vectorised: GCC
 * 12 (-O3) built its 2-pixel case from 4-float loads spanning two channels'
 * rows, reading one row past the input's end (a fault at a guard page) */
#define LC_PW_ATTRS LC_NO_AUTO_VECTORISE
#define LC_PW_NV 4
#define LC_PW_R 4
#define LC_PW_NAME lc_f32_pw_4x4__scalar
#include "../pointwise_lanes_template.h"
