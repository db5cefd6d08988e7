/* The channel LayerNorm's block (lc_layernorm_block_fn in
 * include/leanconv/ukernels.h) in an ISA's vectors: groups of up to
 * LC_LN_VECS vectors of pixels whose sums stay in registers while the loop
 * runs down the channels, so each channel costs LC_LN_VECS loads and adds
 * and no loop of its own.  The compiled portable loops
 * (channel_norm.c) ran a short pixel loop per channel and pass whose
 * set-up cost as much as its few vectors (96@32x32, AVX-512: 37 -> 27 us).
 * The same operations per pixel as those loops with their multiply-adds fused
 * (sums in channel order, one rounding for d * d + s and for t * scale +
 * bias, IEEE root and divides).  The including file (kernels/<isa>/
 * channel_norm.c) defines, over its vector LC_V and lane mask LC_K:
 *   LC_VL                  lanes a vector
 *   LC_KMASK(cnt)          lanes [0, cnt) set (cnt any ptrdiff_t: none or all past the ends)
 *   LC_KLOAD(p, k)         the lanes of k from p, 0 elsewhere (no fault past them)
 *   LC_KSTORE(p, v, k)     the lanes of k to p
 *   LC_VSET1, LC_VZERO, LC_VADD, LC_VSUB, LC_VMUL, LC_VDIV, LC_VFMA(a, b, c) = a b + c,
 *   LC_VSQRT, and LC_LN_LANES_NAME, the function's name. */
#define LC_LN_VECS 4

void LC_LN_LANES_NAME(float *y, const float *x, size_t channels, size_t hw, size_t np,
                      float eps, const float *scale, const float *bias) {
    const LC_V vcount = LC_VSET1((float)channels), veps = LC_VSET1(eps);
    const LC_V one = LC_VSET1(1.0f);
    for (size_t p0 = 0; p0 < np; p0 += LC_VL * LC_LN_VECS) {
        const size_t w = np - p0 < LC_VL * LC_LN_VECS ? np - p0 : LC_VL * LC_LN_VECS;
        LC_K k[LC_LN_VECS];
        LC_V s[LC_LN_VECS], m[LC_LN_VECS];
        for (int v = 0; v < LC_LN_VECS; v++) {
            k[v] = LC_KMASK((ptrdiff_t)w - (ptrdiff_t)(LC_VL * v));
            s[v] = LC_VZERO();
        }
        const float *xg = x + p0;
        for (size_t c = 0; c < channels; c++) {
            const float *xc = xg + c * hw;
            for (int v = 0; v < LC_LN_VECS; v++) {
                const LC_V a = LC_KLOAD(xc + LC_VL * v, k[v]);
                s[v] = LC_VADD(s[v], a);
            }
        }
        for (int v = 0; v < LC_LN_VECS; v++) {
            m[v] = LC_VDIV(s[v], vcount);
            s[v] = LC_VZERO();
        }
        for (size_t c = 0; c < channels; c++) {
            const float *xc = xg + c * hw;
            for (int v = 0; v < LC_LN_VECS; v++) {
                const LC_V d = LC_VSUB(LC_KLOAD(xc + LC_VL * v, k[v]), m[v]);
                s[v] = LC_VFMA(d, d, s[v]);
            }
        }
        for (int v = 0; v < LC_LN_VECS; v++)
            s[v] = LC_VDIV(one, LC_VSQRT(LC_VADD(LC_VDIV(s[v], vcount), veps)));
        float *yg = y + p0;
        for (size_t c = 0; c < channels; c++) {
            const float *xc = xg + c * hw;
            const LC_V sc = LC_VSET1(scale ? scale[c] : 1.0f);
            const LC_V sh = LC_VSET1(bias ? bias[c] : 0.0f);
            for (int v = 0; v < LC_LN_VECS; v++) {
                const LC_V t = LC_VMUL(LC_VSUB(LC_KLOAD(xc + LC_VL * v, k[v]), m[v]), s[v]);
                LC_KSTORE(yg + c * hw + LC_VL * v, LC_VFMA(t, sc, sh), k[v]);
            }
        }
    }
}
