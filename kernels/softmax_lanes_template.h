/* Softmax's ISA primitive (lc_softmax_fn in include/leanconv/ukernels.h),
 * written once over the abstract vector of kernels/postop_template.h, whose
 * exp (lc_vexp2: Cody-Waite reduction, degree-7 polynomial, 2^n) it uses:
 * included by kernels/<isa>/postop.c after that template, with
 *   LC_SOFTMAX_NAME   the function's name,
 * and the ISA's LC_VFIRST(cnt) (a mask of lanes [0, cnt)), LC_VHMAX(v) (the
 * largest lane) and LC_VHSUM_COMP(s, c) (the lanes' s - c summed in double).
 *
 * Over n values (max-subtracted, so every exp argument is <= 0 and nothing
 * overflows): the max, then e = exp(v - max) stored into y while summed, then
 * y scaled by the sum (a row: times 1 / sum, rounded once from double; a
 * column: an IEEE division).  A long softmax's sums (a row of more than 16 exps a
 * lane, every column softmax) are compensated (Kahan), so it stays within a
 * few ulps whatever n; with the exp's ~2 ulps and the scaling's ~1, within
 * 1e-6 relative of float64.  A NaN anywhere makes
 * its exp a NaN, hence the sum and every output NaN (NumPy's rule; the
 * vector max's NaN rule does not matter); an +inf gives inf - inf = NaN too.
 * Each row / column is computed the same way wherever it sits in the vectors,
 * so the bits do not depend on the thread count or the split. */

/* e^(x - m) for x <= m, 0 below exp's normal range, a NaN where x - m is
 * one.  x - m is carried exactly as hi + lo (Knuth's two-sum): rounded to
 * float, x - m = -20 would be off by up to 2^-20 in absolute terms, 1e-6 of
 * its exp; lc_vexp2 takes the low part into its reduced argument. */
static inline LC_V lc_sm_exp(LC_V x, LC_V m) {
    const LC_V nm = LC_VSUB(LC_VSET1(0.0f), m);
    const LC_V hi = LC_VADD(x, nm);
    const LC_V bb = LC_VSUB(hi, x);
    const LC_V lo = LC_VADD(LC_VSUB(x, LC_VSUB(hi, bb)), LC_VSUB(nm, bb));
    const LC_V lim = LC_VSET1(-87.0f);
    const LC_V e = LC_VSEL(LC_VLT(hi, lim), LC_VSET1(0.0f), lc_vexp2(LC_VMAX(hi, lim), lo));
    return LC_VSEL(LC_VISNAN(hi), hi, e);
}

/* s += v, compensated: c carries what the last additions lost */
static inline void lc_sm_kahan(LC_V *s, LC_V *c, LC_V v) {
    const LC_V yv = LC_VSUB(v, *c);
    const LC_V t = LC_VADD(*s, yv);
    *c = LC_VSUB(LC_VSUB(t, *s), yv);
    *s = t;
}

/* Lanes' additions a row's sum may take uncompensated: each lane then sums
 * at most this many positive exps, a relative error of at most 7 float ulps
 * (4e-7), inside the 1e-6 contract with the exp's and the scaling's few ulps */
#define LC_SM_PLAIN_PER_LANE 8

/* A contiguous row of n values (inner == 1).  Short rows are the common
 * case (attention's 49 or 197 keys), so the per-row work is kept to vector
 * operations with short dependency chains: the tail is a masked load (its
 * other lanes -inf for the max, 0 in the sum), the lane reductions are the
 * ISA's fixed shuffle sequences (LC_VHMAX, LC_VHSUM_COMP), the sum is
 * compensated only when a lane adds more than 2 x LC_SM_PLAIN_PER_LANE exps
 * (Kahan's chain is four dependent operations a vector; below that, two
 * plain sums of alternate vectors, each within LC_SM_PLAIN_PER_LANE a lane:
 * ViT's 197-key rows (13 vectors on AVX-512) ran 269 -> 235 us a layer's
 * 2364 rows, Intel Xeon, 1 thread), and the scaling is
 * a multiplication by 1 / sum rounded once from double (a division a
 * vector would cost more than the whole exp): both choices depend on n and
 * the ISA alone, so a row's bits do not depend on where it sits. */
