/* The epilogue's activations on one float: the portable reference that the
 * scalar post-op and the direct algorithm use, and that the vectorised
 * post-ops are tested against (through the float64 reference in tests/).
 * The transcendental ones go through double libm and round once, so this
 * path is within one float ulp of the exact value; the piecewise-linear ones
 * compute in float exactly as torch does.  Forms are chosen so that +-inf
 * give the limits (no inf * 0) and NaN propagates. */
#ifndef LEANCONV_ACTIVATION_H
#define LEANCONV_ACTIVATION_H

#include <math.h>
#include "leanconv/conv.h"

/* sigmoid without overflow: exp of a non-positive argument only */
static inline double lc_sigmoid_d(double v) {
    if (v >= 0.0) return 1.0 / (1.0 + exp(-v));
    double e = exp(v); /* NaN lands here and stays NaN */
    return e / (1.0 + e);
}

/* v * s where s -> 0 as v -> -inf: 0 there, not -inf * 0 = NaN */
static inline float lc_times_gate(double v, double s) {
    return s == 0.0 ? 0.0f : (float)(v * s);
}

/* torch's hardsigmoid, relu6(v + 3) / 6, is alpha = 1/6, beta = 1/2: it is
 * computed as torch does, since 1/6 is not exact in float */
static inline int lc_hardsigmoid_is_torch(const lc_epilogue *ep) {
    return ep->alpha == (float)(1.0 / 6.0) && ep->beta == 0.5f;
}

static inline float lc_act1(float v, const lc_epilogue *ep) {
    switch (ep->act) {
    case LC_ACT_CLAMP: /* comparisons are false for NaN: it passes */
        if (v < ep->lo) v = ep->lo;
        if (v > ep->hi) v = ep->hi;
        return v;
    case LC_ACT_SIGMOID: return (float)lc_sigmoid_d(v);
    case LC_ACT_TANH: return (float)tanh((double)v);
    case LC_ACT_SILU: return lc_times_gate(v, lc_sigmoid_d(v));
    case LC_ACT_GELU: /* Phi(v) = erfc(-v / sqrt 2) / 2: no cancellation for v < 0 */
        return lc_times_gate(v, 0.5 * erfc(-(double)v * 0.70710678118654752440));
    case LC_ACT_GELU_TANH: {
        /* (1 + tanh(u)) / 2 = sigmoid(2u): the same value without the
         * cancellation of 1 + tanh(u) for v << 0 */
        const double d = v, u = 0.79788456080286535588 * (d + 0.044715 * d * d * d);
        return lc_times_gate(d, lc_sigmoid_d(2.0 * u));
    }
    case LC_ACT_HARDSWISH: /* torch: v * relu6(v + 3) / 6, written so -inf gives 0 */
        if (v <= -3.0f) return 0.0f;
        if (v >= 3.0f) return v;
        return v * (v + 3.0f) / 6.0f;
    case LC_ACT_HARDSIGMOID: {
        float t = lc_hardsigmoid_is_torch(ep) ? (v + 3.0f) / 6.0f : ep->alpha * v + ep->beta;
        if (t < 0.0f) t = 0.0f;
        if (t > 1.0f) t = 1.0f;
        return t;
    }
    case LC_ACT_LEAKY_RELU: return v > 0.0f ? v : v * ep->alpha;
    default: return v;
    }
}

#endif
