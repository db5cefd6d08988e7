/* Winograd F(m x m, 3 x 3), m in {2, 4, 6}, alpha = m + 2.
 *
 * Weights: U[xi] = G g G^T for every (out, in) channel pair, done in double at
 * plan time and packed per xi like GEMM weights (MR panels over K = Cg).
 * Input: tiles of m x m outputs, read as alpha x alpha input windows.  A block
 * of TB panels (NR tiles each) is processed at a time, by one thread:
 *   1. input transform of each tile window -> V[xi][c][NR]: when the ISA has
 *      the strip transform, from a phase strip (each run's image rows copied
 *      contiguously, zero padded; the transform gathers stride m with
 *      permutes), else from a lanes-innermost gather
 *   2. alpha^2 GEMMs  Mo[xi] = U[xi] * V[xi]  (Mg x tiles of the block)
 *   3. output transform with bias and activation, scattered into y; a tile
 *      whose transform results overflowed to Inf/NaN from finite inputs has
 *      its transform result redone in double first (winograd_exact.c)
 * so the workspace is bounded by the block, not the image.
 *
 * The lean algorithms (LC_ALGO_WINOGRAD_F2_LEAN, _F4_LEAN) keep the raw
 * filters instead of U, laid out [CW-channel panel][c][tap][CW], and run the
 * channel-lanes GEMM only: for each panel of CW output channels a thread
 * takes, step 2 first transforms the panel's filters into U (all alpha^2
 * points, Cg x CW each: a per-thread buffer, isa->wino_weight) and then
 * runs the panel's alpha^2 GEMMs from it.  The packing is the raw size
 * (Winograd's is alpha^2/9 of it: 1.8x at F2, 4x at F4), for the transform
 * done again in every block of every call: ~Mg x Cg x alpha^2 values
 * against the GEMMs' Mg x Cg x alpha^2 x tiles multiply-adds, so it pays
 * where a memory budget would otherwise keep a deep layer on direct_lanes
 * or a smaller Winograd size (ResNet's 256@14 and 512@7).
 *
 * Where F4's time goes on ResNet-18's 64>64 @56 and 128>128 @28 (AVX-512,
 * 1 thread, AMD EPYC Zen 4, 1 MiB L2, host load 7-9; cycle counters around
 * the three steps of each block, and perf's samples): the GEMMs 66% and 73%
 * (their 8x32 kernels near the FMA peak; the driver, the 4-tile and 17-tile
 * remainder panels the rest), the input transform 19% and 13%, the output
 * transform with its scatter 15% and 14%.  What did not pay (this tree
 * against itself or main interleaved in one process, thread CPU time,
 * medians of 101 pairs; the interquartile ranges were +-7-10% on the
 * loaded host): prefetching the next 1-4 channels' image rows in the direct
 * input transform (0.97-1.00); V and Mo laid out with the alpha^2 points
 * innermost, [panel][channel][xi][NR] with a line of skew, so each
 * transform reads or writes one contiguous run and the GEMMs read B rows
 * 36 NR apart (1.03-1.10 slower, --burst 10 1.10-1.21); the GEMMs and
 * output transform of a block run per 32 output channels, so Mo is read
 * back before U and V evict it from a 1 MiB L2 (0.94-0.98 in six runs,
 * each inside its spread). */
#include <string.h>
#include "internal.h"
#include "winograd_transforms.h"

typedef struct {
    int64_t m, alpha, xi;          /* tile output size, window size, alpha^2 */
    int64_t tiles_h, tiles_w, tiles, npanels;
    int64_t tb;                    /* panels per block */
    int64_t nblocks;
    int64_t blocks_total;          /* N * groups * nblocks */
    int split;                     /* LC_WINO_BY_BLOCKS, LC_WINO_PHASED or LC_WINO_BY_CHANNELS */
    int64_t cchunks, mchunks;      /* channel ranges of the input (phased) and output phases */
    int64_t v_stride;              /* phased: floats between the blocks' V buffers */
    int64_t shared_bytes;          /* phased: the V buffers of every block */
    int64_t v_xs, mo_xs;           /* floats between the alpha^2 points of V and of Mo */
    int64_t v_floats, mo_floats, d_floats, o_floats, slice_bytes;
    int64_t lean_kc;               /* lean: input channels a weight transform takes */
    int64_t u_floats;              /* lean: U of a panel's lean_kc channels, alpha^2 x
                                    * lean_kc x CW, and a CW x NR partial block (else 0) */
} lc_wino_geom;

/* How a call's work goes to the threads (lc_wino_geometry): whole blocks,
 * input to output; or, with few blocks, two phases, every block's input
 * transform by channel ranges into shared V buffers, then GEMMs and output
 * transforms by output-channel ranges; or one phase in which every thread
 * transforms each block's whole input into its own V and runs the GEMMs
 * and output transforms of its output channels (lc_wino_by_channels). */
enum { LC_WINO_BY_BLOCKS = 0, LC_WINO_PHASED = 1, LC_WINO_BY_CHANNELS = 2 };

#if defined(__GNUC__) || defined(__clang__)
#define LC_WINO_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#else
#define LC_WINO_PREFETCH_L2(p) ((void)(p))
#endif

#ifndef LC_WINO_XI_SKEW
#define LC_WINO_XI_SKEW 16 /* floats: one 64-byte line */
#endif

/* the size of a Winograd algorithm (only ever called with one) */
static int lc_wino_variant(int algorithm) {
    const int v = lc_wino_variant_of(algorithm);
    return v < 0 ? 0 : v;
}

int lc_wino_channel_lanes(const lc_conv_desc *d) {
    /* Output channels in the lanes for deep layers (few tiles per image in
     * practice) when a CW-channel slice of U (Cg x CW) fits L1 beside the
     * transformed input: the block's tile rows then reread it from L1.
     * Decided from the weights' shape and the ISA alone, since the packing
     * depends on it (so the bits never depend on the image or the threads). */
    const lc_isa_config *isa = d->isa;
    const int64_t Mg = d->M / d->groups, Cg = d->C / d->groups;
    if (lc_wino_is_lean(d->algorithm)) return 1; /* its only GEMM (lc_wino_lean_supports) */
    /* Only where its register block is as large as the GEMM tile's: AVX2's
     * 4 x 16 (16 registers) measured 25% slower than its 6 x 16 tile. */
    return isa->wino_cl_gemm && isa->wino_cl_rows * isa->wino_cl_cols >= isa->mr * isa->nr &&
           Mg % isa->wino_cl_cols == 0 && Cg >= LC_WINO_CL_MIN_C &&
           Cg * isa->wino_cl_cols * (int64_t)sizeof(float) <= LC_WINO_CL_MAX_SLICE;
}

int lc_wino_lean_supports(const lc_conv_desc *d) {
    const lc_isa_config *isa = d->isa;
    const int v = lc_wino_variant(d->algorithm);
    return isa && v >= 0 && v < 2 && isa->wino_cl_gemm && isa->wino_weight[v] &&
           isa->wino_cl_cols > 0 && (d->M / d->groups) % isa->wino_cl_cols == 0;
}

/* Where tap `tap` (3 * row + column) of the filter of output channel o and
 * input channel c of group grp lies in a lean packing. */
static size_t lc_wino_lean_index(const lc_conv_desc *d, int64_t grp, int64_t o, int64_t c,
                                 int64_t tap) {
    const int64_t Mg = d->M / d->groups, Cg = d->C / d->groups, cw = d->isa->wino_cl_cols;
    return (size_t)(((grp * Mg / cw + o / cw) * Cg + c) * 9 + tap) * (size_t)cw + (size_t)(o % cw);
}

