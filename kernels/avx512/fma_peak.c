/* AVX-512 FMA peak: 24 independent accumulator chains (more than FMA latency x
 * FMA pipes on current cores), so the loop is bound by FMA throughput alone.
 * Returns the sum of the accumulators so the work cannot be optimised away;
 * *flops gets the floating-point operations done (2 per lane per FMA). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

#define NACC 24

float lc_fma_peak__avx512(size_t iters, double *flops) {
    __m512 acc[NACC];
    const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (size_t it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
    float lanes[16], sum = 0.0f;
    for (int i = 0; i < NACC; i++) {
        _mm512_storeu_ps(lanes, acc[i]);
        for (int j = 0; j < 16; j++) sum += lanes[j];
    }
    *flops = 2.0 * 16 * NACC * (double)iters;
    return sum;
}

#include "target_end.h"
#endif
