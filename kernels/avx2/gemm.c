/* AVX2+FMA GEMM micro-kernel, 6 x 16: twelve YMM accumulators (6 rows x two
 * 8-float vectors), two B loads and six A broadcasts per k step, which keeps
 * both FMA pipes busy (12 independent FMAs per step cover the FMA latency).
 * 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 YMM registers.
 * Edge tiles: rows >= m are computed on the zero padding of A and not stored;
 * columns >= n are never read from B nor written to C (masked loads/stores). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

/* Lanes [0, count) set, count in [0, 8]. */
static inline __m256i lc_mask8(size_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define LC_V __m256
#define LC_VL 8
#define LC_MASK __m256i
#define LC_MASK_FOR(cnt) lc_mask8(cnt)
#define LC_VZERO() _mm256_setzero_ps()
#define LC_VSET1(f) _mm256_broadcast_ss(&(f))
#define LC_VLOADU(p) _mm256_loadu_ps(p)
#define LC_VSTOREU(p, v) _mm256_storeu_ps((p), (v))
#define LC_VLOADM(p, mask) _mm256_maskload_ps((p), (mask))
#define LC_VSTOREM(p, mask, v) _mm256_maskstore_ps((p), (mask), (v))
#define LC_VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define LC_VMAX(a, b) _mm256_max_ps((a), (b))
#define LC_VMIN(a, b) _mm256_min_ps((a), (b))

#define LC_GEMM_MR 6
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define LC_GEMM_NAME lc_f32_gemm_6x16__avx2
#define LC_GEMM_PF_NAME lc_f32_gemm_pf_6x16__avx2
#include "../gemm_template.h"

/* Patch unwrapping runs (lc_strided_copy_fn).  Stride 2 takes 8 outputs from
 * two 8-float loads: shuffle the even lanes of each 128-bit half together,
 * then put the halves in order.  Tails are scalar: nothing past the last
 * element read is touched (the row may end at a page boundary). */
static inline void lc_copy_row__avx2(float *dst, const float *src, size_t n, size_t stride) {
    size_t r = 0;
    if (stride == 1) {
        for (; r + 8 <= n; r += 8) _mm256_storeu_ps(dst + r, _mm256_loadu_ps(src + r));
    } else if (stride == 2) {
        /* a block reads src[2r .. 2r+15]; the last element needed is src[2n-2] */
        for (; r + 8 < n; r += 8) {
            const __m256 lo = _mm256_loadu_ps(src + 2 * r), hi = _mm256_loadu_ps(src + 2 * r + 8);
            const __m256 ev = _mm256_shuffle_ps(lo, hi, 0x88); /* 0 2 8 10 | 4 6 12 14 */
            _mm256_storeu_ps(dst + r, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                          _mm256_castps_pd(ev), 0xd8)));
        }
    }
    for (; r < n; r++) dst[r] = src[r * stride];
}

void lc_f32_strided_copy__avx2(float *dst, size_t dst_stride, const float *src,
                               size_t src_step, size_t rows, size_t n, size_t stride) {
    for (size_t i = 0; i < rows; i++, dst += dst_stride, src += src_step)
        lc_copy_row__avx2(dst, src, n, stride);
}

/* Direct convolution, output channels in the lanes (../direct_lanes_template.h):
 * 6 pixels x 2 vectors (16 channels): 12 accumulators, 2 weight vectors and a
 * broadcast, 15 of the 16 YMM registers, as the GEMM tile. */
#define LC_DL_NV 2
#define LC_DL_R 6
#define LC_DL_NAME lc_f32_dl_6x16__avx2
#define LC_DL_STEPPED 1 /* 78% -> 92% of the FMA peak on the stem (see the template) */
#include "../direct_lanes_template.h"
/* its 1 x 1 form (../pointwise_lanes_template.h) */
#define LC_PW_NV 2
#define LC_PW_R 6
#define LC_PW_NAME lc_f32_pw_6x16__avx2
#include "../pointwise_lanes_template.h"
/* The stem kernel (../stem_lanes_template.h): 4 output channels x 2 pixel
 * vectors, 8 accumulators (two FMA units, four cycles each: just enough),
 * the 4 weights broadcast into registers a tap and a pixel vector, 13 of the
 * 16 YMM registers. */
#define LC_ST_R 4
#define LC_ST_V 2
#define LC_ST_NAME lc_f32_stem_4x2__avx2
#include "../stem_lanes_template.h"

#include "target_end.h"
#endif
