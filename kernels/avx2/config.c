/* The AVX2+FMA table: GEMM 6 x 16, Winograd over 16 tiles, depthwise rows.
 * 6 x 16 is the largest tile whose accumulators (12) plus two B vectors and
 * a broadcast fit the 16 YMM registers; it runs at ~98% of the FMA peak on
 * cache-resident data (bench/ukernel_peak.py).
 * kc = 256: one 256 x 6 slice of A (6 KiB) stays in L1 while the 256-row
 * slices of the B panels stream from L2 (lc_gemm_panels). */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX2
#include "../ukernel_decls.h"
#include "tile.h"

void lc_config_avx2(lc_isa_config *cfg) {
    cfg->mr = LC_TILE_MR;
    cfg->nr = LC_TILE_NR;
    cfg->kc = LC_TILE_KC;
    cfg->gemm = lc_f32_gemm_6x16__avx2;
    cfg->gemm_pf = lc_f32_gemm_pf_6x16__avx2;
    lc_wino_fill__avx2(cfg);
    cfg->dw_row = lc_f32_dw_row__avx2;
    cfg->dw_band = lc_f32_dw_band__avx2;
    cfg->grouped_band = lc_f32_grouped_band__avx2;
    cfg->grouped_lanes = 8;
    cfg->dw_cblock = LC_DW_CBLOCK_ENTRY(lc_f32_dw_cblock__avx2, 8);
    cfg->dw3x3_plane = lc_f32_dw3x3_plane__avx2;
    /* two permutes and a blend per tap and half-plane: 2.2x the plane kernel
     * at 3x3 (1152@4), 0.9x the channel blocks at 5x5 (960@4; Zen 5, 1 thread) */
    cfg->dw_tiny = lc_f32_dw_tiny__avx2;
    cfg->dw_tiny_taps = 9;
    cfg->strided_copy = lc_f32_strided_copy__avx2;
    cfg->dl_kernel = lc_f32_dl_6x16__avx2;
    cfg->dl_lanes = 8;
    cfg->dl_cols = 16;
    cfg->dl_rows = 6;
    cfg->pw_kernel = lc_f32_pw_6x16__avx2;
    cfg->stem_kernel = lc_f32_stem_4x2__avx2;
    cfg->stem_lanes = 8;
    cfg->stem_rows = 4;
    cfg->stem_vecs = 2;
    /* cost model prices (kernels/choose.c), all of them, direct_lanes' per
     * multiply-add and per value its padded copy and transpose move too:
     * `python bench/fit_cost_model.py bench/fit_data/\*-avx2.json`, one fit of
     * two CPUs' 1-thread tables together (Intel Xeon, L2 2 MiB; AMD EPYC
     * Zen 4, L2 1 MiB).  Against the earlier Zen 5 fit (its table not kept)
     * auto's pick on those tables went from 1.039 to 1.033 of the fastest
     * (geomean; Xeon) and 1.020 to 1.015 (Zen 4): ResNeXt's grouped 128@56
     * leaves Im2Col (1.17 and 1.20) for F4, VGG's 64@224 goes from F6 to F4
     * (1.05 on both).  Off the tables, on the Zen 4: 3x3 layers of 5 x 5
     * output go from F2 (1.7-1.9x behind) to direct_lanes, grouped 128@7
     * from Im2Col (1.6-1.8x) to direct_lanes.  Left: 128@28 stays with F6
     * (1.30 and 1.10 behind F4), which no price here moves: both are priced
     * stream-bound, all of U from beyond L2 (F4 2.4 MB, F6 4.3 MB), where
     * the Xeon's 2 MiB L2 likely holds most of F4's (untested guess: price
     * only the part beyond L2) */
    cfg->cost = (lc_cost_terms){.stream_byte = 5.00f, .pack_im2col = 10.36f,
                               .pack_patch2vec = 12.00f, .wino_elem = {14.66f, 20.62f, 29.10f}};
    cfg->cost.dl_mac = 0.88f;
    /* the grouped band kernel (kernels/grouped.c), per lane multiply-add;
     * set so that auto takes it where it ran ahead (Zen 4, 1 thread, load
     * 9, best of 25 bursts): RegNet's group-width-8 layers at stride 1
     * (0.82-0.87x), 48@112/2 and 104@56/2 (0.69x, 0.93x), C/groups 2
     * (0.43x); not C/groups 16 (1.34-1.62x direct_lanes' time).  Its
     * stride-2 208@28 and 440@14 (1.09x, 1.4x behind direct_lanes) it still
     * takes: the model prices direct_lanes' stride-2 form too high there */
    cfg->cost.grouped_mac = 1.5f;
    cfg->cost.dl_move = 11.08f;
    cfg->cost.stem_mac = 1.0f;
    cfg->lrn_div = lc_f32_lrn_div__avx2;
    cfg->affine = lc_f32_affine__avx2;
    cfg->layernorm = lc_f32_layernorm_block__avx2;
    cfg->ln_row = lc_f32_ln_row__avx2;
    cfg->pool_plane = lc_f32_pool_plane__avx2;
    cfg->postop = lc_f32_postop__avx2;
    cfg->softmax = lc_f32_softmax__avx2;
    cfg->gemv16 = lc_f32_gemv16__avx2;
}
#endif
