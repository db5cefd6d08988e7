/* Algorithm choice: what "auto" and "winograd" mean for one call geometry.
 *
 * A cost model: each algorithm's work is counted in a few units (features),
 * and each ISA's table prices them (lc_cost_terms, kernels/<isa>/config.c)
 * relative to one GEMM micro-kernel multiply-add:
 *   LC_FEAT_MAC     multiply-adds the micro-kernels run, with rows rounded up
 *                   to MR panels and pixels (tiles) to NR panels, since a
 *                   partial panel costs nearly a full one (price 1);
 *   LC_FEAT_PACK    patch values unwrapped (Im2Col, Patch2Vec; priced apart,
 *                   as Im2Col builds a whole matrix and Patch2Vec an L1 panel;
 *                   all of them for each channel block of a GEMM split by
 *                   channels),
 *                   or values direct_lanes moves (its zero-padded input rows
 *                   and the transpose of its output tiles into the planes);
 *   LC_FEAT_WINO    values through the Winograd transforms, (Cg + Mg) alpha^2
 *                   per tile (gather, input and output transform, scatter);
 *   LC_FEAT_STREAM  bytes read from beyond L2 (the detected size): packed
 *                   weights that do not fit, read again by every pass over
 *                   them -- each chunk of panels (Im2Col), each panel
 *                   (Patch2Vec), each tile block (Winograd's U) -- and an
 *                   Im2Col matrix that does not fit in twice L2, written
 *                   and read back.
 * The micro-kernels prefetch what they stream, so streaming overlaps the
 * multiply-adds: the estimate takes the larger of the two (a roofline), plus
 * the packing and transforms.
 * Everything is divided among the threads the algorithm's work items keep
 * busy (the busiest thread's share); streaming too, as each core has its own
 * path to L3 (a first guess: thread counts were not fitted, see
 * docs/performance.md, "Algorithm choice").  bench/fit_data holds the times
 * the prices were fitted to, on more than one CPU (that section says how). */
#include "internal.h"
#include "leanconv/cpu.h"

enum { LC_FEAT_MAC, LC_FEAT_PACK, LC_FEAT_WINO, LC_FEAT_STREAM, LC_FEAT_COUNT };

static int lc_supports(const lc_conv_desc *d, int algorithm) {
    lc_conv_desc c = *d;
    c.algorithm = algorithm;
    return lc_conv_supports(&c, NULL);
}

/* Lanes the Winograd GEMMs compute for n tiles: the driver passes the real
 * count, so a last panel of at most NR/2 tiles runs the half-width kernel
 * where the ISA has one. */
static double lc_panel_lanes(const lc_isa_config *isa, int64_t n) {
    const int64_t nr = isa->nr, full = n / nr, rem = n % nr;
    const int64_t half = isa->gemm_narrow && rem <= nr / 2 ? nr / 2 : nr;
    return (double)(full * nr + (rem == 0 ? 0 : half));
}

/* The share of the work the busiest of T threads does, for `items` equal
 * work items shared out statically. */
static double lc_busiest_share(const lc_conv_desc *d, int64_t items) {
    const int64_t t = lc_threads_used(d->nthreads, items, lc_conv_work(d));
    return items < 1 ? 1.0 : (double)lc_div_up(items, t) / (double)items;
}

/* Bytes streamed from beyond L2: `bytes` of weights read `passes` times,
 * once they do not fit in L2. */
static double lc_streamed(double bytes, double passes) {
    return bytes > (double)lc_cpu_caches()->l2 ? bytes * passes : 0.0;
}

/* Pixel lanes the GEMM micro-kernels compute for P pixels: NR-wide panels,
 * but on 1 x 1 layers (where the counts were checked against direct_lanes,
 * bench/ab_builds.py --layers pointwise) as the driver runs them: Im2Col's
 * wide tile takes 49 pixels whole (48 + 1, lc_gemm_wide_rows), and a last
 * panel of at most NR/2 goes to the narrow kernel (196 = 6 x 32 + 16). */
