/* lc_pack_rows_fn for the 8-row tile (tile.h: MR 8): 8 rows into k groups
 * of 8 floats (ldd apart), 16 columns at a time as an in-register 8 x 16 transpose --
 * unpacks within 128-bit lanes gather each column's 4 + 4 rows, a
 * two-source permute pairs them, and each column's group is one 256-bit
 * store.  ~0.4 instructions a float where the portable loop's scalar
 * loads and stores take ~2 (the token GEMM packs its input every call). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"
#include "tile.h"

#if LC_TILE_MR != 8
#error "lc_f32_pack_rows_8__avx512 packs 8-row panels"
#endif

static inline void lc_store_group(float *dst, __m512 v, int upper) {
    _mm256_storeu_ps(dst, upper ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))
                                : _mm512_castps512_ps256(v));
}

void lc_f32_pack_rows_8__avx512(float *dst, size_t ldd, const float *src, size_t lds,
                                size_t k) {
    /* lanes of two vectors whose 128-bit lane c holds column 4c + d's rows
     * 0-3 (first) and 4-7 (second): columns d, 4 + d | 8 + d, 12 + d */
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30,
                                         31);
    size_t j = 0;
    for (; j + 16 <= k; j += 16) {
        const float *s = src + j;
        const __m512 r0 = _mm512_loadu_ps(s), r1 = _mm512_loadu_ps(s + lds),
                     r2 = _mm512_loadu_ps(s + 2 * lds), r3 = _mm512_loadu_ps(s + 3 * lds),
                     r4 = _mm512_loadu_ps(s + 4 * lds), r5 = _mm512_loadu_ps(s + 5 * lds),
                     r6 = _mm512_loadu_ps(s + 6 * lds), r7 = _mm512_loadu_ps(s + 7 * lds);
        /* per 128-bit lane c: rows (0,1) of columns 4c, 4c+1 | 4c+2, 4c+3 */
        const __m512d a0 = _mm512_castps_pd(_mm512_unpacklo_ps(r0, r1)),
                      a1 = _mm512_castps_pd(_mm512_unpackhi_ps(r0, r1)),
                      a2 = _mm512_castps_pd(_mm512_unpacklo_ps(r2, r3)),
                      a3 = _mm512_castps_pd(_mm512_unpackhi_ps(r2, r3)),
                      a4 = _mm512_castps_pd(_mm512_unpacklo_ps(r4, r5)),
                      a5 = _mm512_castps_pd(_mm512_unpackhi_ps(r4, r5)),
                      a6 = _mm512_castps_pd(_mm512_unpacklo_ps(r6, r7)),
                      a7 = _mm512_castps_pd(_mm512_unpackhi_ps(r6, r7));
        /* b[d] lane c: column 4c + d, rows 0-3; b[4 + d]: rows 4-7 */
        const __m512 b[8] = {
            _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2)), _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2)),
            _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3)), _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3)),
            _mm512_castpd_ps(_mm512_unpacklo_pd(a4, a6)), _mm512_castpd_ps(_mm512_unpackhi_pd(a4, a6)),
            _mm512_castpd_ps(_mm512_unpacklo_pd(a5, a7)), _mm512_castpd_ps(_mm512_unpackhi_pd(a5, a7))};
        float *d0 = dst + j * ldd;
        for (size_t d = 0; d < 4; d++) {
            const __m512 v = _mm512_permutex2var_ps(b[d], lo, b[4 + d]);
            const __m512 w = _mm512_permutex2var_ps(b[d], hi, b[4 + d]);
            lc_store_group(d0 + d * ldd, v, 0);
            lc_store_group(d0 + (4 + d) * ldd, v, 1);
            lc_store_group(d0 + (8 + d) * ldd, w, 0);
            lc_store_group(d0 + (12 + d) * ldd, w, 1);
        }
    }
    for (; j < k; j++)
        for (size_t i = 0; i < 8; i++) dst[j * ldd + i] = src[i * lds + j];
}

#include "target_end.h"
#endif
