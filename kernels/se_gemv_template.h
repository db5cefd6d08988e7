/* Matrix-vector product over 16-row panels, for the squeeze-and-excitation
 * block's two small fully connected layers (kernels/se_block.c).  Included by
 * each ISA's depthwise.c after it defines LC_V, LC_VLANES (dividing 16),
 * LC_VLOAD, LC_VSTORE, LC_VSET1 and LC_VFMA(acc, a, b); LC_GEMV_NAME names the
 * function (lc_gemv16_fn):
 *
 *   y[i] = sum over j < k of W[i][j] x[j],  i < rows <= 16,
 *
 * with the panel wp[j][16] = W[0..16)[j] (rows past `rows` are zero padding).
 * The weights stream once, front to back: a layer's weights are read once per
 * run and are bigger than L1, so the loop is built for bandwidth: four
 * independent partial sums (j mod 4) keep the FMA latency off the path, added
 * at the end as (s0 + s1) + (s2 + s3), a fixed order. */
void LC_GEMV_NAME(float *y, const float *wp, const float *x, size_t rows, size_t k) {
#define LC_GV_NV (16 / LC_VLANES)
    LC_V s[4][LC_GV_NV];
    for (int q = 0; q < 4; q++)
        for (int v = 0; v < LC_GV_NV; v++) s[q][v] = LC_VSET1(0.0f);
    size_t j = 0;
    for (; j + 4 <= k; j += 4) {
        for (int q = 0; q < 4; q++) {
            const LC_V xj = LC_VSET1(x[j + (size_t)q]);
            const float *w = wp + (j + (size_t)q) * 16;
            for (int v = 0; v < LC_GV_NV; v++)
                s[q][v] = LC_VFMA(s[q][v], LC_VLOAD(w + v * LC_VLANES), xj);
        }
    }
    for (int q = 0; j < k; j++, q++) {
        const LC_V xj = LC_VSET1(x[j]);
        for (int v = 0; v < LC_GV_NV; v++)
            s[q][v] = LC_VFMA(s[q][v], LC_VLOAD(wp + j * 16 + v * LC_VLANES), xj);
    }
    const LC_V one = LC_VSET1(1.0f);
    float out[16];
    for (int v = 0; v < LC_GV_NV; v++) {
        const LC_V a = LC_VFMA(s[0][v], s[1][v], one), b = LC_VFMA(s[2][v], s[3][v], one);
        LC_VSTORE(out + v * LC_VLANES, LC_VFMA(a, b, one));
    }
    for (size_t i = 0; i < rows; i++) y[i] = out[i];
#undef LC_GV_NV
}
#undef LC_GEMV_NAME
