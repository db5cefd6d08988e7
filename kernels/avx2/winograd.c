/* Winograd transforms, AVX2+FMA: the shared template over __m256 (8 lanes),
 * NR = 16 tiles per call, matching the GEMM tile. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_ISA_FN(name) LC_CAT(name, __avx2)
#define LC_V __m256
#define LC_VLANES 8
#include "tile.h"
#define LC_NR LC_TILE_NR
#define LC_VLOAD(p) _mm256_loadu_ps(p)
#define LC_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define LC_VSET1(f) _mm256_set1_ps(f)
#define LC_VADD(a, b) _mm256_add_ps((a), (b))
#define LC_VSUB(a, b) _mm256_sub_ps((a), (b))
#define LC_VMULC(a, f) _mm256_mul_ps((a), _mm256_set1_ps(f))
#define LC_VFMAC(acc, a, f) _mm256_fmadd_ps((a), _mm256_set1_ps(f), (acc))
/* max/min return their second operand when either is NaN: NaN passes */
#define LC_VCLAMP(v, lo, hi) _mm256_min_ps((hi), _mm256_max_ps((lo), (v)))
#define LC_VNANBITS(v) ((uint64_t)_mm256_movemask_ps(_mm256_cmp_ps((v), (v), _CMP_UNORD_Q)))
/* Stride-s gather of 8 floats (s in {2, 4, 6}) from contiguous loads,
 * shuffles and blends (the hardware gather is slow on AMD cores).  The last
 * load is masked to end at p[7 s]. */
static LC_ALWAYS_INLINE __m256i lc_wino_mask256(ptrdiff_t k) {
    /* lanes i < k all ones */
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k < 0 ? 0 : k > 8 ? 8 : k)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static LC_ALWAYS_INLINE __m256 lc_wino_gather256(const float *p, int s) {
    /* full: loads 0 .. s-2 whole, the last one holds 8 - (s - 1) needed floats */
#define LC_LD(q) ((q) < s - 1 ? _mm256_loadu_ps(p + 8 * (q))                   \
                              : _mm256_maskload_ps(p + 8 * (q), lc_wino_mask256(9 - s)))
    if (s == 2) {
        /* even floats of each 128-bit half, then the halves in order */
        __m256 e = _mm256_shuffle_ps(LC_LD(0), LC_LD(1), _MM_SHUFFLE(2, 0, 2, 0));
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    if (s == 4) {
        __m256 a = _mm256_unpacklo_ps(LC_LD(0), LC_LD(1)); /* t0 t2 . . | t1 t3 . . */
        __m256 b = _mm256_unpacklo_ps(LC_LD(2), LC_LD(3)); /* t4 t6 . . | t5 t7 . . */
        __m256 c = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)));
        return _mm256_permutevar8x32_ps(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    }
    /* s == 6: tile l is float 6l: load q holds lanes {0,1} {2} {3} {4,5} {6} {7} */
    const __m256i idx = _mm256_setr_epi32(0, 6, 4, 2, 0, 6, 4, 2);
    __m256 r = _mm256_permutevar8x32_ps(LC_LD(0), idx);
    r = _mm256_blend_ps(r, _mm256_permutevar8x32_ps(LC_LD(1), idx), 0x04);
    r = _mm256_blend_ps(r, _mm256_permutevar8x32_ps(LC_LD(2), idx), 0x08);
    r = _mm256_blend_ps(r, _mm256_permutevar8x32_ps(LC_LD(3), idx), 0x30);
    r = _mm256_blend_ps(r, _mm256_permutevar8x32_ps(LC_LD(4), idx), 0x40);
    return _mm256_blend_ps(r, _mm256_permutevar8x32_ps(LC_LD(5), idx), 0x80);
#undef LC_LD
}
#define LC_VGATHER(p, s) lc_wino_gather256((p), (s))
#define LC_VSEL_T __m256
#define LC_VSEL_BITS(bits) _mm256_castsi256_ps(_mm256_cmpeq_epi32(                            \
    _mm256_and_si256(_mm256_set1_epi32((int)((bits) & 0xFFu)), _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128)), \
    _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128)))
#define LC_VSELECT(sel, a, b) _mm256_blendv_ps((a), (b), (sel))
/* Interleaved output rows: in-lane unpacks, then the 128-bit halves in order. */
static LC_ALWAYS_INLINE void lc_wino_store_i2(float *p, __m256 a, __m256 b) {
    const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}
static LC_ALWAYS_INLINE void lc_wino_store_i4(float *p, __m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
    const __m256 t2 = _mm256_unpacklo_ps(c, d), t3 = _mm256_unpackhi_ps(c, d);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)); /* tiles 0 | 4 */
    const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)); /* tiles 1 | 5 */
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)); /* tiles 2 | 6 */
    const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)); /* tiles 3 | 7 */
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps(p + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(p + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}
#define LC_VSTORE_I2(p, a, b) lc_wino_store_i2((p), (a), (b))
#define LC_VSTORE_I4(p, a, b, c, d) lc_wino_store_i4((p), (a), (b), (c), (d))

/* channel-lanes GEMM: 4 tiles x 2 vectors of output channels */
#define LC_WCL_ROWS 4
#define LC_WCL_VECS 2
#include "../winograd_instances.h"

#include "target_end.h"
#endif
