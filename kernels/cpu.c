/* CPU feature detection, run once.
 *
 * x86: CPUID says what the core can do, XGETBV says whether the OS saves the
 * YMM/ZMM registers on a context switch.  AVX2 without OS support for YMM state
 * (or AVX-512 without ZMM state) would fault or corrupt registers, so both must
 * agree.  Arm: NEON (ASIMD) is part of the AArch64 base ISA; we still ask the OS
 * where it can tell us, and on 32-bit Arm it is optional. */
#include "leanconv/cpu.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define LC_CPU_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
void lc_x86_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    r[0] = (unsigned)v[0]; r[1] = (unsigned)v[1]; r[2] = (unsigned)v[2]; r[3] = (unsigned)v[3];
}
static unsigned long long lc_xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
void lc_x86_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    /* __cpuid_count saves ebx itself where PIC on i686 needs it. */
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long lc_xgetbv0(void) {
    unsigned lo, hi;
    /* The raw opcode, so that no -mxsave flag is needed on the baseline build. */
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#endif

#if defined(__aarch64__) || defined(_M_ARM64) || defined(__arm__) || defined(_M_ARM)
#define LC_CPU_ARM 1
#if defined(__linux__)
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(_WIN32)
#include <windows.h>
#endif
#endif

static lc_cpu_features lc_features;
static int lc_detected;

static void lc_detect(lc_cpu_features *f) {
#ifdef LC_CPU_X86
    unsigned r[4];
    f->x86 = 1;
    lc_x86_cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    lc_x86_cpuid(1, 0, r);
    f->sse2 = (r[3] >> 26) & 1;
    int osxsave = (r[2] >> 27) & 1;
    int avx = (r[2] >> 28) & 1;
    f->fma = (r[2] >> 12) & 1;
    f->f16c = (r[2] >> 29) & 1;
    if (osxsave) {
        unsigned long long xcr0 = lc_xgetbv0();
        f->os_ymm = (xcr0 & 0x6) == 0x6;            /* XMM and YMM state */
        f->os_zmm = f->os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    }
    f->avx = avx && f->os_ymm;
    if (!f->os_ymm) f->fma = 0;
    if (max_leaf >= 7) {
        lc_x86_cpuid(7, 0, r);
        f->avx2 = ((r[1] >> 5) & 1) && f->os_ymm;
        if (f->os_zmm) {
            f->avx512f = (r[1] >> 16) & 1;
            f->avx512dq = (r[1] >> 17) & 1;
            f->avx512bw = (r[1] >> 30) & 1;
            f->avx512vl = (r[1] >> 31) & 1;
        }
    }
#endif
#ifdef LC_CPU_ARM
#if defined(__aarch64__) || defined(_M_ARM64)
    f->arm64 = 1;
    f->neon = 1; /* ASIMD is mandatory in AArch64 */
#if defined(__linux__)
    /* HWCAP_ASIMD is bit 1; a kernel that reports no ASIMD means no NEON use. */
    f->neon = (getauxval(AT_HWCAP) >> 1) & 1;
#elif defined(__APPLE__)
    {
        int v = 0; size_t len = sizeof v;
        if (sysctlbyname("hw.optional.neon", &v, &len, 0, 0) == 0) f->neon = v != 0;
    }
#elif defined(_WIN32)
    f->neon = IsProcessorFeaturePresent(PF_ARM_NEON_INSTRUCTIONS_AVAILABLE) != 0;
#endif
#else
    f->arm32 = 1;
#if defined(__linux__)
    f->neon = (getauxval(AT_HWCAP) >> 12) & 1; /* HWCAP_NEON */
#endif
#endif
#endif
    (void)f;
}

const lc_cpu_features *lc_cpu(void) {
    /* Called first from the module's import (under the GIL), so no race. */
    if (!lc_detected) {
        lc_detect(&lc_features);
        lc_detected = 1;
    }
    return &lc_features;
}
