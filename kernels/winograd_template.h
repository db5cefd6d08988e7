/* One Winograd F(m, 3) input and output transform over NR lanes, written once
 * for every ISA.  Included (through winograd_instances.h) by each
 * kernels/<isa>/winograd.c after it defines its vector vocabulary:
 *   LC_V             vector type, LC_VLANES floats
 *   LC_VLOAD(p) LC_VSTORE(p, v) LC_VSET1(f)
 *   LC_VADD(a, b) LC_VSUB(a, b) LC_VMULC(a, f) = a*f   LC_VFMAC(acc, a, f) = acc + a*f
 *   LC_VCLAMP(v, lo, hi)  (NaN must pass through)
 *   LC_NR            lanes per call (the ISA's GEMM NR)
 * and the parameters of this instance:
 *   LC_WM LC_WALPHA LC_WIN_1D LC_WOUT_1D LC_WIN_NAME LC_WOUT_NAME LC_WIN_RUN_NAME
 * Optional vocabulary (defaults below use only the above):
 *   LC_VGATHER(p, s)  LC_VLANES floats p[0], p[s], p[2s], ... as a vector
 *   LC_VPART_T, LC_VPART_INIT(s, valid)  what a partial vector needs to know
 *                     (the ISA may precompute masks), made once per block
 *   LC_VGATHER_PART(p, s, pt)  the first `valid` of them, zeros after,
 *                     reading nothing past p[s*(valid-1)]
 *   LC_VSTORE_PART(p, v, pt)   the first `valid` lanes of v
 * An ISA that defines LC_VGATHER gets the fused gather+input transform in its
 * table (wino_input_run); without it the driver's gather path is used. */

#ifndef LC_WINO_TEMPLATE_ONCE
#define LC_WINO_TEMPLATE_ONCE
#if defined(__GNUC__) || defined(__clang__)
#define LC_WINO_INLINE static inline __attribute__((always_inline))
#else
#define LC_WINO_INLINE static inline
#endif
#ifdef LC_VGATHER
#define LC_WINO_HAVE_RUN 1
#else
#define LC_WINO_HAVE_RUN 0
static inline LC_V lc_wino_vgather(const float *p, size_t s) {
    float t[LC_VLANES];
    for (size_t l = 0; l < LC_VLANES; l++) t[l] = p[l * s];
    return LC_VLOAD(t);
}
#define LC_VGATHER(p, s) lc_wino_vgather((p), (s))
#endif
#ifndef LC_VPART_T
#define LC_VPART_T size_t
#define LC_VPART_INIT(s, valid) ((size_t)(valid))
#define LC_VGATHER_PART(p, s, valid) lc_wino_vgather_part((p), (s), (valid))
#define LC_VSTORE_PART(p, v, valid) lc_wino_vstore_part((p), (v), (valid))
#endif
/* A vector of the first `valid` lanes at stride s, zeros after: never reads
 * past the last valid lane (the image may end there). */
static inline LC_V lc_wino_vgather_part(const float *p, size_t s, size_t valid) {
    float t[LC_VLANES];
    for (size_t l = 0; l < LC_VLANES; l++) t[l] = l < valid ? p[l * s] : 0.0f;
    return LC_VLOAD(t);
}
static inline void lc_wino_vstore_part(float *p, LC_V v, size_t valid) {
    float t[LC_VLANES];
    LC_VSTORE(t, v);
    for (size_t l = 0; l < valid; l++) p[l] = t[l];
}
#endif

/* V = B^T d B: columns first (combining rows), then rows. */
static void LC_WIN_NAME(const float *d, float *v, size_t xi_stride) {
    for (size_t lane = 0; lane < LC_NR; lane += LC_VLANES) {
        LC_V t[LC_WALPHA][LC_WALPHA];
        for (int j = 0; j < LC_WALPHA; j++) {
            LC_V x[LC_WALPHA], o[LC_WALPHA];
            for (int k = 0; k < LC_WALPHA; k++) x[k] = LC_VLOAD(d + (size_t)(k * LC_WALPHA + j) * LC_NR + lane);
            LC_WIN_1D(o, x);
            for (int i = 0; i < LC_WALPHA; i++) t[i][j] = o[i];
        }
        for (int i = 0; i < LC_WALPHA; i++) {
            LC_V o[LC_WALPHA];
            LC_WIN_1D(o, t[i]);
            for (int j = 0; j < LC_WALPHA; j++)
                LC_VSTORE(v + (size_t)(i * LC_WALPHA + j) * xi_stride + lane, o[j]);
        }
    }
}

