/* AVX2+FMA GEMM micro-kernel, 6 x 16: twelve YMM accumulators (6 rows x two
 * 8-float vectors), two B loads and six A broadcasts per k step, which keeps
 * both FMA pipes busy (12 FMAs per step vs the 4-5 cycle FMA latency).
 * Edge tiles: rows >= m are computed on the zero padding of A and not stored;
 * columns >= n are never read from B nor written to C (masked loads/stores). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

#define MR 6
#define NR 16

/* Lanes [0, count) set, count in [0, 8]. */
static inline __m256i lc_mask8(size_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

void lc_f32_gemm_6x16__avx2(size_t m, size_t n, size_t k, const float *a, const float *b,
                            size_t ldb, float *c, size_t ldc, const float *bias,
                            const lc_epilogue *ep, unsigned flags) {
    __m256 acc[MR][2];
    const __m256i mask0 = lc_mask8(n < 8 ? n : 8), mask1 = lc_mask8(n > 8 ? n - 8 : 0);

    if (flags & LC_GEMM_ACCUMULATE) {
        for (size_t i = 0; i < MR; i++) {
            if (i < m) {
                acc[i][0] = _mm256_maskload_ps(c + i * ldc, mask0);
                acc[i][1] = _mm256_maskload_ps(c + i * ldc + 8, mask1);
            } else {
                acc[i][0] = acc[i][1] = _mm256_setzero_ps();
            }
        }
    } else {
        for (size_t i = 0; i < MR; i++)
            acc[i][0] = acc[i][1] = (bias && i < m) ? _mm256_set1_ps(bias[i]) : _mm256_setzero_ps();
    }

    if (n == NR) {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 2
#endif
        for (size_t p = 0; p < k; p++) {
            const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
            b += ldb;
            for (size_t i = 0; i < MR; i++) {
                const __m256 ai = _mm256_broadcast_ss(a + i);
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
            a += MR;
        }
    } else if (n > 8) {
        for (size_t p = 0; p < k; p++) {
            const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_maskload_ps(b + 8, mask1);
            b += ldb;
            for (size_t i = 0; i < MR; i++) {
                const __m256 ai = _mm256_broadcast_ss(a + i);
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
            a += MR;
        }
    } else {
        /* at most 8 columns: the second vector is never stored, skip it */
        for (size_t p = 0; p < k; p++) {
            const __m256 b0 = _mm256_maskload_ps(b, mask0);
            b += ldb;
            for (size_t i = 0; i < MR; i++)
                acc[i][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + i), b0, acc[i][0]);
            a += MR;
        }
    }

    if ((flags & LC_GEMM_FINAL) && ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
        for (size_t i = 0; i < MR; i++) {
            acc[i][0] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][0]));
            acc[i][1] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][1]));
        }
    }

    if (n == NR) {
        for (size_t i = 0; i < MR; i++) {
            if (i < m) {
                _mm256_storeu_ps(c + i * ldc, acc[i][0]);
                _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
            }
        }
    } else {
        for (size_t i = 0; i < MR; i++) {
            if (i < m) {
                _mm256_maskstore_ps(c + i * ldc, mask0, acc[i][0]);
                _mm256_maskstore_ps(c + i * ldc + 8, mask1, acc[i][1]);
            }
        }
    }
}

#include "target_end.h"
#endif
