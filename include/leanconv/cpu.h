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

#ifdef __cplusplus
}
#endif
#endif
