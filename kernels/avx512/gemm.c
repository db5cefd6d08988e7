/* AVX-512 GEMM micro-kernels, MR x 32: MR rows x two 16-float ZMM
 * accumulators, two B loads and MR A broadcasts (folded into the FMAs as
 * {1to16} memory operands) per k step.  Several MR are stamped out from
 * ../gemm_template.h; config.c picks one (measurements there).
 * Edge tiles: rows >= m are computed on the zero padding of A and not stored;
 * columns >= n are never read from B nor written to C (masked loads/stores). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"
#include "tile.h"

#define LC_V __m512
#define LC_VL 16
#define LC_MASK __mmask16
#define LC_MASK_FOR(cnt) ((__mmask16)((1u << (cnt)) - 1u))
#define LC_VZERO() _mm512_setzero_ps()
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VLOADU(p) _mm512_loadu_ps(p)
#define LC_VSTOREU(p, v) _mm512_storeu_ps((p), (v))
#define LC_VLOADM(p, mask) _mm512_maskz_loadu_ps((mask), (p))
#define LC_VSTOREM(p, mask, v) _mm512_mask_storeu_ps((p), (mask), (v))
#define LC_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define LC_VMAX(a, b) _mm512_max_ps((a), (b))
#define LC_VMIN(a, b) _mm512_min_ps((a), (b))

#define LC_GEMM_MR 8
#define LC_GEMM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define LC_GEMM_NAME lc_gemm_8x32_rows__avx512
#define LC_GEMM_PF_NAME lc_gemm_pf_8x32_rows__avx512
#define LC_GEMM_LINKAGE static
#include "../gemm_template.h"

/* Up to 3 leftover columns of an 8-row tile, vectorised the other way: the
 * 8 rows of A are one YMM vector and each column one broadcast of B, so a
 * column costs one FMA per k step instead of a whole 16-lane vector per row
 * (8 FMAs).  Layers on 7x7 images (P = 49 = 32 + 16 + 1) spend 22% fewer
 * FMAs this way.  Four partial sums per column keep the FMA chains short. */
#define LC_COLTAIL_MAX 3
static void lc_gemm_8xcols__avx512(size_t m, size_t r, size_t k, const float *a, const float *b,
                                   size_t ldb, float *c, size_t ldc, const float *bias,
                                   const lc_epilogue *ep, unsigned flags) {
    const __mmask8 rows = (__mmask8)((1u << m) - 1u);
    __m256 acc[LC_COLTAIL_MAX][4];
    float tmp[8];
    for (size_t j = 0; j < LC_COLTAIL_MAX; j++) {
        __m256 init = _mm256_setzero_ps();
        if (j < r) {
            if (flags & LC_GEMM_ACCUMULATE) {
                for (size_t i = 0; i < 8; i++) tmp[i] = i < m ? c[i * ldc + j] : 0.0f;
                init = _mm256_loadu_ps(tmp);
            } else if (bias) {
                init = _mm256_maskz_loadu_ps(rows, bias);
            }
        }
        acc[j][0] = init;
        acc[j][1] = acc[j][2] = acc[j][3] = _mm256_setzero_ps();
    }
    size_t p = 0;
#define LC_COL_STEP(q)                                                                        \
    {                                                                                         \
        const __m256 av = _mm256_loadu_ps(a + (q) * 8);                                      \
        const float *bq = b + (q) * ldb;                                                      \
        acc[0][q] = _mm256_fmadd_ps(av, _mm256_set1_ps(bq[0]), acc[0][q]);                   \
        if (r > 1) acc[1][q] = _mm256_fmadd_ps(av, _mm256_set1_ps(bq[1]), acc[1][q]);        \
        if (r > 2) acc[2][q] = _mm256_fmadd_ps(av, _mm256_set1_ps(bq[2]), acc[2][q]);        \
    }
    for (; p + 4 <= k; p += 4, a += 32, b += 4 * ldb) {
        LC_COL_STEP(0) LC_COL_STEP(1) LC_COL_STEP(2) LC_COL_STEP(3)
    }
    for (; p < k; p++, a += 8, b += ldb) LC_COL_STEP(0)
#undef LC_COL_STEP
    for (size_t j = 0; j < r; j++) {
        __m256 v = _mm256_add_ps(_mm256_add_ps(acc[j][0], acc[j][1]),
                                 _mm256_add_ps(acc[j][2], acc[j][3]));
        if ((flags & LC_GEMM_FINAL) && ep->clamp) /* NaN passes: max/min return v */
            v = _mm256_min_ps(_mm256_set1_ps(ep->hi), _mm256_max_ps(_mm256_set1_ps(ep->lo), v));
        _mm256_storeu_ps(tmp, v);
        for (size_t i = 0; i < m; i++) c[i * ldc + j] = tmp[i];
    }
}

