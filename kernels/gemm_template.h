/* The GEMM micro-kernel (contract: lc_gemm_ukernel_fn in
 * include/leanconv/ukernels.h), MR x NR with NR = two vectors, written once
 * over an abstract vector type.  Each row's two accumulators are named
 * variables (c<i>_0, c<i>_1), not an array: compilers keep named vectors in
 * registers, while an array indexed in the tails may end up on the stack and
 * be stored every k step.  The including file defines:
 *   LC_V, LC_VL                 vector type, floats per vector (NR = 2 * LC_VL)
 *   LC_MASK, LC_MASK_FOR(cnt)   lane mask type; mask of lanes [0, cnt), cnt in [0, LC_VL]
 *   LC_VZERO() LC_VSET1(f) LC_VLOADU(p) LC_VSTOREU(p, v)
 *   LC_VLOADM(p, mask)          masked load (no fault, nothing read past the mask)
 *   LC_VSTOREM(p, mask, v)      masked store
 *   LC_VFMA(a, b, c) = a*b + c
 *   LC_VMAX(a, b) LC_VMIN(a, b) returning b when either is NaN (x86 max/min)
 *   LC_GEMM_MR, LC_GEMM_ROWS(X) X(0) X(1) ... X(MR-1), LC_GEMM_NAME
 *   LC_GEMM_LINKAGE (optional, e.g. static)
 *   LC_GEMM_PF_NAME (optional): also stamp out the lc_gemm_pf_fn variant */

/* Where the cursor's rows go: L2, not L1 (prefetcht1).  Into L1 the next
 * panel's rows (a 256-row slice is 32 KiB at NR = 32) evict the slice the
 * kernel is reading from a 48 KiB L1d; from L2 its own loads reach them
 * within the out-of-order window.  (1x1 144>24 @56, Intel Xeon: t1 and t2
 * 10% faster than no prefetch, t0 1%.) */
#ifndef LC_PREFETCH_ROW
#if defined(__GNUC__) || defined(__clang__)
#define LC_PREFETCH_ROW(p) __builtin_prefetch((p), 0, LC_GEMM_PF_LOCALITY)
#else
#define LC_PREFETCH_ROW(p) ((void)(p))
#endif
#endif
#ifndef LC_GEMM_PF_LOCALITY
#define LC_GEMM_PF_LOCALITY 2
#endif

#ifndef LC_GEMM_LINKAGE
#define LC_GEMM_LINKAGE
#endif
/* The body takes a prefetch cursor (lc_gemm_pf_fn): pf_rows rows of pf_ld
 * floats apart, each NR floats, asked for one at a time spread evenly over the
 * k loop of a full-width tile.  With pf_rows = 0 (the plain kernel) the
 * compiler drops that loop. */
