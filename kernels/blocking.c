/* The blocking budgets of every driver, derived from the detected cache
 * sizes here and nowhere else.  The fractions were measured on the layers of
 * bench/perf_layers.py (AMD EPYC Zen 5: 48 KiB L1d, 1 MiB L2), where they
 * reproduce the budgets tuned there by hand: 32 KiB, 384 KiB, 512 KiB.
 * Budgets depend on the cache sizes only, never on the thread count, so
 * results stay bitwise identical for any number of threads. */
#include "internal.h"
#include "leanconv/cpu.h"

static lc_blocking lc_budgets;
static int lc_budgets_ready;

const lc_blocking *lc_blocking_get(void) {
    /* First called from the module's import (under the GIL), so no race. */
    if (!lc_budgets_ready) {
        const lc_cache_sizes *c = lc_cpu_caches();
        /* the kc-row slices of a chunk of B panels: 3/8 of L2 leaves room
         * for the A slice, the C tiles and what the other data displaces */
        lc_budgets.gemm_b_l2 = c->l2 * 3 / 8;
        /* a K sub-block of narrow B rows: 2/3 of L1d, the rest for A and C */
        lc_budgets.gemm_b_l1 = c->l1d * 2 / 3;
        /* a B panel's kb-row slice that every MR pass reads while it is in
         * L1 (lc_gemm_panels_rows' panel-major order): past a quarter of L1d
         * reading it again from L2 for each pass costs; up to gemm_b_l1 it
         * stays in L1 beside the A and C tiles */
        lc_budgets.gemm_panel_l1 = c->l1d / 4;
        /* packed A past half of L2 will not stay there: prefetch it */
        lc_budgets.gemm_a_stream = c->l2 / 2;
        /* a 1 x 1 layer's whole input, which each thread streams when the
         * threads split its output channels: past half of L2 it is read
         * from beyond L2 by every thread (lc_gemm_split_pixels) */
        lc_budgets.gemm_b_whole = c->l2 / 2;
        /* B read in place over more than a quarter of L2 is unlikely to be
         * there still (the layer before wrote it beside its own inputs, and
         * C is written beside it): the kernels prefetch it panel by panel.
         * Below that, prefetching lines already in L2 only costs (1x1
         * 96>576 @14, 75 KB: 1-6% slower) */
        lc_budgets.gemm_b_far = c->l2 / 4;
        /* packed A past a quarter of L2 comes from far (DRAM, in a model
         * whose weights are many times L2) at the call: pass-major then
         * where the rows outnumber the columns (lc_gemm_panels_rows; smaller
         * A came from nearer: MobileNetV2's 96>576 @14, 221 KB, was 6%
         * faster panel-major in the model) */
        lc_budgets.gemm_a_far = c->l2 / 4;
        /* C stored over more than a quarter of L2 is not there when the
         * stores come (B and the other rows' C pass through L2 between
         * them): as gemm_b_far */
        lc_budgets.gemm_c_far = c->l2 / 4;
        /* a Winograd block's V and Mo buffers: half of L2 */
        lc_budgets.wino_block = c->l2 / 2;
        /* a fused inverted-residual block's expanded band: L2 (smaller
         * bands, L2-resident with room to spare, lost more to the kernels'
         * per-band edges than they gained; kernels/ir_block.c); fusing pays
         * once the tensor it does not store (the expanded one, or the
         * depthwise output before a fused projection) would not stay in one
         * core's L2 between the steps beside what they read and write: from
         * 3/4 of L2 (docs/ir_block.md's tables: on an Intel Xeon, 2 MiB L2,
         * the 3x3 blocks of 1.5-1.7 MiB won 1.07-1.43x at 1 and 2 threads,
         * 0.6 MiB tied, 0.3 MiB lost; on an AMD EPYC Zen 4, 1 MiB L2, 0.6
         * and 0.7 MiB lost, 0.9x at 2 threads) */
        lc_budgets.ir_band = c->l2;
        lc_budgets.ir_fuse_min = c->l2 * 3 / 4;
        lc_budgets_ready = 1;
    }
    return &lc_budgets;
}