/* 8 x 32 with the column tail: n = 16q + r, r <= 3, takes the first 16q
 * columns as vectors and the last r as columns. */
void lc_f32_gemm_8x32__avx512(size_t m, size_t n, size_t k, const float *a, const float *b,
                              size_t ldb, float *c, size_t ldc, const float *bias,
                              const lc_epilogue *ep, unsigned flags) {
    const size_t r = n % 16;
    if (r == 0 || r > LC_COLTAIL_MAX) {
        lc_gemm_8x32_rows__avx512(m, n, k, a, b, ldb, c, ldc, bias, ep, flags);
        return;
    }
    if (n > r) lc_gemm_8x32_rows__avx512(m, n - r, k, a, b, ldb, c, ldc, bias, ep, flags);
    lc_gemm_8xcols__avx512(m, r, k, a, b + (n - r), ldb, c + (n - r), ldc, bias, ep, flags);
}

/* The same with a prefetch cursor (lc_gemm_pf_fn): full panels go through
 * the vector rows, prefetching; a column tail as above, without. */
void lc_f32_gemm_pf_8x32__avx512(size_t m, size_t n, size_t k, const float *a, const float *b,
                                 size_t ldb, float *c, size_t ldc, const float *bias,
                                 const lc_epilogue *ep, unsigned flags, const float *pf,
                                 size_t pf_ld, size_t pf_rows) {
    if (n != 32) {
        lc_f32_gemm_8x32__avx512(m, n, k, a, b, ldb, c, ldc, bias, ep, flags);
        return;
    }
    lc_gemm_pf_8x32_rows__avx512(m, n, k, a, b, ldb, c, ldc, bias, ep, flags, pf, pf_ld, pf_rows);
}

/* Column remainders over two 8-row panels at once (lc_gemm_narrow_fn,
 * n <= 16 + LC_GEMM_NARROW_TAIL).  The 8 x 32 kernel on such a remainder
 * keeps only 8 accumulators (one 16-column vector per row) and ran at ~77% of
 * the peak; here 16 rows x one vector = 16 accumulators.  Columns past 16
 * (P = 49 on 7 x 7 images is 32 + 17) and remainders of up to 7 columns
 * (P = 196 = 6 x 32 + 4) go the other way: the 16 rows of A are one vector
 * and each column costs one FMA per k step instead of a vector per row. */
static inline __m512 lc_a16(const float *a0, const float *a1) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a0)), _mm256_loadu_ps(a1), 1);
}

/* Column j (< t) of a 16-row column-wise tail: initial value, and the store. */
static inline __m512 lc_col16_init(size_t m, size_t j, const float *c, size_t ldc,
                                   const float *bias, unsigned flags) {
    const __mmask16 rows = (__mmask16)((1u << m) - 1u);
    if (flags & LC_GEMM_ACCUMULATE)
        return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rows,
                                        _mm512_mullo_epi32(_mm512_set1_epi32((int)ldc),
                                                           _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
                                        c + j, 4);
    return bias ? _mm512_maskz_loadu_ps(rows, bias) : _mm512_setzero_ps();
}
static inline void lc_col16_store(size_t m, size_t j, __m512 v, float *c, size_t ldc,
                                  const lc_epilogue *ep, unsigned flags) {
    float tmp[16];
    if ((flags & LC_GEMM_FINAL) && ep->clamp) /* NaN passes: max/min return v */
        v = _mm512_min_ps(_mm512_set1_ps(ep->hi), _mm512_max_ps(_mm512_set1_ps(ep->lo), v));
    _mm512_storeu_ps(tmp, v);
    for (size_t i = 0; i < m; i++) c[i * ldc + j] = tmp[i];
}

/* n <= 7 columns of 16 rows, column-wise, two partial sums per column so
 * that even one column keeps two FMA chains going. */
