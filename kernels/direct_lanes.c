/* direct_lanes: the direct convolution with output channels in the vector
 * lanes (the form ONNX Runtime and oneDNN run strided layers and the stem
 * in).  Weights are packed once as [group][channel block][c][ky][kx][CW],
 * CW = the block's output channels (lc_direct_lanes_block: the ISA's dl_cols,
 * or half that where it pads fewer channels) (the last block's missing
 * channels repeat its last channel, so every lane computes a real output and
 * a repeated lane stores the very bits of the channel it repeats).
 *
 * A work item is (image, group, run of channel blocks, band of output rows).
 * It first copies the input rows its band reads into a zero-padded buffer
 * (unless its thread's previous item of the call copied the same; each
 * row cut to the columns the outputs reach, padding materialised: about one
 * read of the input, against Cg x kH x kW x CW multiply-adds per output
 * pixel), so every tap of every pixel is a plain load and the pixels of the
 * band can be taken in blocks of R that run on across row ends.  The band's
 * pixels then go in segments of up to LC_DL_SEGMENT: for each pass over
 * cb input channels (whose weights stay in L2, or where a thread's weights
 * do not fit there, a short pass that prefetches the next) the ISA kernel
 * (lc_dl_kernel_fn) computes every block of R pixels into the segment's
 * tile, lanes innermost, broadcasting input pixels from the padded rows --
 * no patch unwrapping, whatever the stride -- and the tile is then
 * transposed into the CW output planes (the depthwise channel-block
 * de-interleave where the ISA has one).  Each output is summed over (c, ky,
 * kx) in that order whatever the bands, segments, passes and threads, so the
 * bits do not depend on the thread count.
 *
 * Epilogue: the clamp in the kernel when it is the whole of it; another
 * activation without a residual runs over the tile before the transpose; a
 * residual (possibly the output itself) is added from a staged copy of the
 * segment, plane by plane.
 *
 * Workspace per thread: the padded band input (Cg x its rows x the row
 * width), the tile and the staging segment (CW x LC_DL_SEGMENT each), each
 * rounded up to 64 bytes. */
#include <stdint.h>
#include <string.h>
#include "internal.h"
#include "leanconv/cpu.h"

/* Output pixels a tile holds at most (64 KiB at 64 channels).  Each
 * segment's transpose writes a run of it to every one of the CW output
 * planes; longer runs (fewer, longer bursts of stores) made the stem ~2%
 * faster than 96 pixels did, in spite of the tile leaving L1 (192 and 256
 * measured alike; 48 was 2-3% slower), with 3x3/2 64>128 and 128>256 the
 * same (thread CPU time, interleaved against the previous build, load ~3). */
#define LC_DL_SEGMENT 256

typedef struct {
    int64_t blocks;    /* channel blocks per group */
    int64_t spans;     /* runs of channel blocks per (image, group, band), near-equal */
    int64_t bands;     /* row bands per (image, group) */
    int64_t band_rows; /* output rows of the largest band (bands are near-equal) */
    int64_t items;
    int64_t threads;   /* threads the run uses (lc_threads_used of items) */
    int64_t cb;        /* input channels a pass over a segment */
    int64_t ahead;     /* 1: each pass prefetches the next (a span's weights are beyond L2) */
} lc_dl_tiles;
LC_TILING_FITS(lc_dl_tiles);

/* The padded input row: the columns the outputs reach. */
static int64_t lc_dl_row_width(const lc_conv_desc *d) {
    return (d->OW - 1) * d->stride_w + (d->kW - 1) * d->dil_w + 1;
}

/* Input rows a band of `rows` output rows reads. */
static int64_t lc_dl_band_in_rows(const lc_conv_desc *d, int64_t rows) {
    return (rows - 1) * d->stride_h + (d->kH - 1) * d->dil_h + 1;
}

lc_dl_block lc_direct_lanes_block(const lc_conv_desc *d) {
    const lc_isa_config *isa = d->isa;
    const int64_t Mg = d->M / d->groups, cw = isa->dl_cols;
    /* The ISA's widths, widest first.  A narrower kernel keeps about the
     * same accumulator count over more pixels (AVX-512: 12 x 32 and 12 x 16
     * beside 6 x 64), at ~the same per-lane speed on cache-resident data, so
     * it wins wherever it wastes fewer lanes: MobileNet's 32-channel stem ran
     * in 64-lane blocks at half their use, RegNetX-400MF's groups of 16
     * output channels in 32-lane ones.  Each width's 1 x 1 form has its R. */
    const lc_dl_block widths[] = {
        {isa->dl_kernel, isa->pw_kernel, cw, isa->dl_rows, isa->pw_rows},
        {isa->dl_kernel_half, isa->pw_kernel_half, cw / 2, isa->dl_rows_half, isa->dl_rows_half},
        {isa->dl_kernel_quarter, isa->pw_kernel_quarter, cw / 4, isa->dl_rows_quarter,
         isa->dl_rows_quarter}};
    lc_dl_block b = widths[0];
    for (size_t i = 1; i < sizeof widths / sizeof widths[0]; i++)
        if (widths[i].kernel &&
            lc_div_up(Mg, widths[i].cols) * widths[i].cols < lc_div_up(Mg, b.cols) * b.cols)
            b = widths[i];
    return b;
}