static double lc_gemm_lanes(const lc_conv_desc *d, int algorithm, int64_t P) {
    const lc_isa_config *isa = d->isa;
    if (!lc_gemm_is_pointwise(d)) return (double)(lc_div_up(P, isa->nr) * isa->nr);
    if (algorithm == LC_ALGO_IM2COL && lc_gemm_wide_rows(isa, (size_t)P)) return (double)P;
    return lc_panel_lanes(isa, P);
}

static void lc_features(const lc_conv_desc *request, int algorithm, double f[LC_FEAT_COUNT]) {
    /* priced at the threads it will run on (tiny layers: one) */
    lc_conv_desc one = lc_conv_as_run(request);
    /* the drivers' geometry helpers read d->algorithm */
    const lc_conv_desc *d = &one;
    one.algorithm = algorithm;
    const lc_isa_config *isa = d->isa;
    const int64_t G = d->groups, Mg = d->M / G, Cg = d->C / G, mr = isa->mr, nr = isa->nr;
    const double images = (double)(d->N * G);
    const double mpad = (double)(lc_div_up(Mg, mr) * mr);
    double share = 1.0;
    int ok = 1;
    for (int i = 0; i < LC_FEAT_COUNT; i++) f[i] = 0.0;
    if (algorithm == LC_ALGO_DEPTHWISE && d->groups != d->C && lc_grouped_items(d) > 0) {
        /* the grouped band kernel (kernels/grouped.c): every output channel
         * over Cg x kH x kW taps, each row rounded up to whole vectors */
        f[LC_FEAT_MAC] = (double)(d->N * d->M) * (double)(d->OH * lc_grouped_row_lanes(d)) *
                         (double)(Cg * d->kH * d->kW) * lc_busiest_share(d, lc_grouped_items(d));
        return;
    }
    if (algorithm == LC_ALGO_DEPTHWISE || algorithm == LC_ALGO_DIRECT) {
        /* never weighed against the others by lc_conv_choose (depthwise is
         * taken whenever it runs, direct never); a rough figure for callers
         * that rank all of them: the taps, and the naive loops' double
         * accumulation at about 8 times a micro-kernel multiply-add */
        const double taps = (double)(d->N * d->M) * (double)(d->OH * d->OW) *
                            (double)(d->kH * d->kW) * (algorithm == LC_ALGO_DIRECT ? (double)Cg * 8.0 : 1.0);
        f[LC_FEAT_MAC] = taps * lc_busiest_share(d, d->N * d->M);
        return;
    }
    if (algorithm == LC_ALGO_DIRECT_LANES && lc_stem_lanes_applies(d)) {
        /* its stem mode: R output channels by whole pixel vectors of each
         * row, every tap; the padded, phase-split input copy; weights in L2 */
        share = lc_busiest_share(d, lc_stem_lanes_items(d));
        f[LC_FEAT_MAC] = (double)d->N * (double)lc_stem_lanes_lanes(d) *
                         (double)(d->C * d->kH * d->kW) * share;
        f[LC_FEAT_PACK] = (double)d->N * (double)lc_stem_lanes_moved(d) * share;
        return;
    }
    if (algorithm == LC_ALGO_DIRECT_LANES) {
        /* channel blocks of dl_cols, every pixel; the group's packed weights
         * are read once per segment of pixels, from beyond L2 when they do
         * not fit; the padded copy and the transpose (a tenth of the stem) */
        const int64_t cw = lc_direct_lanes_block(d).cols, blocks = lc_div_up(Mg, cw);
        /* 1 x 1: each chunk's pixels rounded up to the kernel's R, as a
         * short block costs about a full one (AVX-512's 7-pixel kernel takes
         * 7 x 7 and 14 x 14 whole; its 12-pixel half-width one cuts 49 into 5
         * blocks, priced 60: 960>160@7 stays with Im2Col).  Priced at the 49
         * it runs (5 calls of 9-10 pixels, about full speed each), it moved
         * to direct_lanes: 0.94x Im2Col's time in loops of calls, weights in
         * L2 or L3, but 1.10-1.15x inside MobileNetV2 at 224 (onnx_profile
         * --steps, 1 thread, Zen 4, 3 runs), where direct_lanes forced lost
         * on the 7 x 7 1 x 1 layers (160>960, 960>320, 320>1280: 1.06-1.10x;
         * 576>160 level) and won only on the 14 x 14 projections it already
         * takes */
        const int64_t P = lc_gemm_is_pointwise(d) ? lc_pointwise_lanes_pixels(d) : d->OH * d->OW;
        const double taps = (double)(Cg * d->kH * d->kW);
        share = lc_busiest_share(d, lc_direct_lanes_items(d));
        f[LC_FEAT_MAC] = images * (double)(blocks * cw) * taps * (double)P;
        if (lc_tap_lanes_applies(d)) /* its mode for taps reading padding: the live pairs */
            f[LC_FEAT_MAC] = images * (double)(blocks * cw) * (double)Cg *
                             (double)lc_tap_lanes_live_pairs(d);
        f[LC_FEAT_PACK] = images * (double)lc_direct_lanes_moved(d);
        f[LC_FEAT_STREAM] = images * lc_streamed((double)(blocks * cw) * taps * 4.0,
                                                 (double)lc_direct_lanes_segments(d));
        for (int i = 0; i < LC_FEAT_COUNT; i++) f[i] *= share;
        return;
    }
    if (algorithm == LC_ALGO_IM2COL || algorithm == LC_ALGO_PATCH2VEC) {
        const int64_t K = Cg * d->kH * d->kW, P = d->OH * d->OW, npanels = lc_div_up(P, nr);
        const double a_bytes = mpad * (double)K * 4.0;
        double passes;
        int64_t items, row_chunks;
        if (algorithm == LC_ALGO_IM2COL && lc_gemm_is_pointwise(d)) {
            /* 1 x 1 layers as lc_im2col_tiling runs them, A streamed once per
             * chunk (rows the wide tile takes whole, or panels too few for
             * the threads, are often one chunk split by channels: priced at
             * a pass per L2 chunk, 2048>512@7 at 2 threads looked twice as
             * costly as it runs, behind direct_lanes) */
            int64_t chunk;
            lc_im2col_split(d, &chunk, &items, &row_chunks);
            passes = (double)items;
        } else {
            items = algorithm == LC_ALGO_IM2COL ? lc_div_up(npanels, lc_gemm_chunk_panels(d))
                                                : lc_mul(d->N * G, npanels, &ok);
            passes = (double)(algorithm == LC_ALGO_IM2COL ? items : npanels);
            row_chunks = lc_row_chunks(items, d->nthreads, Mg, mr);
        }
        items = lc_mul(items, row_chunks, &ok);
        /* a 1 x 1 layer's groups are one loop (im2col.c's
         * lc_im2col_gemm_items): ShuffleNet's 4 groups of one chunk each
         * share out over 2 threads */
        if (algorithm == LC_ALGO_IM2COL && lc_gemm_is_pointwise(d))
            items = lc_mul(items, G, &ok);
        share = lc_busiest_share(d, items);
        f[LC_FEAT_MAC] = images * mpad * (double)K * lc_gemm_lanes(d, algorithm, P);
        f[LC_FEAT_PACK] = lc_gemm_is_pointwise(d) ? 0.0 : images * (double)K * (double)P;
        /* A split by channels too (panels too few for the threads: small
         * images) has every channel block see all of B: Patch2Vec packs each
         * panel once per block (its work items), and Im2Col's threads, having
         * unwrapped B a share of output rows each, read the rest from the
         * other threads' caches, priced as unwrapping it again.  3x3/2
         * 64>128@32 ran 1.0-1.2x faster on 2 threads than on 1 through
         * Im2Col in ResNet-18 at 128 input, 256>512@8 1.1x, 512@4 ~1.0x
         * (Intel Xeon, in-model) */
        if (!lc_gemm_is_pointwise(d)) f[LC_FEAT_PACK] *= (double)row_chunks;
        f[LC_FEAT_STREAM] = images * lc_streamed(a_bytes, passes);
        if (algorithm == LC_ALGO_IM2COL && !lc_gemm_is_pointwise(d)) {
            const double b_bytes = (double)K * (double)P * 4.0;
            f[LC_FEAT_STREAM] += images * lc_streamed(b_bytes / 2.0, 4.0);
        }
    } else {
        const int64_t m = lc_wino_m[lc_wino_variant_of(algorithm)], alpha = m + 2;
        const double a2 = (double)(alpha * alpha);
        const int64_t tiles = lc_div_up(d->OH, m) * lc_div_up(d->OW, m);
        const double lanes = lc_wino_channel_lanes(d) /* tiles in rows of R */
                                 ? (double)(lc_div_up(tiles, isa->wino_cl_rows) * isa->wino_cl_rows)
                                 : lc_panel_lanes(isa, tiles);
        int64_t items, nblocks = lc_winograd_blocks(d, &items);
        share = lc_busiest_share(d, items);
        f[LC_FEAT_MAC] = images * a2 * mpad * (double)Cg * lanes;
        f[LC_FEAT_WINO] = images * (double)(Cg + Mg) * a2 * lanes;
        f[LC_FEAT_STREAM] = images * lc_streamed(a2 * mpad * (double)Cg * 4.0, (double)nblocks);
        if (lc_wino_is_lean(algorithm)) {
            /* every block transforms the filters it reads, and streams the
             * raw ones: a U value costs about half of an F4 tile's
             * transformed value (LC_WINO_LEAN_WEIGHT_SHARE), whichever size
             * -- in this feature's unit, the variant's own tile value
             * (lc_conv_cost prices it at the variant's wino_elem) */
            const lc_cost_terms *c = &d->isa->cost;
            const double f4_value = c->wino_elem[lc_wino_variant_of(LC_ALGO_WINOGRAD_F4)] /
                                    c->wino_elem[lc_wino_variant_of(algorithm)];
            f[LC_FEAT_WINO] += images * (double)nblocks * a2 * mpad * (double)Cg *
                               LC_WINO_LEAN_WEIGHT_SHARE * f4_value;
            f[LC_FEAT_STREAM] = images * lc_streamed(9.0 * mpad * (double)Cg * 4.0, (double)nblocks);
        }
    }
    for (int i = 0; i < LC_FEAT_COUNT; i++) f[i] *= share;
}

