/* Scalar multiply-add peak, for the "% of peak" figures of the scalar path:
 * 8 independent chains of a*b+c in plain C (the compiler may contract them
 * into FMAs or vectorise them, as it would the scalar kernels). */
#include "../ukernel_decls.h"

#define NACC 8

float lc_fma_peak__scalar(size_t iters, double *flops) {
    float acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = (float)i;
    for (size_t it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) acc[i] = acc[i] * 0.999999f + 1e-7f;
    float sum = 0.0f;
    for (int i = 0; i < NACC; i++) sum += acc[i];
    *flops = 2.0 * NACC * (double)iters;
    return sum;
}
