/* LayerNormalization of one row (lc_ln_row_fn in include/leanconv/ukernels.h),
 * the one source of its arithmetic: kernels/instance_norm.c compiles it
 * portably (the fallback, and the rows of ISAs without an entry) and
 * kernels/<isa>/layer_norm_row.c under the ISA's target, where the
 * compiler vectorises the same loops 8 doubles or 16 floats wide.  The
 * includer switches floating-point contraction off (an FMA would round
 * once where the portable build rounds twice), so every build computes the
 * same bits: 8 interleaved double partial sums (lane j takes elements j, j +
 * 8, ...; the tail continues from lane 0) added in lane order, the mean
 * split into float m_hi + m_lo, then
 *   y[p] = (((x[p] - m_hi) - m_lo) * inv) * scale[p] (+ bias[p])
 * in float, inv = 1 / sqrt(variance + eps) rounded to float.  Portably (SSE2:
 * two doubles a vector) Swin-T's 3136 rows of 96 took 0.37 ms, twice
 * onnxruntime's.
 *
 * The includer defines LC_LN_ROW_NAME. */
#define LC_LN_ROW_LANES 8

static inline double LC_CAT(LC_LN_ROW_NAME, _sum)(const float *x, int64_t n, double centre,
                                                 int squares) {
    double acc[LC_LN_ROW_LANES] = {0};
    int64_t p = 0;
    for (; p + LC_LN_ROW_LANES <= n; p += LC_LN_ROW_LANES)
        for (int j = 0; j < LC_LN_ROW_LANES; j++) {
            const double d = (double)x[p + j] - centre;
            acc[j] += squares ? d * d : d;
        }
    for (int j = 0; p < n; p++, j++) {
        const double d = (double)x[p] - centre;
        acc[j] += squares ? d * d : d;
    }
    double s = 0.0;
    for (int j = 0; j < LC_LN_ROW_LANES; j++) s += acc[j];
    return s;
}

void LC_LN_ROW_NAME(float *y, const float *x, size_t width, float eps, const float *scale,
                    const float *bias) {
    const int64_t n = (int64_t)width;
    const double mean = LC_CAT(LC_LN_ROW_NAME, _sum)(x, n, 0.0, 0) / (double)n;
    const double var = LC_CAT(LC_LN_ROW_NAME, _sum)(x, n, mean, 1) / (double)n;
    const float m_hi = (float)mean, m_lo = (float)(mean - (double)m_hi);
    const float inv = (float)(1.0 / sqrt(var + (double)eps));
    if (bias)
        for (int64_t p = 0; p < n; p++) y[p] = ((x[p] - m_hi) - m_lo) * inv * scale[p] + bias[p];
    else
        for (int64_t p = 0; p < n; p++) y[p] = ((x[p] - m_hi) - m_lo) * inv * scale[p];
}
#undef LC_LN_ROW_LANES
