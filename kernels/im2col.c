/* Im2Col + GEMM: the patch matrix B (K x P, row k = tap (c, ky, kx) of every
 * output pixel) is built first, as a plain row-major matrix, then the GEMM
 * runs over it in NR-column panels straight from the matrix (ldb = P, or a
 * little more: lc_im2col_ldb).
 * B is built one output row at a time (a task each), with Patch2Vec's
 * unwrapping: per tap the copies of a whole run of OW pixels are batched
 * over the channels (or the kx taps), so on small images, where a B row is
 * a handful of 7-pixel runs, the setup is paid once per tap and not once per
 * run and channel (conv 3x3 512@7: -10%; the 7x7/2 stem: -10%).
 * Workspace: K x ldb floats, reused across groups and images.  A
 * 1x1/stride-1/unpadded layer skips the matrix: B is the input (each kc-row
 * block of a chunk copied into contiguous panels where that pays:
 * lc_im2col_packs_b; workspace then one such block per thread). */
#include <string.h>
#include "internal.h"
#include "leanconv/cpu.h"

/* The leading dimension of B: P, unless P floats are a multiple of 1 KiB.
 * Then the GEMM's loads of one panel (the same columns of consecutive rows)
 * all map to the same L1 sets and the same 4 KiB-alias slots (32x32 CIFAR
 * images, P = 1024: Im2Col took twice Patch2Vec's time), so such rows get
 * one cache line more. */
static int64_t lc_im2col_ldb(int64_t P) {
    return P % 256 == 0 ? P + 16 : P;
}

typedef struct {
    const lc_conv_desc *d;
    const float *x, *packed, *bias, *res; /* image n's input (res: residual, or NULL) */
    float *y, *bmat;                      /* image n's output; B when it is built */
    int64_t K, Mg, P;
    int64_t a_group;     /* floats of one group's packed weights */
    int64_t group_items; /* GEMM tasks per group: nchunks x mchunks */
    int64_t g0;          /* the loop's first group */
    int64_t group_step;  /* items run groups g0, g0 + 1, ...: 1 (a 1x1 layer's
                            groups in one loop), 0 (B holds group g0 alone) */
    int64_t ldb;     /* B's leading dimension (lc_im2col_ldb; P when B is the input) */
    int64_t chunk;   /* panels per GEMM task */
    int64_t nchunks; /* GEMM tasks per channel block */
    int64_t mchunks; /* output-channel blocks (lc_row_chunks) */
    int whole_rows;  /* one chunk of all panels, the wide GEMM tile's (lc_gemm_wide_rows) */
    int tall;        /* LC_PANELS_TALL(_FAR), or 0 (lc_im2col_tall_rows) */
    char *ws;        /* per-thread B packing buffers (pack_bytes each), or NULL */
    int64_t pack_bytes;
} lc_im2col_ctx;

/* Group g's slices of the image's tensors, weights and bias. */
typedef struct {
    const float *x, *a, *bias, *res;
    float *y;
} lc_im2col_group;

static lc_im2col_group lc_im2col_group_at(const lc_im2col_ctx *t, int64_t g) {
    const lc_conv_desc *d = t->d;
    lc_im2col_group s;
    s.x = t->x + g * (d->C / d->groups) * d->H * d->W;
    s.y = t->y + g * t->Mg * t->P;
    s.res = t->res ? t->res + g * t->Mg * t->P : NULL;
    s.a = t->packed + g * t->a_group;
    s.bias = t->bias ? t->bias + g * t->Mg : NULL;
    return s;
}

static void lc_im2col_outrow_task(void *vctx, int64_t oy, int thread) {
    /* output row oy of every B row: the patches of OW pixels, unwrapped the
     * way Patch2Vec does (copies batched over channels), straight into B */
    const lc_im2col_ctx *t = (const lc_im2col_ctx *)vctx;
    const int64_t OW = t->d->OW;
    (void)thread;
    lc_pack_patch_panel(t->d, lc_im2col_group_at(t, t->g0).x, oy * OW, OW, (size_t)t->ldb,
                        t->bmat + oy * OW);
}

