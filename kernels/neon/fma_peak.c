/* NEON FMA peak (AArch64): 24 independent accumulator chains, more than FMA
 * latency x FMA pipes on current cores (Cortex-A76: 4 x 2; Neoverse V1 and
 * Apple cores: 4 x 4), so the loop is bound by FMA throughput alone.
 * Returns the sum of the accumulators so the work cannot be optimised away;
 * *flops gets the floating-point operations done (2 per lane per FMA). */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include <arm_neon.h>
#include "../ukernel_decls.h"

#define NACC 24
/* Named accumulators, not an array: with acc[NACC], GCC -O2 keeps the
 * registers but still stores the whole array every iteration. */
#define LC_ACCS(X)                                                                           \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)                           \
    X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

float lc_fma_peak__neon(size_t iters, double *flops) {
    const float32x4_t mul = vdupq_n_f32(0.999999f), add = vdupq_n_f32(1e-7f);
#define LC_INIT(i) float32x4_t acc##i = vdupq_n_f32((float)i);
    LC_ACCS(LC_INIT)
#undef LC_INIT
    for (size_t it = 0; it < iters; it++) {
        /* acc += mul * add: the chain runs through the accumulator operand,
         * one FMLA per step as in the GEMM kernel (acc * mul + add would
         * need a register copy per FMLA) */
#define LC_STEP(i) acc##i = vfmaq_f32(acc##i, mul, add);
        LC_ACCS(LC_STEP)
#undef LC_STEP
    }
    float32x4_t sum = vdupq_n_f32(0.0f);
#define LC_SUM(i) sum = vaddq_f32(sum, acc##i);
    LC_ACCS(LC_SUM)
#undef LC_SUM
    *flops = 2.0 * 4 * NACC * (double)iters;
    return vaddvq_f32(sum);
}

#endif
