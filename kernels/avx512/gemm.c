/* AVX-512 GEMM micro-kernels, MR x 32: MR rows x two 16-float ZMM accumulators,
 * two B loads and MR A broadcasts (folded into the FMA as {1to16} operands)
 * per k step.  The body is written once for any MR and stamped out below; the
 * config picks the tile (see config.c for the measurements behind the choice).
 * Edge tiles: rows >= m are computed on the zero padding of A and not stored;
 * columns >= n are never read from B nor written to C (masked loads/stores). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

#define NR 32

#if defined(_MSC_VER) && !defined(__clang__)
#define LC_ALWAYS_INLINE static __forceinline
#else
#define LC_ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

LC_ALWAYS_INLINE void lc_gemm_mrx32(const size_t MR, size_t m, size_t n, size_t k,
                                    const float *a, const float *b, size_t ldb, float *c,
                                    size_t ldc, const float *bias, const lc_epilogue *ep,
                                    unsigned flags) {
    __m512 acc[16][2];
    const __mmask16 mask0 = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
    const __mmask16 mask1 = (__mmask16)(n >= 32 ? 0xffffu : n > 16 ? (1u << (n - 16)) - 1u : 0u);

    if (flags & LC_GEMM_ACCUMULATE) {
        for (size_t i = 0; i < MR; i++) {
            if (i < m) {
                acc[i][0] = _mm512_maskz_loadu_ps(mask0, c + i * ldc);
                acc[i][1] = _mm512_maskz_loadu_ps(mask1, c + i * ldc + 16);
            } else {
                acc[i][0] = acc[i][1] = _mm512_setzero_ps();
            }
        }
    } else {
        for (size_t i = 0; i < MR; i++)
            acc[i][0] = acc[i][1] = (bias && i < m) ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
    }

    if (n == NR) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 2
#endif
        for (size_t p = 0; p < k; p++) {
            const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
            b += ldb;
            for (size_t i = 0; i < MR; i++) {
                const __m512 ai = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
            a += MR;
        }
    } else if (n > 16) {
        for (size_t p = 0; p < k; p++) {
            const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_maskz_loadu_ps(mask1, b + 16);
            b += ldb;
            for (size_t i = 0; i < MR; i++) {
                const __m512 ai = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
            a += MR;
        }
    } else {
        /* at most 16 columns: the second vector is never stored, skip it */
        for (size_t p = 0; p < k; p++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(mask0, b);
            b += ldb;
            for (size_t i = 0; i < MR; i++)
                acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i][0]);
            a += MR;
        }
    }

    if ((flags & LC_GEMM_FINAL) && ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
        for (size_t i = 0; i < MR; i++) {
            acc[i][0] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[i][0]));
            acc[i][1] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[i][1]));
        }
    }

    for (size_t i = 0; i < MR; i++) {
        if (i < m) {
            if (n == NR) {
                _mm512_storeu_ps(c + i * ldc, acc[i][0]);
                _mm512_storeu_ps(c + i * ldc + 16, acc[i][1]);
            } else {
                _mm512_mask_storeu_ps(c + i * ldc, mask0, acc[i][0]);
                _mm512_mask_storeu_ps(c + i * ldc + 16, mask1, acc[i][1]);
            }
        }
    }
}

#define LC_GEMM_X32(MR)                                                                        \
    void lc_f32_gemm_##MR##x32__avx512(size_t m, size_t n, size_t k, const float *a,          \
                                       const float *b, size_t ldb, float *c, size_t ldc,      \
                                       const float *bias, const lc_epilogue *ep,              \
                                       unsigned flags) {                                      \
        lc_gemm_mrx32(MR, m, n, k, a, b, ldb, c, ldc, bias, ep, flags);                       \
    }

LC_GEMM_X32(6)
LC_GEMM_X32(8)
LC_GEMM_X32(12)
LC_GEMM_X32(14)

#include "target_end.h"
#endif