/* Output channels per panel of the packed U: MR (GEMM A panels) or CW. */
static int64_t lc_wino_u_panel(const lc_conv_desc *d) {
    return lc_wino_channel_lanes(d) ? d->isa->wino_cl_cols : d->isa->mr;
}

size_t lc_wino_u_index(const lc_conv_desc *d, int64_t x, int64_t grp, int64_t o, int64_t c) {
    const int64_t Mg = d->M / d->groups, Cg = d->C / d->groups, pw = lc_wino_u_panel(d);
    int ok = 1;
    const size_t base = (size_t)((x * d->groups + grp) * lc_round_up(Mg, pw, &ok) * Cg);
    if (pw != d->isa->mr) /* channel lanes: [panel][c][CW] */
        return base + (size_t)((o / pw * Cg + c) * pw + o % pw);
    return base + lc_packed_a_offset((size_t)Mg, (size_t)Cg, (size_t)pw, (size_t)d->isa->kc,
                                     (size_t)o, (size_t)c);
}

/* How far over its share of the tiles whole blocks may leave the busiest
 * thread before the two-phase split costs less.  The phases cost a second
 * barrier and hand (T-1)/T of V between cores: on an Intel Xeon (2 cores,
 * 2 MiB L2 each) whole blocks won at 2 threads up to 1.78x the share
 * (256>256 @12 x 12 F2, 32 + 4 tiles: 0.449 ms against 0.443 phased), and by
 * 20-28% at 1.02-1.31x (64>64 @56 F4 0.334 -> 0.253 ms, 128>128 @28 F2
 * 0.40 -> 0.33, 256>256 @14 F2, 32 + 17 tiles, 0.63 -> 0.45); one half,
 * short of that break-even, for CPUs whose cores hand over data faster. */
#define LC_WINO_WHOLE_SLACK 0.5

/* The slack where the threads would get fewer than LC_WINO_FEW_BLOCKS
 * blocks each on the MR-panel GEMM with NR >= LC_WINO_FEW_MIN_NR lanes and
 * at least LC_WINO_FEW_MIN_M output channels: one block or two a thread, so
 * every block's V stays in its core's L2 between the phases (blocks are
 * sized to half of L2), and the hand-over is small next to the GEMM work
 * it feeds (Mg multiply-adds per value), while a thread with a full panel
 * of tiles beside one with just over half of one waits on it.  2 threads,
 * AMD EPYC Zen 4 (AVX-512, 1 MiB L2), each split forced in turn in one
 * process (40 rounds), whole -> phased at 1.31x the share (32 + 17 tiles):
 * 128>128 @28 F4 (ResNet-18's layer2) 0.457 -> 0.390 ms on a quiet host,
 * 0.507 -> 0.446 on a busy one; 192>192 @28 F4 1.006 -> 0.821 and 1.168 ->
 * 0.990; 128>128 @42 F6 1.24x.  Where it does not hold, whole blocks stay:
 * with 64 output channels the phases won 9% on a quiet host and lost 32% on
 * a busy one (64>64 @40 F4), 96 tied; AVX2's 16-lane panels (the same
 * layers forced to AVX2) tied or lost: 128>128 @28 F4 0.797 phased against
 * 0.809, 64>64 @40 F4 0.557 against 0.454, 128>128 @14 F2 by channels
 * 0.409 against 0.330; with 3-4 blocks a thread whole blocks stay ahead, as
 * on the Xeon above (64>64 @56 F4 0.475 against 0.528 phased, 128>128 @28
 * F2 0.590 against 0.638), and the channel-lanes GEMM keeps the wider
 * slack (256>256 @14 F2, 32 + 17 tiles: 0.722 ms whole, 0.752 phased; on
 * the Xeon 0.45 against 0.63).  The hand-over crosses the cores, so it
 * costs more where they are far apart: in the minutes the host put the two
 * vCPUs on different core complexes (bench/host_state.py's probe at 1.2 us,
 * not 0.4), 128>128 @28 F4 ran 0.755 ms phased against 0.602 whole, while
 * in the other probes of the same ten minutes phased won 0.44-0.46 against
 * 0.49-0.52. */
#define LC_WINO_FEW_BLOCKS 3
#define LC_WINO_FEW_SLACK 0.1
#define LC_WINO_FEW_MIN_NR 32
#define LC_WINO_FEW_MIN_M 128

/* Tiles the busiest of `threads` threads transforms when the images' blocks
 * of tb panels go out whole, thread s taking blocks [n*s/T, n*(s+1)/T) of
 * the n (the pool's static ranges; image-major, so a range's blocks are in
 * image order). */
static int64_t lc_wino_busiest_tiles(const lc_wino_geom *g, int64_t nr, int64_t tb,
                                     int64_t images, int64_t threads) {
    const int64_t nb = lc_div_up(g->npanels, tb), n = images * nb, span = tb * nr;
    int64_t most = 0;
    for (int64_t s = 0; s < threads; s++) {
        int64_t tiles = 0;
        for (int64_t i = n * s / threads; i < n * (s + 1) / threads; i++) {
            const int64_t b = i % nb;
            tiles += lc_min64(g->tiles, (b + 1) * span) - b * span;
        }
        most = lc_max64(most, tiles);
    }
    return most;
}

/* Output-channel ranges the threads share when they split by channels: one
 * a thread, in blocks of 2*MR rows (lc_row_chunks) or whole CW panels
 * (lc_wino_mchunks_of: how many such blocks Mg channels make). */
static int64_t lc_wino_mchunks_of(const lc_conv_desc *d, int64_t Mg) {
    const int64_t unit = lc_wino_channel_lanes(d) ? d->isa->wino_cl_cols : 2 * d->isa->mr;
    return lc_div_up(Mg, unit); /* units of output channels */
}

static int64_t lc_wino_mchunks(const lc_conv_desc *d) {
    return lc_max64(1, lc_min64(d->nthreads, lc_wino_mchunks_of(d, d->M / d->groups)));
}

/* Whether the threads, where the phases would split a call (few blocks),
 * should rather each transform every block's whole input and take a range
 * of the output channels (LC_WINO_BY_CHANNELS).  Both read 1/T of U; by
 * channels there is no second region, and the other cores hand a thread
 * the input, not (T-1)/T of V (4x the input at F2, 2.25x at F4), for
 * (T-1)/T of the input transforms done again: a few adds per point, input
 * channel and tile against the Mg/T multiply-adds of the thread's GEMMs.
 * Kept to layers with more output channels than tiles (all those measured)
 * and where every thread gets a channel range (lc_wino_mchunks).  Rows are
 * independent: the same bits.  2 threads, Intel Xeon, load 3-5 (other
 * helpers): in ResNet-50 128 (best of 40 runs, two runs each way)
 * 256>256 @8 F2 0.259 -> 0.239 ms; alone, caches flushed between calls
 * (p10 of 200-300 calls, interleaved in one process) 256>256 @14 F4
 * 523 -> 480 and 577 -> 570 us, 256>256 @8 F2 285 -> 260 and 297 -> 276,
 * 32>128 @15 F4 unchanged; but 512>512 @7 F2 (16 MiB of U) 767 -> 797 at
 * p10 and 938 -> 1143 at the median (no model seen takes F2 for it: ResNet-50
 * 224 runs it direct_lanes).  Not instead of whole blocks, though
 * there each thread reads all of U: 128>128 @16 F2 (64 tiles, 2 panels)
 * went from 0.174 to 0.178 ms in the model, 0-5% slower alone; 256>256
 * @14 F2 unchanged. */