static void lc_sm_row(float *y, const float *x, size_t n) {
    const size_t full = n / LC_VL * LC_VL, rem = n - full;
    const LC_V ninf = LC_VSET1(-INFINITY), zero = LC_VSET1(0.0f);
    LC_V mv = ninf, tail = ninf;
    for (size_t i = 0; i < full; i += LC_VL) mv = LC_VMAX(mv, LC_VLOAD(x + i));
    if (rem) {
        tail = LC_VSEL(LC_VFIRST(rem), LC_VLOAD_PART(x + full, rem), ninf);
        mv = LC_VMAX(mv, tail);
    }
    const LC_V vm = LC_VSET1(LC_VHMAX(mv));
    /* -inf tail lanes: exp 0, nothing added (unless the max is -inf too,
     * when every output is NaN anyway) */
    const LC_V etail = rem ? LC_VSEL(LC_VFIRST(rem), lc_sm_exp(tail, vm), zero) : zero;
    LC_V s = zero, c = zero;
    if (n <= 2 * LC_SM_PLAIN_PER_LANE * LC_VL) {
        /* two sums, even and odd vectors: each lane of each adds at most
         * LC_SM_PLAIN_PER_LANE exps, and the two chains run side by side */
        LC_V s1 = zero;
        size_t i = 0;
        for (; i + 2 * LC_VL <= full; i += 2 * LC_VL) {
            const LC_V e0 = lc_sm_exp(LC_VLOAD(x + i), vm);
            const LC_V e1 = lc_sm_exp(LC_VLOAD(x + i + LC_VL), vm);
            LC_VSTORE(y + i, e0);
            LC_VSTORE(y + i + LC_VL, e1);
            s = LC_VADD(s, e0);
            s1 = LC_VADD(s1, e1);
        }
        if (i < full) {
            const LC_V e = lc_sm_exp(LC_VLOAD(x + i), vm);
            LC_VSTORE(y + i, e);
            s = LC_VADD(s, e);
        }
        s = LC_VADD(LC_VADD(s, etail), s1);
    } else {
        for (size_t i = 0; i < full; i += LC_VL) {
            const LC_V e = lc_sm_exp(LC_VLOAD(x + i), vm);
            LC_VSTORE(y + i, e);
            lc_sm_kahan(&s, &c, e);
        }
        lc_sm_kahan(&s, &c, etail);
    }
    const LC_V inv = LC_VSET1((float)(1.0 / LC_VHSUM_COMP(s, c)));
    for (size_t i = 0; i < full; i += LC_VL) LC_VSTORE(y + i, LC_VMUL(LC_VLOAD(y + i), inv));
    if (rem) LC_VSTORE_PART(y + full, LC_VMUL(etail, inv), rem);
}

/* Columns [0, cnt) of an n x inner slab (rows inner floats apart): each
 * column a softmax, LC_VL columns per vector. */
static void lc_sm_cols(float *y, const float *x, size_t n, size_t inner, size_t cnt) {
    for (size_t j = 0; j < cnt; j += LC_VL) {
        const size_t w = cnt - j < LC_VL ? cnt - j : LC_VL;
        const float *xj = x + j;
        float *yj = y + j;
#define LC_SM_LOAD(p) (w == LC_VL ? LC_VLOAD(p) : LC_VLOAD_PART((p), w))
#define LC_SM_STORE(p, v)            \
    do {                             \
        if (w == LC_VL)              \
            LC_VSTORE((p), (v));     \
        else                         \
            LC_VSTORE_PART((p), (v), w); \
    } while (0)
        /* the lanes past w load 0 and are never stored */
        LC_V m = LC_SM_LOAD(xj);
        for (size_t k = 1; k < n; k++) m = LC_VMAX(m, LC_SM_LOAD(xj + k * inner));
        LC_V s = LC_VSET1(0.0f), c = LC_VSET1(0.0f);
        for (size_t k = 0; k < n; k++) {
            const LC_V e = lc_sm_exp(LC_SM_LOAD(xj + k * inner), m);
            LC_SM_STORE(yj + k * inner, e);
            lc_sm_kahan(&s, &c, e);
        }
        s = LC_VSUB(s, c);
        for (size_t k = 0; k < n; k++)
            LC_SM_STORE(yj + k * inner, LC_VDIV(LC_SM_LOAD(yj + k * inner), s));
#undef LC_SM_LOAD
#undef LC_SM_STORE
    }
}

void LC_SOFTMAX_NAME(float *y, const float *x, size_t n, size_t inner, size_t cnt) {
    if (inner == 1)
        for (size_t r = 0; r < cnt; r++) lc_sm_row(y + r * n, x + r * n, n);
    else
        lc_sm_cols(y, x, n, inner, cnt);
}
