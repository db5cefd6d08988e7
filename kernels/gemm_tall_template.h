/* The tall GEMM micro-kernel (contract: lc_gemm_tall_fn in
 * include/leanconv/ukernels.h): three packed MR-row panels of A (a,
 * a + a_pstride, a + 2*a_pstride) times ONE vector of B columns, so each B
 * load feeds 3 * MR FMAs instead of the MR of the MR x NR kernel.  Layers
 * with few output channels on large images (1 x 1 144>24 @56) read B, the
 * input planes, once per 3 * MR channels instead of once per MR.
 * Every C element is one FMA chain over k in ascending order from the bias
 * or the accumulated C, as in gemm_template.h, so a column's value does not
 * depend on which kernel computed it.  The including file defines the
 * vector macros of gemm_template.h (LC_V, LC_VL, LC_MASK_FOR, LC_VLOADM, ...)
 * and:
 *   LC_TALL_MR          rows of a packed panel (the ISA's MR)
 *   LC_TALL_ROWS(X)     X(0) ... X(3 * MR - 1)
 *   LC_TALL_NAME
 * The prefetch cursor's rows are two vectors wide (the ISA's NR).
 * Rows >= m are not stored; panels wholly past m are not read (their
 * accumulators run on panel 0, which exists).
 * It needs 3 * MR accumulators + a B vector in registers with the A
 * broadcasts folded into the FMAs: AVX-512 (24 x 16).  An AVX2 12 x 8 over
 * two 6-row panels (12 YMM accumulators, a separate broadcast per FMA: 13
 * loads per 12 FMAs against the 6 x 16's 8) ran 17% below the 6 x 16 on
 * cache-resident data and made the 1 x 1 layers 4-21% slower (Intel Xeon).
 * A 16 x 16 AVX-512 instance (two panels, for M = 16: MobileNetV2's 32>16
 * @112 projection, where the 24 x 16 would waste a third of its FMAs) ran
 * only 1-2% ahead of the 8 x 32 kernel on line-aligned input (Zen 4): not
 * worth a second tall kernel and its choice. */

#ifndef LC_TALL_PREFETCH
#if defined(__GNUC__) || defined(__clang__)
#define LC_TALL_PREFETCH(p) __builtin_prefetch((p), 0, 2) /* to L2, as gemm_template.h */
#define LC_TALL_PREFETCH_W(p) __builtin_prefetch((p), 1, 3) /* C: to write, into L1 */
#else
#define LC_TALL_PREFETCH(p) ((void)(p))
#define LC_TALL_PREFETCH_W(p) ((void)(p))
#endif
#endif

void LC_TALL_NAME(size_t m, size_t n, size_t k, const float *a, size_t a_pstride,
                  const float *b, size_t ldb, float *c, size_t ldc, const float *bias,
                  const lc_epilogue *ep, unsigned flags, const float *pf, size_t pf_ld,
                  size_t pf_rows) {
    const size_t VL = LC_VL, MR = LC_TALL_MR;
    const LC_MASK mask = LC_MASK_FOR(n < VL ? n : VL);
    const float *a0 = a;
    const float *a1 = m > MR ? a + a_pstride : a;
    const float *a2 = m > 2 * MR ? a + 2 * a_pstride : a;
#define LC_TALL_A(i) ((i) < LC_TALL_MR ? a0 : (i) < 2 * LC_TALL_MR ? a1 : a2)[(i) % LC_TALL_MR]
#define LC_DECL(i) LC_V c##i;
    LC_TALL_ROWS(LC_DECL)
#undef LC_DECL
    if (flags & LC_GEMM_ACCUMULATE) {
#define LC_LOADC(i) c##i = (i) < m ? LC_VLOADM(c + (i) * ldc, mask) : LC_VZERO();
        LC_TALL_ROWS(LC_LOADC)
#undef LC_LOADC
    } else {
#define LC_BIAS(i) c##i = (bias && (i) < m) ? LC_VSET1(bias[i]) : LC_VZERO();
        LC_TALL_ROWS(LC_BIAS)
#undef LC_BIAS
    }
#define LC_STEP(i) c##i = LC_VFMA(LC_VSET1(LC_TALL_A(i)), bv, c##i);
#define LC_TSTEP(LOAD)                                                                        \
    {                                                                                         \
        const LC_V bv = LOAD;                                                                 \
        b += ldb;                                                                             \
        LC_TALL_ROWS(LC_STEP)                                                                 \
        a0 += MR;                                                                             \
        a1 += MR;                                                                             \
        a2 += MR;                                                                             \
    }
    if (n >= VL) {
        size_t p = 0;
        if (pf_rows) {
            /* one cursor row (its first and last float) every `every` k
             * steps, spread over the loop as in gemm_template.h */
            const size_t every = k / pf_rows ? k / pf_rows : 1;
            /* a cursor row is a panel of two vectors: its first and last
             * line, and the middle one where the rows are not line-aligned
             * (each prefetch takes a load slot beside the 24 broadcasts of a
             * k step: the driver asks on every other tile only; every tile a
             * vector each cost 15-30% when B was in L2 after all) */
            const int mid = ((uintptr_t)pf | pf_ld * sizeof(float)) % 64 != 0 ||
                            VL * sizeof(float) > 64;
            const int write = (flags & LC_GEMM_PF_WRITE) != 0;
            for (size_t r = 0; r < pf_rows; r++, pf += pf_ld) {
                /* the row's lines, through the prefetch of the cursor's kind */
#define LC_TALL_CURSOR_ROW(PF) \
    do {                       \
        PF(pf);                \
        if (mid) PF(pf + VL);  \
        PF(pf + 2 * VL - 1);   \
    } while (0)
                if (write) /* C rows (the driver's lc_tall_c_ahead) */
                    LC_TALL_CURSOR_ROW(LC_TALL_PREFETCH_W);
                else
                    LC_TALL_CURSOR_ROW(LC_TALL_PREFETCH);
#undef LC_TALL_CURSOR_ROW
                for (const size_t e = p + every < k ? p + every : k; p < e; p++)
                    LC_TSTEP(LC_VLOADU(b))
            }
        }
        for (; p < k; p++) LC_TSTEP(LC_VLOADU(b))
    } else {
        for (size_t p = 0; p < k; p++) LC_TSTEP(LC_VLOADM(b, mask))
    }
#undef LC_TSTEP
#undef LC_STEP
#undef LC_TALL_A
    if ((flags & LC_GEMM_FINAL) && ep->clamp) {
        /* max/min return their second operand when either is NaN: NaN passes */
        const LC_V lo = LC_VSET1(ep->lo), hi = LC_VSET1(ep->hi);
#define LC_CLAMP(i) c##i = LC_VMIN(hi, LC_VMAX(lo, c##i));
        LC_TALL_ROWS(LC_CLAMP)
#undef LC_CLAMP
    }
    if (n >= VL) {
#define LC_STORE(i) if ((i) < m) LC_VSTOREU(c + (i) * ldc, c##i);
        LC_TALL_ROWS(LC_STORE)
#undef LC_STORE
    } else {
#define LC_STOREM(i) if ((i) < m) LC_VSTOREM(c + (i) * ldc, mask, c##i);
        LC_TALL_ROWS(LC_STOREM)
#undef LC_STOREM
    }
}

#undef LC_TALL_MR
#undef LC_TALL_ROWS
#undef LC_TALL_NAME
