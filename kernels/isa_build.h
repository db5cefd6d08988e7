/* Which ISA kernel folders this build compiles.  Every kernels/<isa>/ file is
 * wrapped in its LC_BUILD_<ISA> guard, so the whole tree compiles anywhere and
 * a target that cannot hold an ISA simply leaves it out.  LC_NO_SIMD (set by
 * LEANCONV_NO_SIMD=1 at build time) keeps the scalar path only. */
#ifndef LEANCONV_ISA_BUILD_H
#define LEANCONV_ISA_BUILD_H

#include <stddef.h>

#if !defined(LC_NO_SIMD)
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
/* Compilers that take per-function targets for these ISAs (no -march flags):
 * GCC >= 5 (AVX-512 BW/VL/DQ), clang >= 6 (#pragma clang attribute), MSVC
 * 2017 15.3+ (AVX-512 intrinsics). */
#if (defined(__clang__) && __clang_major__ >= 6) ||                                         \
    (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 5) ||                          \
    (defined(_MSC_VER) && !defined(__clang__) && _MSC_VER >= 1911)
#define LC_BUILD_AVX2 1
#define LC_BUILD_AVX512 1
#endif
#endif
/* NEON on AArch64 only, where it is part of the base ISA (arm_neon.h needs
 * no flags) and has FMA, lane-indexed FMA and IEEE denormals.  32-bit Arm
 * keeps the scalar kernels: its NEON is optional (per-function targets would
 * be needed), has FMA only with VFPv4, and flushes denormals to zero. */
#if defined(__aarch64__) || defined(_M_ARM64)
#define LC_BUILD_NEON 1
#endif
#endif

/* Force inlining of small helpers that take constant arguments (so the
 * compiler folds them into immediates), in every compiler's own spelling. */
#if defined(_MSC_VER) && !defined(__clang__)
#define LC_ALWAYS_INLINE __forceinline
#elif defined(__GNUC__) || defined(__clang__)
#define LC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LC_ALWAYS_INLINE inline
#endif

/* Full unrolling of the loop that follows, up to 8 or 16 iterations: the
 * templates' register-blocked loops, whose trip counts are constants once
 * inlined (the accumulators then stay in registers); nothing where the
 * compiler has no such pragma. */
#if defined(__GNUC__) || defined(__clang__)
#define LC_UNROLL_8 _Pragma("GCC unroll 8")
#define LC_UNROLL_16 _Pragma("GCC unroll 16")
#else
#define LC_UNROLL_8
#define LC_UNROLL_16
#endif

/* One prefetch per 64-byte line of `floats` floats from p, `locality` as
 * __builtin_prefetch takes it (a constant); nothing where the compiler has
 * no prefetch builtin. */
#if defined(__GNUC__) || defined(__clang__)
#define LC_PREFETCH_LINES(p, floats, locality) \
    for (size_t i_ = 0; i_ < (floats); i_ += 16) __builtin_prefetch((p) + i_, 0, locality)
#else
#define LC_PREFETCH_LINES(p, floats, locality) ((void)(p), (void)(floats))
#endif

/* Asks for `floats` floats from p to be brought into L1 (a read, kept).
 * The GEMM driver's next A slice and the pointwise kernel's weights ahead
 * (LC_PW_PREFETCH). */
static inline void lc_prefetch_block(const float *p, size_t floats) {
    LC_PREFETCH_LINES(p, floats, 3);
}

/* As lc_prefetch_block, into L2 only (prefetcht1 on x86): rows a copy reads
 * a few rows on, so they do not push out what L1 holds now. */
static inline void lc_prefetch_block_l2(const float *p, size_t floats) {
    LC_PREFETCH_LINES(p, floats, 2);
}

/* A function kept out of line (a kernel whose copies the compiler would
 * otherwise inline into one dispatcher, to the inlined copies' cost). */
#if defined(_MSC_VER) && !defined(__clang__)
#define LC_NOINLINE __declspec(noinline)
#elif defined(__GNUC__) || defined(__clang__)
#define LC_NOINLINE __attribute__((noinline))
#else
#define LC_NOINLINE
#endif

/* A function GCC must not auto-vectorise: its vectoriser built the scalar
 * 1 x 1 lanes kernel's 2-pixel case from loads spanning two channels' rows,
 * one row past the input's end (GCC 12, -O3; kernels/scalar/gemm.c). */
#if defined(__GNUC__) && !defined(__clang__)
#define LC_NO_AUTO_VECTORISE __attribute__((optimize("no-tree-vectorize")))
#else
#define LC_NO_AUTO_VECTORISE
#endif

/* A 64-byte aligned array on the stack (a driver's fixed-size scratch). */
#if defined(_MSC_VER) && !defined(__clang__)
#define LC_ALIGNED_STACK(type, name, n) __declspec(align(64)) type name[n]
#else
#define LC_ALIGNED_STACK(type, name, n) type name[n] __attribute__((aligned(64)))
#endif

#endif
