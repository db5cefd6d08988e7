/* The scalar table: every entry filled, so other ISAs only override. */
#include "../ukernel_decls.h"

void lc_config_scalar(lc_isa_config *cfg) {
    cfg->mr = 4;
    cfg->nr = 16;
    cfg->kc = 256;
    cfg->gemm = lc_f32_gemm_4x16__scalar;
    lc_wino_fill__scalar(cfg);
    cfg->dw_row = lc_f32_dw_row__scalar;
    cfg->dw_band = lc_f32_dw_band__scalar;
    cfg->postop = lc_f32_postop__scalar;
}
