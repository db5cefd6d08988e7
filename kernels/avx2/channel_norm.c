/* The channel LayerNorm's block (lc_layernorm_block_fn), AVX2+FMA: the shared
 * lanes template (../channel_norm_lanes_template.h) over __m256, groups of 32
 * pixels, the tail through integer lane masks (maskload / maskstore). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include <stddef.h>

#include "target_begin.h"
#include "../ukernel_decls.h"

/* Lanes [0, cnt) set; none for cnt <= 0, all for cnt >= 8. */
static inline __m256i lc_ln_mask8(ptrdiff_t cnt) {
    const int c = cnt <= 0 ? 0 : cnt >= 8 ? 8 : (int)cnt;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define LC_V __m256
#define LC_K __m256i
#define LC_VL 8
#define LC_KMASK(cnt) lc_ln_mask8(cnt)
#define LC_KLOAD(p, k) _mm256_maskload_ps((p), (k))
#define LC_KSTORE(p, v, k) _mm256_maskstore_ps((p), (k), (v))
#define LC_VSET1(f) _mm256_set1_ps(f)
#define LC_VZERO() _mm256_setzero_ps()
#define LC_VADD(a, b) _mm256_add_ps((a), (b))
#define LC_VSUB(a, b) _mm256_sub_ps((a), (b))
#define LC_VMUL(a, b) _mm256_mul_ps((a), (b))
#define LC_VDIV(a, b) _mm256_div_ps((a), (b))
#define LC_VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define LC_VSQRT(a) _mm256_sqrt_ps(a)
#define LC_LN_LANES_NAME lc_f32_layernorm_block__avx2
#include "../channel_norm_lanes_template.h"

#include "target_end.h"
#endif
