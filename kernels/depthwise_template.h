/* Depthwise row kernel (see lc_dw_row_fn in include/leanconv/ukernels.h),
 * written once over an abstract vector type and vectorised over output x.
 * Included by kernels/<isa>/depthwise.c after it defines:
 *   LC_V, LC_VLANES                 vector type and its float count
 *   LC_VLOAD(p)                     p[0 .. L)
 *   LC_VLOAD_S2(p)                  p[0], p[2], ... p[2L-2]  (reads p[0 .. 2L-1))
 *   LC_VLOAD_PART(p, cnt)           p[0 .. cnt), other lanes 0, reads nothing past
 *   LC_VLOAD_S2_PART(p, cnt)        p[0], p[2], .. p[2cnt-2], reads p[0 .. 2cnt-1) only
 *   LC_VSTORE(p, v), LC_VSTORE_PART(p, v, cnt)
 *   LC_VSET1(f), LC_VFMA(acc, a, b) = acc + a*b, LC_VMUL(a, b), LC_VADD(a, b)
 *   LC_VCLAMP(v, lo, hi) (NaN passes)
 *   LC_DW_NAME                      the function's name
 * Strides 1 and 2 are vectorised; larger strides take a plain loop (rare in
 * networks).  3x3 rows take a path with the weights in registers; other
 * shapes share each weight broadcast between four output vectors. */

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
    if (rows == 3 && kW == 3) {
        /* The common 3x3 case: nine weights held in registers, two output
         * vectors per step, each summed in two halves so the FMA chains are
         * 5 deep instead of 9. */
        const LC_V w0 = LC_VSET1(w[0]), w1 = LC_VSET1(w[1]), w2 = LC_VSET1(w[2]);
        const LC_V w3 = LC_VSET1(w[3]), w4 = LC_VSET1(w[4]), w5 = LC_VSET1(w[5]);
        const LC_V w6 = LC_VSET1(w[6]), w7 = LC_VSET1(w[7]), w8 = LC_VSET1(w[8]);
        const float *r0 = in, *r1 = in + rs, *r2 = in + 2 * rs;
#define LC_DW3(LOAD, o, dst)                                                                   \
    {                                                                                           \
        LC_V s0 = LC_VFMA(vb, w0, LOAD(r0 + (o)));                                              \
        LC_V s1 = LC_VMUL(w4, LOAD(r1 + (o) + dil));                                            \
        s0 = LC_VFMA(s0, w1, LOAD(r0 + (o) + dil));                                             \
        s1 = LC_VFMA(s1, w5, LOAD(r1 + (o) + 2 * dil));                                         \
        s0 = LC_VFMA(s0, w2, LOAD(r0 + (o) + 2 * dil));                                         \
        s1 = LC_VFMA(s1, w6, LOAD(r2 + (o)));                                                   \
        s0 = LC_VFMA(s0, w3, LOAD(r1 + (o)));                                                   \
        s1 = LC_VFMA(s1, w7, LOAD(r2 + (o) + dil));                                             \
        s1 = LC_VFMA(s1, w8, LOAD(r2 + (o) + 2 * dil));                                         \
        dst = LC_VADD(s0, s1);                                                                  \
    }
#define LC_DW3_ROW(LOAD, S)                                                                    \
    for (; ox + 2 * L <= safe; ox += 2 * L) {                                                   \
        LC_V y0, y1;                                                                            \
        LC_DW3(LOAD, ox * S, y0)                                                                \
        LC_DW3(LOAD, (ox + L) * S, y1)                                                          \
        if (clamp) {                                                                            \
            y0 = LC_VCLAMP(y0, vlo, vhi);                                                       \
            y1 = LC_VCLAMP(y1, vlo, vhi);                                                       \
        }                                                                                       \
        LC_VSTORE(out + ox, y0);                                                                \
        LC_VSTORE(out + ox + L, y1);                                                            \
    }                                                                                           \
    for (; ox + L <= safe; ox += L) {                                                           \
        LC_V y0;                                                                                \
        LC_DW3(LOAD, ox * S, y0)                                                                \
        if (clamp) y0 = LC_VCLAMP(y0, vlo, vhi);                                                \
        LC_VSTORE(out + ox, y0);                                                                \
    }
        if (stride == 1) {
#ifdef LC_DW3_S1_FAST
            /* ISA-specific: shifted taps from aligned loads (see the ISA file) */
            if (dil == 1) ox = LC_DW3_S1_FAST(out, safe, in, rs, w, vb, clamp, vlo, vhi);
#endif
            LC_DW3_ROW(LC_VLOAD, 1)
        } else {
            LC_DW3_ROW(LC_VLOAD_S2, 2)
        }
        if (ox < n) {
            /* the tail (< L outputs, or the last vector of stride 2), with
             * the same short FMA chains: a 9-deep chain here would cost as
             * much as the rest of the row */
            const size_t cnt = n - ox;
            LC_V y0;
#define LC_LOADP1(p) LC_VLOAD_PART((p), cnt)
#define LC_LOADP2(p) LC_VLOAD_S2_PART((p), cnt)
            if (stride == 1) {
                LC_DW3(LC_LOADP1, ox, y0)
            } else {
                LC_DW3(LC_LOADP2, ox * 2, y0)
            }
#undef LC_LOADP1
#undef LC_LOADP2
            if (clamp) y0 = LC_VCLAMP(y0, vlo, vhi);
            LC_VSTORE_PART(out + ox, y0, cnt);
        }
        return;
#undef LC_DW3_ROW
#undef LC_DW3
    }
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