lc_lanes_call lc_lanes_call_of(const lc_conv_desc *d, const float *x, const float *packed,
                               const float *bias, const float *res, float *y, char *ws) {
    lc_lanes_call c;
    c.d = d; c.x = x; c.packed = packed; c.bias = bias; c.res = res; c.y = y; c.ws = ws;
    c.blk = lc_direct_lanes_block(d);
    c.ep = d->epilogue;
    c.kep = lc_kernel_epilogue(&d->epilogue, res != NULL);
    c.post = lc_needs_postop(&d->epilogue, res != NULL);
    return c;
}

int64_t lc_direct_lanes_pass_channels(const lc_conv_desc *d) {
    const int64_t budget = lc_max64(64 * 1024, (int64_t)lc_cpu_caches()->l2 / 2);
    const int64_t per_c = d->kH * d->kW * lc_direct_lanes_block(d).cols * (int64_t)sizeof(float);
    return lc_max64(1, lc_min64(d->C / d->groups, budget / per_c));
}

/* Work (channel blocks x output rows) of the busiest of `threads` threads
 * over items (unit, span, band), band innermost, thread t taking items
 * [n*t/T, n*(t+1)/T) (the pool's static ranges); spans and bands near-equal
 * as lc_dl_task cuts them. */
static int64_t lc_dl_busiest(int64_t OH, int64_t blocks, int64_t units, int64_t threads,
                             int64_t spans, int64_t bands) {
    const int64_t n = units * spans * bands;
    int64_t most = 0;
    for (int64_t t = 0; t < threads; t++) {
        int64_t work = 0;
        for (int64_t i = n * t / threads; i < n * (t + 1) / threads; i++) {
            const int64_t band = i % bands, span = i / bands % spans;
            work += ((span + 1) * blocks / spans - span * blocks / spans) *
                    ((band + 1) * OH / bands - band * OH / bands);
        }
        most = lc_max64(most, work);
    }
    return most;
}

/* Spans and bands of (at least) `want` items, where fewer than 2 images a
 * thread leave want > 1: channel blocks split first where `by_blocks`
 * (weights outweigh the input), then rows.  Of the counts from there up to
 * every block a span and twice the bands, the one that leaves the busiest
 * thread the least work, the fewest items on a tie.  On 2 threads 5 blocks
 * in 4 spans went 3 against 2: Inception's 128>160 @14 and 160>160 @14
 * (five 32-channel blocks) scaled 1.3-1.5x from 1 to 2 threads; 5 spans of
 * 2 bands are 35 against 35 rows x blocks at 14 rows (one block's weights
 * read twice).  Layer alone, 2 threads, interleaved in one process, p10 of
 * 400 calls, Intel Xeon at load ~4: 160>160 @14 347 -> 306 us, 128>160 @14
 * 287 -> 252, 3x3/2 128>160 @28 339 -> 296.  More bands than the fewest
 * only where each keeps twice the kernel's halo rows (a band of r rows
 * reads r + halo): on 7 rows, 3 + 4 in 7 one-block spans made 192>224 @7
 * 18% slower though its busiest thread had 25 block-rows, not 28.  Blocks
 * and rows are independent: the same bits. */
static void lc_dl_balance(int64_t OH, int64_t blocks, int64_t units, int64_t threads,
                          int64_t want, int by_blocks, int64_t halo, lc_dl_tiles *b) {
    const int64_t s0 = by_blocks ? lc_min64(blocks, want) : 1, s1 = by_blocks ? blocks : 1;
    b->spans = s0;
    b->bands = lc_min64(OH, lc_div_up(want, s0));
    int64_t best = lc_dl_busiest(OH, blocks, units, threads, b->spans, b->bands);
    for (int64_t sp = s0; threads > 1 && want > 1 && sp <= s1; sp++) {
        const int64_t b0 = lc_min64(OH, lc_div_up(want, sp)), b1 = lc_min64(OH, 2 * b0);
        for (int64_t bd = b0; bd <= b1 && (bd == b0 || OH / bd >= 2 * halo); bd++) {
            const int64_t busiest = lc_dl_busiest(OH, blocks, units, threads, sp, bd);
            if (busiest < best || (busiest == best && sp * bd < b->spans * b->bands)) {
                best = busiest;
                b->spans = sp;
                b->bands = bd;
            }
        }
    }
}

