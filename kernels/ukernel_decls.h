/* Declarations of every ISA's micro-kernels, for the config fillers and the
 * micro-kernel tests.  Names: what, then ISA (lc_f32_gemm_6x16__avx2). */
#ifndef LEANCONV_UKERNEL_DECLS_H
#define LEANCONV_UKERNEL_DECLS_H
#include "leanconv/ukernels.h"

#define LC_CAT_(a, b) a##b
#define LC_CAT(a, b) LC_CAT_(a, b)

#define LC_DECLARE_ISA(sfx)                                                              \
    void LC_CAT(lc_wino_fill, sfx)(lc_isa_config * cfg);                                 \
    void LC_CAT(lc_f32_dw_row, sfx)(float *out, size_t n, const float *in,               \
                                    size_t in_row_stride, size_t rows, const float *w,   \
                                    size_t kW, size_t stride, size_t dil, float bias,    \
                                    const lc_epilogue *ep);                               \
    void LC_CAT(lc_f32_dw_band, sfx)(float *out, size_t ldo, size_t rows, size_t n,      \
                                     const float *p, size_t row_step, size_t tap_step,   \
                                     const size_t *coff, const float *w, size_t kH,      \
                                     size_t kW, float bias, const lc_epilogue *ep);      \
    void LC_CAT(lc_f32_grouped_band, sfx)(float *out, size_t out_plane, size_t ldo,       \
                                          size_t rows, size_t n, size_t mg, const float *p, \
                                          size_t chan_step, size_t cg, size_t row_step,     \
                                          size_t tap_step, const size_t *coff,              \
                                          const float *w, size_t kH, size_t kW,             \
                                          const float *bias, const lc_epilogue *ep);        \
    void LC_CAT(lc_f32_gemv16, sfx)(float *y, const float *wp, const float *x, size_t rows, \
                                    size_t k);                                           \
    float LC_CAT(lc_fma_peak, sfx)(size_t iters, double *flops);

#define LC_DECLARE_GEMM(name)                                                            \
    void name(size_t m, size_t n, size_t k, const float *a, const float *b, size_t ldb,  \
              float *c, size_t ldc, const float *bias, const lc_epilogue *ep, unsigned flags);

/* FMA peak loop of one ISA: runs `iters` iterations, stores the flops done in
 * *flops, returns a sum that keeps the work alive (kernels/<isa>/fma_peak.c). */
typedef float (*lc_fma_peak_fn)(size_t iters, double *flops);
/* The loop of an ISA compiled into this build, else NULL (kernels/fma_peak.c). */
lc_fma_peak_fn lc_fma_peak_get(int isa);

#define LC_DECLARE_STRIDED_COPY(name)                                                    \
    void name(float *dst, size_t dst_stride, const float *src, size_t src_step, size_t rows, \
              size_t n, size_t stride);

#define LC_DECLARE_DL(name)                                                              \
    void name(size_t n, const float *x, const float *w, float *t, const float *bias,     \
              const lc_dl_geom *g, const lc_epilogue *ep, unsigned flags);

#define LC_DECLARE_STEM(name)                                                            \
    void name(size_t n, size_t rows, const float *x, const size_t *off, size_t K,        \
              const float *w, float *y, size_t ldy, const float *bias, const lc_epilogue *ep);

#define LC_DECLARE_PW(name)                                                              \
    void name(size_t n, size_t k, const float *x, size_t ldx, const float *w, float *t,  \
              size_t ldt, const float *bias, const lc_epilogue *ep, unsigned flags);

#define LC_DECLARE_GEMM_PF(name)                                                         \
    void name(size_t m, size_t n, size_t k, const float *a, const float *b, size_t ldb,  \
              float *c, size_t ldc, const float *bias, const lc_epilogue *ep, unsigned flags, \
              const float *pf, size_t pf_ld, size_t pf_rows);

#define LC_DECLARE_GEMM_NARROW(name)                                                     \
    void name(size_t m, size_t n, size_t k, const float *a, size_t a_pstride,            \
              const float *b, size_t ldb, float *c, size_t ldc, const float *bias,       \
              const lc_epilogue *ep, unsigned flags);

#define LC_DECLARE_GEMM_NARROW_PF(name)                                                  \
    void name(size_t m, size_t n, size_t k, const float *a, size_t a_pstride,            \
              const float *b, size_t ldb, float *c, size_t ldc, const float *bias,       \
              const lc_epilogue *ep, unsigned flags, const float *pf, size_t pf_ld,      \
              size_t pf_rows);

