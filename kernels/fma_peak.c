/* Which FMA peak loop measures an ISA (see kernels/<isa>/fma_peak.c): the
 * denominator of every "% of peak" figure the benchmarks print. */
#include "isa_build.h"
#include "ukernel_decls.h"

lc_fma_peak_fn lc_fma_peak_get(int isa) {
    switch (isa) {
    case LC_ISA_SCALAR: return lc_fma_peak__scalar;
#ifdef LC_BUILD_AVX2
    case LC_ISA_AVX2: return lc_fma_peak__avx2;
#endif
#ifdef LC_BUILD_AVX512
    case LC_ISA_AVX512: return lc_fma_peak__avx512;
#endif
#ifdef LC_BUILD_NEON
    case LC_ISA_NEON: return lc_fma_peak__neon;
#endif
    default: return 0;
    }
}