static void lc_gemm_16xcols__avx512(size_t m, size_t n, size_t k, const float *a,
                                    const float *a1, const float *b, size_t ldb, float *c,
                                    size_t ldc, const float *bias, const lc_epilogue *ep,
                                    unsigned flags) {
    __m512 s0[7], s1[7];
    for (size_t j = 0; j < 7; j++) {
        s0[j] = j < n ? lc_col16_init(m, j, c, ldc, bias, flags) : _mm512_setzero_ps();
        s1[j] = _mm512_setzero_ps();
    }
    size_t p = 0;
#define LC_COLS(S, q)                                                                         \
    {                                                                                         \
        const __m512 av = lc_a16(a + 8 * (q), a1 + 8 * (q));                                  \
        const float *bq = b + (q) * ldb;                                                      \
        for (size_t j = 0; j < 7; j++)                                                        \
            if (j < n) S[j] = _mm512_fmadd_ps(av, _mm512_set1_ps(bq[j]), S[j]);               \
    }
    for (; p + 2 <= k; p += 2, a += 16, a1 += 16, b += 2 * ldb) {
        LC_COLS(s0, 0)
        LC_COLS(s1, 1)
    }
    if (p < k) LC_COLS(s0, 0)
#undef LC_COLS
    for (size_t j = 0; j < n; j++)
        lc_col16_store(m, j, _mm512_add_ps(s0[j], s1[j]), c, ldc, ep, flags);
}

/* k steps [p, k) through STEPS(end) (which runs them up to `end`), with
 * the prefetch cursor (pf, pf_ld, pf_rows) as in ../gemm_template.h: a row
 * of NR floats every `every` k steps, so the requests trickle out beside the
 * FMAs.  The narrow and the wide tiles' bodies use it. */
#define LC_CURSOR_STEPS(STEPS)                                                                \
    {                                                                                         \
        const size_t every = pf_rows && k / pf_rows ? k / pf_rows : 1;                        \
        for (size_t r = 0; r < pf_rows; r++, pf += pf_ld) {                                   \
            LC_PREFETCH_ROW(pf);                                                              \
            LC_PREFETCH_ROW(pf + LC_TILE_NR - 1);                                             \
            const size_t stop = p + every < k ? p + every : k;                                \
            STEPS(stop)                                                                       \
        }                                                                                     \
        STEPS(k)                                                                              \
    }

