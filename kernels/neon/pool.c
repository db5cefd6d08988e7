/* Pooling's whole-plane primitive, NEON (lc_pool_plane_fn): the plain-C
 * template, vectorised 4 lanes wide (a stride-2 tap an even-lane load). */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include "../ukernel_decls.h"

#define LC_POOL_PLANE_NAME lc_f32_pool_plane__neon
#include "../pool_plane_template.h"

#endif
