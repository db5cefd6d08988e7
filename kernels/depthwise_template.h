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

#ifdef LC_DW3_PLANE_NAME
/* Depthwise 3x3 whole plane (lc_dw3x3_plane_fn), dilation 1, stride_w 1 or 2.
 * One call per channel: no per-row call, and the border columns go through
 * the same vector code with masked loads (lanes outside the image read as 0,
 * masked lanes touch no memory), so no scalar border pixels.  Interior rows
 * are done two output rows at a time: with stride_h 1 they share two of
 * their four input rows (stride_h 2: one of five), each loaded once.
 * Extra vocabulary (only this section uses it; an ISA that wants the plane
 * kernel defines LC_DW3_PLANE_NAME and these):
 *   LC_VMASK                   a lane mask type
 *   LC_VMASK_RANGE(lo, hi)     the mask of lanes j in [lo, hi) (clipped to [0, L))
 *   LC_VLOAD_M(p, m)           lanes j in m = p[j], others 0; touches only those floats
 *   LC_VEVEN(a, b)             even floats of the 2L floats a:b
 *   LC_VODD(a, b)              optional: odd floats of a:b
 *   LC_DW3_MTAPS_RAW(p, m, sw, t0, t1, t2)  optional: border taps from masked
 *                              raw loads (see LC_DW3_BLOCK_MASKS)
 *   LC_VSTORE_M(p, v, m)       optional: store the lanes in mask m
 *   LC_DW3_PLANE_LINKAGE       optional: storage class of the plane function
 *   LC_DW3_TAPS_S1(p, t0, t1, t2)  optional: p[0..L), p[1..L+1), p[2..L+2);
 *                              may read p[0 .. L+2)
 *   LC_DW3_TAPS_S2(p, t0, t1, t2)  optional: even floats of p, p+1, p+2;
 *                              may read p[0 .. 2L+2) */
#ifndef LC_DW3_TAPS_S1
#define LC_DW3_TAPS_S1(p, t0, t1, t2) \
    { t0 = LC_VLOAD(p); t1 = LC_VLOAD((p) + 1); t2 = LC_VLOAD((p) + 2); }
#endif
#ifndef LC_DW3_TAPS_S2
#define LC_DW3_TAPS_S2(p, t0, t1, t2) \
    { t0 = LC_VLOAD_S2(p); t1 = LC_VLOAD_S2((p) + 1); t2 = LC_VLOAD_S2((p) + 2); }
#endif

/* Masks of the column block whose first tap is at ix: m[k] (stride 1) or
 * m[2k], m[2k+1] (stride 2: the two loads of tap k) keep the lanes whose
 * float lies in [0, W).  They depend on the column block only, not the row. */
#ifdef LC_VODD
#define LC_DW3_ODD(l, h, p1, m2, m3) LC_VODD(l, h)
#else
#define LC_DW3_ODD(l, h, p1, m2, m3) LC_VEVEN(LC_VLOAD_M(p1, m2), LC_VLOAD_M((p1) + LC_VLANES, m3))
#endif
#ifndef LC_DW3_MTAPS_RAW
#define LC_DW3_BLOCK_MASKS(m, ix, W, sw)                                                        \
    {                                                                                           \
        const ptrdiff_t lo_ = -(ix), hi_ = (ptrdiff_t)(W) - (ix), Lp_ = (ptrdiff_t)LC_VLANES;  \
        for (ptrdiff_t k_ = 0; k_ < 3; k_++) {                                                  \
            if ((sw) == 1) {                                                                    \
                (m)[k_] = LC_VMASK_RANGE(lo_ - k_, hi_ - k_);                                   \
            } else {                                                                            \
                (m)[2 * k_] = LC_VMASK_RANGE(lo_ - k_, hi_ - k_);                               \
                (m)[2 * k_ + 1] = LC_VMASK_RANGE(lo_ - k_ - Lp_, hi_ - k_ - Lp_);               \
            }                                                                                   \
        }                                                                                       \
    }