static LC_ALWAYS_INLINE void lc_gemm_narrow_16x16_body(size_t m, size_t n, size_t k,
                                                       const float *a, size_t a_pstride,
                                                       const float *b, size_t ldb, float *c,
                                                       size_t ldc, const float *bias,
                                                       const lc_epilogue *ep, unsigned flags,
                                                       const float *pf, size_t pf_ld,
                                                       size_t pf_rows) {
    if (m <= 8) { /* one panel: the full kernel on a single vector */
        lc_f32_gemm_8x32__avx512(m, n, k, a, b, ldb, c, ldc, bias, ep, flags);
        return;
    }
    const float *a1 = a + a_pstride;
    if (n <= 7) {
        lc_gemm_16xcols__avx512(m, n, k, a, a1, b, ldb, c, ldc, bias, ep, flags);
        return;
    }
    const __mmask16 mask = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
    const size_t t = n > 16 ? n - 16 : 0; /* column-wise tail, <= LC_GEMM_NARROW_TAIL */
#define LC_NROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define LC_DECL(i) __m512 c##i;
    LC_NROWS(LC_DECL)
#undef LC_DECL
    __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0;
    if (t > 0) e0 = lc_col16_init(m, 16, c, ldc, bias, flags);
    if (t > 1) e1 = lc_col16_init(m, 17, c, ldc, bias, flags);
    if (t > 2) e2 = lc_col16_init(m, 18, c, ldc, bias, flags);
    if (flags & LC_GEMM_ACCUMULATE) {
#define LC_LOADC(i) c##i = (i < m) ? _mm512_maskz_loadu_ps(mask, c + i * ldc) : _mm512_setzero_ps();
        LC_NROWS(LC_LOADC)
#undef LC_LOADC
    } else {
#define LC_BIAS(i) c##i = (bias && i < m) ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
        LC_NROWS(LC_BIAS)
#undef LC_BIAS
    }
#define LC_STEP(i) c##i = _mm512_fmadd_ps(_mm512_set1_ps(i < 8 ? a[i & 7] : a1[i & 7]), bv, c##i);
    /* k steps [p, end) */
#define LC_NARROW_STEPS(end)                                                                  \
    if (t == 0) {                                                                             \
        for (; p < (end); p++, a += 8, a1 += 8, b += ldb) {                                   \
            const __m512 bv = _mm512_maskz_loadu_ps(mask, b);                                 \
            LC_NROWS(LC_STEP)                                                                 \
        }                                                                                     \
    } else if (t == 1) { /* P = 49: 32 + 16 + 1, the common case, branch-free */              \
        for (; p < (end); p++, a += 8, a1 += 8, b += ldb) {                                   \
            const __m512 bv = _mm512_loadu_ps(b);                                             \
            LC_NROWS(LC_STEP)                                                                 \
            e0 = _mm512_fmadd_ps(lc_a16(a, a1), _mm512_set1_ps(b[16]), e0);                   \
        }                                                                                     \
    } else {                                                                                  \
        /* the tail's one FMA chain per column is hidden behind the 16                        \
         * vector FMAs of the same k step */                                                  \
        for (; p < (end); p++, a += 8, a1 += 8, b += ldb) {                                   \
            const __m512 bv = _mm512_loadu_ps(b);                                             \
            const __m512 av = lc_a16(a, a1);                                                  \
            LC_NROWS(LC_STEP)                                                                 \
            e0 = _mm512_fmadd_ps(av, _mm512_set1_ps(b[16]), e0);                              \
            if (t > 1) e1 = _mm512_fmadd_ps(av, _mm512_set1_ps(b[17]), e1);                   \
            if (t > 2) e2 = _mm512_fmadd_ps(av, _mm512_set1_ps(b[18]), e2);                   \
        }                                                                                     \
    }
    size_t p = 0;
    LC_CURSOR_STEPS(LC_NARROW_STEPS)
#undef LC_NARROW_STEPS
#undef LC_STEP
    if ((flags & LC_GEMM_FINAL) && ep->clamp) { /* NaN passes: max/min return it */
        const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
#define LC_CLAMP(i) c##i = _mm512_min_ps(hi, _mm512_max_ps(lo, c##i));
        LC_NROWS(LC_CLAMP)
#undef LC_CLAMP
    }
#define LC_STORE(i) if (i < m) _mm512_mask_storeu_ps(c + i * ldc, mask, c##i);
    LC_NROWS(LC_STORE)
#undef LC_STORE
#undef LC_NROWS
    if (t > 0) lc_col16_store(m, 16, e0, c, ldc, ep, flags);
    if (t > 1) lc_col16_store(m, 17, e1, c, ldc, ep, flags);
    if (t > 2) lc_col16_store(m, 18, e2, c, ldc, ep, flags);
}

void lc_f32_gemm_narrow_16x16__avx512(size_t m, size_t n, size_t k, const float *a,
                                      size_t a_pstride, const float *b, size_t ldb, float *c,
                                      size_t ldc, const float *bias, const lc_epilogue *ep,
                                      unsigned flags) {
    lc_gemm_narrow_16x16_body(m, n, k, a, a_pstride, b, ldb, c, ldc, bias, ep, flags, NULL, 0,
                              0);
}

/* The same with a prefetch cursor (lc_gemm_narrow_pf_fn: the driver's next
 * pair of A slices on 4 x 4 images, where a pass pair is one narrow call);
 * the one-panel and column-wise forms above (m <= 8, n <= 7) prefetch
 * nothing. */
void lc_f32_gemm_narrow_pf_16x16__avx512(size_t m, size_t n, size_t k, const float *a,
                                         size_t a_pstride, const float *b, size_t ldb, float *c,
                                         size_t ldc, const float *bias, const lc_epilogue *ep,
                                         unsigned flags, const float *pf, size_t pf_ld,
                                         size_t pf_rows) {
    lc_gemm_narrow_16x16_body(m, n, k, a, a_pstride, b, ldb, c, ldc, bias, ep, flags, pf,
                              pf_ld, pf_rows);
}

