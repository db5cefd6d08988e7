/* Winograd transforms, portable C: the shared template over plain floats. */
#include "../ukernel_decls.h"

#define LC_ISA_FN(name) LC_CAT(name, __scalar)
#define LC_V float
#define LC_VLANES 1
#include "tile.h"
#define LC_NR LC_TILE_NR
#define LC_VLOAD(p) (*(p))
#define LC_VSTORE(p, v) (*(p) = (v))
#define LC_VSET1(f) (f)
#define LC_VADD(a, b) ((a) + (b))
#define LC_VSUB(a, b) ((a) - (b))
#define LC_VMULC(a, f) ((a) * (f))
#define LC_VFMAC(acc, a, f) ((acc) + (a) * (f))
/* comparisons are false for NaN, so NaN passes through */
#define LC_VCLAMP(v, lo, hi) ((v) < (lo) ? (lo) : (v) > (hi) ? (hi) : (v))
#define LC_VNANBITS(v) ((uint64_t)((v) != (v)))

/* channel-lanes GEMM: 4 tiles x 4 vectors of output channels */
#define LC_WCL_ROWS 4
#define LC_WCL_VECS 4
#include "../winograd_instances.h"