double lc_conv_cost(const lc_conv_desc *d, int algorithm, double *features) {
    const lc_cost_terms *c = &d->isa->cost;
    double f[LC_FEAT_COUNT];
    lc_features(d, algorithm, f);
    if (features)
        for (int i = 0; i < LC_FEAT_COUNT; i++) features[i] = f[i];
    const double pack = algorithm == LC_ALGO_IM2COL ? c->pack_im2col : c->pack_patch2vec;
    const double wino = lc_wino_variant_of(algorithm) >= 0
                            ? c->wino_elem[lc_wino_variant_of(algorithm)]
                            : 0.0;
    if (algorithm == LC_ALGO_DIRECT_LANES) {
        const double stream = c->stream_byte * f[LC_FEAT_STREAM];
        const double mac = (lc_stem_lanes_applies(d)     ? c->stem_mac
                            : lc_gemm_is_pointwise(d) ? c->pw_mac
                                                      : c->dl_mac) *
                           f[LC_FEAT_MAC];
        return (mac > stream ? mac : stream) + c->dl_move * f[LC_FEAT_PACK];
    }
    if (algorithm == LC_ALGO_DEPTHWISE && d->groups != d->C && lc_grouped_items(d) > 0)
        return c->grouped_mac * f[LC_FEAT_MAC];
    lc_conv_desc one = *d;
    one.algorithm = algorithm;
    /* the channel-lanes Winograd GEMM reads U in whole vectors, one
     * sequential stream: measured at ~0.6 of the fitted per-byte price
     * (AVX-512, 256@14, F4 vs F2) */
    const double stream = c->stream_byte * f[LC_FEAT_STREAM] *
                          (wino != 0.0 && lc_wino_channel_lanes(&one) ? LC_WINO_CL_STREAM_SHARE : 1.0);
    return (f[LC_FEAT_MAC] > stream ? f[LC_FEAT_MAC] : stream) + pack * f[LC_FEAT_PACK] +
           wino * f[LC_FEAT_WINO];
}

