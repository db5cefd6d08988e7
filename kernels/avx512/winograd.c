/* Winograd transforms, AVX-512: the shared template over __m512 (16 lanes),
 * NR = 32 tiles per call, matching the GEMM tile. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_ISA_FN(name) LC_CAT(name, __avx512)
#define LC_V __m512
#define LC_VLANES 16
#include "tile.h"
#define LC_NR LC_TILE_NR
#define LC_VLOAD(p) _mm512_loadu_ps(p)
#define LC_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VADD(a, b) _mm512_add_ps((a), (b))
#define LC_VSUB(a, b) _mm512_sub_ps((a), (b))
#define LC_VMULC(a, f) _mm512_mul_ps((a), _mm512_set1_ps(f))
#define LC_VFMAC(acc, a, f) _mm512_fmadd_ps((a), _mm512_set1_ps(f), (acc))
/* max/min return their second operand when either is NaN: NaN passes */
#define LC_VCLAMP(v, lo, hi) _mm512_min_ps((hi), _mm512_max_ps((lo), (v)))
#define LC_VNANBITS(v) ((uint64_t)_mm512_cmp_ps_mask((v), (v), _CMP_UNORD_Q))
/* Stride-s gather of 16 floats (s in {2, 4, 6}) from contiguous loads and
 * two-source permutes: the hardware gather is several times slower on AMD
 * cores.  The last load is masked to end at p[15 s]. */
static LC_ALWAYS_INLINE __mmask16 lc_wino_mask(ptrdiff_t k) {
    return k >= 16 ? (__mmask16)0xFFFF : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1u);
}
static LC_ALWAYS_INLINE __m512 lc_wino_gather512(const float *p, int s,
                                                                      const __mmask16 *mk) {
#define LC_LD(q) _mm512_maskz_loadu_ps(mk[q], p + 16 * (q))
    if (s == 2) {
        const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        return _mm512_permutex2var_ps(LC_LD(0), idx, LC_LD(1));
    }
    if (s == 4) {
        /* lanes 0-7 from floats 0-31, lanes 8-15 from floats 32-63 */
        const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
        __m512 lo = _mm512_permutex2var_ps(LC_LD(0), idx, LC_LD(1));
        __m512 hi = _mm512_permutex2var_ps(LC_LD(2), idx, LC_LD(3));
        return _mm512_mask_blend_ps((__mmask16)0xFF00, lo, hi);
    }
    /* s == 6: lanes 0-5 from floats 0-31, 6-10 from 32-63, 11-15 from 64-95 */
    const __m512i idx = _mm512_setr_epi32(0, 6, 12, 18, 24, 30, 4, 10, 16, 22, 28, 2, 8, 14, 20, 26);
    __m512 a = _mm512_permutex2var_ps(LC_LD(0), idx, LC_LD(1));
    __m512 b = _mm512_permutex2var_ps(LC_LD(2), idx, LC_LD(3));
    __m512 c = _mm512_permutex2var_ps(LC_LD(4), idx, LC_LD(5));
    return _mm512_mask_blend_ps((__mmask16)0xF800, _mm512_mask_blend_ps((__mmask16)0x07C0, a, b), c);
#undef LC_LD
}
/* full vector: only the last load is short (p[15 s] is the last float) */
static const __mmask16 lc_wino_full_masks[3][6] = {
    {0xFFFF, 0x7FFF, 0, 0, 0, 0},
    {0xFFFF, 0xFFFF, 0xFFFF, 0x1FFF, 0, 0},
    {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0x07FF}};
#define LC_VGATHER(p, s) lc_wino_gather512((p), (s), lc_wino_full_masks[(s) / 2 - 1])
#define LC_VSEL_T __mmask16
#define LC_VSEL_BITS(bits) ((__mmask16)((bits) & 0xFFFFu))
#define LC_VSELECT(sel, a, b) _mm512_mask_blend_ps((sel), (a), (b))
/* The direct input transform (LC_WDIRECT_*): a segment's rows are masked
 * loads from the image into the registers of the vector's virtual strip
 * (lanes' window columns j < m side by side, m registers), which the
 * segments of the vector fill in turn; masked-off floats are neither read
 * nor faulted on, so the windows' borders cost nothing extra. */