void lc_direct_lanes_tiling(const lc_conv_desc *d, int64_t *tiling) {
    if (lc_stem_lanes_applies(d)) {
        lc_stem_lanes_tiling(d, tiling);
        return;
    }
    if (lc_gemm_is_pointwise(d)) {
        lc_pointwise_lanes_tiling(d, tiling);
        return;
    }
    if (lc_tap_lanes_applies(d)) {
        lc_tap_lanes_tiling(d, tiling);
        return;
    }
    int ok = 1;
    lc_dl_tiles b;
    const int64_t Cg = d->C / d->groups;
    const lc_dl_block blk = lc_direct_lanes_block(d);
    b.blocks = lc_div_up(d->M / d->groups, blk.cols);
    const int64_t units = lc_mul(d->N, d->groups, &ok);
    const int64_t threads = lc_threads_used(d->nthreads, lc_mul(units, lc_mul(d->OH, b.blocks, &ok),
                                                                 &ok), lc_conv_macs(d));
    /* fewer than 2 images a thread: split the channel blocks where the
     * group's weights outweigh its padded input (small images: 64>256@7x7
     * has 590 KB of weights against 21 KB of input, which every band would
     * read again, where every run of blocks copies the input again), else
     * the rows.  At 2 threads the weights beyond L2 stream once, not once
     * a band: the model then takes direct_lanes for ResNet-18's
     * 256>512@14/2 (585 us against Im2Col's 674 at one thread, weights from
     * L3).  One thread with weights beyond L2 takes one band, so they
     * stream once there too (two bands read 512@7's 9.4 MB twice; the
     * kernel alone on its bands' pixel blocks, weights from L3, ran 14%
     * faster over one band than over two, Intel Xeon); not with weights in
     * L2, where the MobileNet stem (3>32@224 3x3/2) ran 10% slower in one */
    const int64_t w_bytes = lc_mul(lc_mul(b.blocks * blk.cols, Cg, &ok), d->kH * d->kW * 4, &ok);
    const int64_t want = units >= 2 * threads ||
                                 (threads == 1 && w_bytes > (int64_t)lc_cpu_caches()->l2)
                             ? 1
                             : lc_div_up(2 * threads, units);
    const int64_t in_bytes = lc_mul(lc_mul(Cg, lc_dl_band_in_rows(d, d->OH), &ok),
                                    lc_dl_row_width(d) * 4, &ok);
    lc_dl_balance(d->OH, b.blocks, units, threads, want, threads > 1 && w_bytes > in_bytes,
                  (d->kH - 1) * d->dil_h, &b);
    b.band_rows = lc_div_up(d->OH, b.bands);
    /* and a band's padded input within half of L2 (big images) */
    const int64_t budget = lc_max64(64 * 1024, (int64_t)lc_cpu_caches()->l2 / 2);
    const int64_t row_bytes = lc_mul(lc_mul(Cg, lc_dl_row_width(d), &ok), 4, &ok);
    while (b.band_rows > 1 && lc_mul(row_bytes, lc_dl_band_in_rows(d, b.band_rows), &ok) > budget)
        b.band_rows = lc_div_up(b.band_rows, 2);
    b.bands = lc_div_up(d->OH, b.band_rows);
    /* near-equal bands: 14 rows in 4 are 3 + 4 + 3 + 4 (7 a thread at 2
     * threads), not 4 + 4 + 4 + 2 (8 against 6) */
    b.band_rows = lc_div_up(d->OH, b.bands);
    b.items = lc_mul(lc_mul(units, b.spans, &ok), b.bands, &ok);
    b.threads = lc_threads_used(d->nthreads, b.items, lc_conv_macs(d));
    /* a pass's weights within the other half of L2: each kernel call then
     * keeps its accumulators over every channel of a pass, and the weights
     * stream from L2 beside its FMAs.  All channels at once (3x3/2 64>128 and
     * 128>256: 2-5% faster, bench/ab_builds.py --rev main --layers kinds)
     * rather than L1-sized passes, whose every call reloads and stores its
     * tile (16 channels: 144 taps a call) */
    b.cb = lc_direct_lanes_pass_channels(d);
    /* unless a thread's run of blocks cannot stay in L2 (512@7: 9.4 MB at
     * one thread, 4.7 MB a thread at two): then every pass's weights come
     * from L3 or memory, and its first block of pixels waits on them (the
     * kernel on weights from L3 ran ~20% slower than from L2).  Short passes
     * (L2 / 16 of weights: the one running and the next, arriving, take an
     * eighth of L2) each prefetch the next under their FMAs (lc_dl_geom.pf):
     * with one band, 512@7 ran 27% faster than before at one thread (1.97
     * -> 1.44 ms) and 11% at two, 3x3/2 256>512@14 18-24% at one, 256@14
     * (2.4 MB) the same; passes of 16 to 57 channels ran alike, 114 or 228
     * a little slower (thread CPU time, interleaved, load 2.5-4.5, Intel
     * Xeon, L2 2 MB).  Into L2, not L1: the next pass's lines in L1 would
     * push out the input rows and the tile; and spread over the pass's
     * calls, as a burst of prefetches before each call stalls on the
     * line-fill buffers.
     * Whether the group's weights exceed L2, not a thread's run of blocks:
     * split over 2 threads, 256@8's 2.4 MB are 1.2 MB a thread, which stay
     * in each L2 only from one call of the layer to the next; in a network
     * the layers between push them out, and each call read them from L3 in
     * all-channel passes that nothing prefetched.  Short prefetching passes
     * there, at 2 threads: ResNet-50 128's two 256@8 layers 321-343 ->
     * 257-267 us, ResNet-18 128's 256@8 276 -> 233-238 and 3x3/2 256>512
     * @8 (4.7 MB, 1.2 MB a span) 281-286 -> 235-239 (pool trace, the
     * layer's region in the model, 20th percentile of 60 runs, both rules
     * interleaved in one process and in either order, load ~1, Intel
     * Xeon); 1 thread unchanged (one run of blocks: the same rule) */
    b.ahead = w_bytes > (int64_t)lc_cpu_caches()->l2;
    if (b.ahead) {
        const int64_t per_c = d->kH * d->kW * blk.cols * (int64_t)sizeof(float);
        b.cb = lc_max64(1, lc_min64(Cg, (int64_t)lc_cpu_caches()->l2 / 16 / per_c));
    }
    memcpy(tiling, &b, sizeof b);
}

