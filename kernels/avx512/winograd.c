/* Winograd transforms, AVX-512: the shared template over __m512 (16 lanes),
 * NR = 32 tiles per call, matching the GEMM tile. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_ISA_FN(name) LC_CAT(name, __avx512)
#define LC_V __m512
#define LC_VLANES 16
#define LC_NR 32
#define LC_VLOAD(p) _mm512_loadu_ps(p)
#define LC_VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VADD(a, b) _mm512_add_ps((a), (b))
#define LC_VSUB(a, b) _mm512_sub_ps((a), (b))
#define LC_VMULC(a, f) _mm512_mul_ps((a), _mm512_set1_ps(f))
#define LC_VFMAC(acc, a, f) _mm512_fmadd_ps((a), _mm512_set1_ps(f), (acc))
/* max/min return their second operand when either is NaN: NaN passes */
#define LC_VCLAMP(v, lo, hi) _mm512_min_ps((hi), _mm512_max_ps((lo), (v)))

#include "../winograd_instances.h"

#include "target_end.h"
#endif
