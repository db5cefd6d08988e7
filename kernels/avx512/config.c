/* The AVX-512 table: GEMM MR x 32, Winograd over 32 tiles, depthwise rows.
 * kc = 256: a 256 x 32 slice of B (32 KiB) stays in L1 while A panels
 * stream past it from L2. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "../ukernel_decls.h"

void lc_config_avx512(lc_isa_config *cfg) {
    cfg->mr = 8;
    cfg->nr = 32;
    cfg->kc = 256;
    cfg->gemm = lc_f32_gemm_8x32__avx512;
    lc_wino_fill__avx512(cfg);
    cfg->dw_row = lc_f32_dw_row__avx512;
}
#endif