static int lc_wino_by_channels(const lc_conv_desc *d, const lc_wino_geom *g, int64_t images,
                               int64_t threads, int *ok) {
    return threads > 1 && g->split == LC_WINO_PHASED &&
           d->M / d->groups > lc_mul(images, g->tiles, ok) && lc_wino_mchunks(d) >= threads;
}

static void lc_wino_geometry(const lc_conv_desc *d, lc_wino_geom *g, int *ok) {
    const int64_t nr = d->isa->nr, Cg = d->C / d->groups, Mg = d->M / d->groups;
    g->m = lc_wino_m[lc_wino_variant(d->algorithm)];
    g->alpha = g->m + 2;
    g->xi = g->alpha * g->alpha;
    g->tiles_h = lc_div_up(d->OH, g->m);
    g->tiles_w = lc_div_up(d->OW, g->m);
    g->tiles = lc_mul(g->tiles_h, g->tiles_w, ok);
    g->npanels = lc_div_up(g->tiles, nr);
    /* Panels per block: as many as fit the budget, but leave enough blocks to
     * give every thread work. */
    int64_t per_panel = lc_mul(lc_mul(lc_mul(g->xi, nr, ok), lc_add(Cg, Mg, ok), ok), 4, ok);
    const int64_t budget_tb = lc_max64(1, lc_blocking_get()->wino_block / lc_max64(per_panel, 1));
    int64_t tb = budget_tb;
    int64_t images = lc_mul(d->N, d->groups, ok);
    const int64_t threads = lc_max64(1, d->nthreads);
    int64_t share = lc_max64(1, lc_mul(g->npanels, images, ok) / threads);
    tb = lc_max64(1, lc_min64(tb, lc_min64(share, g->npanels)));
    /* Few blocks for the threads (small images, or a block count that does
     * not split evenly): whole blocks per thread would leave threads idle,
     * so the work goes in two phases -- the input transforms of every block
     * shared out by channel ranges, then the GEMMs and output transforms
     * shared out by output-channel ranges.  The V buffers of all (at most
     * 4 x threads) blocks then live at once: bounded, but more than one
     * block's worth.  Rows and channels are independent: same bits.
     * But the phases cost a second barrier and hand (T-1)/T of V to the
     * other cores, so whole blocks stay where some block size (at most the
     * budget's) gives no thread more than LC_WINO_WHOLE_SLACK over its
     * share of the tiles: 64>64 @56 x 56, F4 is 196 tiles in 7 panels, the
     * last of 4 tiles, so one panel a block is 96 + 100 tiles on 2 threads;
     * 256>256 @14 x 14, F2 is 32 + 17. */
    g->split = LC_WINO_BY_BLOCKS;
    int few_blocks_phased = 0; /* phased by LC_WINO_FEW_SLACK alone */
    if (threads > 1 && lc_mul(images, lc_div_up(g->npanels, tb), ok) < 4 * threads) {
        int64_t best = tb, best_tiles = INT64_MAX;
        for (int64_t c = tb; c >= 1; c--) {
            const int64_t busiest = lc_wino_busiest_tiles(g, nr, c, images, threads);
            if (busiest < best_tiles) best = c, best_tiles = busiest;
        }
        const int64_t total = lc_mul(images, g->tiles, ok);
        const int few = lc_mul(images, lc_div_up(g->npanels, best), ok) < LC_WINO_FEW_BLOCKS * threads &&
                        !lc_wino_channel_lanes(d) && nr >= LC_WINO_FEW_MIN_NR && Mg >= LC_WINO_FEW_MIN_M;
        const double over = (double)best_tiles * (double)threads / (double)total - 1.0;
        if (over <= (few ? LC_WINO_FEW_SLACK : LC_WINO_WHOLE_SLACK)) {
            tb = best;
        } else {
            g->split = LC_WINO_PHASED;
            few_blocks_phased = over <= LC_WINO_WHOLE_SLACK;
        }
    }
    /* Not where the few-blocks slack alone went phased at F4 and up: every
     * thread redoing the 6 x 6 input transforms (11% of 128>128 @28 F4's
     * one-thread time) cost more than the phases' hand-over: 128>128 @28 F4
     * 0.520 and 0.568 ms by channels against 0.390 and 0.446 phased,
     * 192>192 @28 F4 0.962 against 0.821 (Zen 4, as above).  F2's few adds
     * per point stay cheaper: 128>128 @14 F2 0.220 by channels, 0.306
     * phased, 0.249 whole. */
    if (!(few_blocks_phased && lc_wino_variant(d->algorithm) > 0) &&
        lc_wino_by_channels(d, g, images, threads, ok)) {
        g->split = LC_WINO_BY_CHANNELS;
        /* no block count to share out: blocks as large as the budget allows,
         * so each thread reads its slice of U once per block */
        tb = lc_min64(budget_tb, g->npanels);
    }
    g->tb = tb;
    g->nblocks = lc_div_up(g->npanels, g->tb);
    g->blocks_total = lc_mul(images, g->nblocks, ok);
    g->cchunks = g->mchunks = 1;
    if (g->split == LC_WINO_PHASED)
        g->cchunks = lc_max64(1, lc_min64(Cg, lc_div_up(4 * (int64_t)d->nthreads, g->blocks_total)));
    if (g->split != LC_WINO_BY_BLOCKS)
        g->mchunks = lc_wino_mchunks(d);
    /* By channels, two ranges a thread where each keeps 2 units or more: a
     * thread that starts late (a worker woken from sleep, or whose CPU runs
     * another process) then has half its share taken by the others, not all
     * of it (512>512 @7 F2, called now and then: median 1.5 -> 3.0 ms with
     * one range a thread, the caller running both).  A thread that takes a
     * block's next range keeps its V (lc_wino_range_item), so the ranges
     * cost no transforms over the one-range split. */
    if (g->split == LC_WINO_BY_CHANNELS && 2 * g->mchunks <= lc_wino_mchunks_of(d, Mg) / 2)
        g->mchunks *= 2;
    /* A cache line more than a point's floats between the alpha^2 points:
     * the transforms write (read) one vector of every point in turn, and at
     * a power-of-two distance (TB * Cg * NR floats, 8 KiB and more) all
     * alpha^2 of them fall in one L1 set, more than it has ways. */
    g->v_xs = lc_add(lc_mul(lc_mul(g->tb, Cg, ok), nr, ok), LC_WINO_XI_SKEW, ok);
    /* a lean call transforms each panel's outputs once its GEMMs are done:
     * Mo holds one panel of CW channels, not Mg */
    const int64_t mo_rows = lc_wino_is_lean(d->algorithm) ? d->isa->wino_cl_cols : Mg;
    g->mo_xs = lc_add(lc_mul(lc_mul(g->tb, mo_rows, ok), nr, ok), LC_WINO_XI_SKEW, ok);
    g->v_floats = lc_mul(g->xi, g->v_xs, ok);
    g->mo_floats = lc_mul(g->xi, g->mo_xs, ok);
    g->d_floats = g->xi * nr;
    g->o_floats = g->m * g->m * nr;
    g->lean_kc = g->u_floats = 0;
    if (lc_wino_is_lean(d->algorithm)) {
        /* a panel's U of lean_kc channels in an eighth of L2 (a quarter of
         * the block's budget): with all Cg, U (590 KB at 256 channels, F4)
         * and V (as much) thrashed a 1 MiB L2, and V came back from L3 for
         * every panel (256>256 @14 F4 1.40 ms against 0.91 with U packed) */
        const int64_t cw = d->isa->wino_cl_cols;
        const int64_t per_c = lc_mul(lc_mul(g->xi, cw, ok), (int64_t)sizeof(float), ok);
        g->lean_kc = lc_min64(Cg, lc_max64(16, lc_blocking_get()->wino_block / 4 / per_c));
        g->u_floats = lc_add(lc_mul(lc_mul(g->xi, g->lean_kc, ok), cw, ok), lc_mul(cw, nr, ok), ok);
    }
    /* per thread: its V (not phased), Mo, gather and output scratch, and a
     * lean call's panel of U */
    g->v_stride = lc_aligned_floats_bytes(g->v_floats, ok) / (int64_t)sizeof(float);
    const int shared_v = g->split == LC_WINO_PHASED;
    g->slice_bytes = lc_add(lc_add(shared_v ? 0 : lc_aligned_floats_bytes(g->v_floats, ok),
                                   lc_aligned_floats_bytes(g->mo_floats, ok), ok),
                            lc_add(lc_aligned_floats_bytes(g->d_floats, ok),
                                   lc_aligned_floats_bytes(g->o_floats, ok), ok), ok);
    if (g->u_floats) g->slice_bytes = lc_add(g->slice_bytes, lc_aligned_floats_bytes(g->u_floats, ok), ok);
    g->shared_bytes =
        shared_v ? lc_mul(g->blocks_total, g->v_stride * (int64_t)sizeof(float), ok) : 0;
}