#define LC_DECLARE_GEMM_TALL(name)                                                       \
    void name(size_t m, size_t n, size_t k, const float *a, size_t a_pstride,            \
              const float *b, size_t ldb, float *c, size_t ldc, const float *bias,       \
              const lc_epilogue *ep, unsigned flags, const float *pf, size_t pf_ld,      \
              size_t pf_rows);

/* The epilogue post-op of each ISA (lc_postop_fn). */
#define LC_DECLARE_POSTOP(name)                                                          \
    void name(float *y, const float *src, size_t n, const float *residual, float bias,   \
              const lc_epilogue *ep);

LC_DECLARE_ISA(__scalar)
LC_DECLARE_POSTOP(lc_f32_postop__scalar)
LC_DECLARE_GEMM(lc_f32_gemm_4x16__scalar)
LC_DECLARE_DL(lc_f32_dl_4x4__scalar)
LC_DECLARE_PW(lc_f32_pw_4x4__scalar)

/* Optional depthwise 3x3 whole-plane kernels (lc_dw3x3_plane_fn). */
#define LC_DECLARE_DW3X3_PLANE(name)                                                     \
    void name(float *out, size_t OH, size_t OW, const float *in, size_t H, size_t W,      \
              size_t stride_h, size_t stride_w, size_t pad_t, size_t pad_l, const float *w, \
              float bias, const lc_epilogue *ep);

/* Optional channel-blocked depthwise kernels (lc_dw_cblock_kernels), and the
 * table entry of an ISA's (lanes = its vector width). */
#define LC_DECLARE_DW_CBLOCK(name)                                                       \
    void name(float *out, size_t n, const float *const *rows, size_t stride, size_t dil, \
              const float *w, size_t kH, size_t kW, const float *bias,                   \
              const lc_epilogue *ep);                                                     \
    void name##_interleave(float *dst, const float *const *src, size_t off, size_t n);   \
    void name##_deinterleave(float *const *dst, size_t off, const float *src, size_t n);
