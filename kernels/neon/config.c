/* The NEON table (AArch64): GEMM 12 x 8, Winograd over 8 tiles, depthwise
 * rows.  kc = 256: a 256 x 8 slice of B (8 KiB) stays in L1 (32-64 KiB on
 * Cortex-A5x/A7x cores) while A panels (256 x 12 floats, 12 KiB) stream past
 * it from L2. */
#include "../isa_build.h"
#ifdef LC_BUILD_NEON
#include "../ukernel_decls.h"
#include "tile.h"

void lc_config_neon(lc_isa_config *cfg) {
    cfg->mr = LC_TILE_MR;
    cfg->nr = LC_TILE_NR;
    cfg->kc = LC_TILE_KC;
    cfg->gemm = lc_f32_gemm_12x8__neon;
    lc_wino_fill__neon(cfg);
    cfg->dw_row = lc_f32_dw_row__neon;
    cfg->dw_band = lc_f32_dw_band__neon;
    cfg->grouped_band = lc_f32_grouped_band__neon;
    cfg->grouped_lanes = 4;
    cfg->dw_cblock = LC_DW_CBLOCK_ENTRY(lc_f32_dw_cblock__neon, 4);
    /* not measured on an Arm CPU: AVX2's bound (one TBL per tap and 4 pixels) */
    cfg->dw_tiny = lc_f32_dw_tiny__neon;
    cfg->dw_tiny_taps = 9;
    cfg->dl_kernel = lc_f32_dl_6x16__neon;
    cfg->dl_lanes = 4;
    cfg->dl_cols = 16;
    cfg->dl_rows = 6;
    cfg->pw_kernel = lc_f32_pw_6x16__neon;
    cfg->stem_kernel = lc_f32_stem_4x6__neon;
    cfg->stem_lanes = 4;
    cfg->stem_rows = 4;
    cfg->stem_vecs = 6;
    /* cost model prices (kernels/choose.c): not fitted on an Arm CPU: AVX2's
     * prices of the earlier Zen 5 fit (the nearest vector width; no Arm table
     * says whether AVX2's later Xeon + Zen 4 fit is nearer) */
    cfg->cost = (lc_cost_terms){.stream_byte = 4.25f, .pack_im2col = 6.17f,
                               .pack_patch2vec = 9.97f, .wino_elem = {11.10f, 20.00f, 23.61f}};
    /* direct_lanes per multiply-add and per value moved: not measured on an
     * Arm CPU: AVX2's of that earlier fit (before its later changes) */
    cfg->cost.dl_mac = 0.97f;
    /* the grouped band kernel (kernels/grouped.c): not yet measured on an
     * arm64 CPU (qemu runs it for correctness only), so "auto" does not
     * weigh it; algorithm="depthwise" runs it */
    cfg->cost.grouped_mac = 0.0f;
    cfg->cost.dl_move = 7.76f;
    /* the stem kernel's (kernels/stem_lanes.c): not measured on an Arm CPU:
     * AVX2's and AVX-512's */
    cfg->cost.stem_mac = 1.0f;
    cfg->postop = lc_f32_postop__neon;
    cfg->softmax = lc_f32_softmax__neon;
    cfg->pool_plane = lc_f32_pool_plane__neon;
    cfg->lrn_div = lc_f32_lrn_div__neon;
    cfg->gemv16 = lc_f32_gemv16__neon;
}
#endif
