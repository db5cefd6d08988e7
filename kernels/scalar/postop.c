/* The epilogue post-op (lc_postop_fn), portable C: the reference every ISA's
 * vectorised post-op is checked against. */
#include "../ukernel_decls.h"
#include "../activation.h"

void lc_f32_postop__scalar(float *y, const float *src, size_t n, const float *residual,
                           float bias, const lc_epilogue *ep) {
    if (residual) {
        for (size_t i = 0; i < n; i++) y[i] = lc_act1((src[i] + bias) + residual[i], ep);
    } else {
        for (size_t i = 0; i < n; i++) y[i] = lc_act1(src[i] + bias, ep);
    }
}