/* The same V = B^T d B (same operation order, so bitwise the same result),
 * but d read straight from the image: lane l's window column j of window row
 * k is x[k*ldx + m*l + j], a stride-m gather per vector.  Saves writing and
 * re-reading the lanes-innermost copy, and the driver's short strided copies. */
LC_WINO_INLINE void LC_CAT(LC_WIN_RUN_NAME, _block)(const float *x, size_t ldx, size_t valid,
                                                   float *v, size_t xi_stride) {
    LC_V t[LC_WALPHA][LC_WALPHA];
    const LC_VPART_T pt = LC_VPART_INIT(LC_WM, valid);
    for (int j = 0; j < LC_WALPHA; j++) {
        LC_V xk[LC_WALPHA], o[LC_WALPHA];
        if (valid == LC_VLANES) {
            for (int k = 0; k < LC_WALPHA; k++) xk[k] = LC_VGATHER(x + (size_t)k * ldx + j, LC_WM);
        } else {
            for (int k = 0; k < LC_WALPHA; k++)
                xk[k] = LC_VGATHER_PART(x + (size_t)k * ldx + j, LC_WM, pt);
        }
        LC_WIN_1D(o, xk);
        for (int i = 0; i < LC_WALPHA; i++) t[i][j] = o[i];
    }
    for (int i = 0; i < LC_WALPHA; i++) {
        LC_V o[LC_WALPHA];
        LC_WIN_1D(o, t[i]);
        if (valid == LC_VLANES) {
            for (int j = 0; j < LC_WALPHA; j++) LC_VSTORE(v + (size_t)(i * LC_WALPHA + j) * xi_stride, o[j]);
        } else {
            for (int j = 0; j < LC_WALPHA; j++)
                LC_VSTORE_PART(v + (size_t)(i * LC_WALPHA + j) * xi_stride, o[j], pt);
        }
    }
}

static void LC_WIN_RUN_NAME(const float *x, size_t ldx, size_t count, float *v, size_t xi_stride) {
    size_t lane = 0;
    for (; lane + LC_VLANES <= count; lane += LC_VLANES)
        LC_CAT(LC_WIN_RUN_NAME, _block)(x + lane * LC_WM, ldx, LC_VLANES, v + lane, xi_stride);
    if (lane < count)
        LC_CAT(LC_WIN_RUN_NAME, _block)(x + lane * LC_WM, ldx, count - lane, v + lane, xi_stride);
}

/* Y = A^T Mo A, then bias and the epilogue. */
static void LC_WOUT_NAME(const float *mo, size_t xi_stride, float *out, float bias,
                         const lc_epilogue *ep) {
    const LC_V vb = LC_VSET1(bias), vlo = LC_VSET1(ep->lo), vhi = LC_VSET1(ep->hi);
    for (size_t lane = 0; lane < LC_NR; lane += LC_VLANES) {
        LC_V s[LC_WM][LC_WALPHA];
        for (int j = 0; j < LC_WALPHA; j++) {
            LC_V x[LC_WALPHA], o[LC_WM];
            for (int k = 0; k < LC_WALPHA; k++) x[k] = LC_VLOAD(mo + (size_t)(k * LC_WALPHA + j) * xi_stride + lane);
            LC_WOUT_1D(o, x);
            for (int i = 0; i < LC_WM; i++) s[i][j] = o[i];
        }
        for (int i = 0; i < LC_WM; i++) {
            LC_V o[LC_WM];
            LC_WOUT_1D(o, s[i]);
            for (int j = 0; j < LC_WM; j++) {
                LC_V r = LC_VADD(o[j], vb);
                if (ep->clamp) r = LC_VCLAMP(r, vlo, vhi);
                LC_VSTORE(out + (size_t)(i * LC_WM + j) * LC_NR + lane, r);
            }
        }
    }
}

#undef LC_WM
#undef LC_WALPHA
#undef LC_WIN_1D
#undef LC_WOUT_1D
#undef LC_WIN_NAME
#undef LC_WOUT_NAME
#undef LC_WIN_RUN_NAME
