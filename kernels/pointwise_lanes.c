/* direct_lanes on 1 x 1 / stride-1 / unpadded layers (lc_gemm_is_pointwise):
 * output channels in the vector lanes, as ONNX Runtime's NCHWc pointwise
 * convolution runs them, for small images (7 x 7, 14 x 14: P = 49 or 196
 * pixels), where the GEMM's 32- and 48-pixel panels waste lanes or need a
 * remainder kernel.  Same packing as direct_lanes ([group][channel block][c]
 * [CW], the kernels lc_dl_kernel_fn), but no padded input copy: a 1 x 1
 * input channel is one contiguous run of pixels, so the kernel broadcasts
 * the pixels straight from the NCHW planes.
 *
 * A work item is (image, group, channel block, chunk of pixels).  The
 * chunk's tile (its pixels x CW, lanes innermost) is built in passes over
 * the input channels whose slice of the block's weights fits half of L2
 * (all of them up to 2048 channels at 64 a block and 1 MiB of L2): every
 * block of R pixels of the chunk runs over a pass's weights, so they are
 * read from beyond L2 once per chunk -- per call, for P <= LC_PW_CHUNK.
 * Then the tile goes into the output planes with the epilogue
 * (lc_dl_write_tile).  Items split the channel blocks first, so two
 * threads each stream half of the weights, where the weights are the larger
 * read (output channels at least the pixels); chunks split the pixels where
 * there are too few blocks for the threads or they do not share out evenly
 * (lc_pw_balanced_chunks), and first where the input is the
 * larger read (lc_pointwise_lanes_tiling).  Each output is summed
 * over the input channels in order (the bias first, pass boundaries at
 * fixed channels): the bits do not depend on the thread count. */
#include <string.h>
#include "internal.h"

/* Pixels a chunk holds at most (its tile: 64 KiB at 64 channels). */
#define LC_PW_CHUNK 256

typedef struct {
    int64_t blocks;  /* channel blocks per group */
    int64_t chunk;   /* pixels a chunk holds at most (its tile's capacity) */
    int64_t chunks;  /* per image */
    int64_t rows;    /* the kernel's R: chunks are runs of whole R-pixel blocks */
    int64_t items;
    int64_t threads; /* threads the run uses (lc_threads_used of items) */
    int64_t kc;      /* input channels a pass */
    int64_t by_pixels; /* items run chunk-major: a thread takes every block of its pixels */
} lc_pw_tiles;
LC_TILING_FITS(lc_pw_tiles);

/* An input float another core wrote, in floats of weights streamed from
 * beyond L2 (lc_pw_split_pixels).  The kernel reads the input as one short
 * run of R pixels from each of the K planes per call -- as many streams as
 * input channels, which the hardware prefetchers do not follow -- so each
 * line another core holds arrives as a miss of its own, while the weights
 * are one run it asks for ahead (LC_PW_PREFETCH).  What decides is only
 * whether it is a few times the cost: zoo ResNet-50 224 inside the model (2
 * threads, Intel Xeon, thread CPU time of the loop's busiest thread,
 * interleaved, load 3.5-4): 1024>256 @14 0.57-0.63 -> 0.47-0.48 ms by
 * pixels (break-even at 2.6), 1024>512 @14 0.98 -> 0.89 (break-even at
 * 5.2), 256>1024 @14 0.42 -> 0.50, worse (break-even at 10.4).  The low end
 * of that, so a CPU whose cores hand lines over more cheaply is not pushed
 * onto pixels where it loses; 1024>512 keeps channels. */
#define LC_PW_GATHER_COST 4.0