static void lc_im2col_gemm_task(void *vctx, int64_t item, int thread) {
    /* a chunk of panels per task, so A is read once per chunk (lc_gemm_panels),
     * for one block of output channels (item = (channel block, chunk)) */
    const lc_im2col_ctx *t = (const lc_im2col_ctx *)vctx;
    /* the item's group: a 1x1 layer's groups are one loop of group_items
     * tasks each (so each of ShuffleNet's four 34-channel groups is not a
     * parallel region of its own, each too small to split over the threads) */
    const lc_im2col_group g = lc_im2col_group_at(t, t->g0 + t->group_step * (item / t->group_items));
    item %= t->group_items;
    const float *bmat = t->group_step ? g.x : t->bmat;
    const int64_t chunk = item % t->nchunks, mchunk = item / t->nchunks;
    /* the chunks' panels as near-equal as their count allows (25 panels in
     * 4 chunks: 6,6,6,7, not 7,7,7,4, which left 2 threads 14 and 11); none
     * is larger than t->chunk, which the B buffers are sized for */
    const int64_t nr = t->d->isa->nr, np = lc_div_up(t->P, nr);
    const int64_t p0 = chunk * np / t->nchunks * nr;
    const int64_t cols = lc_min64((chunk + 1) * np / t->nchunks * nr, t->P) - p0;
    int64_t m_begin, m_end;
    lc_row_chunk_range(mchunk, t->mchunks, t->Mg, t->d->isa->mr, &m_begin, &m_end);
    if (m_begin >= m_end) return;
    float *b_pack = t->ws ? (float *)lc_thread_scratch(t->ws, t->pack_bytes, thread) : NULL;
    lc_gemm_panels_rows(t->d->isa, (size_t)t->Mg, (size_t)m_begin, (size_t)m_end, (size_t)t->K,
                        g.a, bmat + p0, (size_t)t->ldb, (size_t)nr, (size_t)cols,
                        g.y + p0, (size_t)t->P, (size_t)nr, g.bias,
                        g.res ? g.res + p0 : NULL, &t->d->epilogue,
                        LC_PANELS_EPILOGUE | (t->whole_rows ? LC_PANELS_WIDE : 0) | t->tall,
                        b_pack);
}

/* The GEMM's work items: chunks of panels x blocks of output channels, and
 * the bytes of each thread's B packing buffer (0: B read where it is). */
typedef struct {
    int64_t chunk, nchunks, mchunks, pack_bytes;
    int64_t tall; /* the tall tile may take whole row groups (lc_im2col_tall; how:
                   * lc_im2col_tall_rows) */
} lc_im2col_tiles;
LC_TILING_FITS(lc_im2col_tiles);

/* The GEMM loop's items: a 1x1 layer's (B the input) take every group's
 * tasks in one loop, so the threads its B buffers are sized for are those of
 * that loop; other layers run a loop per group (B holds one group). */
static int64_t lc_im2col_gemm_items(const lc_conv_desc *d, const lc_im2col_tiles *b) {
    const int64_t per_group = b->nchunks * b->mchunks;
    return lc_gemm_is_pointwise(d) ? per_group * d->groups : per_group;
}

/* Whether a 1 x 1 layer's GEMM copies each kc-row block of its chunk of B
 * (the input planes, rows P floats apart) into contiguous NR-wide panels
 * first (lc_gemm_panels_rows' b_pack), for tasks of `rows` output channels.
 * Read in place, every MR-row pass of the GEMM streams a panel's kb rows as
 * kb separate runs of NR floats one input plane apart: as many pages and
 * prefetch streams as rows, and lines that crowd a few L1 sets.  Packed, a
 * pass streams one contiguous run; the copy costs about one pass over the
 * block.  So it pays with many passes over a block whose panel slices are
 * large next to L1d (more than a quarter of it: kb >= 128 rows of 32
 * floats on a 48 KiB L1d):
 * 16 passes or more, or 8 when the planes are a page or more apart (56 x 56).
 * Interleaved runs on an Intel Xeon (48 KiB L1d, 2 MiB L2; input rewritten
 * and caches flushed before each call, 1 thread): 256>64 @56 -12%,
 * 512>128 and 128>512 @28 -10%, 1024>256 and 256>1024 @14 -6%; below the
 * thresholds it lost up to 22% (64>64 @56, 8 passes of kb = 64: nothing to
 * gain, the copy is all cost; 384>64 @14: 8 passes of rows 784 B apart).
 * Where the ISA has no tall tile for the layer (lc_im2col_tall), small slices
 * too, with 16 passes or more over planes a page or more apart: those passes
 * go pass-major (lc_gemm_panels_rows), each streaming the chunk's B from L2 as
 * kb runs per panel, each run on a page of its own, where packed it is one
 * run the L2 prefetcher follows.  AVX2 on an AMD EPYC (Zen 4: 32 KiB L1d,
 * 1 MiB L2), 1 thread, thread CPU time, against the build before in one
 * process, 60 interleaved pairs (median ratio [quartiles]), load 6-7:
 * 64>256 @56 0.91 [0.81, 0.96], 24>144 @56 0.94 [0.85, 1.06], 16>96 @112
 * 0.96 [0.87, 1.03]; with the budgets of a 2 MiB L2 (LEANCONV_CACHE) 0.78,
 * 0.90, 0.92; 64>64 @56 (11 passes: not packed) 0.98-1.00.
 * And on smaller planes too where a panel's row is at most a cache line (AVX2's
 * 16 floats, NEON's 8), with 16 passes or more over at least 64 rows: each
 * k step of an in-place pass then asks for one line of its own, where
 * AVX-512's 32-float rows take two adjacent ones (AVX-512 itself, packed:
 * 0.92-1.03 on the layers below).  AVX2 on an AMD EPYC Zen 4, 1 thread,
 * against in place in one process, 25-60 interleaved samples (two or three
 * runs where given): 96>576 @14 1.06, 1.08, 1.08; 64>384 @14 1.12, 1.06,
 * 1.05; 96>96 @28 1.13, 1.08; 128>128 @28 1.02, 1.08; 64>256 @28 1.09;
 * 80>480 @14 1.07; 112>672 @14 1.07; 48>288 @14 1.04, 1.05; but 40>240
 * @28 and 32>192 @28 (40 and 32 rows) 0.97 and 0.94, and with fewer passes
 * 384>64 @14 1.08, 0.87; 128>48 @28 0.94; 192>32 @28 0.80.  Not measured
 * on an Arm CPU.
 * It changes which loads feed the micro-kernels, not the sums: the bits are
 * the same either way. */
