/* The epilogue post-op (lc_postop_fn in include/leanconv/ukernels.h), written
 * once over an abstract vector type with our own approximations:
 *   exp   Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then e^r by a
 *         minimax polynomial of degree 6 (2e-9 relative), times 2^n
 *   tanh  x + x^3 S(x^2) below LC_TANH_SMALL, else 1 - 2/(e^{2|x|} + 1)
 *   Phi   (the normal CDF) Phi(-x) = exp(P(x)) for 0 <= x <= LC_PHI_MAX
 *         (kernels/activation_coeffs.h), Phi(x) = 1 - Phi(-x)
 * and sigmoid, SiLU, GELU on top of them in forms without cancellation or
 * inf * 0: sigmoid(v) = (v >= 0 ? 1 : e) / (1 + e) with e = exp(-|v|); the
 * gated ones (v * gate) give 0 where the gate is 0.  NaN inputs are passed
 * through at the end of each activation.
 * Included by kernels/<isa>/postop.c after it defines:
 *   LC_V, LC_M, LC_VL            vector, comparison mask, floats per vector
 *   LC_VLOAD(p) LC_VSTORE(p, v) LC_VSET1(f)
 *   LC_VLOAD_PART(p, cnt)         p[0 .. cnt) (cnt < LC_VL), other lanes 0, reads nothing past
 *   LC_VSTORE_PART(p, v, cnt)     lanes [0, cnt) to p[0 .. cnt), writes nothing past
 *   LC_VADD LC_VSUB LC_VMUL LC_VDIV LC_VMIN LC_VMAX (a, b)   (min/max: any NaN rule)
 *   LC_VFMA(a, b, c) = a*b + c    LC_VABS(a)
 *   LC_VLT LC_VLE LC_VGT LC_VGE LC_VEQ (a, b) -> LC_M (false for NaN)
 *   LC_VISNAN(a) -> LC_M          LC_VSEL(m, a, b) = m ? a : b
 *   LC_VSHL23(a)                  a's bits shifted left by 23, as a float
 *   LC_POSTOP_NAME                the function's name */
#include "activation.h"
#include "activation_coeffs.h"

/* The exp's n = round(x / ln2) and 2^n with no rounding or conversion
 * instruction: t = x / ln2 + LC_EXP_SHIFTER is rounded to an integer by the
 * addition itself (t's ulp is 1), t - LC_EXP_SHIFTER = n exactly, and t's
 * low mantissa bits hold n + 127, 2^n's exponent field (bit 22 of the
 * shifter and everything above the 9 low bits leave through the shift). */
#define LC_EXP_SHIFTER (12582912.0f + 127.0f) /* 1.5 * 2^23 + the exponent bias */

/* e^r 2^n for the reduced argument r (|r| <= ln2/2 and a bit) and t from
 * which n came (see LC_EXP_SHIFTER) */
static inline LC_V lc_vexp_reduced(LC_V r, LC_V t) {
    static const float ec[LC_EXP_NE] = LC_EXP_E;
    LC_V p = LC_VSET1(ec[LC_EXP_NE - 1]);
    for (int i = LC_EXP_NE - 2; i >= 0; i--) p = LC_VFMA(p, r, LC_VSET1(ec[i]));
    return LC_VMUL(p, LC_VSHL23(t));
}

static inline LC_V lc_vexp2(LC_V xh, LC_V xl) {
    /* e^(xh + xl) for xh + xl in [-87, 88] (callers clamp), xl small: ln2 in
     * two parts so n * LN2_HI is exact and so is xh - n * LN2_HI (xh up to
     * 128 has no bits below 2^-17, n * LN2_HI none below 2^-9); xl joins the
     * reduced argument, so a sum xh + xl is never rounded at xh's scale */
    const LC_V shifter = LC_VSET1(LC_EXP_SHIFTER);
    const LC_V t = LC_VFMA(LC_VADD(xh, xl), LC_VSET1(1.44269504f), shifter);
    const LC_V n = LC_VSUB(t, shifter);
    LC_V r = LC_VFMA(n, LC_VSET1(-0.693359375f), xh);
    r = LC_VADD(LC_VFMA(n, LC_VSET1(2.12194440e-4f), r), xl);
    return lc_vexp_reduced(r, t);
}

/* e^x for x in [-87, 88]: lc_vexp2's reduction without the low part (the
 * same bits as lc_vexp2(x, 0), two additions fewer) */
static inline LC_V lc_vexp(LC_V x) {
    const LC_V shifter = LC_VSET1(LC_EXP_SHIFTER);
    const LC_V t = LC_VFMA(x, LC_VSET1(1.44269504f), shifter);
    const LC_V n = LC_VSUB(t, shifter);
    const LC_V r = LC_VFMA(n, LC_VSET1(-0.693359375f), x);
    return lc_vexp_reduced(LC_VFMA(n, LC_VSET1(2.12194440e-4f), r), t);
}