/* Whether the T threads share the pixels, each running every channel block
 * over its own, rather than the channel blocks, each over all the pixels.
 * Each thread's extra reads either way: by channels the whole input where it
 * would read 1/T, (T-1)/T of it written by the other cores (a 1 x 1 layer's
 * input is the last layer's output, written by all the threads, whichever
 * way they split it), so (T-1)/T * (1 - 1/T) * K * P floats from other
 * cores; by pixels all the weights where it would read 1/T, (1 - 1/T) * Mp
 * * K more floats from beyond L2 (Mp: the output channels padded to whole
 * blocks).  Pixels when the first, at LC_PW_GATHER_COST, is the larger:
 * P * (T-1) * LC_PW_GATHER_COST > T * Mp.  (The rule before, P > Mp, is a
 * cost of 2 at 2 threads: 1024>256 @14 went by channels and ran at 1.2x its
 * 1-thread speed in ResNet-50, each thread's CPU time 0.8x the whole
 * layer's on one.)
 * And the hand-overs between cores must favour it too
 * (lc_handover_prefers_pixels): MobileNetV2's 576>96 @14, its input a
 * depthwise layer's output, ran at 1.0-1.1x its 1-thread time by channels. */
static int lc_pw_split_pixels(const lc_conv_desc *d, int64_t P, int64_t padded_m, int64_t T) {
    return T > 1 &&
           (double)P * (double)(T - 1) * LC_PW_GATHER_COST > (double)T * (double)padded_m &&
           lc_handover_prefers_pixels(d, T);
}

/* The pixels of the busiest of T threads when the items -- units x chunks,
 * block-major (item = unit * chunks + chunk) -- go in the pool's contiguous
 * ranges (thread s: items [n s / T, n (s + 1) / T)), chunk c holding R-pixel
 * blocks [c nb / chunks, (c + 1) nb / chunks) as lc_pw_chunk_span cuts them. */
static int64_t lc_pw_busiest_pixels(int64_t units, int64_t chunks, int64_t nb, int64_t R, int64_t P,
                                    int64_t T) {
    const int64_t items = units * chunks;
    int64_t worst = 0;
    for (int64_t s = 0; s < T; s++) {
        int64_t sum = 0;
        for (int64_t i = items * s / T; i < items * (s + 1) / T; i++) {
            const int64_t c = i % chunks;
            sum += lc_min64(P, (c + 1) * nb / chunks * R) - c * nb / chunks * R;
        }
        worst = lc_max64(worst, sum);
    }
    return worst;
}

/* Chunks per image, at least `chunks`, that share the items out evenly: a
 * count of channel blocks that is no multiple of T leaves a thread one whole
 * block more, and more chunks cut that last block up.  MobileNetV2's 960>320
 * @7 (5 blocks of 64) went 3 blocks against 2 on 2 threads (147 block-pixels
 * against 98), its loop 173 us against 148 even (pool trace, Zen 4); in 2
 * chunks (21 + 28 pixels) it goes 126 against 119.  A chain of four 960>320 +
 * 320>960 @7 at 2 threads, two plans interleaved in one process, 400 runs:
 * 1.395 -> 1.320 ms median (320>960's 15 blocks keep one chunk: 2 would make
 * 371 against 392, not 1/16 less).  A chunk count past `chunks` is taken only
 * for a busiest share at least 1/16 smaller: each chunk reads its block's
 * weights again and writes a tile of its own.  Small counts only (the search
 * walks every item); beyond 8 items a thread the last block is at most an
 * eighth of its share. */
static int64_t lc_pw_balanced_chunks(int64_t units, int64_t chunks, int64_t nb, int64_t R, int64_t P,
                                     int64_t T) {
    if (units * chunks >= 8 * T) return chunks;
    int64_t best = chunks, best_work = lc_pw_busiest_pixels(units, chunks, nb, R, P, T);
    for (int64_t c = chunks + 1; c <= lc_min64(nb, chunks + T); c++) {
        const int64_t work = lc_pw_busiest_pixels(units, c, nb, R, P, T);
        if (16 * work <= 15 * best_work) {
            best = c;
            best_work = work;
        }
    }
    return best;
}