#define LC_DW_CBLOCK_ENTRY(name, lanes) \
    ((lc_dw_cblock_kernels){(lanes), name, name##_interleave, name##_deinterleave})

/* Pooling's optional whole-plane primitive (lc_pool_plane_fn). */
#define LC_DECLARE_POOL_PLANE(name)                                                      \
    void name(float *y, const float *x, size_t planes, const lc_pool_plane_geom *g, float *r);

/* Optional depthwise kernels over tiny planes (lc_dw_tiny_fn). */
#define LC_DECLARE_DW_TINY(name)                                                          \
    void name(float *out, const float *in, size_t channels, size_t mult, size_t in_plane,  \
              size_t out_plane, const lc_dw_tiny_taps *taps, const float *w, size_t ktaps, \
              const float *bias, const lc_epilogue *ep);

LC_DECLARE_ISA(__avx2)
LC_DECLARE_POOL_PLANE(lc_f32_pool_plane__avx2)
LC_DECLARE_DW_TINY(lc_f32_dw_tiny__avx2)
LC_DECLARE_DW_CBLOCK(lc_f32_dw_cblock__avx2)
LC_DECLARE_POSTOP(lc_f32_postop__avx2)
void lc_f32_softmax__avx2(float *y, const float *x, size_t n, size_t inner, size_t cnt);
LC_DECLARE_DW3X3_PLANE(lc_f32_dw3x3_plane__avx2)
void lc_f32_lrn_div__avx2(float *y, const float *x, const float *s, size_t n, float scale,
                          float bias, int root);
void lc_f32_affine__avx2(float *y, const float *x, size_t n, float scale, float shift, int relu);
void lc_f32_layernorm_block__avx2(float *y, const float *x, size_t channels, size_t hw,
    size_t np, float eps, const float *scale, const float *bias);
LC_DECLARE_GEMM(lc_f32_gemm_6x16__avx2)
LC_DECLARE_GEMM_PF(lc_f32_gemm_pf_6x16__avx2)
LC_DECLARE_DL(lc_f32_dl_6x16__avx2)
LC_DECLARE_STEM(lc_f32_stem_4x2__avx2)
LC_DECLARE_PW(lc_f32_pw_6x16__avx2)
LC_DECLARE_STRIDED_COPY(lc_f32_strided_copy__avx2)

LC_DECLARE_ISA(__avx512)
LC_DECLARE_DW_CBLOCK(lc_f32_dw_cblock__avx512)
LC_DECLARE_POSTOP(lc_f32_postop__avx512)
void lc_f32_softmax__avx512(float *y, const float *x, size_t n, size_t inner, size_t cnt);
void lc_f32_pool_rows__avx512(float *r, const float *x, size_t step, size_t nrows, size_t n,
                              int is_max);
void lc_f32_pool_cols__avx512(float *out, const float *in, size_t n, size_t kw, size_t dil,
                              size_t stride, int is_max);
void lc_f32_lrn_div__avx512(float *y, const float *x, const float *s, size_t n, float scale,
                            float bias, int root);
void lc_f32_affine__avx512(float *y, const float *x, size_t n, float scale, float shift, int relu);
void lc_f32_layernorm_block__avx512(float *y, const float *x, size_t channels, size_t hw,
    size_t np, float eps, const float *scale, const float *bias);
LC_DECLARE_POOL_PLANE(lc_f32_pool_plane__avx512)
LC_DECLARE_DW3X3_PLANE(lc_f32_dw3x3_plane__avx512)
int lc_f32_dw3x3_planes__avx512(float *out, size_t out_plane, const float *in, size_t in_plane,
                                size_t channels, size_t OH, size_t OW, size_t H, size_t W,
                                size_t stride, size_t pad_t, size_t pad_l, const float *w,
                                const float *bias, const lc_epilogue *ep);
LC_DECLARE_DW_TINY(lc_f32_dw_tiny__avx512)
LC_DECLARE_GEMM(lc_f32_gemm_8x32__avx512)
LC_DECLARE_GEMM_PF(lc_f32_gemm_pf_8x32__avx512)
LC_DECLARE_GEMM_TALL(lc_f32_gemm_tall_24x16__avx512)
LC_DECLARE_DL(lc_f32_dl_6x64__avx512)
LC_DECLARE_DL(lc_f32_dl_12x32__avx512)
LC_DECLARE_STEM(lc_f32_stem_4x6__avx512)
LC_DECLARE_PW(lc_f32_pw_7x64__avx512)
LC_DECLARE_PW(lc_f32_pw_12x32__avx512)
LC_DECLARE_DL(lc_f32_dl_12x16__avx512)
LC_DECLARE_PW(lc_f32_pw_12x16__avx512)
LC_DECLARE_STRIDED_COPY(lc_f32_strided_copy__avx512)
LC_DECLARE_GEMM_NARROW(lc_f32_gemm_narrow_16x16__avx512)
LC_DECLARE_GEMM_NARROW_PF(lc_f32_gemm_narrow_pf_16x16__avx512)
LC_DECLARE_GEMM(lc_f32_gemm_wide_8x48__avx512)
LC_DECLARE_GEMM_PF(lc_f32_gemm_wide_pf_8x48__avx512)
void lc_f32_ln_row__avx512(float *y, const float *x, size_t width, float eps,
                           const float *scale, const float *bias);
void lc_f32_ln_row__avx2(float *y, const float *x, size_t width, float eps, const float *scale,
                         const float *bias);
void lc_f32_pack_rows_8__avx512(float *dst, size_t ldd, const float *src, size_t lds,
                                size_t k);

LC_DECLARE_ISA(__neon)
LC_DECLARE_DW_TINY(lc_f32_dw_tiny__neon)
LC_DECLARE_DW_CBLOCK(lc_f32_dw_cblock__neon)
LC_DECLARE_POSTOP(lc_f32_postop__neon)
void lc_f32_softmax__neon(float *y, const float *x, size_t n, size_t inner, size_t cnt);
LC_DECLARE_POOL_PLANE(lc_f32_pool_plane__neon)
void lc_f32_lrn_div__neon(float *y, const float *x, const float *s, size_t n, float scale,
                          float bias, int root);
LC_DECLARE_GEMM(lc_f32_gemm_12x8__neon)
LC_DECLARE_DL(lc_f32_dl_6x16__neon)
LC_DECLARE_PW(lc_f32_pw_6x16__neon)
LC_DECLARE_STEM(lc_f32_stem_4x6__neon)

#endif
