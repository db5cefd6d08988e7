/* Start of an AVX-512 translation unit (F, BW, VL, DQ, plus AVX2 and FMA):
 * every function after this point may use them, without -march flags, so the
 * rest of the package still runs on CPUs without them (dispatch picks these
 * kernels only after cpuid and XGETBV said yes).  Include after ../isa_build.h,
 * inside #ifdef LC_BUILD_AVX512, and close with target_end.h.  MSVC allows the
 * intrinsics anywhere. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")
#endif
#include <immintrin.h>