void lc_pointwise_lanes_tiling(const lc_conv_desc *d, int64_t *tiling) {
    int ok = 1;
    lc_pw_tiles b;
    const int64_t P = d->OH * d->OW;
    b.blocks = lc_div_up(d->M / d->groups, lc_direct_lanes_block(d).cols);
    const int64_t units = lc_mul(lc_mul(d->N, d->groups, &ok), b.blocks, &ok);
    int64_t chunks = lc_div_up(P, LC_PW_CHUNK);
    const int64_t T = d->nthreads;
    /* too few channel blocks for the threads: split the pixels as well */
    if (T > 1 && units < 2 * T) chunks = lc_max64(chunks, lc_div_up(2 * T, units));
    b.by_pixels = lc_pw_split_pixels(d, P, b.blocks * lc_direct_lanes_block(d).cols, T);
    if (b.by_pixels) chunks = lc_round_up(lc_max64(chunks, T), T, &ok);
    /* chunks of near-equal counts of whole R-pixel blocks (lc_pw_chunk_span),
     * so the threads' shares of the pixels are equal: chunks rounded up to
     * whole vectors of the output planes split 14 x 14 into 64 + 64 + 64 +
     * 4 pixels, 128 for one thread and 68 for the other, and 384>64@14 ran
     * at 1.5x its 1-thread speed inside MobileNetV2 */
    b.rows = lc_direct_lanes_block(d).pw_rows;
    const int64_t nb = lc_div_up(P, b.rows);
    b.chunks = lc_max64(1, lc_min64(chunks, nb));
    if (T > 1 && !b.by_pixels) b.chunks = lc_pw_balanced_chunks(units, b.chunks, nb, b.rows, P, T);
    b.chunk = lc_min64(P, lc_div_up(nb, b.chunks) * b.rows);
    b.items = lc_mul(units, b.chunks, &ok);
    b.threads = lc_threads_used(d->nthreads, b.items, lc_conv_macs(d));
    /* direct_lanes' passes (a pass's weights within half of L2): every
     * kernel call then keeps its accumulators over all of a pass's channels.
     * Passes of 64 channels, the weights' slice in L1, measured 4-10%
     * slower on 960>160@7, 160>960@7 and 1024>256@14 (thread CPU time,
     * interleaved, load 3.8): the tile's reloads cost more than the weights
     * streamed from L2 beside the FMAs. */
    b.kc = lc_direct_lanes_pass_channels(d);
    memcpy(tiling, &b, sizeof b);
}

LC_TILING_GETTER(lc_pw_tiles, lc_pw_get_tiles, lc_pointwise_lanes_tiling)

int64_t lc_pointwise_lanes_items(const lc_conv_desc *d) { return lc_pw_get_tiles(d).items; }

int64_t lc_pointwise_lanes_chunks(const lc_conv_desc *d) { return lc_pw_get_tiles(d).chunks; }

int lc_pointwise_lanes_by_pixels(const lc_conv_desc *d) { return (int)lc_pw_get_tiles(d).by_pixels; }

/* Chunk c's pixels [*at, *at + *n): R-pixel blocks [c nb / chunks, (c + 1) nb
 * / chunks) of the nb = ceil(P / R), the last block cut at P. */
static void lc_pw_chunk_span(const lc_pw_tiles *b, int64_t P, int64_t c, int64_t *at, int64_t *n) {
    const int64_t nb = lc_div_up(P, b->rows);
    *at = c * nb / b->chunks * b->rows;
    *n = lc_min64(P, (c + 1) * nb / b->chunks * b->rows) - *at;
}

int64_t lc_pointwise_lanes_chunk(const lc_conv_desc *d, int64_t c, int64_t *at) {
    const lc_pw_tiles b = lc_pw_get_tiles(d);
    int64_t n;
    lc_pw_chunk_span(&b, d->OH * d->OW, c, at, &n);
    return n;
}

/* Every chunk but the last is whole R-pixel blocks: the kernel runs the
 * pixels rounded up to R once. */
