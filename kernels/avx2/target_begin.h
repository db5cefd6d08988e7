/* Start of an AVX2+FMA translation unit: every function after this point may
 * use AVX2 and FMA, without -march flags, so the rest of the package still
 * runs on CPUs without them (dispatch picks these kernels only after cpuid and
 * XGETBV said yes).  Include after ../isa_build.h, inside #ifdef LC_BUILD_AVX2,
 * and close with target_end.h.  MSVC allows the intrinsics anywhere. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#include <immintrin.h>
