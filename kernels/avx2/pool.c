/* Pooling's whole-plane primitive, AVX2 (lc_pool_plane_fn): the plain-C
 * template compiled for AVX2, which the compiler vectorises 8 lanes wide
 * (the build's baseline x86 code would use 4). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "target_begin.h"
#include "../ukernel_decls.h"

#define LC_POOL_PLANE_NAME lc_f32_pool_plane__avx2
#include "../pool_plane_template.h"

#include "target_end.h"
#endif
