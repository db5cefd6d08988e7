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
    /* cost model prices (kernels/choose.c): fitted by bench/fit_cost_model.py on AMD EPYC (Zen 5), 1 thread */
    cfg->cost = (lc_cost_terms){.stream_byte = 4.25f, .pack_im2col = 6.17f,
                               .pack_patch2vec = 9.97f, .wino_elem = {11.10f, 20.00f, 23.61f}};
    /* direct_lanes per multiply-add and per value its padded copy and transpose
     * move: fitted by bench/fit_cost_model.py beside the prices above, one run
     * at load ~6 (provisional until a quiet refit); the multiply-add then
     * scaled by 0.80 / 0.94 (0.97 -> 0.83) when the kernel's own loop went
     * from 77-83% to 92-97% of the FMA peak (LC_DL_STEPPED: its rows'
     * addresses were rebuilt with two multiplies each, which the compiler
     * emits on any x86 CPU; measured on the kernel alone, Intel Xeon) */
    cfg->cost.dl_mac = 0.83f;
    cfg->cost.dl_move = 7.76f;
    cfg->lrn_div = lc_f32_lrn_div__avx2;
    cfg->affine = lc_f32_affine__avx2;
    cfg->layernorm = lc_f32_layernorm_block__avx2;
    cfg->pool_plane = lc_f32_pool_plane__avx2;
    cfg->postop = lc_f32_postop__avx2;
    cfg->softmax = lc_f32_softmax__avx2;
    cfg->gemv16 = lc_f32_gemv16__avx2;
}
#endif
