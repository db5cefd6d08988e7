/* The scalar table: every entry filled, so other ISAs only override. */
#include "../ukernel_decls.h"
#include "tile.h"

void lc_config_scalar(lc_isa_config *cfg) {
    cfg->mr = LC_TILE_MR;
    cfg->nr = LC_TILE_NR;
    cfg->kc = LC_TILE_KC;
    cfg->gemm = lc_f32_gemm_4x16__scalar;
    lc_wino_fill__scalar(cfg);
    cfg->dw_row = lc_f32_dw_row__scalar;
    cfg->dw_band = lc_f32_dw_band__scalar;
    cfg->grouped_band = lc_f32_grouped_band__scalar;
    cfg->grouped_lanes = 1;
    cfg->dl_kernel = lc_f32_dl_4x4__scalar;
    cfg->dl_lanes = 1;
    cfg->dl_cols = 4;
    cfg->dl_rows = 4;
    cfg->pw_kernel = lc_f32_pw_4x4__scalar;
    /* cost model prices (kernels/choose.c): not refitted: the previous model's hand-set values */
    cfg->cost = (lc_cost_terms){.stream_byte = 0.50f, .pack_im2col = 4.00f,
                               .pack_patch2vec = 4.00f, .wino_elem = {32.00f, 48.00f, 72.00f}};
    /* direct_lanes per multiply-add, set by hand from interleaved runs (not fitted):
     * the stem and the 3x3/2 layers ran at 1.08-1.19 x the best GEMM algorithm,
     * which the model prices at 1.06-1.08 x direct_lanes' multiply-adds (its
     * copy and transpose included: dl_move is 0 here) */
    cfg->cost.dl_mac = 1.25f;
    /* the grouped band kernel (kernels/grouped.c): not measured against
     * the portable GEMM, so "auto" does not weigh it */
    cfg->cost.grouped_mac = 0.0f;
    cfg->postop = lc_f32_postop__scalar;
    cfg->gemv16 = lc_f32_gemv16__scalar;
}