LC_TILING_GETTER(lc_dl_tiles, lc_dl_get_tiles, lc_direct_lanes_tiling)

int64_t lc_direct_lanes_items(const lc_conv_desc *d) {
    if (lc_stem_lanes_applies(d)) return lc_stem_lanes_items(d);
    if (lc_tap_lanes_applies(d)) return lc_tap_lanes_items(d);
    return lc_gemm_is_pointwise(d) ? lc_pointwise_lanes_items(d) : lc_dl_get_tiles(d).items;
}

int64_t lc_direct_lanes_moved(const lc_conv_desc *d) {
    if (lc_stem_lanes_applies(d)) return lc_stem_lanes_moved(d);
    if (lc_gemm_is_pointwise(d) || lc_tap_lanes_applies(d))
        return d->M / d->groups * d->OH * d->OW; /* no input copy */
    const lc_dl_tiles b = lc_dl_get_tiles(d);
    const int64_t copied = b.spans * b.bands * (d->C / d->groups) *
                           lc_dl_band_in_rows(d, b.band_rows) * lc_dl_row_width(d);
    return copied + d->M / d->groups * d->OH * d->OW;
}

/* The pixels of a segment of a band of q pixels: near-equal segments of at
 * most LC_DL_SEGMENT (300 pixels: 160 + 140, not 256 + 44), each a whole number
 * of vectors of the output planes but the last, so that the transpose's
 * stores of a band that starts on a vector (one band, the stem's halves) are
 * aligned: on the stem, stores across cache lines made the transpose ~10% of
 * the time. */
static int64_t lc_dl_segment_step(const lc_conv_desc *d, int64_t q) {
    const int64_t L = d->isa->dl_lanes;
    return lc_min64(LC_DL_SEGMENT, lc_div_up(lc_div_up(q, lc_div_up(q, LC_DL_SEGMENT)), L) * L);
}

int lc_direct_lanes_one_segment(const lc_conv_desc *d) {
    return d->OH * d->OW <= LC_DL_SEGMENT;
}

int64_t lc_direct_lanes_segments(const lc_conv_desc *d) {
    if (lc_stem_lanes_applies(d)) return 1; /* its weights stay in L2 */
    if (lc_gemm_is_pointwise(d)) return lc_pointwise_lanes_chunks(d);
    if (lc_tap_lanes_applies(d)) return lc_tap_lanes_windows(d);
    const lc_dl_tiles b = lc_dl_get_tiles(d);
    const int64_t q = b.band_rows * d->OW;
    return b.bands * lc_div_up(q, lc_dl_segment_step(d, q));
}

/* Floats of each part of one thread's workspace (64-byte multiples). */
static void lc_dl_parts(const lc_conv_desc *d, const lc_dl_tiles *b, int64_t *in,
                        int64_t *tile, int *ok) {
    const int64_t rows = lc_mul(d->C / d->groups, lc_dl_band_in_rows(d, b->band_rows), ok);
    *in = lc_round_up(lc_mul(rows, lc_dl_row_width(d), ok), 16, ok);
    *tile = lc_round_up(lc_mul(lc_direct_lanes_block(d).cols, LC_DL_SEGMENT, ok), 16, ok);
}

int64_t lc_direct_lanes_workspace(const lc_conv_desc *d, int *ok) {
    if (lc_stem_lanes_applies(d)) return lc_stem_lanes_workspace(d, ok);
    if (lc_gemm_is_pointwise(d)) return lc_pointwise_lanes_workspace(d, ok);
    if (lc_tap_lanes_applies(d)) return lc_tap_lanes_workspace(d, ok);
    const lc_dl_tiles b = lc_dl_get_tiles(d);
    int64_t in, tile;
    lc_dl_parts(d, &b, &in, &tile, ok);
    const int64_t floats = lc_add(in, lc_mul(tile, 2, ok), ok);
    return lc_mul(b.threads, lc_mul(floats, (int64_t)sizeof(float), ok), ok);
}

int64_t lc_direct_lanes_packed_floats(const lc_conv_desc *d, int *ok) {
    if (lc_stem_lanes_applies(d)) return lc_stem_lanes_packed_floats(d, ok);
    const int64_t cw = lc_direct_lanes_block(d).cols, Mg = d->M / d->groups;
    const int64_t per_block = lc_mul(lc_mul(lc_mul(cw, d->C / d->groups, ok), d->kH, ok), d->kW, ok);
    return lc_mul(lc_mul(d->groups, lc_div_up(Mg, cw), ok), per_block, ok);
}