static int lc_im2col_tall(const lc_conv_desc *d);
#define LC_PAGE_BYTES 4096 /* the smallest page size of the CPUs leanconv runs on */
static int lc_im2col_packs_b(const lc_conv_desc *d, int64_t rows) {
    const lc_isa_config *isa = d->isa;
    const int64_t kb = lc_min64(d->C / d->groups, isa->kc), passes = lc_div_up(rows, isa->mr);
    const int64_t plane_bytes = d->OH * d->OW * (int64_t)sizeof(float);
    const int pages = plane_bytes >= LC_PAGE_BYTES;
    if (!lc_gemm_is_pointwise(d) || lc_gemm_wide_rows(isa, (size_t)(d->OH * d->OW))) return 0;
    if (4 * kb * isa->nr * (int64_t)sizeof(float) > lc_cpu_caches()->l1d)
        return passes >= 16 || (passes >= 8 && pages);
    /* a panel's row at most a cache line (AVX2, NEON): read in
     * place, every k step of a pass is a line of its own, one plane away */
    const int line_rows = isa->nr * (int64_t)sizeof(float) <= LC_ALIGN;
    return passes >= 16 && ((pages && !lc_im2col_tall(d)) || (line_rows && kb >= 64));
}

/* Whether a 1 x 1 layer's GEMM may run whole groups of tall_rows output
 * channels through the ISA's tall tile (lc_gemm_tall_fn), where B (the
 * input planes) is read in place and its rows are not line-aligned
 * (lc_im2col_tall_rows, at run time).  A k step of the MR x NR kernel then
 * loads two vectors that each straddle two lines; the tall tile loads one
 * per 24 output channels instead of two per 8.  Interleaved against the
 * 8 x 32 kernel alone (AVX-512, Intel Xeon, 1 thread, thread CPU time, load
 * 2-3.5), input 16 bytes past a line (NumPy's own arrays): 144>24 @56
 * 0.87-0.94x, 96>24 @56 0.87-0.98x, 192>32 @28 0.97-0.98x, 64>256 @56
 * 0.93-0.96x (input pushed out of L2, just rewritten, or left in cache); on
 * line-aligned input (the ONNX executor's arena, torch tensors) the same
 * layers were 1.00-1.17x, so those keep the 8 x 32 kernel, which reads each
 * panel slice from L1 on all but its first pass.  Not with B packed (there
 * the MR x NR kernel streams contiguous panels; 4-8% slower on 256>64 @56,
 * 512>128 @28, 128>512 @28: lc_im2col_tiling takes it only where B is
 * not packed), and only while a group's A slice and a panel's
 * B slice of one K block fit L1d together (the panel-major loop keeps both
 * there: kb <= 219 for 24 x 16 on 48 KiB; at kb = 256 3-5% slower on
 * 384>64 @14 and 256>1024 @14).  The same sums either way: the bits do not
 * change. */
