/* The AVX2+FMA table: GEMM 6 x 16, Winograd over 16 tiles, depthwise rows.
 * kc = 256: a 256 x 16 slice of B (16 KiB) stays in L1 while A panels
 * (256 x 6 floats, 6 KiB) stream past it from L2. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "../ukernel_decls.h"

void lc_config_avx2(lc_isa_config *cfg) {
    cfg->mr = 6;
    cfg->nr = 16;
    cfg->kc = 256;
    cfg->gemm = lc_f32_gemm_6x16__avx2;
    lc_wino_fill__avx2(cfg);
    cfg->dw_row = lc_f32_dw_row__avx2;
}
#endif