void lc_direct_lanes_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    if (lc_stem_lanes_applies(d)) {
        lc_stem_lanes_pack_weights(d, w, packed);
        return;
    }
    const int64_t cw = lc_direct_lanes_block(d).cols, Mg = d->M / d->groups, Cg = d->C / d->groups;
    const int64_t taps = d->kH * d->kW, blocks = lc_div_up(Mg, cw);
    for (int64_t g = 0; g < d->groups; g++)
        for (int64_t b = 0; b < blocks; b++)
            for (int64_t o = 0; o < cw; o++) {
                /* a missing channel repeats the block's last one */
                const int64_t src = g * Mg + lc_min64(b * cw + o, Mg - 1);
                float *dst = packed + (g * blocks + b) * Cg * taps * cw + o;
                for (int64_t k = 0; k < Cg * taps; k++) dst[k * cw] = w[src * Cg * taps + k];
            }
}

typedef struct {
    lc_lanes_call c;
    lc_dl_tiles b;
    int far;             /* the output is beyond L2: prefetch the lines a segment writes */
    int64_t in, tile, per_thread; /* floats */
    /* the (image, group, band) whose padded input each thread's scratch holds */
    lc_kept_tags band_in;
} lc_dl_ctx;

/* dst[l][off + x] = src[x * L + l] for x < n, l < L: the ISA's depthwise
 * de-interleave when its lanes are L, else plain loops. */
static void lc_dl_deinterleave(const lc_isa_config *isa, float *const *dst, size_t off,
                               const float *src, size_t n) {
    const size_t L = (size_t)isa->dl_lanes;
    if (isa->dw_cblock.deinterleave && isa->dw_cblock.lanes == L) {
        isa->dw_cblock.deinterleave(dst, off, src, n);
        return;
    }
    for (size_t l = 0; l < L; l++)
        for (size_t x = 0; x < n; x++) dst[l][off + x] = src[x * L + l];
}

/* Where ResNet-18's 3x3/2 64>128@56 and 128>256@28 lose to the FMA peak on
 * an AMD Zen 4 (AVX-512, 1 thread, 70-75% of the peak as layers): pieces
 * switched off in turn (temporary getenv switches, interleaved in one process,
 * bursts of 10 calls, thread CPU time, 31 samples, load ~8).  The padded copy
 * 6-11% of the layer (alone, with nothing else in the caches: 70 and 45 us),
 * the transpose 2-5%; without both 78-84%.  A second call of each kernel
 * call's block right after it (its data then in L1/L2) ran at 81-88%, the
 * first ~7% slower (its misses).  No change beyond the spread (0.97-1.03):
 * the input copied channel-interleaved ([row][column][channel], xcs 1: a
 * call's input in half the lines; same bits, but its copy, a transpose, made
 * the layers 7-15% slower), passes of 8-128 channels (8: 7% slower),
 * 128>256's all-channel pass without prefetch, bands within L2 / 1, 4 or 8,
 * the 12 x 32 kernel.  AVX2 (6 x 16): 54-61% as layers, 60-62% without
 * the copy and the transpose.
 * No copy at all did not pay either (branch stride2, commit 523565d): the
 * inner pixels (every tap inside the image) read the input planes in place
 * (xcs = H x W), the border ones (a band's top row and left column at
 * pad 1) per-band zero-padded patches [c][pixel][ky][kx], each part in its
 * own blocks of R, the kernel storing each pixel at a given tile offset
 * (the same bits as the copy).  Thread CPU time, 1 thread, interleaved
 * against this code, p20 of 31 bursts of 10, AMD Zen 4 at load 7-8:
 * AVX-512 3x3/2 64>128@56 1.04-1.07x slower, 128>256@28 1.01-1.02x,
 * 256>512@14 1.01x; prefetching each segment's input rows (all channels)
 * before it, or the next segment's during it, still 1.04-1.06x on 64>128;
 * AVX2 0.97x / 1.03x / 1.01x.  The per-pixel tile offsets alone (every
 * layer still copying) cost nothing (0.99-1.01).  Likely: the kernel's
 * channel-strided reads of an input that sits in L3 (800 KB at 64@56),
 * which the copy streams in sequentially with prefetches, then serves from
 * L2 in a compact band. */

/* Channels ahead of the one it copies whose rows the padded copy prefetches. */
#define LC_DL_COPY_AHEAD 2

/* The input rows of output rows [oy0, oy1), zero-padded, into `in`:
 * Cg planes of rows of lc_dl_row_width floats (image columns from -pad_l). */