/* Does "auto" weigh direct_lanes for this call, against `best`, the range's
 * pick?  Strided layers with a kernel larger than 1 x 1 (the stem, 3x3/2
 * downsampling): where the GEMM algorithms pay for unwrapping strided
 * patches.  Stride-1 layers whose output plane is one of its segments
 * (small images: 16 x 16 and below) and leaves the GEMM's last pixel panel
 * part-empty, against the GEMMs only: 4 x 4 (16 pixels in a 32-lane AVX-512
 * panel; 512@4 ran 15-25% ahead of Im2Col, hot or with the weights cold),
 * 7 x 7, 14 x 14, dilated or 5 x 5 kernels (GoogLeNet's 16>48@14, 10-25%
 * ahead).  Where the panels are full (AVX2's 16-lane panels at 4 x 4: 160>320
 * and 256 ran 2-15% behind Im2Col) or the plane is larger it ran behind the
 * GEMMs by more than its price says (docs/performance.md: 3x3 16@32,
 * grouped 128@56).  Not against a Winograd size the model picked (but on
 * grouped layers' small planes: LC_DL_GROUPED_WINOGRAD_PIXELS): with
 * the transforms' matrices just beyond L2 (160>320@7, U 3.3 MB) Winograd's
 * streaming is priced as if from L3 and it ran 12-25% ahead of
 * direct_lanes where the model put it 20% behind (Intel Xeon, 1 thread,
 * hot and with the weights cold).  And 1 x 1 layers on small images
 * (kernels/pointwise_lanes.c) where the ISA prices its 1 x 1 form: no
 * patches there, so it is the lanes each wastes and the output transpose
 * against the GEMM's pixel panels.  And its stem mode (kernels/stem_lanes.c:
 * a few input channels, short K) at any stride: no patches to unwrap there
 * either, and its output written once into the planes. */