int64_t lc_pointwise_lanes_pixels(const lc_conv_desc *d) {
    const int64_t R = lc_pw_get_tiles(d).rows;
    return lc_div_up(d->OH * d->OW, R) * R;
}

/* Weighed (kernels/choose.c) on ISAs that price it (pw_mac), on images of
 * one chunk.  It used to be kept from the layers where Im2Col packs B's
 * blocks into panels (lc_im2col_packs_b in kernels/im2col.c: many row passes), where Im2Col
 * ran 4-13% ahead with the caches flushed on an Intel Xeon; the 1-thread
 * tables of three CPUs (bench/fit_data) have it ahead there on both AMD
 * EPYCs (1024>256@14: 0.92 and 0.93 of Im2Col) and level on the Xeon
 * (1.01), and on the Zen 4 ahead with the caches flushed too (0.93, 41
 * interleaved calls, input rewritten and 48 MB written between calls), so
 * the price alone decides.
 * Not weighed past one chunk (28 x 28, 56 x 56), though on the Zen 4 it ran
 * ahead there: 512>128 @28 0.92-0.95x of Im2Col, 256>64 @56 0.88-0.95x
 * (AVX-512, 1 thread, thread CPU time, interleaved, load 8), while the
 * Xeon's table has it 1.20x and 1.07x behind and the Zen 5's 0.98x, 1.02x
 * (bench/fit_data).  Im2Col's copy of B's blocks (lc_im2col_packs_b,
 * 13-26% of its time on those two there) is not priced (LC_FEAT_PACK is 0
 * on 1 x 1 layers); pricing it at pack_im2col per value would put both on
 * direct_lanes on every CPU, so it wants a fact that tells the Zen 4 apart
 * (its AVX-512 FMAs double-pumped?) first.  Inside ResNet-50 at 224 (Zen 4,
 * 1 thread, onnx_profile --steps, the algorithm forced through a wisdom
 * file, 2 runs each) 512>128 @28 keeps its lead, 0.95-0.96x of Im2Col;
 * 1024>256 @14 is level and 2048>512 @7 1.02-1.03x behind (0.94x in loops
 * of calls): in a model its weights cost it more than the GEMM's (see
 * lc_pw_task for two prefetches tried against that). */
int lc_pointwise_lanes_weighed(const lc_conv_desc *d) {
    return d->isa->cost.pw_mac > 0.0f && lc_gemm_is_pointwise(d) && d->OH * d->OW <= LC_PW_CHUNK;
}

/* Floats of one tile (and of the staging copy beside it), 64-byte multiples. */
static int64_t lc_pw_tile_floats(const lc_conv_desc *d, const lc_pw_tiles *b, int *ok) {
    return lc_round_up(lc_mul(lc_direct_lanes_block(d).cols, b->chunk, ok), 16, ok);
}

int64_t lc_pointwise_lanes_workspace(const lc_conv_desc *d, int *ok) {
    const lc_pw_tiles b = lc_pw_get_tiles(d);
    const int64_t tile = lc_pw_tile_floats(d, &b, ok);
    return lc_mul(b.threads, lc_mul(lc_mul(tile, 2, ok), (int64_t)sizeof(float), ok), ok);
}

typedef struct {
    lc_lanes_call c;
    lc_pw_tiles b;
    int64_t tile;        /* floats */
} lc_pw_ctx;

