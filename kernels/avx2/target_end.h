/* End of an AVX2+FMA translation unit (see target_begin.h). */
#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