/* 8 x 48 (lc_gemm_wide_fn): three vectors of columns per row, 24
 * accumulators, and up to LC_GEMM_NARROW_TAIL more columns the other way
 * (the 8 rows of A one YMM vector, one broadcast of B per column).  Small
 * images fit it better than 32-column panels: P = 49 (7 x 7) is 48 + 1 in
 * one call instead of 32 + a 17-column remainder whose narrow kernel does
 * ~21 loads per 17 FMAs; here a k step is 11 loads (+2 for the tail) per
 * 24 FMAs.  Every column, the tail's too, is one FMA chain over k from the
 * bias, as in the 8 x 32 kernel's vector columns, so a column's value does
 * not depend on which of the two kernels computed it. */
static LC_ALWAYS_INLINE void lc_gemm_wide_8x48_body(size_t m, size_t n, size_t k, const float *a,
                                                    const float *b, size_t ldb, float *c,
                                                    size_t ldc, const float *bias,
                                                    const lc_epilogue *ep, unsigned flags,
                                                    const float *pf, size_t pf_ld,
                                                    size_t pf_rows) {
    const size_t t = n - 48; /* tail columns, 0..LC_GEMM_NARROW_TAIL */
    const __mmask8 rows = (__mmask8)((1u << m) - 1u);
#define LC_WROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define LC_DECL(i) __m512 c##i##_0, c##i##_1, c##i##_2;
    LC_WROWS(LC_DECL)
#undef LC_DECL
    __m256 e[LC_GEMM_NARROW_TAIL];
    for (size_t j = 0; j < LC_GEMM_NARROW_TAIL; j++) e[j] = _mm256_setzero_ps();
    if (flags & LC_GEMM_ACCUMULATE) {
#define LC_LOADC(i)                                                                           \
    if (i < m) {                                                                              \
        c##i##_0 = _mm512_loadu_ps(c + i * ldc);                                              \
        c##i##_1 = _mm512_loadu_ps(c + i * ldc + 16);                                         \
        c##i##_2 = _mm512_loadu_ps(c + i * ldc + 32);                                         \
    } else {                                                                                  \
        c##i##_0 = c##i##_1 = c##i##_2 = _mm512_setzero_ps();                                 \
    }
        LC_WROWS(LC_LOADC)
#undef LC_LOADC
        const __m256i row_off = _mm256_mullo_epi32(_mm256_set1_epi32((int)ldc),
                                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (size_t j = 0; j < t; j++)
            e[j] = _mm256_mmask_i32gather_ps(_mm256_setzero_ps(), rows, row_off, c + 48 + j, 4);
    } else {
#define LC_BIAS(i) c##i##_0 = c##i##_1 = c##i##_2 = (bias && i < m) ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
        LC_WROWS(LC_BIAS)
#undef LC_BIAS
        if (bias)
            for (size_t j = 0; j < t; j++) e[j] = _mm256_maskz_loadu_ps(rows, bias);
    }
#define LC_STEP(i)                                                                            \
    {                                                                                         \
        const __m512 ai = _mm512_set1_ps(a[i]);                                               \
        c##i##_0 = _mm512_fmadd_ps(ai, b0, c##i##_0);                                         \
        c##i##_1 = _mm512_fmadd_ps(ai, b1, c##i##_1);                                         \
        c##i##_2 = _mm512_fmadd_ps(ai, b2, c##i##_2);                                         \
    }
    /* k steps [p, end): the tail columns' FMAs beside the vector rows' */
#define LC_WIDE_STEPS(end)                                                                    \
    if (t == 0) {                                                                             \
        for (; p < (end); p++, a += 8, b += ldb) {                                            \
            const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16),               \
                         b2 = _mm512_loadu_ps(b + 32);                                        \
            LC_WROWS(LC_STEP)                                                                 \
        }                                                                                     \
    } else {                                                                                  \
        for (; p < (end); p++, a += 8, b += ldb) {                                            \
            const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16),               \
                         b2 = _mm512_loadu_ps(b + 32);                                        \
            const __m256 av = _mm256_loadu_ps(a);                                             \
            LC_WROWS(LC_STEP)                                                                 \
            e[0] = _mm256_fmadd_ps(av, _mm256_set1_ps(b[48]), e[0]);                          \
            if (t > 1) e[1] = _mm256_fmadd_ps(av, _mm256_set1_ps(b[49]), e[1]);               \
            if (t > 2) e[2] = _mm256_fmadd_ps(av, _mm256_set1_ps(b[50]), e[2]);               \
        }                                                                                     \
    }
    size_t p = 0;
    LC_CURSOR_STEPS(LC_WIDE_STEPS)