static void lc_pw_task(void *vctx, int64_t item, int thread) {
    const lc_pw_ctx *t = (const lc_pw_ctx *)vctx;
    const lc_conv_desc *d = t->c.d;
    /* item = ((image, group), channel block, chunk), or with the chunk
     * before the block (by_pixels) */
    const int64_t per = t->b.chunks * t->b.blocks, ng = item / per, in = item % per;
    const int64_t chunk = t->b.by_pixels ? in / t->b.blocks : in % t->b.chunks;
    const int64_t blk = t->b.by_pixels ? in % t->b.blocks : in / t->b.chunks;
    const int64_t g = ng % d->groups, n = ng / d->groups;
    const int64_t Cg = d->C / d->groups, Mg = d->M / d->groups, P = d->OH * d->OW;
    const int64_t L = d->isa->dl_lanes, cw = t->c.blk.cols, R = t->c.blk.pw_rows;
    const int64_t o0 = g * Mg + blk * cw, valid = lc_min64(cw, Mg - blk * cw);
    int64_t at, sn;
    lc_pw_chunk_span(&t->b, P, chunk, &at, &sn);
    const int64_t nblk = lc_div_up(sn, R);
    float *tile = (float *)lc_thread_scratch(t->c.ws, 2 * t->tile * (int64_t)sizeof(float), thread);
    float *stage = tile + t->tile;
    const float *xg = t->c.x + (n * d->C + g * Cg) * P + at;
    const float *wb = t->c.packed + (g * t->b.blocks + blk) * Cg * cw;
    float bias[LC_DL_MAX_COLS];
    const float *bp = lc_dl_block_bias(t->c.bias, o0, cw, valid, bias);
    const size_t ldt = (size_t)(t->b.chunk * L);
    for (int64_t c0 = 0; c0 < Cg; c0 += t->b.kc) {
        const int64_t cn = lc_min64(t->b.kc, Cg - c0);
        const unsigned flags = (c0 > 0 ? LC_GEMM_ACCUMULATE : 0u) |
                               (c0 + cn == Cg ? LC_GEMM_FINAL : 0u);
        for (int64_t bi = 0; bi < nblk; bi++) {
            /* blocks of near-equal size, at most R */
            const int64_t p0 = bi * sn / nblk, cnt = (bi + 1) * sn / nblk - p0;

            /* the first call of a pass reads its weights first, from L3
             * in a model's run (the pass's later calls find them in L2):
             * it asks for them ahead (LC_PW_PREFETCH).  Tried (Zen 4, 1
             * thread, onnx_profile --steps): asking 48 channels ahead, not
             * 16, changed nothing on MobileNetV2's 7 x 7 layers; the next
             * block's weights asked into L2 a slice per call of the last
             * pass ran ResNet-50's 1024>256 @14 3% and 2048>512 @7 4% slower.
             * Every call but the last also asks for the next call's input
             * lines (LC_PW_PREFETCH_X), the first for its own some channels
             * ahead: at 2 threads half of a layer's input is lines the
             * other core wrote (the depthwise layer before it splits by
             * channels, this one by pixels), one miss each otherwise.
             * MobileNetV2's 576>96 @14 loop inside a chain of four of its
             * blocks at 2 threads: 112 -> 95 us (1 thread: 146 -> 144);
             * MobileNetV2 224 at 2 threads 3.39 -> 3.28 ms (Intel Xeon,
             * blocks of runs in turns with onnxruntime, which stayed at
             * 3.34-3.40) */
            unsigned pf = bi == 0 ? LC_PW_PREFETCH : 0u;
            if (bi + 1 < nblk) pf |= LC_PW_PREFETCH_X;
            t->c.blk.pw((size_t)cnt, (size_t)cn, xg + c0 * P + p0, (size_t)P, wb + c0 * cw,
                      tile + p0 * L, ldt, bp, &t->c.kep, flags | pf);
        }
    }
    lc_dl_write_tile(d, n, o0, valid, at, sn, t->b.chunk, tile, stage, t->c.y, t->c.res, &t->c.ep,
                     t->c.post);
}

int lc_pointwise_lanes_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                           const float *packed, const float *bias, const float *res, float *y,
                           char *ws) {
    int ok = 1;
    lc_pw_ctx t;
    memcpy(&t.b, tiling, sizeof t.b);
    t.c = lc_lanes_call_of(d, x, packed, bias, res, y, ws);
    t.tile = lc_pw_tile_floats(d, &t.b, &ok);
    lc_parallel_for(d->nthreads, t.b.items, lc_conv_macs(d), lc_pw_task, &t);
    return LC_OK;
}
