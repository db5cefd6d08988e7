/* The channel LayerNorm's block (lc_layernorm_block_fn), AVX-512: the shared
 * lanes template (../channel_norm_lanes_template.h) over __m512, groups of
 * 64 pixels, the tail through __mmask16. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include <stddef.h>

#include "target_begin.h"
#include "../ukernel_decls.h"

static inline __mmask16 lc_ln_mask16(ptrdiff_t cnt) {
    return cnt <= 0 ? (__mmask16)0 : cnt >= 16 ? (__mmask16)0xFFFF
                                               : (__mmask16)((1u << cnt) - 1u);
}

#define LC_V __m512
#define LC_K __mmask16
#define LC_VL 16
#define LC_KMASK(cnt) lc_ln_mask16(cnt)
#define LC_KLOAD(p, k) _mm512_maskz_loadu_ps((k), (p))
#define LC_KSTORE(p, v, k) _mm512_mask_storeu_ps((p), (k), (v))
#define LC_VSET1(f) _mm512_set1_ps(f)
#define LC_VZERO() _mm512_setzero_ps()
#define LC_VADD(a, b) _mm512_add_ps((a), (b))
#define LC_VSUB(a, b) _mm512_sub_ps((a), (b))
#define LC_VMUL(a, b) _mm512_mul_ps((a), (b))
#define LC_VDIV(a, b) _mm512_div_ps((a), (b))
#define LC_VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define LC_VSQRT(a) _mm512_sqrt_ps(a)
#define LC_LN_LANES_NAME lc_f32_layernorm_block__avx512
#include "../channel_norm_lanes_template.h"

#include "target_end.h"
#endif