static LC_ALWAYS_INLINE void LC_CAT(LC_GEMM_NAME, _body)(
    size_t m, size_t n, size_t k, const float *a, const float *b, size_t ldb, float *c,
    size_t ldc, const float *bias, const lc_epilogue *ep, unsigned flags, const float *pf,
    size_t pf_ld, size_t pf_rows) {
    const size_t VL = LC_VL;
    const LC_MASK mask0 = LC_MASK_FOR(n < VL ? n : VL);
    const LC_MASK mask1 = LC_MASK_FOR(n > VL ? n - VL : 0);
#define LC_DECL(i) LC_V c##i##_0, c##i##_1;
    LC_GEMM_ROWS(LC_DECL)
#undef LC_DECL

    if (flags & LC_GEMM_ACCUMULATE) {
#define LC_LOADC(i)                                                                           \
    if (i < m) {                                                                              \
        c##i##_0 = LC_VLOADM(c + i * ldc, mask0);                                             \
        c##i##_1 = LC_VLOADM(c + i * ldc + VL, mask1);                                        \
    } else {                                                                                  \
        c##i##_0 = c##i##_1 = LC_VZERO();                                                     \
    }
        LC_GEMM_ROWS(LC_LOADC)
#undef LC_LOADC
    } else {
#define LC_BIAS(i) c##i##_0 = c##i##_1 = (bias && i < m) ? LC_VSET1(bias[i]) : LC_VZERO();
        LC_GEMM_ROWS(LC_BIAS)
#undef LC_BIAS
    }

    /* Optional ISA hook: LC_GEMM_LOAD_A(a) loads the MR floats of A of a k step
     * into vectors and LC_GEMM_A(i) broadcasts lane i of them (NEON: fmla by
     * element, a few loads per step instead of MR broadcasts, which would not
     * all fit in the registers beside the accumulators).  By default each A
     * value is broadcast from memory where it is used. */
#ifndef LC_GEMM_LOAD_A
#define LC_GEMM_LOAD_A(ap)
#define LC_GEMM_A(i) LC_VSET1(a[i])
#endif
#define LC_STEP2(i)                                                                           \
    {                                                                                         \
        const LC_V ai = LC_GEMM_A(i);                                                         \
        c##i##_0 = LC_VFMA(ai, b0, c##i##_0);                                                 \
        c##i##_1 = LC_VFMA(ai, b1, c##i##_1);                                                 \
    }
#define LC_STEP1(i) c##i##_0 = LC_VFMA(LC_GEMM_A(i), b0, c##i##_0);
#define LC_FULL_STEP                                                                          \
    {                                                                                         \
        const LC_V b0 = LC_VLOADU(b), b1 = LC_VLOADU(b + VL);                                 \
        b += ldb;                                                                             \
        LC_GEMM_LOAD_A(a)                                                                     \
        LC_GEMM_ROWS(LC_STEP2)                                                                \
        a += LC_GEMM_MR;                                                                      \
    }
    if (n == 2 * VL) {
        size_t p = 0;
        if (pf_rows) {
            /* one row (its first and last float: the lines it spans) every
             * `every` k steps, so the reads trickle out beside the FMAs
             * rather than queueing up in one burst */
            const size_t every = k / pf_rows ? k / pf_rows : 1;
            for (size_t r = 0; r < pf_rows; r++, pf += pf_ld) {
                LC_PREFETCH_ROW(pf);
                LC_PREFETCH_ROW(pf + 2 * VL - 1);
                for (const size_t e = p + every < k ? p + every : k; p < e; p++) LC_FULL_STEP
            }
        }
        for (; p < k; p++) LC_FULL_STEP
    } else if (n > VL) {
        for (size_t p = 0; p < k; p++) {
            const LC_V b0 = LC_VLOADU(b), b1 = LC_VLOADM(b + VL, mask1);
            b += ldb;
            LC_GEMM_LOAD_A(a)
            LC_GEMM_ROWS(LC_STEP2)
            a += LC_GEMM_MR;
        }
    } else {
        /* at most one vector of columns: the second is never stored, skip it */
        for (size_t p = 0; p < k; p++) {
            const LC_V b0 = LC_VLOADM(b, mask0);
            b += ldb;
            LC_GEMM_LOAD_A(a)
            LC_GEMM_ROWS(LC_STEP1)
            a += LC_GEMM_MR;
        }
    }
#undef LC_FULL_STEP
#undef LC_STEP2
#undef LC_STEP1
#undef LC_GEMM_LOAD_A
#undef LC_GEMM_A

    if ((flags & LC_GEMM_FINAL) && ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const LC_V lo = LC_VSET1(ep->lo), hi = LC_VSET1(ep->hi);
#define LC_CLAMP(i)                                                                           \
    c##i##_0 = LC_VMIN(hi, LC_VMAX(lo, c##i##_0));                                            \
    c##i##_1 = LC_VMIN(hi, LC_VMAX(lo, c##i##_1));
        LC_GEMM_ROWS(LC_CLAMP)
#undef LC_CLAMP
    }

    if (n == 2 * VL) {
#define LC_STORE(i)                                                                           \
    if (i < m) {                                                                              \
        LC_VSTOREU(c + i * ldc, c##i##_0);                                                    \
        LC_VSTOREU(c + i * ldc + VL, c##i##_1);                                               \
    }
        LC_GEMM_ROWS(LC_STORE)
#undef LC_STORE
    } else {
#define LC_STOREM(i)                                                                          \
    if (i < m) {                                                                              \
        LC_VSTOREM(c + i * ldc, mask0, c##i##_0);                                             \
        LC_VSTOREM(c + i * ldc + VL, mask1, c##i##_1);                                        \
    }
        LC_GEMM_ROWS(LC_STOREM)
#undef LC_STOREM
    }
}

LC_GEMM_LINKAGE void LC_GEMM_NAME(size_t m, size_t n, size_t k, const float *a, const float *b,
                                  size_t ldb, float *c, size_t ldc, const float *bias,
                                  const lc_epilogue *ep, unsigned flags) {
    LC_CAT(LC_GEMM_NAME, _body)(m, n, k, a, b, ldb, c, ldc, bias, ep, flags, NULL, 0, 0);
}

#ifdef LC_GEMM_PF_NAME
LC_GEMM_LINKAGE void LC_GEMM_PF_NAME(size_t m, size_t n, size_t k, const float *a,
                                     const float *b, size_t ldb, float *c, size_t ldc,
                                     const float *bias, const lc_epilogue *ep, unsigned flags,
                                     const float *pf, size_t pf_ld, size_t pf_rows) {
    LC_CAT(LC_GEMM_NAME, _body)(m, n, k, a, b, ldb, c, ldc, bias, ep, flags, pf, pf_ld,
                                n == 2 * LC_VL ? pf_rows : 0);
}
#endif

#undef LC_GEMM_MR
#undef LC_GEMM_ROWS
#undef LC_GEMM_NAME
#undef LC_GEMM_PF_NAME
#undef LC_GEMM_LINKAGE
