/* Which ISA kernel folders this build compiles.  Every kernels/<isa>/ file is
 * wrapped in its LC_BUILD_<ISA> guard, so the whole tree compiles anywhere and
 * a target that cannot hold an ISA simply leaves it out.  LC_NO_SIMD (set by
 * LEANCONV_NO_SIMD=1 at build time) keeps the scalar path only. */
#ifndef LEANCONV_ISA_BUILD_H
#define LEANCONV_ISA_BUILD_H

#if !defined(LC_NO_SIMD)
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)
// LC_BUILD_AVX2 (enabled with its kernels)
// LC_BUILD_AVX512
#endif
#endif
#if defined(__aarch64__) || defined(_M_ARM64) || (defined(__arm__) && defined(__ARM_NEON))
// LC_BUILD_NEON
#endif
#endif

#endif
