/* Depthwise interior row and band, portable C. */
#include "../ukernel_decls.h"

void lc_f32_dw_row__scalar(float *out, size_t n, const float *in, size_t in_row_stride,
                           size_t rows, const float *w, size_t kW, size_t stride, size_t dil,
                           float bias, const lc_epilogue *ep) {
    for (size_t ox = 0; ox < n; ox++) {
        float acc = bias;
        const float *src = in + ox * stride;
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < kW; j++) acc += w[r * kW + j] * src[r * in_row_stride + j * dil];
        if (ep->clamp) {
            if (acc < ep->lo) acc = ep->lo;
            if (acc > ep->hi) acc = ep->hi;
        }
        out[ox] = acc;
    }
}

/* The band kernel from the shared template, over one float per "vector": the
 * eight accumulators of a block still give eight independent chains. */
#define LC_V float
#define LC_VLANES 1
#define LC_VLOAD(p) (*(p))
#define LC_VSTORE(p, v) (*(p) = (v))
#define LC_VSTORE_PART(p, v, cnt) (*(p) = (v))
#define LC_VSET1(f) (f)
#define LC_VFMA(acc, a, b) ((acc) + (a) * (b))
#define LC_VADD(a, b) ((a) + (b))
/* NaN compares false and passes */
#define LC_VCLAMP(v, lo, hi) ((v) < (lo) ? (lo) : (v) > (hi) ? (hi) : (v))
#define LC_DWB_NAME lc_f32_dw_band__scalar
#include "../dw_band_template.h"

#define LC_GB_NAME lc_f32_grouped_band__scalar
#define LC_GB_ACC 16
#define LC_GB_MAX_VB 4
#include "../grouped_band_template.h"

#define LC_GEMV_NAME lc_f32_gemv16__scalar
#include "../se_gemv_template.h"