/* Work items of the busiest parallel loop of a call (what sizes the threads). */
static int64_t lc_wino_items(const lc_wino_geom *g, int *ok) {
    if (g->split == LC_WINO_BY_BLOCKS) return g->blocks_total;
    if (g->split == LC_WINO_BY_CHANNELS) return lc_mul(g->blocks_total, g->mchunks, ok);
    return lc_mul(g->blocks_total, lc_max64(g->cchunks, g->mchunks), ok);
}

int64_t lc_winograd_workspace(const lc_conv_desc *d, int *ok) {
    lc_wino_geom g;
    lc_wino_geometry(d, &g, ok);
    if (!*ok) return 0;
    return lc_add(g.shared_bytes,
                  lc_mul(lc_threads_used(d->nthreads, lc_wino_items(&g, ok), lc_conv_macs(d)), g.slice_bytes, ok), ok);
}

int lc_winograd_split(const lc_conv_desc *d) {
    int ok = 1;
    lc_wino_geom g;
    lc_wino_geometry(d, &g, &ok);
    return ok ? g.split : -1;
}

int64_t lc_winograd_blocks(const lc_conv_desc *d, int64_t *items) {
    int ok = 1;
    lc_wino_geom g;
    lc_wino_geometry(d, &g, &ok);
    *items = lc_wino_items(&g, &ok);
    return g.nblocks;
}

int64_t lc_winograd_packed_floats(const lc_conv_desc *d, int *ok) {
    if (lc_wino_is_lean(d->algorithm)) /* the raw filters (Mg a multiple of CW) */
        return lc_mul(lc_mul(d->M, d->C / d->groups, ok), 9, ok);
    int64_t alpha = lc_wino_m[lc_wino_variant(d->algorithm)] + 2;
    int64_t Mg = d->M / d->groups, Cg = d->C / d->groups;
    int64_t per_xi = lc_mul(lc_mul(d->groups, lc_round_up(Mg, lc_wino_u_panel(d), ok), ok), Cg, ok);
    return lc_mul(alpha * alpha, per_xi, ok);
}

/* U = G g G^T of one 3 x 3 filter (g[3 * row + column]) at every alpha^2
 * point, in double (so a packed U is rounded once). */
static void lc_wino_transform_filter(int v, const float *g, double *u) {
    const double *G = v == 0 ? &lc_wino_f2_g[0][0] : v == 1 ? &lc_wino_f4_g[0][0] : &lc_wino_f6_g[0][0];
    const int64_t alpha = lc_wino_m[v] + 2;
    double t[8][3]; /* G g, alpha x 3 */
    for (int64_t i = 0; i < alpha; i++)
        for (int k = 0; k < 3; k++)
            t[i][k] = G[i * 3 + 0] * g[0 * 3 + k] + G[i * 3 + 1] * g[1 * 3 + k] +
                      G[i * 3 + 2] * g[2 * 3 + k];
    for (int64_t i = 0; i < alpha; i++)
        for (int64_t j = 0; j < alpha; j++)
            u[i * alpha + j] = t[i][0] * G[j * 3 + 0] + t[i][1] * G[j * 3 + 1] + t[i][2] * G[j * 3 + 2];
}

void lc_wino_u_double(const lc_conv_desc *d, const float *packed, int64_t grp, int64_t o,
                      int64_t c, double *u) {
    const int v = lc_wino_variant(d->algorithm);
    const int64_t alpha = lc_wino_m[v] + 2;
    if (lc_wino_is_lean(d->algorithm)) {
        float g[9];
        for (int64_t tap = 0; tap < 9; tap++) g[tap] = packed[lc_wino_lean_index(d, grp, o, c, tap)];
        lc_wino_transform_filter(v, g, u);
        return;
    }
    for (int64_t x = 0; x < alpha * alpha; x++) u[x] = packed[lc_wino_u_index(d, x, grp, o, c)];
}

void lc_winograd_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    const int v = lc_wino_variant(d->algorithm);
    const int64_t alpha = lc_wino_m[v] + 2;
    const int64_t Mg = d->M / d->groups, Cg = d->C / d->groups;
    int ok = 1;
    /* Zero first: rows past Mg in the last panel stay zero. */
    memset(packed, 0, (size_t)lc_winograd_packed_floats(d, &ok) * sizeof(float));
    for (int64_t o = 0; o < d->M; o++) {
        const int64_t grp = o / Mg, ol = o % Mg;
        for (int64_t c = 0; c < Cg; c++) {
            const float *g = w + (o * Cg + c) * 9;
            if (lc_wino_is_lean(d->algorithm)) {
                for (int64_t tap = 0; tap < 9; tap++)
                    packed[lc_wino_lean_index(d, grp, ol, c, tap)] = g[tap];
                continue;
            }
            double u[64];
            lc_wino_transform_filter(v, g, u);
            for (int64_t x = 0; x < alpha * alpha; x++)
                packed[lc_wino_u_index(d, x, grp, ol, c)] = (float)u[x];
        }
    }
}

typedef struct {
    const lc_conv_desc *d;
    const float *x, *packed, *bias, *res;
    float *y;
    char *ws;
    lc_wino_geom g;
    int64_t mpad;      /* output channels of a group in the packed U, padded */
    int cl;            /* channel-lanes GEMM (lc_wino_channel_lanes) */
    int lean;          /* packed holds the raw filters (lc_wino_lean_index) */
    /* By channels: the block whose whole input transform each thread's V holds */
    lc_kept_tags v_block;
    /* tag 0: the thread has run a block's GEMMs this call (U then in its L2
     * when U fits there: lc_wino_u_far) */
    lc_kept_tags u_warm;
    int64_t u_bytes;   /* the group's U, all alpha^2 points */
} lc_wino_ctx;

/* A run of a panel's tiles that lie on one tile row: tiles (th, tw0 + l) in
 * lanes lane0 + l, l < count.  Gather and scatter work a run at a time, so
 * each (window row, column) of the run is one strided copy (stride m). */
typedef struct {
    int64_t th, tw0, lane0, count;
} lc_tile_run;