static int lc_im2col_tall(const lc_conv_desc *d) {
    const lc_isa_config *isa = d->isa;
    const int64_t kb = lc_min64(d->C / d->groups, isa->kc);
    return isa->gemm_tall && lc_gemm_is_pointwise(d) &&
           d->M / d->groups >= isa->tall_rows &&
           kb * (isa->tall_rows + isa->nr) * (int64_t)sizeof(float) <= lc_cpu_caches()->l1d;
}

/* B rows of ldb floats from x, where lc_im2col_tall allows it: rows whole
 * lines long that all start off a line boundary (LC_ALIGN, 64 bytes: the
 * x86 and most ARM cores' line), so every vector load of the MR x NR
 * kernel straddles two.  Not rows of a fraction of lines (14 x 14: 784 bytes), whose
 * offsets vary from row to row: there the tall tile was 4% faster on
 * 80>480 and 6% slower on 96>576 (lead, interleaved processes, aligned
 * input).  On line-aligned rows too where a task's output lies past
 * gemm_c_far, beyond L2 as it is stored, and the MR x NR kernel would go
 * panel-major (LC_PANELS_TALL_FAR: the driver decides per call, by the
 * tests its loop runs, lc_gemm_tall_far): it then
 * stores a tile in each of Mg rows a plane apart per panel, unasked, where
 * the tall tile asks for its next panel's C rows to write
 * (lc_gemm_panels_rows).  Pass-major, it writes MR rows front to back, which
 * the hardware prefetchers follow.  Line-aligned input, AVX-512, AMD EPYC
 * (Zen 4), 1 thread, thread CPU time, against the build before in one
 * process, 40-80 interleaved pairs, load 6-7: 64>256 @56 1.67-1.87 ->
 * 1.19-1.24 ms (0.68-0.71x, quartiles 0.63-0.79), 0.85-0.87x with the
 * budgets of a 2 MiB L2; 64>144 @56 0.78-0.94x.  On short slices (K = 16,
 * 24, 32 over 56 x 56 planes: pass-major) the tall tile ran 1.00-1.11x, so
 * those keep the MR x NR kernel. */
static int lc_im2col_tall_rows(const lc_im2col_tiles *b, const float *x, int64_t ldb) {
    if (!b->tall || ((uintptr_t)ldb * sizeof(float)) % LC_ALIGN != 0) return 0;
    return (uintptr_t)x % LC_ALIGN != 0 ? LC_PANELS_TALL : LC_PANELS_TALL_FAR;
}

void lc_im2col_split(const lc_conv_desc *d, int64_t *chunk, int64_t *nchunks, int64_t *mchunks) {
    const int64_t Mg = d->M / d->groups;
    const int64_t npanels = lc_div_up(d->OH * d->OW, d->isa->nr);
    *chunk = lc_gemm_chunk_panels(d);
    *nchunks = lc_div_up(npanels, *chunk);
    /* rows the wide tile takes whole are shared out by channels only */
    const int whole_rows = lc_gemm_wide_rows(d->isa, (size_t)(d->OH * d->OW));
    *mchunks = lc_row_chunks(whole_rows ? 1 : *nchunks, d->nthreads, Mg, d->isa->mr);
    if (!whole_rows && *mchunks == 1) return;
    /* Few chunks for the threads: split by channels, each thread's block of
     * rows over every chunk in turn (items go block-major).  One chunk of all
     * the panels (A streamed once per call) where the driver runs it
     * panel-major (each panel's slice read from memory once, for every
     * pass) or a thread's rows are at least a chunk's pixels (its rows of A
     * at least a chunk's B).  Else the chunks stay within the L2 budget
     * (lc_gemm_chunk_panels), A read once per chunk, so the MR passes over
     * a chunk find its B in L2: 1x1 16>96 @112 (A 6 KB, B 0.8 MB) on 2
     * threads as one chunk of 392 panels read B from L3 on each of a
     * thread's 6 passes and ran slower than on 1 thread (AMD EPYC Zen 4). */
    int64_t m_begin, m_end;
    lc_row_chunk_range(0, *mchunks, Mg, d->isa->mr, &m_begin, &m_end);
    const int64_t K = d->C / d->groups * d->kH * d->kW, rows = m_end - m_begin;
    if (whole_rows || rows >= *chunk * d->isa->nr ||
        lc_gemm_panel_major(d->isa, (size_t)Mg, (size_t)K, (size_t)rows,
                            (size_t)(d->OH * d->OW), (size_t)lc_div_up(rows, d->isa->mr),
                            (size_t)lc_min64(K, d->isa->kc), 0)) {
        *chunk = npanels;
        *nchunks = 1;
    }
}

