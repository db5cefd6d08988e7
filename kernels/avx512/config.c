/* The AVX-512 table: GEMM 8 x 32, Winograd over 32 tiles, depthwise rows.
 *
 * Tile: on cache-resident data (bench/ukernel_peak.py, AMD EPYC Zen 5, k =
 * 256) 6x32, 8x32, 12x32 and 14x32 all ran at 96-100% of the FMA peak, so the
 * choice is made by the layers: 8 divides the channel counts of real networks
 * (no padded rows, where 6 wastes 3% at M = 64 and 14 wastes 9%), and 16
 * accumulators cover the FMA latency with room to spare.  (The other tiles
 * were removed, unused: in the token GEMM on an Intel Xeon 12x32 and 14x32
 * ran within +-3% of 8 x 48.)
 * kc = 256: the driver (lc_gemm_panels) keeps one 256 x 8 slice of A (8 KiB)
 * in L1 while the 256-row slices of the B panels stream from L2.
 * Optional entries: gemm_narrow (16 x 16 over two 8-row panels) takes panel
 * remainders, strided_copy the patch unwrapping's stride-1/2 row copies. */
#include "../isa_build.h"
#ifdef LC_BUILD_AVX512
#include "../ukernel_decls.h"
#include "tile.h"

void lc_config_avx512(lc_isa_config *cfg) {
    cfg->mr = LC_TILE_MR;
    cfg->nr = LC_TILE_NR;
    cfg->kc = LC_TILE_KC;
    cfg->gemm = lc_f32_gemm_8x32__avx512;
    cfg->gemm_pf = lc_f32_gemm_pf_8x32__avx512;
    cfg->gemm_tall = lc_f32_gemm_tall_24x16__avx512;
    cfg->tall_rows = 24;
    cfg->tall_cols = 16;
    lc_wino_fill__avx512(cfg);
    cfg->dw_row = lc_f32_dw_row__avx512;
    cfg->dw_band = lc_f32_dw_band__avx512;
    cfg->grouped_band = lc_f32_grouped_band__avx512;
    cfg->grouped_lanes = 16;
    cfg->dw_cblock = LC_DW_CBLOCK_ENTRY(lc_f32_dw_cblock__avx512, 16);
    cfg->dw3x3_plane = lc_f32_dw3x3_plane__avx512;
    cfg->dw3x3_planes = lc_f32_dw3x3_planes__avx512;
    cfg->strided_copy = lc_f32_strided_copy__avx512;
    cfg->lrn_div = lc_f32_lrn_div__avx512;
    cfg->affine = lc_f32_affine__avx512;
    cfg->layernorm = lc_f32_layernorm_block__avx512;
    cfg->ln_row = lc_f32_ln_row__avx512;
    cfg->postop = lc_f32_postop__avx512;
    cfg->softmax = lc_f32_softmax__avx512;
    cfg->gemv16 = lc_f32_gemv16__avx512;
    cfg->dw_tiny = lc_f32_dw_tiny__avx512;
    cfg->dw_tiny_taps = LC_DW_TINY_TAPS;
    cfg->pool_rows = lc_f32_pool_rows__avx512;
    cfg->pool_cols = lc_f32_pool_cols__avx512;
    cfg->pool_plane = lc_f32_pool_plane__avx512;
    cfg->pool_plane_tabled = 1;
    cfg->gemm_narrow = lc_f32_gemm_narrow_16x16__avx512;
    cfg->gemm_narrow_pf = lc_f32_gemm_narrow_pf_16x16__avx512;
    cfg->gemm_wide = lc_f32_gemm_wide_8x48__avx512;
    cfg->gemm_wide_pf = lc_f32_gemm_wide_pf_8x48__avx512;
    cfg->wide_nr = 48;
    cfg->pack_rows = lc_f32_pack_rows_8__avx512;   /* MR 8 (tile.h) */
    cfg->dl_kernel = lc_f32_dl_6x64__avx512;
    cfg->dl_lanes = 16;
    cfg->dl_cols = 64;
    cfg->dl_rows = 6;
    cfg->dl_kernel_half = lc_f32_dl_12x32__avx512;
    cfg->dl_rows_half = 12;
    cfg->pw_kernel = lc_f32_pw_7x64__avx512;
    cfg->pw_rows = 7;
    cfg->pw_kernel_half = lc_f32_pw_12x32__avx512;
    cfg->dl_kernel_quarter = lc_f32_dl_12x16__avx512;
    cfg->pw_kernel_quarter = lc_f32_pw_12x16__avx512;
    cfg->dl_rows_quarter = 12;
    cfg->stem_kernel = lc_f32_stem_4x6__avx512;
    cfg->stem_lanes = 16;
    cfg->stem_rows = 4;
    cfg->stem_vecs = 6;
    /* cost model prices (kernels/choose.c): fitted by bench/fit_cost_model.py on AMD EPYC (Zen 5), 1 thread */
    cfg->cost = (lc_cost_terms){.stream_byte = 8.25f, .pack_im2col = 18.88f,
                               .pack_patch2vec = 20.12f, .wino_elem = {18.79f, 32.41f, 59.11f}};
    /* direct_lanes per multiply-add and per value its padded copy and transpose
     * move.  dl_mac: `python bench/fit_cost_model.py --only dl_mac
     * bench/fit_data/\*-avx512.json`, the other prices held, on the layers auto
     * weighs it for (strided, kernel above 1 x 1) of two CPUs together; each
     * alone gave nearly the same, AMD EPYC Zen 5 0.93 and Intel Xeon 0.95.
     * The earlier 1.05 (one Zen 5 run under load) kept Im2Col on 3x3/2 layers
     * of 64 output pixels -- two whole GEMM panels, no rounding to tip it --
     * where direct_lanes ran 12-20% ahead on the Xeon (ResNet at 128 x 128:
     * 128>256@16, 256>256@16).  dl_move, from that earlier fit, stays: fitted
     * too, it came out 12.1 on the Zen 5 and 21.1 on the Xeon, and its joint
     * 15.7 tipped 256>512@8 at 2 threads (stream-bound, within 0.1%) to
     * Im2Col, which ran 1.9x behind.  A fit of every price (no --only) moved
     * Winograd F2 onto 2 x 2 and 4 x 4 planes, where it ran 1.35-2.1x behind
     * direct_lanes (the tables have no such planes): not taken */
    cfg->cost.dl_mac = 0.94f;
    /* the grouped band kernel (kernels/grouped.c), per lane multiply-add;
     * set so that auto takes it where it ran ahead (Zen 4, 1 thread, load
     * 8, best of 25 bursts): ResNeXt's 128@56 g32 (0.4-0.57x Winograd's
     * time), RegNet's 208@14 g26 (0.77x) and its stride-2 layers 48@112,
     * 104@56, 208@28 (0.73-0.89x Im2Col); not C/groups 16 (256@14 g16
     * 1.23x, 512@7 g32 1.39x, 64@56 g4 2.7x Winograd F4's time).  At C/groups
     * 8 and stride 1 it ties Winograd (0.96-1.17x): 48@56 g6 still goes to it
     * at this price, the model's Winograd side not telling 4 from 8
     * channels a group well enough */
    cfg->cost.grouped_mac = 1.35f;
    cfg->cost.dl_move = 13.66f;
    /* its 1 x 1 form (kernels/pointwise_lanes.c, 7 x 64 pixels by channels):
     * against the GEMMs' pixel panels (14 x 14: 208 lanes for 196 pixels; 7 x
     * 7: 49 whole) it pays this per multiply-add plus the output transpose
     * (dl_move a value, 13.66 / K a multiply-add), so it takes 14 x 14 layers
     * of K above ~170 and 7 x 7 of K above ~680.  Chosen on the 1 x 1 rows
     * of the three tables (`python bench/choice_by_cpu.py --kernel 1
     * bench/fit_data/\*-avx512.json`): at 0.98 every pick is within 1.05 of
     * the fastest (Xeon 2048>512@7 direct_lanes 1.05, Zen 5 512>2048@7
     * Im2Col 1.05; Zen 4 all 1.00), where 0.97 takes 512>2048@7 too (Zen 4
     * 1.18 behind) and 0.99 changes no pick */
    cfg->cost.pw_mac = 0.98f;
    /* direct_lanes' stem mode (kernels/stem_lanes.c) per multiply-add, set by
     * hand (not fitted) from runs of the stems alone against Im2Col and
     * Patch2Vec (Intel Xeon, 1 and 2 threads, interleaved, load ~4): at 1.0,
     * with its input copy priced at dl_move, the model puts the 3x3/2 stems
     * (3>64, 3>32, 3>16 at 224 and 128) at 0.66-0.87 of Im2Col, where they
     * ran at 0.83-1.0 of it, and keeps ConvNeXt's 4x4/4 patchify (priced
     * 1.12, ran 1.1-1.2x behind) with Im2Col */
    cfg->cost.stem_mac = 1.0f;
}
#endif