static int64_t lc_wino_runs(const lc_wino_geom *g, int64_t t0, int64_t lanes, lc_tile_run *runs) {
    int64_t n = 0, l = 0;
    while (l < lanes) {
        const int64_t th = (t0 + l) / g->tiles_w, tw = (t0 + l) % g->tiles_w;
        const int64_t count = lc_min64(lanes - l, g->tiles_w - tw);
        runs[n].th = th;
        runs[n].tw0 = tw;
        runs[n].lane0 = l;
        runs[n].count = count;
        n++;
        l += count;
    }
    return n;
}

/* The alpha x alpha windows of a run's tiles in one channel plane, into d
 * (alpha x alpha x NR, lanes innermost); zero outside the image. */
static void lc_wino_gather_run(const lc_conv_desc *dd, const lc_wino_geom *g, const float *plane,
                               const lc_tile_run *r, size_t nr, float *d) {
    const int64_t a = g->alpha, m = g->m, H = dd->H, W = dd->W;
    const int64_t y0 = r->th * m - dd->pad_t, x0 = r->tw0 * m - dd->pad_l;
    for (int64_t i = 0; i < a; i++) {
        const int64_t iy = y0 + i;
        float *di = d + (size_t)(i * a) * nr + r->lane0;
        if (iy < 0 || iy >= H) {
            for (int64_t j = 0; j < a; j++)
                memset(di + (size_t)j * nr, 0, (size_t)r->count * sizeof(float));
            continue;
        }
        const float *row = plane + iy * W;
        for (int64_t j = 0; j < a; j++)
            lc_copy_strided(di + (size_t)j * nr, row, W, x0 + j, m, r->count);
    }
}

/* The panel's runs cut into the segments of lc_wino_input_direct_fn: per
 * vector of vl lanes, the part of each run inside it.  Returns vseg's end. */
static int32_t lc_wino_segments(const lc_conv_desc *dd, const lc_wino_geom *g,
                                const lc_tile_run *runs, int64_t nruns, int64_t lanes, int64_t vl,
                                lc_wino_seg *segs, int32_t *vseg) {
    const int64_t m = g->m, W = dd->W;
    int32_t n = 0;
    for (int64_t q = 0; q * vl < lanes; q++) {
        vseg[q] = n;
        for (int64_t r = 0; r < nruns; r++) {
            const int64_t a = lc_max64(runs[r].lane0, q * vl) - q * vl;
            const int64_t b = lc_min64(runs[r].lane0 + runs[r].count, (q + 1) * vl) - q * vl;
            if (a >= b) continue;
            lc_wino_seg *sg = &segs[n++];
            sg->row0 = runs[r].th * m - dd->pad_t;
            sg->xoff = (runs[r].tw0 + q * vl - runs[r].lane0) * m - dd->pad_l;
            sg->lo = (int32_t)lc_max64(m * a, -sg->xoff);
            sg->hi = (int32_t)lc_max64(sg->lo, lc_min64(m * b, W - sg->xoff));
            sg->end = (int32_t)(b - 1);
            sg->halo = 0;
            for (int j = 0; j < 2; j++) {
                const int64_t col = sg->xoff + m * b + j;
                sg->halo |= (col >= 0 && col < W) << j;
            }
        }
        vseg[q + 1] = n;
    }
    return n;
}

/* A run's windows in one channel plane into the phase strip of
 * lc_wino_input_strip_fn (alpha rows of (m + 2) * NR floats = the gather
 * buffer): per window row, the run's m * count image columns in one copy,
 * and the two columns after its last tile; zero outside the image.  Returns
 * the run's bit for `ends`. */
static uint64_t lc_wino_strip_run(const lc_conv_desc *dd, const lc_wino_geom *g,
                                  const float *plane, const lc_tile_run *r, size_t nr,
                                  float *strip) {
    const int64_t a = g->alpha, m = g->m, H = dd->H, W = dd->W;
    const int64_t y0 = r->th * m - dd->pad_t, x0 = r->tw0 * m - dd->pad_l;
    const int64_t e = r->lane0 + r->count - 1, xe = x0 + m * r->count; /* last tile's column m */
    const size_t lds = (size_t)a * nr;
    for (int64_t k = 0; k < a; k++) {
        const int64_t iy = y0 + k;
        float *main = strip + (size_t)k * lds + (size_t)(m * r->lane0);
        float *h0 = strip + (size_t)k * lds + (size_t)m * nr + e, *h1 = h0 + nr;
        if (iy < 0 || iy >= H) {
            memset(main, 0, (size_t)(m * r->count) * sizeof(float));
            *h0 = *h1 = 0.0f;
            continue;
        }
        const float *row = plane + iy * W;
        lc_copy_strided(main, row, W, x0, 1, m * r->count);
        *h0 = xe >= 0 && xe < W ? row[xe] : 0.0f;
        *h1 = xe + 1 >= 0 && xe + 1 < W ? row[xe + 1] : 0.0f;
    }
    return (uint64_t)1 << e;
}

/* The m x m outputs of a run's tiles (o: m rows of m * NR floats, laid out
 * like image rows) into one output plane, clipped at the bottom and right
 * edges: per row one contiguous copy.  With `post` the post-op runs over
 * each output row segment right after it is written, adding the residual
 * plane ro (laid out like yo) when there is one.  A residual that is yo
 * itself is added on the way instead (each element read before it is
 * overwritten) and the post-op only activates. */
static void lc_wino_scatter_run(const lc_conv_desc *dd, const lc_wino_geom *g, const float *o,
                                const lc_tile_run *r, size_t nr, float *yo, const float *ro,
                                int post) {
    const int64_t m = g->m, OW = dd->OW;
    const int64_t oy0 = r->th * m, ox0 = r->tw0 * m;
    const int64_t rows = lc_min64(m, dd->OH - oy0);
    const int64_t seg = lc_min64(r->count * m, OW - ox0);
    for (int64_t i = 0; i < rows; i++) {
        float *yrow = yo + (oy0 + i) * OW + ox0;
        const float *rrow = ro ? ro + (oy0 + i) * OW + ox0 : NULL;
        const float *oi = o + (size_t)(i * m) * nr + (size_t)(r->lane0 * m);
        if (ro == yo) { /* in place: added here */
            for (int64_t k = 0; k < seg; k++) yrow[k] += oi[k];
            if (post) dd->isa->postop(yrow, yrow, (size_t)seg, NULL, 0.0f, &dd->epilogue);
        } else {
            memcpy(yrow, oi, (size_t)seg * sizeof(float));
            if (post) dd->isa->postop(yrow, yrow, (size_t)seg, rrow, 0.0f, &dd->epilogue);
        }
    }
}

/* A panel holds NR tiles, so at most NR runs. */
#define LC_WINO_MAX_RUNS 64

/* One tile block of one image and group. */
typedef struct {
    int64_t n, grp, panel0, npan, blk_tiles;
} lc_wino_block;

static lc_wino_block lc_wino_block_at(const lc_conv_desc *d, const lc_wino_geom *g, int64_t ib) {
    lc_wino_block b;
    const int64_t block = ib % g->nblocks, ng = ib / g->nblocks;
    b.grp = ng % d->groups;
    b.n = ng / d->groups;
    b.panel0 = block * g->tb;
    b.npan = lc_min64(g->tb, g->npanels - b.panel0);
    /* tiles of this block: the GEMMs run only these lanes */
    b.blk_tiles = lc_min64(b.npan * d->isa->nr, g->tiles - b.panel0 * d->isa->nr);
    return b;
}