void lc_im2col_tiling(const lc_conv_desc *d, int64_t *tiling) {
    const int64_t Mg = d->M / d->groups;
    const int64_t npanels = lc_div_up(d->OH * d->OW, d->isa->nr);
    lc_im2col_tiles b;
    lc_im2col_split(d, &b.chunk, &b.nchunks, &b.mchunks);
    int64_t m_begin, m_end; /* the first channel block is the largest */
    lc_row_chunk_range(0, b.mchunks, Mg, d->isa->mr, &m_begin, &m_end);
    b.pack_bytes = 0;
    if (lc_im2col_packs_b(d, m_end - m_begin)) {
        /* kb rows of the chunk's whole panels (a partial last one keeps NR
         * floats a row) */
        int ok = 1;
        const int64_t kb = lc_min64(d->C / d->groups, d->isa->kc);
        const int64_t panels = lc_min64(b.chunk, npanels);
        b.pack_bytes = lc_aligned_floats_bytes(lc_mul(kb, lc_mul(panels, d->isa->nr, &ok), &ok), &ok);
        if (!ok) b.pack_bytes = 0;
    }
    /* not where the threads split the channels (each then reads all of B):
     * 64>256 @56 on 2 threads was 10-19% slower with the tall tile, 5-15%
     * faster on 1 (interleaved, Intel Xeon; no cause found) */
    b.tall = b.mchunks == 1 && !b.pack_bytes && lc_im2col_tall(d);
    memcpy(tiling, &b, sizeof b);
}

int64_t lc_im2col_workspace(const lc_conv_desc *d, int *ok) {
    if (lc_gemm_is_pointwise(d)) {
        /* B is the input; a buffer per thread where its blocks are packed */
        int64_t tiling[LC_CONV_TILING_WORDS];
        lc_im2col_tiles b;
        lc_im2col_tiling(d, tiling);
        memcpy(&b, tiling, sizeof b);
        if (!b.pack_bytes) return 0;
        const int threads = lc_threads_used(d->nthreads, lc_im2col_gemm_items(d, &b),
                                            lc_conv_macs(d));
        return lc_mul(b.pack_bytes, threads, ok);
    }
    int64_t K = lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
    int64_t P = lc_mul(d->OH, d->OW, ok);
    return lc_aligned_floats_bytes(lc_mul(K, lc_im2col_ldb(P), ok), ok);
}

int lc_im2col_run(const lc_conv_desc *d, const int64_t *tiling, const float *x,
                  const float *packed, const float *bias, const float *res, float *y, char *ws) {
    int ok = 1;
    lc_im2col_ctx t;
    lc_im2col_tiles b;
    memcpy(&b, tiling, sizeof b);
    t.d = d;
    t.K = d->C / d->groups * d->kH * d->kW;
    t.Mg = d->M / d->groups;
    t.P = d->OH * d->OW;
    const int pointwise = lc_gemm_is_pointwise(d);
    t.ldb = pointwise ? t.P : lc_im2col_ldb(t.P);
    t.a_group = lc_round_up(t.Mg, d->isa->mr, &ok) * t.K;
    t.packed = packed;
    t.bias = bias;
    t.chunk = b.chunk;
    t.nchunks = b.nchunks;
    t.mchunks = b.mchunks;
    t.whole_rows = lc_gemm_wide_rows(d->isa, (size_t)t.P); /* as lc_im2col_tiling decided */
    t.pack_bytes = b.pack_bytes;
    t.ws = pointwise && b.pack_bytes ? ws : NULL;
    t.group_items = t.nchunks * t.mchunks;
    t.group_step = pointwise;
    t.bmat = pointwise ? NULL : (float *)ws;
    for (int64_t n = 0; n < d->N; n++) {
        t.x = x + n * d->C * d->H * d->W;
        t.y = y + n * d->M * t.P;
        t.res = res ? res + n * d->M * t.P : NULL;
        t.tall = lc_im2col_tall_rows(&b, t.x, t.ldb);
        if (pointwise) { /* B is the input: every group in one loop */
            t.g0 = 0;
            lc_parallel_for(d->nthreads, lc_im2col_gemm_items(d, &b), lc_conv_macs(d),
                            lc_im2col_gemm_task, &t);
            continue;
        }
        for (t.g0 = 0; t.g0 < d->groups; t.g0++) {
            lc_parallel_for(d->nthreads, d->OH, lc_conv_macs(d), lc_im2col_outrow_task, &t);
            lc_parallel_for(d->nthreads, t.group_items, lc_conv_macs(d), lc_im2col_gemm_task, &t);
        }
    }
    return LC_OK;
}