static void lc_dl_pad_input(const lc_conv_desc *d, const float *xg, int64_t oy0, int64_t oy1,
                            float *in) {
    const int64_t Cg = d->C / d->groups, wp = lc_dl_row_width(d);
    const int64_t rows = lc_dl_band_in_rows(d, oy1 - oy0), top = oy0 * d->stride_h - d->pad_t;
    /* a row's columns [left, left + cols) come from the image, the rest is 0 */
    const int64_t left = lc_min64(d->pad_l, wp);
    const int64_t cols = lc_max64(0, lc_min64(d->W, wp - left));
    const int64_t iy_lo = lc_max64(0, top), iy_hi = lc_min64(d->H, top + rows);
    for (int64_t c = 0; c < Cg; c++) {
        /* the rows of the channel after next, asked for now: the copy waits
         * on its loads (the input comes from L3 or memory), and the hardware
         * prefetcher starts afresh on every channel's run of rows (3x3/2
         * 64>128@56 and 128>256@28 3-5% faster; one channel or four ahead
         * measured the same) */
        if (c + LC_DL_COPY_AHEAD < Cg && iy_hi > iy_lo) {
            const char *ahead = (const char *)(xg + ((c + LC_DL_COPY_AHEAD) * d->H + iy_lo) * d->W);
            const int64_t bytes = (iy_hi - iy_lo) * d->W * (int64_t)sizeof(float);
            for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(ahead + b, 0, 3);
        }
        for (int64_t r = 0; r < rows; r++) {
            float *dst = in + (c * rows + r) * wp;
            const int64_t iy = top + r;
            if (iy < 0 || iy >= d->H) {
                memset(dst, 0, (size_t)wp * sizeof(float));
                continue;
            }
            /* a loop, not memcpy: rows of 7-56 floats, where the call costs more */
            const float *src = xg + (c * d->H + iy) * d->W;
            for (int64_t i = 0; i < left; i++) dst[i] = 0.0f;
            for (int64_t i = 0; i < cols; i++) dst[left + i] = src[i];
            for (int64_t i = left + cols; i < wp; i++) dst[i] = 0.0f;
        }
    }
}

/* A channel block's bias for the kernels: bias[o0 .. o0 + valid) in out,
 * the last value repeated to cw columns (the padded lanes compute a copy of
 * the last channel, never stored); NULL without a bias. */
const float *lc_dl_block_bias(const float *bias, int64_t o0, int64_t cw, int64_t valid,
                              float *out) {
    if (!bias) return NULL;
    for (int64_t o = 0; o < cw; o++) out[o] = bias[o0 + lc_min64(o, valid - 1)];
    return out;
}

/* The finished tile of a segment (sn pixels from plane offset `at` of image
 * n, `valid` output channels from o0, lanes innermost, vector v of it at
 * v * cap * L, cap >= sn) into the output planes, with what the kernels left
 * of the epilogue: a residual (possibly the output itself) through the
 * staged segment (channel o at o * cap), plane by plane; another activation
 * over the tile first. */
void lc_dl_write_tile(const lc_conv_desc *d, int64_t n, int64_t o0, int64_t valid, int64_t at,
                      int64_t sn, int64_t cap, float *tile, float *stage, float *y, const float *res,
                      const lc_epilogue *ep, int post) {
    const lc_isa_config *isa = d->isa;
    const int64_t L = isa->dl_lanes, P = d->OH * d->OW;
    float *dst[LC_DL_MAX_LANES];
    if (res) {
        for (int64_t v = 0; v * L < valid; v++) {
            for (int64_t l = 0; l < L; l++) dst[l] = stage + (v * L + l) * cap;
            lc_dl_deinterleave(isa, dst, 0, tile + v * cap * L, (size_t)sn);
        }
        for (int64_t o = 0; o < valid; o++) {
            const int64_t plane = (n * d->M + o0 + o) * P + at;
            isa->postop(y + plane, stage + o * cap, (size_t)sn, res + plane, 0.0f, ep);
        }
        return;
    }
    if (post)
        for (int64_t v = 0; v * L < valid; v++)
            isa->postop(tile + v * cap * L, tile + v * cap * L,
                        (size_t)(sn * L), NULL, 0.0f, ep);
    for (int64_t v = 0; v * L < valid; v++) {
        for (int64_t l = 0; l < L; l++)
            dst[l] = y + (n * d->M + o0 + lc_min64(v * L + l, valid - 1)) * P;
        lc_dl_deinterleave(isa, dst, (size_t)at, tile + v * cap * L, (size_t)sn);
    }
}

/* The output lines a segment's transpose writes (sn floats from `first` in
 * each of `planes` planes), asked for into L2 a share before each kernel call
 * of the segment's first pass: the transpose writes each plane's run after
 * the segment's multiply-adds, and where the output is beyond L2 (a stem's
 * 3.2 MB) each line it writes would first come from L3 or memory, a burst of
 * misses the stores wait on (on an Intel Xeon the stem's transpose took 17%
 * of its time).  Asked for during the multiply-adds, the lines arrive under
 * them.  A read prefetch: a line no other core holds arrives writable.
 * Even so the transpose was still ~17% of the stem there (skipping it: 1.40
 * -> 1.16 ms); neither asking for the lines twice as early nor writing each
 * tile a share after each kernel call of the next segment (two tiles in
 * turn, the stores under the multiply-adds) changed the time beyond noise
 * (A/B 0.97-1.04, the MobileNet stem up to 10% slower); the output planes in
 * 2 MB pages ran the stem 5% faster, the MobileNet stem 8%. */
typedef struct {
    const char *first; /* plane 0's first line */
    int64_t plane;     /* bytes between planes */
    int64_t per_plane; /* lines a plane's run covers */
    int64_t total;     /* per_plane x planes; 0 where the output is near */
    int64_t done;      /* lines asked for so far */
    const char *next;  /* the next line to ask for */
    int64_t left;      /* lines of its plane's run from it */
} lc_dl_out_lines;

