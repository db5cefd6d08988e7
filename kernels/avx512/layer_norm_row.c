/* LayerNormalization's row (lc_ln_row_fn), AVX512: the portable loops of
 * ../layer_norm_row_template.h compiled for this ISA with floating-point
 * contraction off, so the compiler's vectors compute the portable bits. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include <math.h>
#include <stdint.h>

#include "target_begin.h"
#include "../ukernel_decls.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define LC_LN_ROW_NAME lc_f32_ln_row__avx512
#include "../layer_norm_row_template.h"

#include "target_end.h"
#endif