typedef struct {
    ptrdiff_t off, hoff;   /* strip float 0 and lane end's halo load, in row0 */
    int64_t row0;
    __mmask16 mk[6], end;  /* loads per strip register; the segment's last lane */
    __mmask16 hm[2];       /* the halo loads: lane end, or none outside the image */
} lc_wprep512;
static LC_ALWAYS_INLINE void lc_wprep512_init(lc_wprep512 *p, const lc_wino_seg *s, int m,
                                              int64_t W) {
    p->row0 = s->row0;
    p->off = (ptrdiff_t)(s->row0 * W + s->xoff);
    /* lane `end` of a load at hoff reads column m*(end + 1) of the strip */
    p->hoff = p->off + (ptrdiff_t)(m * (s->end + 1) - s->end);
    p->end = (__mmask16)(1u << s->end);
    for (int j = 0; j < 2; j++) p->hm[j] = (s->halo >> j & 1) ? p->end : (__mmask16)0;
    for (int q = 0; q < m; q++)
        p->mk[q] = (__mmask16)(lc_wino_mask(s->hi - 16 * q) & ~lc_wino_mask(s->lo - 16 * q));
}
/* Window column j < m of 16 lanes (strip floats m*l + j) from the m strip
 * registers: a two-source permute per register pair, blended. */
static LC_ALWAYS_INLINE __m512 lc_wcol512(const __m512 *r, int m, int j) {
    const __m512i f = _mm512_setr_epi32(j, m + j, 2 * m + j, 3 * m + j, 4 * m + j, 5 * m + j,
                                        6 * m + j, 7 * m + j, 8 * m + j, 9 * m + j, 10 * m + j,
                                        11 * m + j, 12 * m + j, 13 * m + j, 14 * m + j, 15 * m + j);
    __m512 out = _mm512_permutex2var_ps(r[0], f, r[1]);
    for (int p = 1; 2 * p < m; p++) {
        unsigned sel = 0;
        for (int l = 0; l < 16; l++) sel |= (unsigned)(m * l + j >= 32 * p) << l;
        out = _mm512_mask_blend_ps((__mmask16)sel, out, _mm512_permutex2var_ps(r[2 * p], f, r[2 * p + 1]));
    }
    return out;
}
/* Window rows k0 .. k0 + G - 1 of a vector: each segment's masks are set
 * once for the G rows (moving a mask into a k register is the costly part
 * of a masked load here, so G rows share them), G * (m + 2) registers. */
static LC_ALWAYS_INLINE void lc_wrows512(__m512 (*cols)[8], const float *x, const lc_wprep512 *p,
                                         int32_t n, int k0, int G, int m, int64_t H, int64_t W) {
    const __m512 z = _mm512_setzero_ps();
    __m512 r[4][6], h[4][2];
    unsigned ends = 0;
    for (int g = 0; g < G; g++) {
        for (int q = 0; q < m; q++) r[g][q] = z;
        h[g][0] = h[g][1] = z;
    }
    for (int32_t s = 0; s < n; s++) {
        ends |= p[s].end; /* zero halo when the row is outside */
        __mmask16 mk[6];
        for (int q = 0; q < m; q++) mk[q] = p[s].mk[q];
        const __mmask16 hm0 = p[s].hm[0], hm1 = p[s].hm[1];
        for (int g = 0; g < G; g++) {
            const int64_t y = p[s].row0 + k0 + g;
            if (y < 0 || y >= H) continue;
            /* unconditional: a load whose mask is empty reads nothing */
            const float *src = x + p[s].off + (ptrdiff_t)(k0 + g) * W;
            for (int q = 0; q < m; q++) r[g][q] = _mm512_or_ps(r[g][q], _mm512_maskz_loadu_ps(mk[q], src + 16 * q));
            const float *hs = x + p[s].hoff + (ptrdiff_t)(k0 + g) * W;
            h[g][0] = _mm512_mask_loadu_ps(h[g][0], hm0, hs);
            h[g][1] = _mm512_mask_loadu_ps(h[g][1], hm1, hs + 1);
        }
    }
    const __mmask16 e = (__mmask16)ends;
    for (int g = 0; g < G; g++) {
        for (int j = 0; j < m; j++) cols[g][j] = lc_wcol512(r[g], m, j);
        /* columns m, m+1: the next lane's 0, 1, but a segment's last lane's own */
        for (int j = 0; j < 2; j++)
            cols[g][m + j] = _mm512_mask_blend_ps(e, _mm512_castsi512_ps(_mm512_alignr_epi32(
                _mm512_setzero_si512(), _mm512_castps_si512(cols[g][j]), 1)), h[g][j]);
    }
}
#define LC_WDIRECT_PREP_T lc_wprep512
#define LC_WDIRECT_PREPARE(p, seg, m, W) lc_wprep512_init((p), (seg), (m), (W))
#define LC_WDIRECT_GROUP(m) ((m) == 2 ? 4 : (m) == 4 ? 3 : 2) /* G * (m + 2) <= 18 */
#define LC_WDIRECT_ROWS(cols, x, preps, n, k0, G, m, H, W) \
    lc_wrows512((cols), (x), (preps), (n), (k0), (G), (m), (H), (W))