/* 1. input transform of channels [c_begin, c_end) of a block into V */
static void lc_wino_input_block(const lc_wino_ctx *t, const lc_wino_block *b, int64_t c_begin,
                                int64_t c_end, float *V, float *dbuf) {
    const lc_conv_desc *d = t->d;
    const lc_wino_geom *g = &t->g;
    const lc_isa_config *isa = d->isa;
    const int v = lc_wino_variant(d->algorithm);
    const size_t nr = (size_t)isa->nr;
    const int64_t Cg = d->C / d->groups, plane = d->H * d->W;
    const size_t v_xs = (size_t)g->v_xs;
    const float *xg = t->x + (b->n * d->C + b->grp * Cg) * plane;
    /* With the ISA's strip transform, each run is copied into the phase
     * strip (mostly contiguous copies) and the transform gathers from it;
     * else the lanes-innermost gather into dbuf.  dbuf holds either.
     * `ends` is a 64-bit lane mask. */
    const lc_wino_input_strip_fn fstrip = nr <= 64 ? isa->wino_input_strip[v] : NULL;
    const lc_wino_input_direct_fn fdirect = nr <= LC_WINO_MAX_RUNS ? isa->wino_input_direct[v] : NULL;
    for (int64_t p = 0; p < b->npan; p++) {
        const int64_t t0 = (b->panel0 + p) * (int64_t)nr;
        const int64_t lanes = lc_min64((int64_t)nr, g->tiles - t0);
        lc_tile_run runs[LC_WINO_MAX_RUNS];
        const int64_t nruns = lc_wino_runs(g, t0, lanes, runs);
        if (fdirect) { /* no copy: every lane is written from the image or zero */
            lc_wino_seg segs[LC_WINO_MAX_RUNS];
            int32_t vseg[LC_WINO_MAX_RUNS + 1];
            lc_wino_segments(d, g, runs, nruns, lanes, isa->wino_direct_lanes, segs, vseg);
            fdirect(xg + c_begin * plane, (size_t)plane, (size_t)(c_end - c_begin), d->H, d->W,
                    segs, vseg, V + (size_t)(p * Cg + c_begin) * nr, nr, v_xs, (size_t)lanes);
            continue;
        }
        /* lanes past the last tile: zeros, not stale data */
        if (lanes < (int64_t)nr) memset(dbuf, 0, (size_t)g->d_floats * sizeof(float));
        for (int64_t c = c_begin; c < c_end; c++) {
            const float *xc = xg + c * plane;
            float *vc = V + (size_t)(p * Cg + c) * nr;
            if (fstrip) {
                uint64_t ends = 0;
                for (int64_t r = 0; r < nruns; r++) ends |= lc_wino_strip_run(d, g, xc, &runs[r], nr, dbuf);
                fstrip(dbuf, (size_t)g->alpha * nr, ends, vc, v_xs, (size_t)lanes);
            } else {
                for (int64_t r = 0; r < nruns; r++) lc_wino_gather_run(d, g, xc, &runs[r], nr, dbuf);
                isa->wino_input[v](dbuf, vc, v_xs, (size_t)lanes);
            }
        }
    }
}

/* The lanes (tile t0 + l) of an output-transform result `obuf` of output
 * channel o whose float transforms overflowed: redone in double, in place,
 * before the scatter adds the residual and runs the post-op. */
static void lc_wino_exact_lanes(const lc_wino_ctx *t, const lc_wino_block *b, int64_t t0,
                                uint64_t lanes, int64_t o, float bias, const lc_epilogue *ep,
                                float *obuf) {
    const lc_conv_desc *d = t->d;
    const float *xg = t->x + (b->n * d->C + b->grp * (d->C / d->groups)) * d->H * d->W;
    for (int64_t l = 0; lanes; l++, lanes >>= 1)
        if (lanes & 1u)
            lc_wino_exact_lane(d, xg, t->packed, b->grp, (t0 + l) / t->g.tiles_w,
                               (t0 + l) % t->g.tiles_w, o, bias, ep, obuf + l * t->g.m,
                               (size_t)(t->g.m * d->isa->nr));
}

/* 2, channel lanes: Mo = U * V of one alpha^2 point for output channels
 * [m_begin, m_end) (m_begin a multiple of CW), CW channels by R tiles a call.
 * Each CW-channel slice of U (Cg x CW) is read once from memory and then
 * from cache for the block's other tile rows. */
static void lc_wino_cl_gemms(const lc_wino_ctx *t, const lc_wino_block *b, int64_t m_begin,
                             int64_t m_end, const float *u, const float *V, float *Mo) {
    const lc_isa_config *isa = t->d->isa;
    const int64_t nr = isa->nr, R = isa->wino_cl_rows, CW = isa->wino_cl_cols;
    const int64_t Cg = t->d->C / t->d->groups, Mg = t->d->M / t->d->groups;
    for (int64_t m0 = m_begin; m0 < m_end; m0 += CW) {
        const float *up = u + m0 * Cg;
        const size_t cols = (size_t)lc_min64(CW, m_end - m0);
        for (int64_t t0 = 0; t0 < b->blk_tiles; t0 += R) {
            const int64_t p = t0 / nr, s = t0 % nr;
            isa->wino_cl_gemm((size_t)Cg, up, V + p * Cg * nr + s, (size_t)nr,
                              Mo + (p * Mg + m0) * nr + s, (size_t)nr,
                              (size_t)lc_min64(R, b->blk_tiles - t0), cols);
        }
    }
}

/* 2, lean: the panel of CW output channels at m0 (cols of them), per run
 * of lean_kc input channels: the filters transformed into U (ubuf: alpha^2
 * points of lean_kc x CW), then the run's share of the panel's alpha^2
 * channel-lanes GEMMs from there, R tiles a call, into Mo of CW rows; the
 * runs after the first go through a partial block (after U in ubuf) added
 * into Mo, in channel order (the same sums at any thread count). */
static void lc_wino_lean_gemms(const lc_wino_ctx *t, const lc_wino_block *b, int64_t m0,
                               size_t cols, int64_t range_end, const float *V, float *Mo,
                               float *ubuf) {
    const lc_conv_desc *d = t->d;
    const lc_isa_config *isa = d->isa;
    const int64_t nr = isa->nr, R = isa->wino_cl_rows, CW = isa->wino_cl_cols;
    const int64_t Cg = d->C / d->groups, kc = t->g.lean_kc;
    float *part = ubuf + t->g.xi * kc * CW; /* CW x NR */
    for (int64_t c0 = 0; c0 < Cg; c0 += kc) {
        const int64_t kn = lc_min64(kc, Cg - c0);
        const size_t u_xs = (size_t)(kn * CW);
        const float *wl = t->packed + lc_wino_lean_index(d, b->grp, m0, c0, 0);
        isa->wino_weight[lc_wino_variant(d->algorithm)](wl, (size_t)kn, ubuf, u_xs);
        /* the next run's filters follow this one's in the packing */
        const int last = c0 + kn >= Cg && m0 + CW >= range_end; /* none follows */
        const size_t next_bytes =
            last ? 0 : (size_t)lc_min64(kc, c0 + kn < Cg ? Cg - c0 - kn : Cg) * 9 * (size_t)CW * 4;
        const char *next = (const char *)(wl + (size_t)kn * 9 * (size_t)CW);
        for (int64_t x = 0; x < t->g.xi; x++) {
            for (size_t off = next_bytes * (size_t)x / (size_t)t->g.xi;
                 off < next_bytes * (size_t)(x + 1) / (size_t)t->g.xi; off += 64)
                LC_WINO_PREFETCH_L2(next + off);
            for (int64_t t0 = 0; t0 < b->blk_tiles; t0 += R) {
                const int64_t p = t0 / nr, s = t0 % nr;
                const size_t rows = (size_t)lc_min64(R, b->blk_tiles - t0);
                const float *v = V + (size_t)x * (size_t)t->g.v_xs + (p * Cg + c0) * nr + s;
                float *mo = Mo + (size_t)x * (size_t)t->g.mo_xs + p * CW * nr + s;
                isa->wino_cl_gemm((size_t)kn, ubuf + (size_t)x * u_xs, v, (size_t)nr,
                                  c0 == 0 ? mo : part, (size_t)nr, rows, cols);
                if (c0 == 0) continue;
                for (size_t o = 0; o < cols; o++)
                    for (size_t r = 0; r < rows; r++) mo[o * (size_t)nr + r] += part[o * (size_t)nr + r];
            }
        }
    }
}

