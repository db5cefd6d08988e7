/* One Winograd F(m, 3) input and output transform over NR lanes, written once
 * for every ISA.  Included (through winograd_instances.h) by each
 * kernels/<isa>/winograd.c after it defines its vector vocabulary:
 *   LC_V             vector type, LC_VLANES floats
 *   LC_VLOAD(p) LC_VSTORE(p, v) LC_VSET1(f)
 *   LC_VADD(a, b) LC_VSUB(a, b) LC_VMULC(a, f) = a*f   LC_VFMAC(acc, a, f) = acc + a*f
 *   LC_VCLAMP(v, lo, hi)  (NaN must pass through)
 *   LC_NR            lanes per call (the ISA's GEMM NR)
 * and the parameters of this instance:
 *   LC_WM LC_WALPHA LC_WIN_1D LC_WOUT_1D LC_WIN_NAME LC_WOUT_NAME LC_WIN_STRIP_NAME
 * Optional vocabulary:
 *   LC_VGATHER(p, s)  LC_VLANES floats p[0], p[s], p[2s], ... as a vector
 *                     (s = LC_WM), reading nothing past p[s*(LC_VLANES-1)]
 *   LC_VSEL_T LC_VSEL_BITS(bits)  a lane selector from the low LC_VLANES bits
 *   LC_VSELECT(sel, a, b)         b in the selected lanes, a elsewhere
 * An ISA that defines them gets the strip input transform (wino_input_strip)
 * in its table; without them the driver's lanes-innermost gather is used.
 *   LC_VNANBITS(v)    bit l set where lane l of v is NaN (else a store and a loop)
 *   LC_VSTORE_I2(p, a, b) LC_VSTORE_I4(p, a, b, c, d) LC_VSTORE_I6(p, a .. f)
 *                     the vectors interleaved: p[k*l + j] = lane l of the j-th
 *                     (k = 2, 4 or 6), as the output rows are laid out (else a
 *                     store of each and a loop)
 *   LC_WDIRECT_PREP_T LC_WDIRECT_PREPARE(p, seg, m, W)
 *   LC_WDIRECT_GROUP(m) LC_WDIRECT_ROWS(cols, plane, preps, n, k0, G, m, H, W)
 *                     a segment's loads prepared, and the alpha window columns
 *                     (cols[g][j], 8 wide) of window rows k0 .. k0 + G - 1 of
 *                     one vector built from its n prepared segments, G rows a
 *                     call: the direct input transform (wino_input_direct) */

#ifndef LC_WINO_TEMPLATE_ONCE
#define LC_WINO_TEMPLATE_ONCE
#ifdef LC_VGATHER
#define LC_WINO_HAVE_STRIP 1
#else
#define LC_WINO_HAVE_STRIP 0
static inline LC_V lc_wino_vgather(const float *p, size_t s) {
    float t[LC_VLANES];
    for (size_t l = 0; l < LC_VLANES; l++) t[l] = p[l * s];
    return LC_VLOAD(t);
}
#define LC_VGATHER(p, s) lc_wino_vgather((p), (s))
#endif
#ifndef LC_VSEL_T
#define LC_VSEL_T uint64_t
#define LC_VSEL_BITS(bits) ((uint64_t)(bits))
static inline LC_V lc_wino_vselect(uint64_t sel, LC_V a, LC_V b) {
    float ta[LC_VLANES], tb[LC_VLANES];
    LC_VSTORE(ta, a);
    LC_VSTORE(tb, b);
    for (size_t l = 0; l < LC_VLANES; l++)
        if (sel >> l & 1u) ta[l] = tb[l];
    return LC_VLOAD(ta);
}
#define LC_VSELECT(sel, a, b) lc_wino_vselect((sel), (a), (b))
#endif
/* r[0..k) interleaved into p[0 .. k * LC_VLANES): p[k*l + j] = lane l of r[j] */
static inline void lc_wino_vstore_interleaved(float *p, const LC_V *r, int k) {
#ifdef LC_VSTORE_I6
    if (k == 6) {
        LC_VSTORE_I6(p, r[0], r[1], r[2], r[3], r[4], r[5]);
        return;
    }
#endif
#ifdef LC_VSTORE_I4
    if (k == 4) {
        LC_VSTORE_I4(p, r[0], r[1], r[2], r[3]);
        return;
    }
#endif
#ifdef LC_VSTORE_I2
    if (k == 2) {
        LC_VSTORE_I2(p, r[0], r[1]);
        return;
    }
#endif
    float t[8][LC_VLANES];
    for (int j = 0; j < k; j++) LC_VSTORE(t[j], r[j]);
    for (size_t l = 0; l < LC_VLANES; l++)
        for (int j = 0; j < k; j++) p[l * (size_t)k + (size_t)j] = t[j][l];
}
#ifndef LC_VNANBITS
static inline uint64_t lc_wino_vnanbits(LC_V v) {
    float t[LC_VLANES];
    uint64_t bits = 0;
    LC_VSTORE(t, v);
    for (size_t l = 0; l < LC_VLANES; l++) bits |= (uint64_t)(t[l] != t[l]) << l;
    return bits;
}
#define LC_VNANBITS(v) lc_wino_vnanbits(v)
#endif
/* for (lane = 0; lane < lanes; lane += LC_VLANES) { body }, with a copy for
 * the full panel whose constant trip count lets the compiler unroll it and
 * fold the lane offsets (the common case: every panel but a partial last). */