/* Against Winograd too where the layer is grouped, its groups' output
 * channels fit one vector (direct_lanes' one-vector block) and its plane is
 * at most this many pixels (8 x 8): each group's transformed GEMMs there
 * are a few rows and columns deep (RegNetX's 16 channels a group over 16
 * tiles), which the price of Winograd's multiply-adds does not see.
 * Interleaved, AVX-512, AMD EPYC Zen 4 (two runs, then 2 threads):
 * 400@7 in 25 groups direct_lanes 0.091, 0.083 ms against F2's 0.125,
 * 0.103 (2 threads 0.064 against 0.081); 160@7 in 10 0.041, 0.037 against
 * 0.054, 0.048.  Not with 32 channels a group (ResNeXt's 1024@7: 0.366,
 * 0.336 against 0.378, 0.307), nor on 14 x 14 (160@14 in 10: 0.123, 0.110
 * against 0.106, 0.097), where Winograd's pick stands. */
#define LC_DL_GROUPED_WINOGRAD_PIXELS 64

static int lc_direct_lanes_candidate(const lc_conv_desc *d, int best) {
    if (d->algorithm != LC_ALGO_AUTO) return 0;
    if (lc_stem_lanes_applies(d) || lc_tap_lanes_applies(d)) return 1;
    if (d->kH * d->kW == 1) return lc_pointwise_lanes_weighed(d);
    if (d->stride_h > 1 || d->stride_w > 1) return 1;
    const int64_t P = d->OH * d->OW;
    const int winograd = best >= LC_ALGO_WINOGRAD_F2 && best <= LC_ALGO_WINOGRAD_F6;
    return lc_direct_lanes_one_segment(d) && lc_gemm_lanes(d, LC_ALGO_IM2COL, P) > (double)P &&
           (!winograd || (d->groups > 1 && P <= LC_DL_GROUPED_WINOGRAD_PIXELS &&
                          lc_direct_lanes_block(d).cols == d->isa->dl_lanes));
}