/* Whether this thread's GEMMs read U from beyond L2, so the GEMM driver
 * prefetches its slices (LC_PANELS_A_FAR): each alpha^2 point's U is small
 * (64 KiB at 128>128), so the driver would not by its own budget, but they
 * are one stream of U.  At a call U is far once it is past a quarter of L2
 * (lc_blocking's gemm_a_far: in a model the other layers' weights have
 * passed through the caches); on the thread's later blocks only when it is
 * past the streaming budget.  With few blocks each thread reads all of U
 * for one block: without prefetch ResNet-50 128's 128>128 @16 F2 GEMMs cost
 * a 2-thread block as much CPU as the 1-thread call's two panels. */
static int lc_wino_u_far(lc_wino_ctx *t, int thread) {
    const lc_blocking *budget = lc_blocking_get();
    const int warm = lc_kept_tags_hit(&t->u_warm, thread, 0);
    return t->u_bytes > (warm ? budget->gemm_a_stream : budget->gemm_a_far);
}

/* 2 and 3. GEMMs and output transform of output channels [m_begin, m_end) */
/* 3. output transform of output channels [m_begin, m_end), bias and
 * activation, scatter (a residual is added by the scatter and its post-op,
 * so the transform clamps only when there is none): channel o's results at
 * Mo + (p * mo_rows + o - m_off) * NR in panel p.  The GEMMs left the lanes
 * past the last tile unwritten: the transform runs only the vectors holding
 * real tiles and reads the rest of the last one as zero, so stale (possibly
 * denormal) data never enters the arithmetic. */
static void lc_wino_transform_out(const lc_wino_ctx *t, const lc_wino_block *b, int64_t m_begin,
                                  int64_t m_end, const float *Mo, int64_t mo_rows, int64_t m_off,
                                  float *obuf) {
    const lc_conv_desc *d = t->d;
    const lc_wino_geom *g = &t->g;
    const lc_isa_config *isa = d->isa;
    const int v = lc_wino_variant(d->algorithm);
    const size_t nr = (size_t)isa->nr;
    const int64_t Mg = d->M / d->groups;
    const int64_t yoff = (b->n * d->M + b->grp * Mg) * d->OH * d->OW;
    float *yg = t->y + yoff;
    const float *rg = t->res ? t->res + yoff : NULL;
    const lc_epilogue kep = lc_kernel_epilogue(&d->epilogue, rg != NULL);
    const int post = lc_needs_postop(&d->epilogue, rg != NULL);
    for (int64_t p = 0; p < b->npan; p++) {
        const int64_t t0 = (b->panel0 + p) * (int64_t)nr;
        const int64_t lanes = lc_min64((int64_t)nr, g->tiles - t0);
        lc_tile_run runs[LC_WINO_MAX_RUNS];
        const int64_t nruns = lc_wino_runs(g, t0, lanes, runs);
        const uint64_t real = lanes < 64 ? ((uint64_t)1 << lanes) - 1 : ~(uint64_t)0;
        for (int64_t o = m_begin; o < m_end; o++) {
            float bias = t->bias ? t->bias[b->grp * Mg + o] : 0.0f;
            const uint64_t overflowed = real &
                isa->wino_output[v](Mo + (size_t)(p * mo_rows + o - m_off) * nr, (size_t)g->mo_xs,
                                    obuf, bias, &kep, (size_t)lanes);
            if (overflowed) /* rare: huge inputs, or a genuine Inf/NaN (then left as it is) */
                lc_wino_exact_lanes(t, b, t0, overflowed, o, bias, &kep, obuf);
            float *yo = yg + o * d->OH * d->OW;
            const float *ro = rg ? rg + o * d->OH * d->OW : NULL;
            for (int64_t r = 0; r < nruns; r++)
                lc_wino_scatter_run(d, g, obuf, &runs[r], nr, yo, ro, post);
        }
    }
}

/* 2 and 3. GEMMs and output transform of output channels [m_begin, m_end);
 * a lean call one panel of CW at a time (lc_wino_lean_gemms) */
static void lc_wino_output_block(const lc_wino_ctx *t, const lc_wino_block *b, int64_t m_begin,
                                 int64_t m_end, const float *V, float *Mo, float *obuf,
                                 float *ubuf, int u_far) {
    const lc_conv_desc *d = t->d;
    const lc_wino_geom *g = &t->g;
    const lc_isa_config *isa = d->isa;
    const size_t nr = (size_t)isa->nr;
    const int64_t Cg = d->C / d->groups, Mg = d->M / d->groups;
    const size_t v_xs = (size_t)g->v_xs, mo_xs = (size_t)g->mo_xs;
    if (t->lean) {
        const int64_t CW = isa->wino_cl_cols;
        for (int64_t m0 = m_begin; m0 < m_end; m0 += CW) {
            const int64_t m1 = lc_min64(m0 + CW, m_end);
            lc_wino_lean_gemms(t, b, m0, (size_t)(m1 - m0), m_end, V, Mo, ubuf);
            lc_wino_transform_out(t, b, m0, m1, Mo, CW, m0, obuf);
        }
        return;
    }
    /* one GEMM per xi: U[xi] stays hot across the block's panels; only the
     * block's real tiles (a narrow last panel costs less) */
    for (int64_t x = 0; x < g->xi; x++) {
        const float *u = t->packed + (x * d->groups + b->grp) * t->mpad * Cg;
        if (t->cl) {
            lc_wino_cl_gemms(t, b, m_begin, m_end, u, V + x * v_xs, Mo + x * mo_xs);
            continue;
        }
        lc_gemm_panels_rows(isa, (size_t)Mg, (size_t)m_begin, (size_t)m_end, (size_t)Cg, u,
                            V + x * v_xs, nr, (size_t)Cg * nr, (size_t)b->blk_tiles,
                            Mo + x * mo_xs, nr, (size_t)Mg * nr, NULL, NULL, &d->epilogue,
                            u_far ? LC_PANELS_A_FAR : 0, NULL);
    }
    lc_wino_transform_out(t, b, m_begin, m_end, Mo, Mg, 0, obuf);
}

/* The per-thread scratch of a slice: [V (unphased only)][Mo][gather][output][U (lean)].
 * `keep_v`: V holds the block this thread transformed for an earlier item
 * of the call (lc_wino_range_item), so the debug poison spares it. */