/* Taps of one input row for outputs whose first tap is row[ix] (ix may be
 * negative or run past W: those lanes are masked off and read 0). */
#define LC_DW3_MTAPS(row, ix, m, sw, t0, t1, t2)                                               \
    {                                                                                           \
        const float *p_ = (row) + (ix);                                                         \
        if ((sw) == 1) {                                                                        \
            t0 = LC_VLOAD_M(p_, (m)[0]);                                                        \
            t1 = LC_VLOAD_M(p_ + 1, (m)[1]);                                                    \
            t2 = LC_VLOAD_M(p_ + 2, (m)[2]);                                                    \
        } else {                                                                                \
            const size_t Lu_ = LC_VLANES;                                                       \
            const LC_V l_ = LC_VLOAD_M(p_, (m)[0]), h_ = LC_VLOAD_M(p_ + Lu_, (m)[1]);          \
            t0 = LC_VEVEN(l_, h_);                                                              \
            t1 = LC_DW3_ODD(l_, h_, p_ + 1, (m)[2], (m)[3]);                                    \
            t2 = LC_VEVEN(LC_VLOAD_M(p_ + 2, (m)[4]), LC_VLOAD_M(p_ + 2 + Lu_, (m)[5]));        \
        }                                                                                       \
    }
#else
/* The ISA loads the raw floats of a column block, row[ix .. ix + sw*L + 2),
 * with m[0..2] masking its (up to) three loads at ix, ix + L, ix + 2L, and
 * makes the taps from them in registers (masked-off floats are 0, and a
 * shift or de-interleave keeps each float's position). */
#define LC_DW3_BLOCK_MASKS(m, ix, W, sw)                                                        \
    {                                                                                           \
        const ptrdiff_t lo_ = -(ix), hi_ = (ptrdiff_t)(W) - (ix), Lp_ = (ptrdiff_t)LC_VLANES;  \
        (m)[0] = LC_VMASK_RANGE(lo_, hi_);                                                      \
        (m)[1] = LC_VMASK_RANGE(lo_ - Lp_, hi_ - Lp_);                                          \
        (m)[2] = LC_VMASK_RANGE(lo_ - 2 * Lp_, hi_ - 2 * Lp_);                                  \
    }
#define LC_DW3_MTAPS(row, ix, m, sw, t0, t1, t2) LC_DW3_MTAPS_RAW((row) + (ix), m, sw, t0, t1, t2)
#endif

/* Planes up to this many column blocks get their border masks worked out
 * once per call (a few hundred bytes of stack); wider ones per block. */
#define LC_DW3_MAX_BLOCKS 16

#define LC_DW3_FMA3(acc, t0, t1, t2, wa, wb, wc) \
    acc = LC_VFMA(LC_VFMA(LC_VFMA(acc, wa, t0), wb, t1), wc, t2)