#define LC_WINO_FOR_LANES(lanes, ...)                                              \
    do {                                                                           \
        if ((lanes) >= LC_NR) {                                                    \
            for (size_t lane = 0; lane < LC_NR; lane += LC_VLANES) { __VA_ARGS__ } \
        } else {                                                                   \
            for (size_t lane = 0; lane < (lanes); lane += LC_VLANES) { __VA_ARGS__ } \
        }                                                                          \
    } while (0)
/* V = B^T d B of one vector of lanes at `lane`: columns first (combining
 * window rows), then rows; X(k, j) is window row k, column j as a vector. */
#define LC_WINO_INPUT_2D(X, v, xi_stride, lane)                                     \
    do {                                                                           \
        LC_V t_[LC_WALPHA][LC_WALPHA];                                             \
        for (int j = 0; j < LC_WALPHA; j++) {                                      \
            LC_V x_[LC_WALPHA], o_[LC_WALPHA];                                     \
            for (int k = 0; k < LC_WALPHA; k++) x_[k] = X(k, j);                   \
            LC_WIN_1D(o_, x_);                                                     \
            for (int i = 0; i < LC_WALPHA; i++) t_[i][j] = o_[i];                  \
        }                                                                          \
        for (int i = 0; i < LC_WALPHA; i++) {                                      \
            LC_V o_[LC_WALPHA];                                                    \
            LC_WIN_1D(o_, t_[i]);                                                  \
            for (int j = 0; j < LC_WALPHA; j++)                                    \
                LC_VSTORE((v) + (size_t)(i * LC_WALPHA + j) * (xi_stride) + (lane), o_[j]); \
        }                                                                          \
    } while (0)
#endif

/* V = B^T d B: columns first (combining rows), then rows; only the vectors
 * holding lanes [0, lanes). */
static void LC_WIN_NAME(const float *d, float *v, size_t xi_stride, size_t lanes) {
#define LC_WIN_X(k, j) LC_VLOAD(d + (size_t)((k) * LC_WALPHA + (j)) * LC_NR + lane)
    LC_WINO_FOR_LANES(lanes, LC_WINO_INPUT_2D(LC_WIN_X, v, xi_stride, lane););
#undef LC_WIN_X
}

/* The same V = B^T d B (same operation order, so bitwise the same result)
 * from the phase strip (see lc_wino_input_strip_fn): window column j is a
 * stride-m gather from column j of the row (for j >= m the next tile's
 * columns), with the run ends' own columns m, m+1 blended in: every vector is
 * full whatever the runs of the panel. */
static void LC_WIN_STRIP_NAME(const float *s, size_t lds, uint64_t ends, float *v,
                              size_t xi_stride, size_t lanes) {
    /* run ends: their own columns m, m+1 */
#define LC_WIN_X(k, j)                                                                         \
    ((j) < LC_WM ? LC_VGATHER(main + (size_t)(k) * lds + (j), LC_WM)                          \
                 : LC_VSELECT(sel, LC_VGATHER(main + (size_t)(k) * lds + (j), LC_WM),         \
                              LC_VLOAD(halo + (size_t)(k) * lds + (size_t)((j) - LC_WM) * LC_NR)))
    LC_WINO_FOR_LANES(lanes,
        const float *main = s + lane * LC_WM, *halo = s + LC_NR * LC_WM + lane;
        const LC_VSEL_T sel = LC_VSEL_BITS(ends >> lane);
        LC_WINO_INPUT_2D(LC_WIN_X, v, xi_stride, lane);
    );
#undef LC_WIN_X
}