static void lc_dl_out_lines_init(lc_dl_out_lines *ol, const lc_conv_desc *d, const float *first,
                                 int64_t planes, int64_t sn, int far) {
    const uintptr_t a = (uintptr_t)first, lo = a & ~(uintptr_t)63;
    const uintptr_t hi = (a + (uintptr_t)sn * sizeof(float) + 63) & ~(uintptr_t)63;
    ol->first = (const char *)lo;
    ol->plane = d->OH * d->OW * (int64_t)sizeof(float);
    ol->per_plane = (int64_t)((hi - lo) / 64);
    ol->total = far ? ol->per_plane * planes : 0;
    ol->done = 0;
    ol->next = ol->first;
    ol->left = ol->per_plane;
}

/* Ask for the lines up to `upto` (of total), plane by plane: a pointer
 * stepped along, not a division a line (the stem asks for ~1100 lines a
 * segment, and the divisions took ~10% of its time on an Intel Xeon). */
static inline void lc_dl_out_lines_ask(lc_dl_out_lines *ol, int64_t upto) {
    for (; ol->done < upto; ol->done++) {
        __builtin_prefetch(ol->next, 1, 2);
        ol->next += 64;
        if (--ol->left == 0) {
            ol->left = ol->per_plane;
            ol->next += ol->plane - ol->per_plane * 64;
        }
    }
}

/* Output channel block blk of group g, image n: the segment of sn pixels
 * at plane offset `at`, its offsets xoff, from the padded input `in`. */
static void lc_dl_segment(const lc_dl_ctx *t, int64_t n, int64_t g, int64_t blk, int64_t next_blk,
                          int64_t at, int64_t sn, const float *in, int64_t in_rows,
                          const size_t *xoff, const lc_dl_geom *gmp, float *tile, float *stage) {
    const lc_conv_desc *d = t->c.d;
    const lc_isa_config *isa = d->isa;
    const int64_t L = isa->dl_lanes, cw = t->c.blk.cols, R = t->c.blk.rows;
    const int64_t Cg = d->C / d->groups, Mg = d->M / d->groups, taps = d->kH * d->kW;
    const int64_t o0 = g * Mg + blk * cw, valid = lc_min64(cw, Mg - blk * cw);
    const int64_t wp = lc_dl_row_width(d), nblk = lc_div_up(sn, R);
    const float *wb = t->c.packed + (g * t->b.blocks + blk) * Cg * taps * cw;
    lc_dl_geom gm = *gmp;
    float bias[LC_DL_MAX_COLS];
    const float *bp = lc_dl_block_bias(t->c.bias, o0, cw, valid, bias);
    lc_dl_out_lines ol;
    lc_dl_out_lines_init(&ol, d, t->c.y + (n * d->M + o0) * d->OH * d->OW + at, valid, sn,
                         t->far);
    for (int64_t c0 = 0; c0 < Cg; c0 += t->b.cb) {
        const int64_t cn = lc_min64(t->b.cb, Cg - c0);
        const unsigned flags = (c0 > 0 ? LC_GEMM_ACCUMULATE : 0u) |
                               (c0 + cn == Cg ? LC_GEMM_FINAL : 0u);
        const float *xc = in + c0 * in_rows * wp;
        gm.C = (size_t)cn;
        /* the pass after this one (this block's next channels, else the
         * next block's first), its lines asked for a share a call */
        const float *next = NULL;
        int64_t next_c = 0;
        if (t->b.ahead && c0 + cn < Cg) {
            next = wb + (c0 + cn) * taps * cw;
            next_c = lc_min64(t->b.cb, Cg - c0 - cn);
        } else if (t->b.ahead && next_blk >= 0) {
            next = t->c.packed + (g * t->b.blocks + next_blk) * Cg * taps * cw;
            next_c = lc_min64(t->b.cb, Cg);
        }
        const int64_t lines = next_c * taps * cw * (int64_t)sizeof(float) / 64;
        gm.pf = NULL;
        gm.pf_lines = 0;
        for (int64_t bi = 0; bi < nblk; bi++) {
            /* blocks of near-equal size, at most R */
            const int64_t p0 = bi * sn / nblk, cnt = (bi + 1) * sn / nblk - p0;
            gm.xoff = xoff + p0;
            if (next) { /* (the divisions cost the short calls of a 3-channel stem ~2%) */
                const int64_t l0 = bi * lines / nblk, l1 = (bi + 1) * lines / nblk;
                gm.pf = (const char *)next + l0 * 64;
                gm.pf_lines = (size_t)lc_div_up(l1 - l0, cn);
            }
            if (c0 == 0) lc_dl_out_lines_ask(&ol, (bi + 1) * ol.total / nblk);
            t->c.blk.kernel((size_t)cnt, xc, wb + c0 * taps * cw, tile + p0 * L, bp, &gm,
                           &t->c.kep, flags);
        }
    }
    lc_dl_write_tile(d, n, o0, valid, at, sn, LC_DL_SEGMENT, tile, stage, t->c.y, t->c.res, &t->c.ep, t->c.post);
}

