/* The channel LayerNorm's block (lc_layernorm_block_fn in
 * include/leanconv/ukernels.h) vectorised for AVX512 by the compiler from
 * the shared loops (../channel_norm_template.h). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include <math.h>
#include <stddef.h>

#include "target_begin.h"
#include "leanconv/ukernels.h"
#include "../ukernel_decls.h"

#define LC_LN_BLOCK_FN lc_f32_layernorm_block__avx512
#include "../channel_norm_template.h"

#include "target_end.h"
#endif
