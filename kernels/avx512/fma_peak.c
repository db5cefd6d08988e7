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
    for (size_t it = 0; it < iters; it++) {
        /* written out: a loop over acc[] is not always unrolled, and
         * then the accumulators live in memory */
#define LC_STEP(i) acc[i] = _mm512_fmadd_ps(acc[i], mul, add)
        LC_STEP(0); LC_STEP(1); LC_STEP(2); LC_STEP(3);
        LC_STEP(4); LC_STEP(5); LC_STEP(6); LC_STEP(7);
        LC_STEP(8); LC_STEP(9); LC_STEP(10); LC_STEP(11);
        LC_STEP(12); LC_STEP(13); LC_STEP(14); LC_STEP(15);
        LC_STEP(16); LC_STEP(17); LC_STEP(18); LC_STEP(19);
        LC_STEP(20); LC_STEP(21); LC_STEP(22); LC_STEP(23);
#undef LC_STEP
    }
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