static void lc_dl_task(void *vctx, int64_t item, int thread) {
    lc_dl_ctx *t = (lc_dl_ctx *)vctx;
    const lc_conv_desc *d = t->c.d;
    const int64_t Cg = d->C / d->groups, taps = d->kH * d->kW;
    /* bands innermost: a thread's run of items keeps to its channel blocks,
     * whose weights stay in its L2 */
    const int64_t band = item % t->b.bands, span = item / t->b.bands % t->b.spans;
    const int64_t ng = item / t->b.bands / t->b.spans;
    const int64_t g = ng % d->groups, n = ng / d->groups;
    const int64_t blk0 = span * t->b.blocks / t->b.spans;
    const int64_t blk1 = (span + 1) * t->b.blocks / t->b.spans;
    const int64_t oy0 = band * d->OH / t->b.bands, oy1 = (band + 1) * d->OH / t->b.bands;
    const int64_t OW = d->OW, wp = lc_dl_row_width(d);
    const int64_t in_rows = lc_dl_band_in_rows(d, oy1 - oy0);
    /* A thread's next item is often the same band's next run of channel
     * blocks (one band: always), whose padded input its scratch holds
     * already.  Copied again per item, small images split by channel blocks
     * read their whole input once an item: 3x3/2 128>256 @28 (4 spans at 2
     * threads, 2 at 1) copies 0.43 MB per span.  Kept, that layer's busiest
     * thread at 2 threads took 30-40 us (6-8%) less CPU, 3x3/2 256>512 @14
     * ~20 us (ResNet-18's last three stages as a chain, bench/step_cpu.py
     * --env in one process, 200 runs, Intel Xeon, load ~4).  The copy is
     * the same bits whoever made it. */
    const int have = lc_kept_tags_hit(&t->band_in, thread, ng * t->b.bands + band);
    float *in = (float *)lc_thread_scratch_kept(t->c.ws, t->per_thread * (int64_t)sizeof(float),
                                                thread, have ? t->in * (int64_t)sizeof(float) : 0);
    float *tile = in + t->in, *stage = tile + t->tile;
    if (!have) {
        lc_dl_pad_input(d, t->c.x + (n * d->C + g * Cg) * d->H * d->W, oy0, oy1, in);
    }
    size_t xoff[LC_DL_SEGMENT];
    lc_dl_geom gm;
    gm.kH = (size_t)d->kH;
    gm.kW = (size_t)d->kW;
    gm.xcs = (size_t)(in_rows * wp);
    gm.xrs = (size_t)(d->dil_h * wp);
    gm.xts = (size_t)d->dil_w;
    gm.wcs = (size_t)(taps * t->c.blk.cols);
    gm.ldt = (size_t)(LC_DL_SEGMENT * d->isa->dl_lanes);
    gm.pf = NULL;
    gm.pf_lines = 0;
    /* the band's pixels [0, q1), flattened row-major from its first row */
    const int64_t q1 = (oy1 - oy0) * OW;
    const int64_t step = lc_dl_segment_step(d, q1), nseg = lc_div_up(q1, step);
    for (int64_t si = 0; si < nseg; si++) {
        const int64_t s0 = si * step, sn = lc_min64(step, q1 - s0);
        /* one division a segment, not a pixel (a stem has 12544 pixels) */
        for (int64_t j = 0, r = s0 / OW, col = s0 % OW; j < sn; j++) {
            xoff[j] = (size_t)(r * d->stride_h * wp + col * d->stride_w);
            if (++col == OW) {
                col = 0;
                r++;
            }
        }
        for (int64_t blk = blk0; blk < blk1; blk++) {
            /* the block this item runs next, if any */
            const int64_t next_blk = blk + 1 < blk1 ? blk + 1 : si + 1 < nseg ? blk0 : -1;
            lc_dl_segment(t, n, g, blk, next_blk, oy0 * OW + s0, sn, in, in_rows, xoff, &gm,
                          tile, stage);
        }
    }
}

int lc_direct_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                        const float *packed, const float *bias, const float *res, float *y,
                        char *ws) {
    if (lc_stem_lanes_applies(d))
        return lc_stem_lanes_run(d, tiling, x, packed, bias, res, y, ws);
    if (lc_gemm_is_pointwise(d))
        return lc_pointwise_lanes_run(d, tiling, x, packed, bias, res, y, ws);
    if (lc_tap_lanes_applies(d))
        return lc_tap_lanes_run(d, tiling, x, packed, bias, res, y, ws);
    int ok = 1;
    lc_dl_ctx t;
    memcpy(&t.b, tiling, sizeof t.b);
    t.c = lc_lanes_call_of(d, x, packed, bias, res, y, ws);
    /* the image's output planes in more than half of L2 (the other half holds
     * the weights and the padded input): the lines a segment writes are
     * likely gone from L2 when it writes them, and are asked for (the stem,
     * 3.2 MB; not the 3x3/2 layers after it, 0.4 MB, whose lines are there) */
    t.far = lc_mul(lc_mul(d->M, d->OH * d->OW, &ok), (int64_t)sizeof(float), &ok) >
            (int64_t)lc_cpu_caches()->l2 / 2;
    lc_dl_parts(d, &t.b, &t.in, &t.tile, &ok);
    t.per_thread = t.in + 2 * t.tile;
    lc_kept_tags_clear(&t.band_in);
    lc_parallel_for(d->nthreads, t.b.items, lc_conv_macs(d), lc_dl_task, &t);
    return LC_OK;
}