/* e^x for x <= 0 (or NaN), 0 below the normal range */
static inline LC_V lc_vexp_neg(LC_V x) {
    const LC_V lim = LC_VSET1(-87.0f);
    return LC_VSEL(LC_VLT(x, lim), LC_VSET1(0.0f), lc_vexp(LC_VMAX(x, lim)));
}

static inline LC_V lc_vsigmoid(LC_V v) {
    const LC_V e = lc_vexp_neg(LC_VSUB(LC_VSET1(0.0f), LC_VABS(v)));
    const LC_V num = LC_VSEL(LC_VGE(v, LC_VSET1(0.0f)), LC_VSET1(1.0f), e);
    return LC_VDIV(num, LC_VADD(LC_VSET1(1.0f), e));
}

/* SiLU v sigmoid(v) as v / (1 + e^-v), 7 operations fewer than v times
 * sigmoid (no sign split, no gate checks): -v clamped to [-87, 88] keeps
 * e^-v finite and normal (above v = 87 the quotient is v); below v = -88 the
 * exact value is under 1e-36 in magnitude: 0, as for v = -inf.  A NaN passes
 * through the division. */
static inline LC_V lc_vsilu(LC_V v) {
    const LC_V m = LC_VMIN(LC_VMAX(LC_VSUB(LC_VSET1(0.0f), v), LC_VSET1(-87.0f)), LC_VSET1(88.0f));
    const LC_V q = LC_VDIV(v, LC_VADD(LC_VSET1(1.0f), lc_vexp(m)));
    return LC_VSEL(LC_VLT(v, LC_VSET1(-88.0f)), LC_VSET1(0.0f), q);
}

/* v * gate, 0 where the gate is 0 (v -> -inf), NaN where v is */
static inline LC_V lc_vgated(LC_V v, LC_V gate) {
    const LC_V r = LC_VSEL(LC_VEQ(gate, LC_VSET1(0.0f)), LC_VSET1(0.0f), LC_VMUL(v, gate));
    return LC_VSEL(LC_VISNAN(v), v, r);
}

static inline LC_V lc_vtanh(LC_V v) {
    static const float s[LC_TANH_NS] = LC_TANH_S;
    const LC_V ax = LC_VABS(v), x2 = LC_VMUL(ax, ax);
    LC_V p = LC_VSET1(s[LC_TANH_NS - 1]);
    for (int i = LC_TANH_NS - 2; i >= 0; i--) p = LC_VFMA(p, x2, LC_VSET1(s[i]));
    const LC_V small = LC_VFMA(LC_VMUL(p, x2), ax, ax);
    /* tanh(20) is 1 in float: clamping keeps e finite */
    const LC_V e = lc_vexp(LC_VMIN(LC_VADD(ax, ax), LC_VSET1(40.0f)));
    const LC_V big = LC_VSUB(LC_VSET1(1.0f), LC_VDIV(LC_VSET1(2.0f), LC_VADD(e, LC_VSET1(1.0f))));
    LC_V r = LC_VSEL(LC_VLT(ax, LC_VSET1(LC_TANH_SMALL)), small, big);
    r = LC_VSEL(LC_VLT(v, LC_VSET1(0.0f)), LC_VSUB(LC_VSET1(0.0f), r), r);
    return LC_VSEL(LC_VISNAN(v), v, r);
}

/* GELU v Phi(v) to the epilogue's absolute promise (4 ulps + 2e-7; see
 * kernels/gen_activation_coeffs.py): no division and no exact x^2, which
 * an erfc form spent ~25 operations a vector on for relative accuracy
 * in the tail, where GELU is below 2e-7 anyway.  Beyond LC_PHI_MAX, Phi(v)
 * rounds to 1 (v > 0) or GELU is under 5e-8 in magnitude: 0, as for
 * v = -inf.  A NaN passes through the product (min(NaN, .) is either). */
static inline LC_V lc_vgelu(LC_V v) {
    static const float pc[LC_PHI_NP] = LC_PHI_P;
    const LC_V x = LC_VMIN(LC_VABS(v), LC_VSET1(LC_PHI_MAX));
    LC_V p = LC_VSET1(pc[LC_PHI_NP - 1]);
    for (int i = LC_PHI_NP - 2; i >= 0; i--) p = LC_VFMA(p, x, LC_VSET1(pc[i]));
    const LC_V q = lc_vexp(p); /* Phi(-x), P in [-17, -0.69]: no clamp needed */
    const LC_V phi = LC_VSEL(LC_VLT(v, LC_VSET1(0.0f)), q, LC_VSUB(LC_VSET1(1.0f), q));
    return LC_VSEL(LC_VLT(v, LC_VSET1(-LC_PHI_MAX)), LC_VSET1(0.0f), LC_VMUL(v, phi));
}

static inline LC_V lc_vclamp(LC_V v, LC_V lo, LC_V hi) {
    v = LC_VSEL(LC_VLT(v, lo), lo, v); /* comparisons are false for NaN: it passes */
    return LC_VSEL(LC_VGT(v, hi), hi, v);
}