#ifndef LC_DW3_PLANE_LINKAGE
#define LC_DW3_PLANE_LINKAGE
#endif
LC_DW3_PLANE_LINKAGE void LC_DW3_PLANE_NAME(float *out, size_t OH, size_t OW, const float *in,
                                            size_t H, size_t W, size_t stride_h, size_t stride_w,
                                            size_t pad_t, size_t pad_l, const float *w, float bias,
                                            const lc_epilogue *ep) {
    const size_t L = LC_VLANES;
    const ptrdiff_t sw = (ptrdiff_t)stride_w, sh = (ptrdiff_t)stride_h, Hd = (ptrdiff_t)H;
    const LC_V vb = LC_VSET1(bias), vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    const LC_V vz = LC_VSET1(0.0f);
    const int clamp = ep->clamp;
    LC_V wv[9];
    for (int k = 0; k < 9; k++) wv[k] = LC_VSET1(w[k]);
    /* Output columns [c_lo, c_hi) start full vectors whose taps all lie in
     * the row: ix = ox*sw - pad_l >= 0 and the widest read, sw*L + 2 floats
     * from ix, ends inside the row. */
    size_t c_lo = (pad_l + (size_t)sw - 1) / (size_t)sw;
    size_t c_hi = W >= pad_l + (size_t)sw * L + 2 ? (W - pad_l - (size_t)sw * L - 2) / (size_t)sw + 1 : 0;
    if (c_hi > OW) c_hi = OW;
    if (c_lo > c_hi) c_lo = c_hi;
    const size_t nblocks = (OW + L - 1) / L;
    LC_VMASK bm[LC_DW3_MAX_BLOCKS][6];
    const int premask = nblocks <= LC_DW3_MAX_BLOCKS;
    if (premask)
        for (size_t b = 0; b < nblocks; b++)
            LC_DW3_BLOCK_MASKS(bm[b], (ptrdiff_t)(b * L) * sw - (ptrdiff_t)pad_l, W, sw)
#define LC_DW3_STORE(dst, v, cnt)                                               \
    {                                                                          \
        LC_V v_ = (v);                                                         \
        if (clamp) v_ = LC_VCLAMP(v_, vlo, vhi);                               \
        if ((cnt) == L) LC_VSTORE((dst), v_); else LC_VSTORE_PART((dst), v_, (cnt)); \
    }
/* Interior blocks: clamp always, to +-inf when the epilogue has none (NaN
 * passes), so the loop has no branch. */
#define LC_DW3_STORE_FULL(dst, v, cnt) LC_VSTORE((dst), LC_VCLAMP((v), vlo_i, vhi_i));
    union { unsigned u; float f; } inf_;
    inf_.u = 0x7f800000u;
    const LC_V vlo_i = clamp ? vlo : LC_VSET1(-inf_.f), vhi_i = clamp ? vhi : LC_VSET1(inf_.f);
    /* Interior column blocks (all full, every tap inside the row) are the
     * multiples of L in [b_lo, b_hi); the others take masked loads. */
    const size_t b_lo = (c_lo + L - 1) / L * L;
    size_t b_hi = b_lo;
    while (b_hi < c_hi && b_hi + L <= OW) b_hi += L;
    /* Planes of one (border) column block, 7 wide with 8 lanes: masks and
     * the store mask live in registers, no block loop. */
    const int one_block = nblocks == 1 && b_hi == b_lo;
    /* no interior block at all (14 wide with 8 lanes): every block masked,
     * rows paired from the top as for one block */
    const int no_interior = b_hi == b_lo && premask;
    const float *const in_end = in + H * W;
#ifdef LC_VSTORE_M
    const LC_VMASK mst = LC_VMASK_RANGE(0, (ptrdiff_t)(OW < L ? OW : L));
#define LC_DW3_STORE_ONE(dst, v, cnt) LC_VSTORE_M((dst), LC_VCLAMP((v), vlo_i, vhi_i), mst);
#else
#define LC_DW3_STORE_ONE(dst, v, cnt) LC_VSTORE_PART((dst), LC_VCLAMP((v), vlo_i, vhi_i), OW);
#endif
    size_t oy = 0;
    while (oy < OH) {
        const ptrdiff_t iy = (ptrdiff_t)oy * sh - (ptrdiff_t)pad_t;
        float *o0 = out + oy * OW;
        /* one-block planes take pairs at the top and bottom too: rows
         * outside the image give zero taps */
        if (sh <= 2 && oy + 1 < OH && (no_interior || (iy >= 0 && iy + sh + 2 < Hd))) {
            /* two output rows: A reads rows iy..iy+2, B rows iy+sh..iy+sh+2
             * (SH is a constant in each copy below) */
            const float *r0 = in + iy * (ptrdiff_t)W;
            float *o1 = o0 + OW;
#define LC_DW3_PAIR(TAPS, SH, STORE)                                                           \
    {                                                                                          \
        LC_V a0 = vb, a1 = vz, b0 = vb, b1 = vz, t0, t1, t2;                                   \
        TAPS(r0, t0, t1, t2)                                                                   \
        LC_DW3_FMA3(a0, t0, t1, t2, wv[0], wv[1], wv[2]);                                      \
        TAPS(r0 + W, t0, t1, t2)                                                               \
        LC_DW3_FMA3(a1, t0, t1, t2, wv[3], wv[4], wv[5]);                                      \
        if ((SH) == 1) LC_DW3_FMA3(b0, t0, t1, t2, wv[0], wv[1], wv[2]);                       \
        TAPS(r0 + 2 * W, t0, t1, t2)                                                           \
        LC_DW3_FMA3(a0, t0, t1, t2, wv[6], wv[7], wv[8]);                                      \
        if ((SH) == 1) {                                                                       \
            LC_DW3_FMA3(b1, t0, t1, t2, wv[3], wv[4], wv[5]);                                  \
            TAPS(r0 + 3 * W, t0, t1, t2)                                                       \
            LC_DW3_FMA3(b0, t0, t1, t2, wv[6], wv[7], wv[8]);                                  \
        } else {                                                                               \
            LC_DW3_FMA3(b0, t0, t1, t2, wv[0], wv[1], wv[2]);                                  \
            TAPS(r0 + 3 * W, t0, t1, t2)                                                       \
            LC_DW3_FMA3(b1, t0, t1, t2, wv[3], wv[4], wv[5]);                                  \
            TAPS(r0 + 4 * W, t0, t1, t2)                                                       \
            LC_DW3_FMA3(b0, t0, t1, t2, wv[6], wv[7], wv[8]);                                  \
        }                                                                                      \
        STORE(o0 + ox, LC_VADD(a0, a1), cnt)                                                   \
        STORE(o1 + ox, LC_VADD(b0, b1), cnt)                                                   \
    }
#define LC_T1(row, t0, t1, t2) LC_DW3_TAPS_S1((row) + ix, t0, t1, t2)
#define LC_T2(row, t0, t1, t2) LC_DW3_TAPS_S2((row) + ix, t0, t1, t2)
/* One pair of output rows with SW, SH constants: interior blocks, then the
 * border blocks with masked loads. */
#define LC_DW3_PAIR_ROW(TAPS, SW, SH)                                                          \
    if (one_block) {                                                                           \
        const size_t ox = 0;                                                                   \
        const ptrdiff_t ix = -(ptrdiff_t)pad_l;                                                \
        const LC_VMASK *m = bm[0];                                                             \
        LC_DW3_PAIR(LC_TMZ##SW, SH, LC_DW3_STORE_ONE)                                          \
    } else if (no_interior) {                                                                  \
        for (size_t ox = 0; ox < OW; ox += L) {                                                \
            const size_t cnt = OW - ox < L ? OW - ox : L;                                      \
            const ptrdiff_t ix = (ptrdiff_t)ox * (SW) - (ptrdiff_t)pad_l;                      \
            const LC_VMASK *m = bm[ox / L];                                                    \
            LC_DW3_PAIR(LC_TMZ##SW, SH, LC_DW3_STORE)                                          \
        }                                                                                      \
    } else {                                                                                   \
        for (size_t ox = b_lo; ox < b_hi; ox += L) {                                           \
            const ptrdiff_t ix = (ptrdiff_t)ox * (SW) - (ptrdiff_t)pad_l;                      \
            LC_DW3_PAIR(TAPS, SH, LC_DW3_STORE_FULL)                                           \
        }                                                                                      \
        for (size_t ox = 0; ox < OW; ox += L) {                                                \
            if (ox == b_lo && b_hi > b_lo) ox = b_hi;                                          \
            if (ox >= OW) break;                                                               \
            const size_t cnt = OW - ox < L ? OW - ox : L;                                      \
            const ptrdiff_t ix = (ptrdiff_t)ox * (SW) - (ptrdiff_t)pad_l;                      \
            LC_VMASK mloc[6];                                                                  \
            const LC_VMASK *m = premask ? bm[ox / L] : mloc;                                   \
            if (!premask) LC_DW3_BLOCK_MASKS(mloc, ix, W, SW)                                  \
            LC_DW3_PAIR(LC_TM##SW, SH, LC_DW3_STORE)                                           \
        }                                                                                      \
    }
#define LC_TM1(row, t0, t1, t2) LC_DW3_MTAPS(row, ix, m, 1, t0, t1, t2)
#define LC_TMZ(row, SW, t0, t1, t2)                                                            \
    if ((row) >= in && (row) < in_end) LC_DW3_MTAPS(row, ix, m, SW, t0, t1, t2)                \
    else { t0 = vz; t1 = vz; t2 = vz; }
#define LC_TMZ1(row, t0, t1, t2) LC_TMZ(row, 1, t0, t1, t2)
#define LC_TMZ2(row, t0, t1, t2) LC_TMZ(row, 2, t0, t1, t2)
#define LC_TM2(row, t0, t1, t2) LC_DW3_MTAPS(row, ix, m, 2, t0, t1, t2)
            if (sw == 1 && sh == 1) LC_DW3_PAIR_ROW(LC_T1, 1, 1)
            else if (sw == 1) LC_DW3_PAIR_ROW(LC_T1, 1, 2)
            else if (sh == 1) LC_DW3_PAIR_ROW(LC_T2, 2, 1)
            else LC_DW3_PAIR_ROW(LC_T2, 2, 2)
#undef LC_DW3_PAIR_ROW
#undef LC_T1
#undef LC_T2
#undef LC_TM1
#undef LC_TM2
#undef LC_TMZ
#undef LC_TMZ1
#undef LC_TMZ2
#undef LC_DW3_PAIR
            oy += 2;
            continue;
        }
        /* one output row, its taps ky in [ky0, ky1) inside the image */
        const ptrdiff_t ky0 = iy >= 0 ? 0 : (-iy < 3 ? -iy : 3);
        const ptrdiff_t ky1 = Hd - iy >= 3 ? 3 : (Hd - iy > 0 ? Hd - iy : 0);
        for (size_t ox = 0; ox < OW; ox += L) {
            const size_t cnt = OW - ox < L ? OW - ox : L;
            const ptrdiff_t ix = (ptrdiff_t)ox * sw - (ptrdiff_t)pad_l;
            const int inside = ox >= c_lo && ox < c_hi && cnt == L;
            LC_V a0 = vb, a1 = vz, t0, t1, t2;
            LC_VMASK mloc[6];
            const LC_VMASK *m = premask ? bm[ox / L] : mloc;
            if (!inside && !premask) LC_DW3_BLOCK_MASKS(mloc, ix, W, sw)
            for (ptrdiff_t ky = ky0; ky < ky1; ky++) {
                const float *row = in + (size_t)(iy + ky) * W;
                if (inside && sw == 1) LC_DW3_TAPS_S1(row + ix, t0, t1, t2)
                else if (inside) LC_DW3_TAPS_S2(row + ix, t0, t1, t2)
                else LC_DW3_MTAPS(row, ix, m, sw, t0, t1, t2)
                if (ky & 1) LC_DW3_FMA3(a1, t0, t1, t2, wv[3 * ky], wv[3 * ky + 1], wv[3 * ky + 2]);
                else LC_DW3_FMA3(a0, t0, t1, t2, wv[3 * ky], wv[3 * ky + 1], wv[3 * ky + 2]);
            }
            LC_DW3_STORE(o0 + ox, LC_VADD(a0, a1), cnt)
        }
        oy += 1;
    }
#undef LC_DW3_STORE
#undef LC_DW3_STORE_FULL
#undef LC_DW3_STORE_ONE
}
#undef LC_DW3_FMA3
#undef LC_DW3_MTAPS
#undef LC_DW3_BLOCK_MASKS
#undef LC_DW3_ODD
#undef LC_DW3_MAX_BLOCKS
#undef LC_DW3_TAPS_S1
#undef LC_DW3_TAPS_S2
#undef LC_DW3_PLANE_NAME
#undef LC_DW3_PLANE_LINKAGE
#endif