static void lc_wino_slice(const lc_wino_ctx *t, int thread, int keep_v, float **V, float **Mo,
                          float **dbuf, float **obuf, float **ubuf) {
    const lc_wino_geom *g = &t->g;
    int ok = 1;
    const int own_v = g->split != LC_WINO_PHASED;
    const int64_t v_bytes = own_v ? lc_aligned_floats_bytes(g->v_floats, &ok) : 0;
    char *s = (char *)lc_thread_scratch_kept(t->ws + g->shared_bytes, g->slice_bytes, thread,
                                             keep_v ? v_bytes : 0);
    *V = own_v ? (float *)s : NULL;
    s += v_bytes;
    *Mo = (float *)s;
    *dbuf = (float *)(s + lc_aligned_floats_bytes(g->mo_floats, &ok));
    *obuf = (float *)((char *)*dbuf + lc_aligned_floats_bytes(g->d_floats, &ok));
    *ubuf = g->u_floats ? (float *)((char *)*obuf + lc_aligned_floats_bytes(g->o_floats, &ok)) : NULL;
}

/* Many blocks: a thread takes a whole block, input to output. */
static void lc_wino_task(void *vctx, int64_t item, int thread) {
    lc_wino_ctx *t = (lc_wino_ctx *)vctx;
    const lc_wino_block b = lc_wino_block_at(t->d, &t->g, item);
    float *V, *Mo, *dbuf, *obuf, *ubuf;
    lc_wino_slice(t, thread, 0, &V, &Mo, &dbuf, &obuf, &ubuf);
    lc_wino_input_block(t, &b, 0, t->d->C / t->d->groups, V, dbuf);
    lc_wino_output_block(t, &b, 0, t->d->M / t->d->groups, V, Mo, obuf, ubuf, lc_wino_u_far(t, thread));
}

/* Few blocks (phased): first every block's input transform, shared out by
 * channel ranges into V buffers all threads see ... */
static void lc_wino_input_task(void *vctx, int64_t item, int thread) {
    const lc_wino_ctx *t = (const lc_wino_ctx *)vctx;
    const lc_wino_geom *g = &t->g;
    const int64_t ib = item % g->blocks_total, cc = item / g->blocks_total;
    const int64_t Cg = t->d->C / t->d->groups, per = lc_div_up(Cg, g->cchunks);
    const int64_t c_begin = lc_min64(cc * per, Cg), c_end = lc_min64(c_begin + per, Cg);
    const lc_wino_block b = lc_wino_block_at(t->d, g, ib);
    float *V, *Mo, *dbuf, *obuf, *ubuf;
    if (c_begin >= c_end) return;
    lc_wino_slice(t, thread, 0, &V, &Mo, &dbuf, &obuf, &ubuf);
    lc_wino_input_block(t, &b, c_begin, c_end, (float *)t->ws + ib * g->v_stride, dbuf);
}

/* Output channels [m_begin, m_end) of channel range mc of the output phase */
static void lc_wino_mrange(const lc_wino_ctx *t, int64_t mc, int64_t *m_begin, int64_t *m_end) {
    const int64_t Mg = t->d->M / t->d->groups;
    if (t->cl) { /* whole CW panels */
        const int64_t CW = t->d->isa->wino_cl_cols;
        const int64_t rows = lc_div_up(lc_div_up(Mg, t->g.mchunks), CW) * CW;
        *m_begin = lc_min64(mc * rows, Mg);
        *m_end = lc_min64(*m_begin + rows, Mg);
    } else {
        lc_row_chunk_range(mc, t->g.mchunks, Mg, t->d->isa->mr, m_begin, m_end);
    }
}

/* Item `item` of a loop over (output-channel range, block), the range
 * slowest, so each thread takes one range across all blocks: the block's
 * GEMMs and output transforms for the range, from the shared V the phased
 * input transforms wrote, or (by channels) after the block's whole input
 * transform into the thread's own V. */
static void lc_wino_range_item(lc_wino_ctx *t, int64_t item, int thread, int own_v) {
    const lc_wino_geom *g = &t->g;
    const int64_t ib = item % g->blocks_total, mc = item / g->blocks_total;
    int64_t m_begin, m_end;
    lc_wino_mrange(t, mc, &m_begin, &m_end);
    if (m_begin >= m_end) return;
    const lc_wino_block b = lc_wino_block_at(t->d, g, ib);
    /* By channels, a thread's next item is mostly the same block's next
     * range (one image: always): its V holds that block's whole input
     * transform already.  Redone per item, the transforms cost 3.2x their
     * one-thread CPU at 2 threads and 4 items (ResNet-18 256>256 @14 F4,
     * 99 -> 318 us, a fifth of the call's CPU); kept, the call's CPU at 2
     * threads went from +36% over 1 thread to +28-33% alone (Intel Xeon,
     * load 3), 256>256 @8 F2 +25% -> +18-21%. */
    const int have = own_v && lc_kept_tags_hit(&t->v_block, thread, ib);
    float *V, *Mo, *dbuf, *obuf, *ubuf;
    lc_wino_slice(t, thread, have, &V, &Mo, &dbuf, &obuf, &ubuf);
    if (!own_v) {
        V = (float *)t->ws + ib * g->v_stride;
    } else if (!have) {
        lc_wino_input_block(t, &b, 0, t->d->C / t->d->groups, V, dbuf);
    }
    lc_wino_output_block(t, &b, m_begin, m_end, V, Mo, obuf, ubuf, lc_wino_u_far(t, thread));
}

/* ... then GEMMs and output transforms, shared out by output-channel blocks */
static void lc_wino_output_task(void *vctx, int64_t item, int thread) {
    lc_wino_range_item((lc_wino_ctx *)vctx, item, thread, 0);
}

/* By channels: each block's whole input, then the thread's output channels */
static void lc_wino_channels_task(void *vctx, int64_t item, int thread) {
    lc_wino_range_item((lc_wino_ctx *)vctx, item, thread, 1);
}

LC_TILING_FITS(lc_wino_geom);

void lc_winograd_tiling(const lc_conv_desc *d, int64_t *tiling) {
    int ok = 1; /* overflow: lc_winograd_workspace has said so already */
    lc_wino_geom g;
    memset(&g, 0, sizeof g);
    lc_wino_geometry(d, &g, &ok);
    memcpy(tiling, &g, sizeof g);
}

int lc_winograd_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                    const float *packed, const float *bias, const float *res, float *y,
                    char *ws) {
    int ok = 1;
    lc_wino_ctx t;
    t.d = d; t.x = x; t.packed = packed; t.bias = bias; t.res = res; t.y = y; t.ws = ws;
    memcpy(&t.g, tiling, sizeof t.g);
    t.cl = lc_wino_channel_lanes(d);
    t.lean = lc_wino_is_lean(d->algorithm);
    t.mpad = lc_round_up(d->M / d->groups, lc_wino_u_panel(d), &ok);
    lc_kept_tags_clear(&t.v_block);
    lc_kept_tags_clear(&t.u_warm);
    t.u_bytes = lc_mul(lc_mul(t.g.xi, t.mpad, &ok), (d->C / d->groups) * (int64_t)sizeof(float), &ok);
    if (t.g.split == LC_WINO_BY_BLOCKS) {
        lc_parallel_for(d->nthreads, t.g.blocks_total, lc_conv_macs(d), lc_wino_task, &t);
    } else if (t.g.split == LC_WINO_BY_CHANNELS) {
        lc_parallel_for(d->nthreads, t.g.blocks_total * t.g.mchunks, lc_conv_macs(d),
                        lc_wino_channels_task, &t);
    } else {
        lc_parallel_for(d->nthreads, t.g.blocks_total * t.g.cchunks, lc_conv_macs(d), lc_wino_input_task, &t);
        lc_parallel_for(d->nthreads, t.g.blocks_total * t.g.mchunks, lc_conv_macs(d), lc_wino_output_task, &t);
    }
    return LC_OK;
}
