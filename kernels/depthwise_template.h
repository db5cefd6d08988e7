/* Depthwise row kernel (see lc_dw_row_fn in include/leanconv/ukernels.h),
 * written once over an abstract vector type and vectorised over output x.
 * Included by kernels/<isa>/depthwise.c after it defines:
 *   LC_V, LC_VLANES                 vector type and its float count
 *   LC_VLOAD(p)                     p[0 .. L)
 *   LC_VLOAD_S2(p)                  p[0], p[2], ... p[2L-2]  (reads p[0 .. 2L-1))
 *   LC_VLOAD_PART(p, cnt)           p[0 .. cnt), other lanes 0, reads nothing past
 *   LC_VLOAD_S2_PART(p, cnt)        p[0], p[2], .. p[2cnt-2], reads p[0 .. 2cnt-1) only
 *   LC_VSTORE(p, v), LC_VSTORE_PART(p, v, cnt)
 *   LC_VSET1(f), LC_VFMA(acc, a, b) = acc + a*b, LC_VCLAMP(v, lo, hi) (NaN passes)
 *   LC_DW_NAME                      the function's name
 * Strides 1 and 2 are vectorised; larger strides take a plain loop (rare in
 * networks).  Four output vectors share each weight broadcast. */

void LC_DW_NAME(float *out, size_t n, const float *in, size_t rs, size_t rows,
                       const float *w, size_t kW, size_t stride, size_t dil, float bias,
                       const lc_epilogue *ep) {
    const size_t L = LC_VLANES;
    if (stride > 2) {
        for (size_t ox = 0; ox < n; ox++) {
            float acc = bias;
            for (size_t r = 0; r < rows; r++)
                for (size_t j = 0; j < kW; j++)
                    acc += w[r * kW + j] * in[r * rs + ox * stride + j * dil];
            if (ep->clamp) acc = acc < ep->lo ? ep->lo : acc > ep->hi ? ep->hi : acc;
            out[ox] = acc;
        }
        return;
    }
    const LC_V vb = LC_VSET1(bias), vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    const int clamp = ep->clamp;
    /* Full vectors read in[ox*stride .. (ox+L-1)*stride + stride-1] per tap;
     * with stride 2 the last one reads a float past the last tap, so it must
     * end before n. */
    const size_t safe = stride == 1 ? n : (n > 0 ? n - 1 : 0);
    size_t ox = 0;
    for (; ox + 4 * L <= safe; ox += 4 * L) {
        LC_V a0 = vb, a1 = vb, a2 = vb, a3 = vb;
        for (size_t r = 0; r < rows; r++) {
            const float *src = in + r * rs + ox * stride;
            for (size_t j = 0; j < kW; j++, src += dil) {
                const LC_V wv = LC_VSET1(w[r * kW + j]);
                if (stride == 1) {
                    a0 = LC_VFMA(a0, wv, LC_VLOAD(src));
                    a1 = LC_VFMA(a1, wv, LC_VLOAD(src + L));
                    a2 = LC_VFMA(a2, wv, LC_VLOAD(src + 2 * L));
                    a3 = LC_VFMA(a3, wv, LC_VLOAD(src + 3 * L));
                } else {
                    a0 = LC_VFMA(a0, wv, LC_VLOAD_S2(src));
                    a1 = LC_VFMA(a1, wv, LC_VLOAD_S2(src + 2 * L));
                    a2 = LC_VFMA(a2, wv, LC_VLOAD_S2(src + 4 * L));
                    a3 = LC_VFMA(a3, wv, LC_VLOAD_S2(src + 6 * L));
                }
            }
        }
        if (clamp) {
            a0 = LC_VCLAMP(a0, vlo, vhi);
            a1 = LC_VCLAMP(a1, vlo, vhi);
            a2 = LC_VCLAMP(a2, vlo, vhi);
            a3 = LC_VCLAMP(a3, vlo, vhi);
        }
        LC_VSTORE(out + ox, a0);
        LC_VSTORE(out + ox + L, a1);
        LC_VSTORE(out + ox + 2 * L, a2);
        LC_VSTORE(out + ox + 3 * L, a3);
    }
    for (; ox + L <= safe; ox += L) {
        LC_V a0 = vb;
        for (size_t r = 0; r < rows; r++) {
            const float *src = in + r * rs + ox * stride;
            for (size_t j = 0; j < kW; j++, src += dil) {
                const LC_V wv = LC_VSET1(w[r * kW + j]);
                a0 = LC_VFMA(a0, wv, stride == 1 ? LC_VLOAD(src) : LC_VLOAD_S2(src));
            }
        }
        if (clamp) a0 = LC_VCLAMP(a0, vlo, vhi);
        LC_VSTORE(out + ox, a0);
    }
    if (ox < n) {
        const size_t cnt = n - ox; /* 1 .. L */
        LC_V a0 = vb;
        for (size_t r = 0; r < rows; r++) {
            const float *src = in + r * rs + ox * stride;
            for (size_t j = 0; j < kW; j++, src += dil) {
                const LC_V wv = LC_VSET1(w[r * kW + j]);
                a0 = LC_VFMA(a0, wv, stride == 1 ? LC_VLOAD_PART(src, cnt) : LC_VLOAD_S2_PART(src, cnt));
            }
        }
        if (clamp) a0 = LC_VCLAMP(a0, vlo, vhi);
        LC_VSTORE_PART(out + ox, a0, cnt);
    }
}

#undef LC_DW_NAME
