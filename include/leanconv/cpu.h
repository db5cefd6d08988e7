/* CPU feature detection, done once. */
#ifndef LEANCONV_CPU_H
#define LEANCONV_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_cpu_features {
    int x86, arm64, arm32;
    int sse2, avx, avx2, fma, f16c;
    int avx512f, avx512bw, avx512vl, avx512dq;
    int os_ymm, os_zmm;   /* the OS saves YMM / ZMM state (XGETBV) */
    int neon;
} lc_cpu_features;

const lc_cpu_features *lc_cpu(void);

/* Data cache sizes in bytes (l3 = 0: none) and where they came from:
 * "LEANCONV_CACHE", "sysfs", "sysctl", "GetLogicalProcessorInformation",
 * "cpuid", "default" (detection failed or was switched off), or "invalid"
 * (LEANCONV_CACHE could not be read; the defaults are used).  Every blocking
 * budget derives from these (kernels/blocking.c). */
typedef struct lc_cache_sizes {
    long long l1d, l2, l3;
    const char *source;
} lc_cache_sizes;

const lc_cache_sizes *lc_cpu_caches(void);

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
/* CPUID leaf/subleaf -> EAX, EBX, ECX, EDX. */
void lc_x86_cpuid(unsigned leaf, unsigned sub, unsigned r[4]);
#endif

#ifdef __cplusplus
}
#endif
#endif