static inline LC_V lc_vgelu_tanh(LC_V v) {
    /* (1 + tanh u)/2 = sigmoid(2u), 2u = v (2 sqrt(2/pi) + 2 sqrt(2/pi) 0.044715 v^2) */
    const LC_V w = LC_VMUL(v, LC_VFMA(LC_VMUL(v, v), LC_VSET1(0.0713548162f), LC_VSET1(1.59576912f)));
    return lc_vgated(v, lc_vsigmoid(w));
}

static inline LC_V lc_vhardswish(LC_V v) {
    const LC_V mid = LC_VDIV(LC_VMUL(v, LC_VADD(v, LC_VSET1(3.0f))), LC_VSET1(6.0f));
    const LC_V r = LC_VSEL(LC_VGE(v, LC_VSET1(3.0f)), v, mid);
    return LC_VSEL(LC_VLE(v, LC_VSET1(-3.0f)), LC_VSET1(0.0f), r);
}

/* The loop of one activation: EXPR computes the result from `v` (the vector
 * src + bias + residual).  One loop per activation, so nothing is decided
 * per vector; the tail is one partial vector, read before it is written
 * (y may be src or residual). */
#define LC_POSTOP_LOOP(EXPR)                                                                  \
    do {                                                                                      \
        size_t i = 0;                                                                         \
        if (residual) {                                                                       \
            for (; i + LC_VL <= n; i += LC_VL) {                                              \
                const LC_V v = LC_VADD(LC_VADD(LC_VLOAD(src + i), vb), LC_VLOAD(residual + i)); \
                LC_VSTORE(y + i, EXPR);                                                       \
            }                                                                                 \
        } else {                                                                              \
            for (; i + LC_VL <= n; i += LC_VL) {                                              \
                const LC_V v = LC_VADD(LC_VLOAD(src + i), vb);                                \
                LC_VSTORE(y + i, EXPR);                                                       \
            }                                                                                 \
        }                                                                                     \
        if (i < n) {                                                                          \
            const size_t m_ = n - i;                                                          \
            LC_V v = LC_VADD(LC_VLOAD_PART(src + i, m_), vb);                                 \
            if (residual) v = LC_VADD(v, LC_VLOAD_PART(residual + i, m_));                    \
            LC_VSTORE_PART(y + i, EXPR, m_);                                                  \
        }                                                                                     \
    } while (0)

void LC_POSTOP_NAME(float *y, const float *src, size_t n, const float *residual, float bias,
                    const lc_epilogue *ep) {
    /* a local copy: stores to y cannot change it, so its fields stay in
     * registers across the loops */
    const lc_epilogue e = *ep;
    const LC_V vb = LC_VSET1(bias);
    switch (e.act) {
    case LC_ACT_CLAMP: {
        const LC_V lo = LC_VSET1(e.lo), hi = LC_VSET1(e.hi);
        LC_POSTOP_LOOP(lc_vclamp(v, lo, hi));
        break;
    }
    case LC_ACT_SIGMOID: LC_POSTOP_LOOP(LC_VSEL(LC_VISNAN(v), v, lc_vsigmoid(v))); break;
    case LC_ACT_TANH: LC_POSTOP_LOOP(lc_vtanh(v)); break;
    case LC_ACT_SILU: LC_POSTOP_LOOP(lc_vsilu(v)); break;
    case LC_ACT_GELU: LC_POSTOP_LOOP(lc_vgelu(v)); break;
    case LC_ACT_GELU_TANH: LC_POSTOP_LOOP(lc_vgelu_tanh(v)); break;
    case LC_ACT_HARDSWISH: LC_POSTOP_LOOP(lc_vhardswish(v)); break;
    case LC_ACT_HARDSIGMOID: {
        const LC_V alpha = LC_VSET1(e.alpha), beta = LC_VSET1(e.beta);
        const LC_V zero = LC_VSET1(0.0f), one = LC_VSET1(1.0f);
        if (lc_hardsigmoid_is_torch(&e)) {
            const LC_V three = LC_VSET1(3.0f), six = LC_VSET1(6.0f);
            LC_POSTOP_LOOP(lc_vclamp(LC_VDIV(LC_VADD(v, three), six), zero, one));
        } else {
            LC_POSTOP_LOOP(lc_vclamp(LC_VFMA(v, alpha, beta), zero, one));
        }
        break;
    }
    case LC_ACT_LEAKY_RELU: {
        const LC_V slope = LC_VSET1(e.alpha), zero = LC_VSET1(0.0f);
        LC_POSTOP_LOOP(LC_VSEL(LC_VGT(v, zero), v, LC_VMUL(v, slope)));
        break;
    }
    default: LC_POSTOP_LOOP(v); break;
    }
}

#undef LC_POSTOP_LOOP
#undef LC_POSTOP_NAME