/* Interleaved output rows: two-source permutes (pairs of floats, then pairs
 * of pairs as doubles). */
static LC_ALWAYS_INLINE void lc_wino_store_i2(float *p, __m512 a, __m512 b) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_ps(p, _mm512_permutex2var_ps(a, lo, b));
    _mm512_storeu_ps(p + 16, _mm512_permutex2var_ps(a, hi, b));
}
static LC_ALWAYS_INLINE void lc_wino_store_i4(float *p, __m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i dlo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i dhi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    const __m512d ab0 = _mm512_castps_pd(_mm512_permutex2var_ps(a, lo, b));
    const __m512d ab1 = _mm512_castps_pd(_mm512_permutex2var_ps(a, hi, b));
    const __m512d cd0 = _mm512_castps_pd(_mm512_permutex2var_ps(c, lo, d));
    const __m512d cd1 = _mm512_castps_pd(_mm512_permutex2var_ps(c, hi, d));
    _mm512_storeu_pd((double *)p, _mm512_permutex2var_pd(ab0, dlo, cd0));
    _mm512_storeu_pd((double *)(p + 16), _mm512_permutex2var_pd(ab0, dhi, cd0));
    _mm512_storeu_pd((double *)(p + 32), _mm512_permutex2var_pd(ab1, dlo, cd1));
    _mm512_storeu_pd((double *)(p + 48), _mm512_permutex2var_pd(ab1, dhi, cd1));
}
#define LC_VSTORE_I2(p, a, b) lc_wino_store_i2((p), (a), (b))
#define LC_VSTORE_I4(p, a, b, c, d) lc_wino_store_i4((p), (a), (b), (c), (d))

/* The 16 x 16 block of the channel-lanes GEMM stored transposed (row o of
 * the output = channel o of the 16 tiles): 4 x 4 transposes in each 128-bit
 * lane (unpack, then shuffle) leave rows 4g-4g+3 of column 4k + j in lane k
 * of u[4g + j]; a 4 x 4 transpose of those lanes (two rounds of
 * shuffle_f32x4) gathers each column whole. */
static LC_ALWAYS_INLINE void lc_wcl_store_t16(float *mo, size_t ldo, __m512 acc[16][4]) {
    __m512 u[16];
    for (int g = 0; g < 4; g++) {
        const __m512 r0 = acc[4 * g][0], r1 = acc[4 * g + 1][0];
        const __m512 r2 = acc[4 * g + 2][0], r3 = acc[4 * g + 3][0];
        const __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
        const __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
        u[4 * g + 0] = _mm512_shuffle_ps(t0, t2, 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
    }
    for (int j = 0; j < 4; j++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
        const __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        _mm512_storeu_ps(mo + (size_t)j * ldo, _mm512_shuffle_f32x4(v0, w0, 0x88));
        _mm512_storeu_ps(mo + (size_t)(4 + j) * ldo, _mm512_shuffle_f32x4(v1, w1, 0x88));
        _mm512_storeu_ps(mo + (size_t)(8 + j) * ldo, _mm512_shuffle_f32x4(v0, w0, 0xDD));
        _mm512_storeu_ps(mo + (size_t)(12 + j) * ldo, _mm512_shuffle_f32x4(v1, w1, 0xDD));
    }
}
#define LC_WCL_STORE_T(mo, ldo, acc) lc_wcl_store_t16((mo), (ldo), (acc))
/* channel-lanes GEMM: 16 tiles x 1 vector of output channels */
#define LC_WCL_ROWS 16
#define LC_WCL_VECS 1
#include "../winograd_instances.h"

#include "target_end.h"
#endif