#ifdef LC_WDIRECT_PREP_T
/* The same V = B^T d B (same operation order and values, so bitwise the
 * same result) straight from the channel planes (lc_wino_input_direct_fn):
 * the ISA builds the alpha window columns of one window row of a vector in
 * registers from its segments (LC_WDIRECT_ROW), with no strip copy.  The
 * segments' loads are prepared once (LC_WDIRECT_PREPARE) for all channels. */
static void LC_WIN_DIRECT_NAME(const float *x, size_t plane, size_t nchan, int64_t H, int64_t W,
                               const lc_wino_seg *segs, const int32_t *vseg, float *v,
                               size_t c_stride, size_t xi_stride, size_t lanes) {
    LC_WDIRECT_PREP_T prep[LC_NR];
    for (int32_t s = 0; s < vseg[(lanes + LC_VLANES - 1) / LC_VLANES]; s++)
        LC_WDIRECT_PREPARE(&prep[s], &segs[s], LC_WM, W);
#define LC_WIN_X(k, j) xr[k][j]
    for (size_t c = 0; c < nchan; c++, x += plane, v += c_stride) {
        LC_WINO_FOR_LANES(lanes,
            const int32_t s0 = vseg[lane / LC_VLANES], ns = vseg[lane / LC_VLANES + 1] - s0;
            LC_V xr[LC_WALPHA][8];
            for (int k = 0; k < LC_WALPHA; k += LC_WDIRECT_GROUP(LC_WM))
                LC_WDIRECT_ROWS(xr + k, x, prep + s0, ns, k, LC_WDIRECT_GROUP(LC_WM), LC_WM, H, W);
            LC_WINO_INPUT_2D(LC_WIN_X, v, xi_stride, lane);
        );
    }
#undef LC_WIN_X
}
#endif

/* Y = A^T Mo A, then bias and the epilogue, over the vectors holding lanes
 * [0, lanes); in the last one the lanes >= `lanes` are read as zero.  Each
 * output row is stored interleaved, as image rows hold it (see
 * lc_wino_output_fn), so the driver's scatter is a plain copy.
 * Returns the lanes whose A^T Mo A
 * holds an Inf or NaN (before bias and epilogue, which could hide it): one
 * FMA per output vector, x * 0 + acc, which stays 0 for finite x, into one
 * accumulator per output column (m short chains, not one of m * m). */
static uint64_t LC_WOUT_NAME(const float *mo, size_t xi_stride, float *out, float bias,
                             const lc_epilogue *ep, size_t lanes) {
    const LC_V vb = LC_VSET1(bias), vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    uint64_t nonfinite = 0;
    LC_WINO_FOR_LANES(lanes,
        const size_t live = lanes - lane; /* >= 1; a partial vector when < LC_VLANES */
        const LC_VSEL_T keep = LC_VSEL_BITS(live < LC_VLANES ? ((uint64_t)1 << live) - 1u : ~(uint64_t)0);
        LC_V check[LC_WM];
        for (int j = 0; j < LC_WM; j++) check[j] = LC_VSET1(0.0f);
        LC_V s[LC_WM][LC_WALPHA];
        for (int j = 0; j < LC_WALPHA; j++) {
            LC_V x[LC_WALPHA], o[LC_WM];
            for (int k = 0; k < LC_WALPHA; k++) {
                x[k] = LC_VLOAD(mo + (size_t)(k * LC_WALPHA + j) * xi_stride + lane);
                if (live < LC_VLANES) x[k] = LC_VSELECT(keep, LC_VSET1(0.0f), x[k]);
            }
            LC_WOUT_1D(o, x);
            for (int i = 0; i < LC_WM; i++) s[i][j] = o[i];
        }
        for (int i = 0; i < LC_WM; i++) {
            LC_V o[LC_WM], r[LC_WM];
            LC_WOUT_1D(o, s[i]);
            for (int j = 0; j < LC_WM; j++) {
                check[j] = LC_VFMAC(check[j], o[j], 0.0f);
                r[j] = LC_VADD(o[j], vb);
                if (ep->clamp) r[j] = LC_VCLAMP(r[j], vlo, vhi);
            }
            lc_wino_vstore_interleaved(out + (size_t)(i * LC_WM) * LC_NR + lane * LC_WM, r, LC_WM);
        }
        for (int j = 1; j < LC_WM; j++) check[0] = LC_VADD(check[0], check[j]);
        nonfinite |= LC_VNANBITS(check[0]) << lane;
    );
    return nonfinite;
}

#undef LC_WM
#undef LC_WALPHA
#undef LC_WIN_1D
#undef LC_WOUT_1D
#undef LC_WIN_NAME
#undef LC_WOUT_NAME
#undef LC_WIN_STRIP_NAME
#undef LC_WIN_DIRECT_NAME