#undef LC_WIDE_STEPS
#undef LC_STEP
    const int clamp = (flags & LC_GEMM_FINAL) && ep->clamp;
    if (clamp) { /* max/min return their second operand when either is NaN: NaN passes */
        const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
#define LC_CLAMP(i)                                                                           \
    c##i##_0 = _mm512_min_ps(hi, _mm512_max_ps(lo, c##i##_0));                                \
    c##i##_1 = _mm512_min_ps(hi, _mm512_max_ps(lo, c##i##_1));                                \
    c##i##_2 = _mm512_min_ps(hi, _mm512_max_ps(lo, c##i##_2));
        LC_WROWS(LC_CLAMP)
#undef LC_CLAMP
    }
#define LC_STORE(i)                                                                           \
    if (i < m) {                                                                              \
        _mm512_storeu_ps(c + i * ldc, c##i##_0);                                              \
        _mm512_storeu_ps(c + i * ldc + 16, c##i##_1);                                         \
        _mm512_storeu_ps(c + i * ldc + 32, c##i##_2);                                         \
    }
    LC_WROWS(LC_STORE)
#undef LC_STORE
#undef LC_WROWS
    for (size_t j = 0; j < t; j++) {
        __m256 v = e[j];
        float tmp[8];
        if (clamp)
            v = _mm256_min_ps(_mm256_set1_ps(ep->hi), _mm256_max_ps(_mm256_set1_ps(ep->lo), v));
        _mm256_storeu_ps(tmp, v);
        for (size_t i = 0; i < m; i++) c[i * ldc + 48 + j] = tmp[i];
    }
}

void lc_f32_gemm_wide_8x48__avx512(size_t m, size_t n, size_t k, const float *a,
                                   const float *b, size_t ldb, float *c, size_t ldc,
                                   const float *bias, const lc_epilogue *ep, unsigned flags) {
    lc_gemm_wide_8x48_body(m, n, k, a, b, ldb, c, ldc, bias, ep, flags, NULL, 0, 0);
}

/* The same with a prefetch cursor (lc_gemm_pf_fn; the driver's next A slice
 * on small images, where a pass is one wide call). */
void lc_f32_gemm_wide_pf_8x48__avx512(size_t m, size_t n, size_t k, const float *a,
                                      const float *b, size_t ldb, float *c, size_t ldc,
                                      const float *bias, const lc_epilogue *ep, unsigned flags,
                                      const float *pf, size_t pf_ld, size_t pf_rows) {
    lc_gemm_wide_8x48_body(m, n, k, a, b, ldb, c, ldc, bias, ep, flags, pf, pf_ld, pf_rows);
}

/* 24 x 16 (lc_gemm_tall_fn): three 8-row panels of A against one vector of
 * B columns, 24 accumulators; a k step is 1 B load and 24 FMAs with the A
 * broadcasts folded in, where the 8 x 32 kernel loads B once per 8 rows. */
#define LC_TALL_MR 8
#define LC_TALL_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
    X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#define LC_TALL_NAME lc_f32_gemm_tall_24x16__avx512
#include "../gemm_tall_template.h"

/* Patch unwrapping runs (lc_strided_copy_fn).  Stride 2 (downsampling
 * layers, the 7x7/2 stem) takes 16 outputs from two 16-float loads with one
 * two-source permute; the tail uses masked loads so nothing past the last
 * element read is touched (the row may end at a page boundary). */
static inline __mmask16 lc_mask16(size_t cnt) {
    return (__mmask16)(cnt >= 16 ? 0xffffu : (1u << cnt) - 1u);
}

static inline void lc_copy_row__avx512(float *dst, const float *src, size_t n, size_t stride) {
    size_t r = 0;
    if (stride == 1) {
        for (; r + 16 <= n; r += 16) _mm512_storeu_ps(dst + r, _mm512_loadu_ps(src + r));
        if (r < n) {
            const __mmask16 m = lc_mask16(n - r);
            _mm512_mask_storeu_ps(dst + r, m, _mm512_maskz_loadu_ps(m, src + r));
        }
    } else if (stride == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                               26, 28, 30);
        /* full blocks read src[2r .. 2r+31]; the last element needed is
         * src[2n-2], so a block is full while 2r + 31 <= 2n - 2 */
        for (; r + 16 < n; r += 16) {
            const __m512 lo = _mm512_loadu_ps(src + 2 * r), hi = _mm512_loadu_ps(src + 2 * r + 16);
            _mm512_storeu_ps(dst + r, _mm512_permutex2var_ps(lo, even, hi));
        }
        if (r < n) {
            const size_t need = 2 * (n - r) - 1; /* floats read: src[2r .. 2n-2] */
            const __m512 lo = _mm512_maskz_loadu_ps(lc_mask16(need), src + 2 * r);
            const __m512 hi = _mm512_maskz_loadu_ps(lc_mask16(need > 16 ? need - 16 : 0),
                                                    src + 2 * r + 16);
            _mm512_mask_storeu_ps(dst + r, lc_mask16(n - r), _mm512_permutex2var_ps(lo, even, hi));
        }
    } else {
        for (; r < n; r++) dst[r] = src[r * stride];
    }
}

void lc_f32_strided_copy__avx512(float *dst, size_t dst_stride, const float *src,
                                 size_t src_step, size_t rows, size_t n, size_t stride) {
    for (size_t i = 0; i < rows; i++, dst += dst_stride, src += src_step)
        lc_copy_row__avx512(dst, src, n, stride);
}

/* Direct convolution, output channels in the lanes (../direct_lanes_template.h):
 * 6 pixels x 4 vectors (64 channels) and 12 pixels x 2 vectors (32 channels),
 * 24 accumulators each; config.c picks one. */
#define LC_DL_NV 4
#define LC_DL_R 6
#define LC_DL_NAME lc_f32_dl_6x64__avx512
#include "../direct_lanes_template.h"
#define LC_DL_NV 2
#define LC_DL_R 12
#define LC_DL_NAME lc_f32_dl_12x32__avx512
#include "../direct_lanes_template.h"
/* and 12 pixels x 1 vector (16 channels) for groups of 16 output channels:
 * 12 accumulators, a weight vector and 12 broadcasts a tap */
#define LC_DL_NV 1
#define LC_DL_R 12
#define LC_DL_NAME lc_f32_dl_12x16__avx512
#include "../direct_lanes_template.h"

/* The stem kernel (../stem_lanes_template.h): 4 output channels x 6 pixel
 * vectors, 24 accumulators, the 4 weights broadcast into registers a tap.
 * 6 x 4 and 8 x 3 (fewer loads a multiply-add) ran the same within noise on
 * the ResNet, SqueezeNet and MobileNet stems (Intel Xeon, 1 thread, load
 * ~4); 4 wastes the fewest lanes on 16- and 24-channel stems. */
#define LC_ST_R 4
#define LC_ST_V 6
#define LC_ST_NAME lc_f32_stem_4x6__avx512
#include "../stem_lanes_template.h"

/* Their 1 x 1 forms (../pointwise_lanes_template.h), the same widths; the
 * full one over 7 pixels, not 6: 7 divides the 7 x 7 and 14 x 14 planes it
 * runs on (49 and 196 pixels), where 6 cut them into blocks of 5 and 6, and
 * a 5-pixel call ran its FMAs at 82% of the peak against 96% for 6 (weights
 * from L2, k = 2048, AMD EPYC Zen 4).  28 accumulators and 4 weight vectors
 * take all 32 registers: GCC keeps one accumulator on the stack, a load and
 * a store per 28 FMAs, off the FMA chains' critical path (config.c: the
 * measured figures). */
#define LC_PW_NV 4
#define LC_PW_R 7
#define LC_PW_NAME lc_f32_pw_7x64__avx512
#include "../pointwise_lanes_template.h"
#define LC_PW_NV 2
#define LC_PW_R 12
#define LC_PW_NAME lc_f32_pw_12x32__avx512
#include "../pointwise_lanes_template.h"
#define LC_PW_NV 1
#define LC_PW_R 12
#define LC_PW_NAME lc_f32_pw_12x16__avx512
#include "../pointwise_lanes_template.h"

#include "target_end.h"
#endif