/* Does "auto" weigh the grouped band kernel (kernels/grouped.c, run by the
 * depthwise algorithm)?  Where it takes the layer within its buffer and the
 * ISA prices it.  Tried and not kept: leaving it out at 16 input channels a
 * group, where alone Winograd ran ahead of it (AVX-512, AMD EPYC Zen 4, 1
 * thread: 64@28 in 4 groups F4 0.112 ms against 0.172, 160@14 in 10 F2
 * 0.102 against 0.121); inside RegNetX-400MF (weights arriving from L3,
 * Winograd's transformed ones larger) those layers then ran ~10% slower. */
static int lc_grouped_candidate(const lc_conv_desc *d) {
    return d->isa->cost.grouped_mac > 0.0f && d->groups != d->C && lc_grouped_items(d) > 0;
}

/* Im2Col's K x P matrix larger than this (a multiple of L2) goes through
 * memory, and Patch2Vec's panels win (VGG's 64@224: 115 MB, 4x slower). */
#define LC_IM2COL_L2_MULTIPLE 8

int lc_conv_choose(const lc_conv_desc *d) {
    int first, last;
    if (d->algorithm == LC_ALGO_WINOGRAD_ANY) {
        first = LC_ALGO_WINOGRAD_F2;
        last = LC_ALGO_WINOGRAD_F6;
    } else if (d->algorithm != LC_ALGO_AUTO) {
        return d->algorithm;
    } else {
        if (d->groups == d->C) return LC_ALGO_DEPTHWISE;
        first = LC_ALGO_IM2COL;
        last = LC_ALGO_WINOGRAD_F6;
    }
    const double kp_bytes = (double)(d->C / d->groups * d->kH * d->kW) * (double)(d->OH * d->OW) * 4.0;
    int best = -1;
    double best_cost = 0.0;
    /* the range [first, last], then direct_lanes where it is a candidate
     * against the range's pick */
    int candidates[LC_ALGO_COUNT], count = 0;
    for (int a = first; a <= last; a++) candidates[count++] = a;
    candidates[count++] = LC_ALGO_DIRECT_LANES;
    if (d->algorithm == LC_ALGO_AUTO) candidates[count++] = LC_ALGO_DEPTHWISE;
    for (int i = 0; i < count; i++) {
        const int a = candidates[i];
        if (a == LC_ALGO_DIRECT_LANES && !lc_direct_lanes_candidate(d, best)) continue;
        if (a == LC_ALGO_DEPTHWISE && !lc_grouped_candidate(d)) continue;
        if (!lc_supports(d, a)) continue;
        if (a == LC_ALGO_IM2COL && !lc_gemm_is_pointwise(d) &&
            kp_bytes > (double)LC_IM2COL_L2_MULTIPLE * (double)lc_cpu_caches()->l2)
            continue;
        const double c = lc_conv_cost(d, a, NULL);
        if (best < 0 || c < best_cost) {
            best = a;
            best_cost = c;
        }
    }
    /* none supports it (a Winograd size asked for on a shape Winograd cannot
     * run): the first asked for, which the caller will find unsupported */
    return best < 0 ? first : best;
}
