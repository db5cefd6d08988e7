/* Softmax's ISA primitive (lc_softmax_fn in include/leanconv/ukernels.h),
 * written once over the abstract vector of kernels/postop_template.h, whose
 * exp (lc_vexp2: Cody-Waite reduction, degree-7 polynomial, 2^n) it uses:
 * included by kernels/<isa>/postop.c after that template, with
 *   LC_SOFTMAX_NAME   the function's name.
 *
 * Over n values (max-subtracted, so every exp argument is <= 0 and nothing
 * overflows): the max, then e = exp(v - max) stored into y while summed, then
 * y = e / sum (an IEEE division: no reciprocal's extra rounding).  The sums
 * are compensated (Kahan), so a long softmax (1000 classes, or a softmax over
 * many channels summed lane by lane) stays within a few ulps whatever n: with
 * the exp's ~2 ulps, within 1e-6 relative of float64.  A NaN anywhere makes
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

/* A contiguous row of n values (inner == 1). */
static void lc_sm_row(float *y, const float *x, size_t n) {
    const size_t full = n / LC_VL * LC_VL, rem = n - full;
    float buf[LC_VL], buf2[LC_VL];
    LC_V mv = LC_VSET1(-INFINITY);
    for (size_t i = 0; i < full; i += LC_VL) mv = LC_VMAX(mv, LC_VLOAD(x + i));
    LC_VSTORE(buf, mv);
    float m = buf[0];
    for (size_t l = 1; l < LC_VL; l++) m = buf[l] > m || buf[l] != buf[l] ? buf[l] : m;
    for (size_t i = full; i < n; i++) m = x[i] > m || x[i] != x[i] ? x[i] : m;
    const LC_V vm = LC_VSET1(m);
    LC_V s = LC_VSET1(0.0f), c = LC_VSET1(0.0f);
    for (size_t i = 0; i < full; i += LC_VL) {
        const LC_V e = lc_sm_exp(LC_VLOAD(x + i), vm);
        LC_VSTORE(y + i, e);
        lc_sm_kahan(&s, &c, e);
    }
    if (rem) {
        /* the tail's other lanes -inf: exp 0, nothing added */
        for (size_t l = 0; l < LC_VL; l++) buf[l] = l < rem ? x[full + l] : -INFINITY;
        const LC_V e = lc_sm_exp(LC_VLOAD(buf), vm);
        LC_VSTORE_PART(y + full, e, rem);
        lc_sm_kahan(&s, &c, e);
    }
    /* the lanes' sums, pairwise in a fixed order, in double (one rounding) */
    LC_VSTORE(buf, s);
    LC_VSTORE(buf2, c);
    double part[LC_VL];
    for (size_t l = 0; l < LC_VL; l++) part[l] = (double)buf[l] - (double)buf2[l];
    for (size_t w = LC_VL / 2; w >= 1; w /= 2)
        for (size_t l = 0; l < w; l++) part[l] += part[l + w];
    const LC_V vs = LC_VSET1((float)part[0]);
    for (size_t i = 0; i < full; i += LC_VL) LC_VSTORE(y + i, LC_VDIV(LC_VLOAD(y + i), vs));
    if (rem) LC_VSTORE_PART(y + full, LC_VDIV(LC_VLOAD_PART(y + full, rem), vs), rem);
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
        lc_sm_row(y, x, n);
    else
        lc_sm_cols(y, x, n, inner, cnt);
}
