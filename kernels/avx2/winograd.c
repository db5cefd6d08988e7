/* Winograd transforms, AVX2+FMA: the shared template over __m256 (8 lanes),
 * NR = 16 tiles per call, matching the GEMM tile. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_ISA_FN(name) LC_CAT(name, __avx2)
#define LC_V __m256
#define LC_VLANES 8
#define LC_NR 16
#define LC_VLOAD(p) _mm256_loadu_ps(p)
#define LC_VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define LC_VSET1(f) _mm256_set1_ps(f)
#define LC_VADD(a, b) _mm256_add_ps((a), (b))
#define LC_VSUB(a, b) _mm256_sub_ps((a), (b))
#define LC_VMULC(a, f) _mm256_mul_ps((a), _mm256_set1_ps(f))
#define LC_VFMAC(acc, a, f) _mm256_fmadd_ps((a), _mm256_set1_ps(f), (acc))
/* max/min return their second operand when either is NaN: NaN passes */
#define LC_VCLAMP(v, lo, hi) _mm256_min_ps((hi), _mm256_max_ps((lo), (v)))

#include "../winograd_instances.h"

#include "target_end.h"
#endif
