/* The GEMM family's shared pieces: weight packing, the panel GEMM loop and the
 * patch unwrapping that Im2Col and Patch2Vec both use.
 *
 * Per group: Y[Mg x P] = W[Mg x K] * B[K x P], K = Cg*kH*kW, P = OH*OW.
 * Im2Col builds every NR-wide panel of B first; Patch2Vec builds one panel per
 * thread right before it is used; a 1x1/stride-1/unpadded layer uses the input
 * planes as B directly. */
#include <string.h>
#include "internal.h"
#include "leanconv/cpu.h"
#include "isa_build.h"

/* Rows of one wide tile only (7 x 7 images: 49 = 48 + 1).  On 14 x 14
 * (196 = 4 x 48 + 4) the wide tiles were no faster in loops of calls and
 * 4-10% slower in single calls after a pause (weights cold; load 5-7, where
 * the same build against itself varied by up to 8%); on 28 x 28 and
 * 56 x 56 (chunks of whole tiles) they gained nothing. */
int lc_gemm_wide_rows(const lc_isa_config *cfg, size_t n) {
    return cfg->gemm_wide && n >= (size_t)cfg->wide_nr &&
           n <= (size_t)cfg->wide_nr + LC_GEMM_NARROW_TAIL;
}

int lc_gemm_is_pointwise(const lc_conv_desc *d) {
    return d->kH == 1 && d->kW == 1 && d->stride_h == 1 && d->stride_w == 1 &&
           d->pad_t == 0 && d->pad_b == 0 && d->pad_l == 0 && d->pad_r == 0;
}

int64_t lc_gemm_packed_floats(const lc_conv_desc *d, int *ok) {
    int64_t mr = d->isa->mr;
    int64_t Mg = d->M / d->groups;
    int64_t K = lc_mul(lc_mul(d->C / d->groups, d->kH, ok), d->kW, ok);
    return lc_mul(lc_mul(d->groups, lc_round_up(Mg, mr, ok), ok), K, ok);
}

size_t lc_packed_a_offset(size_t Mg, size_t K, size_t mr, size_t kc, size_t m, size_t k) {
    /* Blocks of kc rows of K, each holding every MR panel's slice in turn:
     * block k0 starts at k0 * Mpad (the blocks before it are full), and the
     * slice of panel m0 in it at m0 * kb.  The GEMM walks k0 outer, m0 inner,
     * so it reads A front to back as one stream. */
    const size_t mpad = (Mg + mr - 1) / mr * mr;
    const size_t k0 = k / kc * kc, kb = K - k0 < kc ? K - k0 : kc;
    const size_t m0 = m / mr * mr;
    return k0 * mpad + m0 * kb + (k - k0) * mr + (m - m0);
}

void lc_pack_a_panels(const float *w, size_t lda, size_t Mg, size_t K, size_t mr, size_t kc,
                      float *packed) {
    /* rows past Mg in the last panel are zero, so the micro-kernel can always
     * compute a full MR tile */
    const size_t mpad = (Mg + mr - 1) / mr * mr;
    for (size_t m = 0; m < mpad; m++)
        for (size_t k = 0; k < K; k++)
            packed[lc_packed_a_offset(Mg, K, mr, kc, m, k)] = m < Mg ? w[m * lda + k] : 0.0f;
}

void lc_gemm_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    int ok = 1;
    size_t mr = (size_t)d->isa->mr;
    size_t Mg = (size_t)(d->M / d->groups);
    size_t K = (size_t)(d->C / d->groups * d->kH * d->kW);
    size_t per_group = (size_t)lc_round_up((int64_t)Mg, (int64_t)mr, &ok) * K;
    for (int64_t g = 0; g < d->groups; g++)
        lc_pack_a_panels(w + (size_t)g * Mg * K, K, Mg, K, mr, (size_t)d->isa->kc,
                         packed + (size_t)g * per_group);
}

/* The post-op over rows [m_begin, m_end) of the n columns of C (panel j at
 * c + j*c_pstride), in place: y = act((C + bias[row]) + residual), the
 * residual (or NULL) laid out like C.  Contiguous panels make one segment
 * per row. */
static void lc_gemm_postop(const lc_isa_config *cfg, float *c, size_t ldc, size_t c_pstride,
                           size_t n, size_t m_begin, size_t m_end, const float *residual,
                           const float *bias, const lc_epilogue *ep) {
    const size_t nr = (size_t)cfg->nr;
    const size_t seg = c_pstride == nr || n <= nr ? n : nr, step = seg == n ? 0 : c_pstride;
    if (n == 1 && ldc == 1 && m_end > m_begin) {
        /* one column (a 1x1 output: squeeze-excitation, classifier): the rows are
         * one contiguous run, so one vector pass rather than a call per row; the
         * bias goes in first, so the sums are the same */
        float *y = c + m_begin;
        if (bias)
            for (size_t i = m_begin; i < m_end; i++) y[i - m_begin] += bias[i];
        cfg->postop(y, y, m_end - m_begin, residual ? residual + m_begin : NULL, 0.0f, ep);
        return;
    }
    for (size_t j0 = 0, j = 0; j0 < n; j0 += seg, j++) {
        const size_t w = n - j0 < seg ? n - j0 : seg;
        for (size_t i = m_begin; i < m_end; i++) {
            const size_t off = j * step + i * ldc;
            cfg->postop(c + off, c + off, w, residual ? residual + off : NULL,
                        bias ? bias[i] : 0.0f, ep);
        }
    }
}

/* dst[j * pstride + i] = src[j * w + i] for i < w, j < panels: the w-wide
 * runs of one B row into consecutive panels (inlined with w a constant, the
 * copies are plain vector moves). */
static LC_ALWAYS_INLINE void lc_copy_row_runs(float *dst, const float *src, size_t panels,
                                              size_t pstride, size_t w) {
    for (size_t j = 0; j < panels; j++) memcpy(dst + j * pstride, src + j * w, w * sizeof(float));
}

/* One full-width MR x NR tile: through the prefetching kernel when it asks
 * for `pf_rows` rows at `next`, `pf_ld` floats apart (the panel read next:
 * ldb; the next pass's A slice: NR), else the plain one (the same results
 * either way). */
static inline void lc_gemm_tile(const lc_isa_config *cfg, lc_gemm_pf_fn pf, size_t m, size_t k,
                                const float *a, const float *b, size_t ldb, float *c,
                                size_t ldc, const float *bias, const lc_epilogue *ep,
                                unsigned flags, const float *next, size_t pf_ld,
                                size_t pf_rows) {
    if (pf && pf_rows)
        pf(m, (size_t)cfg->nr, k, a, b, ldb, c, ldc, bias, ep, flags, next, pf_ld, pf_rows);
    else
        cfg->gemm(m, (size_t)cfg->nr, k, a, b, ldb, c, ldc, bias, ep, flags);
}

/* Share q of `rows` rows of a prefetch, `per` a share: its first row in
 * *r0, its count returned (0 past the last row). */
static inline size_t lc_a_share(size_t q, size_t per, size_t rows, size_t *r0) {
    *r0 = q * per < rows ? q * per : rows;
    return rows - *r0 < per ? rows - *r0 : per;
}

/* Panel j's tall_rows x NR block at row t0 through the tall tile, tall_cols
 * columns a call; the first call asks for `pf_rows` rows of `next` (ldb
 * apart), the rows the driver reads next. */
static inline void lc_gemm_tall_panel(const lc_isa_config *cfg, size_t k, const float *a,
                                      size_t a_pstride, const float *b, size_t ldb, float *c,
                                      size_t ldc, const float *bias, const lc_epilogue *ep,
                                      unsigned flags, const float *next, size_t pf_ld,
                                      size_t pf_rows) {
    const size_t nr = (size_t)cfg->nr, tcols = (size_t)cfg->tall_cols;
    for (size_t h = 0; h < nr; h += tcols)
        cfg->gemm_tall((size_t)cfg->tall_rows, tcols, k, a, a_pstride, b + h, ldb, c + h, ldc,
                       bias, ep, flags, next, pf_ld, h == 0 ? pf_rows : 0);
}

/* A tall group's call on full panel j that does not ask for B's next rows:
 * where C lies beyond L2 (c_far), it asks for the group's rows of panel
 * j + 1's C tile, to write, into L1 (LC_GEMM_PF_WRITE), so its stores find
 * their lines there.  Each call stores tall_rows rows of C a plane apart --
 * as many streams as rows, which the hardware prefetchers do not follow --
 * and its stores waited on lines from beyond L2: 1x1 64>256 @56 (C 3.2 MB)
 * ran at half the FMA peak on an AMD EPYC (Zen 4: L2 1 MiB, L1d 32 KiB),
 * its time per multiply-add flat up to 32 x 32 and 36% more at 56 x 56,
 * the kernel's samples piling up on its stores.  Asked for to read, into L2
 * (as B's rows): no change (0.99x); to write, into L1: 0.77x [0.74, 0.82]
 * (1 thread, thread CPU time, 60 rounds interleaved in one process, one
 * output buffer, load 7-9; the other 1x1 layers within their spread).
 * Returns the rows to ask for (0: none). */
static inline size_t lc_tall_c_ahead(int c_far, size_t trows, size_t j, size_t nfull) {
    return c_far && j + 1 < nfull ? trows : 0;
}

/* Rows the copy below asks for ahead of the one it copies, where B comes from
 * beyond L2 (lc_gemm_panels_rows): each row's run of the chunk (n floats, a
 * few KiB) starts on a page of its own, a plane after the last, so the
 * hardware prefetchers start over on every row and the copy waits on each
 * run's first lines.  AMD EPYC (Zen 4: 1 MiB L2), AVX-512, 1 thread, thread
 * CPU time, interleaved in one process (bursts of 10 calls, 31 samples, load
 * 6-8): 256>64 @56 0.97x (2 rows ahead), 0.89-0.95x (6-10), 0.94x (16),
 * 0.91x (32); 512>128 @28 0.95-1.02x (within the spread of +-6%); layers
 * whose input fits L2 (128>512 @28, 1024>256 @14) lost up to 7% with it, so
 * they go without.  (On an Intel Xeon, 2 MiB L2, 2-8 rows ahead cost 2-4%
 * on 256>64 @56, the input evicted before each call: see
 * lc_gemm_panels_rows.) */
#define LC_PACK_B_AHEAD 16

/* Rows [k0, k0 + rows) of B's n columns (row stride ldb) copied into NR-wide
 * panels of `rows` x NR floats, one after the other (a last partial panel
 * keeps its width).  The micro-kernels then read each panel as one
 * sequential run instead of `rows` runs one B row apart.  `ahead`: rows on
 * to ask for into L2 (0: none). */
static void lc_pack_b_block(const float *b, size_t ldb, size_t rows, size_t n, size_t nr,
                            float *dst, size_t ahead) {
    const size_t nfull = n / nr, rem = n % nr, pstride = rows * nr;
    for (size_t k = 0; k < rows; k++) {
        const float *src = b + k * ldb;
        float *d = dst + k * nr;
        if (ahead && k + ahead < rows) lc_prefetch_block_l2(src + ahead * ldb, n);
        if (nr == 32) /* the ISAs' NR as constants */
            lc_copy_row_runs(d, src, nfull, pstride, 32);
        else if (nr == 16)
            lc_copy_row_runs(d, src, nfull, pstride, 16);
        else if (nr == 8)
            lc_copy_row_runs(d, src, nfull, pstride, 8);
        else
            lc_copy_row_runs(d, src, nfull, pstride, nr);
        if (rem) memcpy(d + nfull * pstride, src + nfull * nr, rem * sizeof(float));
    }
}

/* Whether A (Mg rows, K deep) comes from beyond L2 through a call: the
 * caller says so (LC_PANELS_A_FAR), or it is too large to stay there. */
static int lc_gemm_streams_a(const lc_isa_config *cfg, size_t Mg, size_t K, int how) {
    const size_t mpad = (Mg + (size_t)cfg->mr - 1) / (size_t)cfg->mr * (size_t)cfg->mr;
    return (how & LC_PANELS_A_FAR) ||
           mpad * K * sizeof(float) > (size_t)lc_blocking_get()->gemm_a_stream;
}

/* Whether a call over `rows` rows and n columns runs a kk-row slice of its
 * panels panel-major, `units` tall row groups and MR passes over them: the
 * one test that lc_gemm_panels_rows' K loop (where the two orders are),
 * lc_gemm_tall_far and Im2Col's split (lc_im2col_split) run.  Not with
 * many_rows: panel-major order reads the whole A block on its first panel,
 * one MR x kb slice per tile, so that panel's tiles wait on A wherever A is
 * not in cache yet -- in a model, always: between two runs every other
 * layer's weights pass through the caches.  Pass-major reads each slice
 * once for all the panels, so the same stream is spread over nfull times
 * the work.  Where A's rows outnumber the columns two to one
 * and A comes from far (lc_blocking: past a quarter of L2), the first
 * panel's wait outweighs what panel-major saves (B from L1 rather than
 * L2).  ResNet-50 at 128 px in the model (AVX-512, 1 thread, Intel Xeon,
 * both orders interleaved in one process, three runs): 256>1024 @8
 * 0.31 -> 0.23 ms, 1024>256 @8 0.27 -> 0.23, 1024>512 @8 0.52 -> 0.43,
 * the conv steps 19.6 -> 18.6 ms.  Alone, the weights streamed from
 * memory (a round-robin over copies totalling 96 MB): 256>1024 @8 -10%,
 * @14 -8%.  Panel-major stayed faster with rows < 2 x columns
 * (1024>256 @14, 256>64 @32, 512>128 @16: 2-4%) and with A nearer
 * (MobileNetV2's 96>576 @14, 221 KB: 6% in the model; ResNet-50's
 * 128>512 @16, 256 KB, keeps it though pass-major was 0-7% faster).
 * Rows and columns of this call, not the layer's: the thread split
 * changes which order runs, never the sums. */
int lc_gemm_panel_major(const lc_isa_config *cfg, size_t Mg, size_t K, size_t rows, size_t n,
                        size_t units, size_t kk, int how) {
    const lc_blocking *budget = lc_blocking_get();
    const size_t mr = (size_t)cfg->mr, mpad = (Mg + mr - 1) / mr * mr;
    const size_t slice = kk * (size_t)cfg->nr * sizeof(float);
    const int many_rows = rows >= 2 * n && mpad * K * sizeof(float) > (size_t)budget->gemm_a_far;
    return units > 1 && slice >= (size_t)budget->gemm_panel_l1 &&
           slice <= (size_t)budget->gemm_b_l1 && !lc_gemm_streams_a(cfg, Mg, K, how) &&
           !many_rows;
}

/* Whether C of `rows` rows by n columns lies beyond L2 as a call stores it
 * (lc_blocking's gemm_c_far). */
static int lc_gemm_c_far(size_t rows, size_t n) {
    return rows * n * sizeof(float) > (size_t)lc_blocking_get()->gemm_c_far;
}

/* LC_PANELS_TALL_FAR: whether the MR x NR tile alone would run the call's
 * first K block panel-major over C beyond L2, storing a tile in each of
 * its rows a plane apart per panel, unasked, where the tall tile asks for
 * its next panel's C rows to write (lc_tall_c_ahead).  Decided here, per
 * call, by the same tests the loop below runs, so the tile the caller
 * allowed cannot go by other sizes than the order it runs in. */
int lc_gemm_tall_far(const lc_isa_config *cfg, size_t Mg, size_t K, size_t rows, size_t n,
                     int how) {
    const size_t mr = (size_t)cfg->mr, kb = K < (size_t)cfg->kc ? K : (size_t)cfg->kc;
    return lc_gemm_c_far(rows, n) &&
           lc_gemm_panel_major(cfg, Mg, K, rows, n, (rows + mr - 1) / mr, kb, how);
}

void lc_gemm_panels_rows(const lc_isa_config *cfg, size_t Mg, size_t m_begin, size_t m_end,
                         size_t K, const float *a_packed, const float *b, size_t ldb,
                         size_t b_pstride, size_t n, float *c, size_t ldc, size_t c_pstride,
                         const float *bias, const float *residual, const lc_epilogue *ep,
                         int how, float *b_pack) {
    const int apply_epilogue = how & LC_PANELS_EPILOGUE;
    /* The residual and the activations beyond the kernels' clamp run as the
     * post-op over each MR-row group of C right after its last K block is
     * stored, while it is in cache.  A residual that is C itself
     * (out=residual) is instead where the accumulators start: every K block
     * accumulates onto it and the bias joins in the post-op, so nothing is
     * overwritten before it is read. */
    if (!apply_epilogue) residual = NULL;
    const int in_place = residual && residual == c;
    const int adds_after = residual && (!in_place || bias);
    const int post = apply_epilogue && lc_needs_postop(ep, adds_after);
    const lc_epilogue kep = lc_kernel_epilogue(ep, adds_after), *full_ep = ep;
    const float *post_res = in_place ? NULL : residual, *post_bias = in_place ? bias : NULL;
    if (in_place) bias = NULL;
    ep = &kep;
    /* K outer in blocks of kc (C tiles are revisited once per block), then the
     * MR panels of A, then the B panels: one kc x MR slice of A stays in L1
     * while the kc-row slices of every B panel stream past it from L2.  So A
     * is read from memory once per call however many panels there are, which
     * is what matters when A (M x K) is bigger than L2 and P is small.
     * (Large B slices that fit L1 go panel-major instead: see below.) */
    const size_t mr = (size_t)cfg->mr, nr = (size_t)cfg->nr, kc = (size_t)cfg->kc;
    /* Columns of a plain matrix (panels nr apart) start with the ISA's wide
     * tile, if it has one, when the caller says so (LC_PANELS_WIDE: its
     * column ranges do not depend on the thread count, so neither does which
     * kernel takes a column): 49 pixels are 48 + 1 there instead of 32 + a
     * 17-column remainder.  (Patch2Vec's 32-pixel panels widened to 48
     * gained nothing measurable on the stem and the 3x3/2 layers.) */
    const size_t wide_nr = (size_t)cfg->wide_nr;
    size_t wide_cols = 0;
    if ((how & LC_PANELS_WIDE) && b_pstride == nr && c_pstride == nr && lc_gemm_wide_rows(cfg, n)) {
        wide_cols = n / wide_nr * wide_nr;
        if (n - wide_cols <= LC_GEMM_NARROW_TAIL) wide_cols = n;
    }
    /* packing B panels needs plain columns (panels nr apart, no wide tile) */
    if (wide_cols || b_pstride != nr) b_pack = NULL;
    const size_t nrest = n - wide_cols;
    const size_t nfull = nrest / nr, rem = nrest % nr, mpad = (Mg + mr - 1) / mr * mr;
    /* A partial last panel goes to the narrow kernel when the ISA has one:
     * it covers two MR panels at NR/2 columns, keeping all accumulators busy
     * where the full kernel would leave half of them idle. */
    const lc_gemm_narrow_fn narrow = nr >= 2 ? cfg->gemm_narrow : NULL;
    /* only worth its loop when A comes from beyond L2 (Patch2Vec calls this
     * once per panel, with A cache-resident on most layers) */
    const lc_blocking *budget = lc_blocking_get();
    const size_t b_l1 = (size_t)budget->gemm_b_l1;
    const int stream_a = lc_gemm_streams_a(cfg, Mg, K, how);
    /* Whole groups of tall_rows rows from m_begin go through the tall tile
     * over the full panels, tall_cols columns a call (the caller decides
     * when: LC_PANELS_TALL, or LC_PANELS_TALL_FAR and lc_gemm_tall_far);
     * the other rows, and every row's column remainder, as below.  Each
     * element is one FMA chain from the bias in both, so which rows a
     * thread's block starts with does not matter. */
    const int tall_ok = (how & LC_PANELS_TALL) ||
                        ((how & LC_PANELS_TALL_FAR) &&
                         lc_gemm_tall_far(cfg, Mg, K, m_end - m_begin, n, how));
    const lc_gemm_tall_fn tall = tall_ok && b_pstride == nr ? cfg->gemm_tall : NULL;
    const size_t trows = tall ? (size_t)cfg->tall_rows : 1;
    const size_t tall_end = tall ? m_begin + (m_end - m_begin) / trows * trows : m_begin;
    const size_t passes = (m_end - tall_end + mr - 1) / mr;
    /* B read where it lies, too big to be in L2 still (lc_blocking), comes
     * from beyond L2 on the first pass over each panel (a 1 x 1 layer's
     * input, rows a plane apart: the hardware
     * prefetchers see a short run per page), so the ISA's prefetching kernel
     * (lc_gemm_pf_fn), when it has one, asks for the rows of the panel read
     * next while it computes this one, so the reads overlap the FMAs instead
     * of stalling them.  Interleaved on an Intel Xeon (input evicted to L3
     * before each call): 1x1 144>24 @56 7-10% faster (AVX-512, AVX2; 1 and
     * 2 threads), 64>256 @56 1-2%; in L2 already, 144>24 3%.  Not on packed
     * B: the copy has read those rows, and prefetching them again cost
     * 256>64 @56 4% and 512>128 @28 7% (the kernel's A slices stream from L2
     * through the same line-fill buffers).  Asking for the next panel's
     * two lines of each B row into L1 on the later passes (B then in L2)
     * gained nothing either: 32>16 @112 0.99x, 144>24 @56 1.08x (Zen 4). */
    const int b_far = K * ldb * sizeof(float) > (size_t)budget->gemm_b_far;
    const int b_beyond_l2 = K * ldb * sizeof(float) > (size_t)lc_cpu_caches()->l2;
    const lc_gemm_pf_fn pf = b_pack || !b_far ? NULL : cfg->gemm_pf;
    /* C of this call spanning more than the budget is beyond L2 when the
     * tall tile stores it (lc_tall_c_ahead) */
    const int c_far = lc_gemm_c_far(m_end - m_begin, n);
    for (size_t k0 = 0; k0 < K; k0 += kc) {
        const size_t kb = K - k0 < kc ? K - k0 : kc;
        /* Narrow B rows (small images: ldb = P = 49 at 7 x 7) make a kb-row
         * slice just too big for L1 (256 x 49 floats = 50 KB), so every MR
         * panel of A would stream it from L2 again.  Split the block into
         * sub-blocks whose B rows fit L1; the packed A slice of a panel is kb
         * groups of MR floats, so a sub-block is just an offset into it.
         * The split depends on ldb and kb only, not on n (which depends on
         * the thread count): results stay bitwise identical. */
        size_t ks = kb;
        /* B packed: this block's kb rows of each panel, one run per panel. Where the time goes
         * (1x1 256>64 @56, AVX-512, 1 thread, Intel Xeon, input pushed out of L2 before each
         * call; the copy and the kernels skipped in turn): the copy 0.17-0.18 ms, reading the
         * input from beyond L2 at ~18 GB/s, bound by that read (asking for the rows 2-8 rows
         * ahead in the copy loop: +2-4%); the kernels on the packed block 0.52 ms, 0.47 with
         * the input left in cache, against 0.43 at the micro-kernel's cache-resident peak.  So
         * about a quarter is the copy, not overlapped with the FMAs.  What did not pay
         * (interleaved in one process, each within the 2-3% noise or worse): pass-major instead
         * of panel-major (-1% to +5%); prefetching the next pass's A slice into L1 (a 1 KiB
         * head: 0%; all 8 KiB: +5-9%); prefetching, through the prefetching kernel, the rows
         * the next copy reads while the kernels run (copy 22% faster, kernels 10% slower:
         * +1-6%, also with chunks halved so both blocks fit L2); prefetching the next call's C
         * tile for writing (-3% to +2%); chunks of 1-98 panels instead of the L2 budget's 24
         * (-5% to +6%, no consistent direction); no copy at all, but a kernel that stores the
         * rows it reads in place on a panel's first pass into the buffer the other passes read
         * (panel-major; 256>64 @56 +1-2%, 512>128 @28 -2% to 0%, with or without the next
         * panel prefetched on the later passes): the read from beyond L2 costs the same
         * whether the copy or the kernel does it. */
        const float *bblk = b + k0 * ldb;
        size_t bld = ldb, bps = b_pstride;
        if (b_pack) {
            lc_pack_b_block(bblk, ldb, kb, n, nr, b_pack, b_beyond_l2 ? LC_PACK_B_AHEAD : 0);
            bblk = b_pack;
            bld = nr;
            bps = kb * nr;
        } else if (ldb <= 2 * nr && kb * ldb * sizeof(float) > b_l1) {
            size_t parts = (kb * ldb * sizeof(float) + b_l1 - 1) / b_l1;
            ks = (kb + parts - 1) / parts;
        }
        for (size_t k1 = 0; k1 < kb; k1 += ks) {
            const size_t kk = kb - k1 < ks ? kb - k1 : ks, kabs = k0 + k1;
            const unsigned flags = (kabs || in_place ? LC_GEMM_ACCUMULATE : 0u) |
                                   (kabs + kk == K && apply_epilogue ? LC_GEMM_FINAL : 0u);
            const float *bw = bblk + k1 * bld, *bk = bw + wide_cols;
            float *const cr = c + wide_cols; /* the columns after the wide tiles */
            /* Panel-major: each full panel's kk-row slice is read by every
             * MR pass in turn, from L1 after the first, rather than from L2
             * once per pass, when the slice is large next to L1d and fits it
             * (lc_blocking) and A's rows stay in L2 (they are read once per
             * panel then).  Small slices stay pass-major: with few rows of K
             * the C tiles are the traffic, and a pass writes MR rows of C
             * front to back where panel-major writes a tile in every row
             * (1x1 16>96 @112: +14%; with only 2-4 passes, M = 16..32 at
             * K = 32, panel-major too was 5-6% slower: 32>16 @112 and @56,
             * 32>32 @112, AMD EPYC Zen 4).  Nor where A comes from far over at
             * least twice as many rows as columns (lc_gemm_panel_major).  The
             * tiles, their sums and the post-op are the same in either order. */
            const size_t groups = (tall_end - m_begin) / trows; /* tall row groups */
            const int panel_major = lc_gemm_panel_major(cfg, Mg, K, m_end - m_begin, n,
                                                        groups + passes, kk, how);
            /* the pass at row m0: its A slice (lc_packed_a_offset(m0, kabs)),
             * and the bias on the first K block only */
#define LC_PASS_A(m0) (a_packed + k0 * mpad + (m0) * kb + k1 * mr)
#define LC_PASS_BIAS(m0) (bias && !kabs ? bias + (m0) : NULL)
            /* Tall groups pass-major, as the passes below (a group's A
             * slice stays in L1 while the B tiles stream past, and C is
             * written as tall_rows runs front to back; tile-major over all
             * groups was 16% slower on 64>256 @56), or in the panel-major
             * loop. */
            for (size_t t0 = m_begin; !panel_major && t0 < tall_end; t0 += trows)
                for (size_t j = 0; j < nfull; j++) {
                    /* the first group asks for the next panel's rows (B
                     * from beyond L2) */
                    const int ask = pf && t0 == m_begin && (j + 1 < nfull || rem);
                    const size_t crows = ask ? 0 : lc_tall_c_ahead(c_far, trows, j, nfull);
                    float *const ct = cr + j * c_pstride + t0 * ldc;
                    lc_gemm_tall_panel(cfg, kk, LC_PASS_A(t0), mr * kb, bk + j * bps, bld, ct,
                                       ldc, LC_PASS_BIAS(t0), ep,
                                       crows ? flags | LC_GEMM_PF_WRITE : flags,
                                       crows ? ct + c_pstride : bk + (j + 1) * bps,
                                       crows ? ldc : bld, ask ? kk : crows);
                }
            for (size_t j = 0; panel_major && j < nfull; j++) {
                /* the next panel's rows (after the last full one: the
                 * partial one, else the next sub-block's first), a share
                 * per pass: thinly, a row every few k steps (a burst of
                 * prefetches between calls stalled the kernel's own loads) */
                const int last = j + 1 == nfull && !rem;
                const size_t left = K - kabs - kk;
                const size_t nrows = !pf ? 0 : !last ? kk : left < kk ? left : kk;
                const float *nxt = !last ? bk + (j + 1) * bps : nrows ? bk + kk * bld : bk;
                /* the tall groups first, the first tile of the first group
                 * asking for all of those rows; else a share per pass */
                for (size_t t0 = m_begin; t0 < tall_end; t0 += trows) {
                    const size_t brows = t0 == m_begin ? nrows : 0;
                    const size_t crows = brows ? 0 : lc_tall_c_ahead(c_far, trows, j, nfull);
                    float *const ct = cr + j * c_pstride + t0 * ldc;
                    lc_gemm_tall_panel(cfg, kk, LC_PASS_A(t0), mr * kb, bk + j * bps, bld, ct,
                                       ldc, LC_PASS_BIAS(t0), ep,
                                       crows ? flags | LC_GEMM_PF_WRITE : flags,
                                       crows ? ct + c_pstride : nxt, crows ? ldc : bld,
                                       brows ? brows : crows);
                }
                const size_t share = groups ? 0 : (nrows + passes - 1) / passes;
                for (size_t m0 = tall_end, r0 = 0; m0 < m_end; m0 += mr) {
                    const size_t m = m_end - m0 < mr ? m_end - m0 : mr;
                    const size_t rows = nrows - r0 < share ? nrows - r0 : share;
                    lc_gemm_tile(cfg, pf, m, kk, LC_PASS_A(m0), bk + j * bps, bld,
                                 cr + j * c_pstride + m0 * ldc, ldc, LC_PASS_BIAS(m0), ep, flags,
                                 nxt + r0 * bld, bld, rows);
                    r0 += rows;
                }
            }
            for (size_t m0 = m_begin; m0 < m_end; m0 += mr) {
                size_t m = m_end - m0 < mr ? m_end - m0 : mr;
                const float *ap = LC_PASS_A(m0);
                const float *bm = LC_PASS_BIAS(m0);
                /* A is one stream in this loop order, but the stream is slow
                 * to ramp up when A is larger than L2 (deep layers on small
                 * images): ask for the next slice while this one works.  Not
                 * where a pass's only work is the narrow kernel's remainder
                 * (no full panel: 4 x 4 images): the next slice is then the
                 * one the pair of passes reads right away, or the next
                 * pair's first, and the request only gets in the way of its
                 * loads (the narrow kernel's own cursor asks for the next
                 * pair's slices instead, below).  ResNet-50 128 in the model (1 thread, Intel Xeon,
                 * with and without, interleaved, two runs): 2048>512 and
                 * 512>2048 @4 0.45-0.47 -> 0.42-0.43 ms, 1024>2048 /2 @8
                 * 0.91-0.94 -> 0.84-0.86. */
                /* Where every call of the pass over whole tiles (full
                 * panels, wide tiles) has a prefetching kernel, each asks
                 * for an equal share of the next slice instead, spread over
                 * its k loop.  Asked for in one burst, the slice's lines
                 * (from L3 in a model) held every line-fill buffer until
                 * they came, stalling the burst and the kernel's own loads:
                 * the burst was 86% of this driver's own time.  1x1
                 * layers alone, weights rotated through L3 as in a model
                 * (AVX-512, Intel Xeon, against the burst in one process,
                 * load 4-5): 512>1000 @13 x 13 (SqueezeNet's classifier)
                 * 0.90-0.97x on 1 thread, 0.97x on 2; @7 x 7 (the wide
                 * tile) 0.80-0.87x; ResNet-50's 1024>512 @8 x 8
                 * 0.87-0.95x.  Not on the first pass where that asks for
                 * B's next panel. */
                const int first = m0 == m_begin;
                const size_t nwide = wide_cols / (wide_nr ? wide_nr : 1);
                const size_t npan = !panel_major && m0 >= tall_end ? nfull : 0;
                const int a_share = stream_a && m0 + mr < m_end && !(first && pf) &&
                                    nwide + npan > 0 && (!nwide || cfg->gemm_wide_pf) &&
                                    (!npan || cfg->gemm_pf);
                const size_t a_rows = a_share ? (kk * mr + nr - 1) / nr : 0;
                const size_t a_per = a_share ? (a_rows + nwide + npan - 1) / (nwide + npan) : 0;
                const float *const a_next = ap + mr * kb;
                if (stream_a && !a_share && (nfull || wide_cols || !narrow) && m0 + mr < m_end)
                    lc_prefetch_block(a_next, kk * mr);
                for (size_t j0 = 0, w, q = 0; j0 < wide_cols; j0 += w, q++) {
                    w = wide_cols - j0 <= wide_nr + LC_GEMM_NARROW_TAIL ? wide_cols - j0 : wide_nr;
                    size_t r0 = 0;
                    const size_t rows = lc_a_share(q, a_per, a_rows, &r0);
                    if (rows)
                        cfg->gemm_wide_pf(m, w, kk, ap, bw + j0, bld, c + j0 + m0 * ldc, ldc, bm,
                                          ep, flags, a_next + r0 * nr, nr, rows);
                    else
                        cfg->gemm_wide(m, w, kk, ap, bw + j0, bld, c + j0 + m0 * ldc, ldc, bm,
                                       ep, flags);
                }
                /* the first pass reads the panels from memory: each call
                 * asks for the next panel's rows (the later passes find
                 * them in L2, as after the tall groups) */
                for (size_t j = 0; j < npan; j++) {
                    size_t r0 = 0;
                    const size_t rows = lc_a_share(nwide + j, a_per, a_rows, &r0);
                    if (rows)
                        lc_gemm_tile(cfg, cfg->gemm_pf, m, kk, ap, bk + j * bps, bld,
                                     cr + j * c_pstride + m0 * ldc, ldc, bm, ep, flags,
                                     a_next + r0 * nr, nr, rows);
                    else
                        lc_gemm_tile(cfg, pf, m, kk, ap, bk + j * bps, bld,
                                     cr + j * c_pstride + m0 * ldc, ldc, bm, ep, flags,
                                     bk + (j + 1) * bps, bld,
                                     first && (j + 1 < nfull || rem) ? kk : 0);
                }
                if (rem && !narrow) {
                    cfg->gemm(m, rem, kk, ap, bk + nfull * bps, bld,
                              cr + nfull * c_pstride + m0 * ldc, ldc, bm, ep, flags);
                } else if (rem && (m0 / mr) % 2 == 0) {
                    /* the remainder of this panel and the next one, NR/2
                     * columns at a time (the slices of two consecutive
                     * panels are mr * kb floats apart in the packing) */
                    size_t m2 = m_end - m0 < 2 * mr ? m_end - m0 : 2 * mr;
                    /* Where the pair's only work is this call (no full
                     * panel: 4 x 4 images) and A comes from far, its
                     * first call asks for the next pair's slices, spread
                     * over its k loop as the shares above (the two slices
                     * are one run when the block is not split; the pair
                     * after next asked for instead was no better).
                     * ResNet-50 at 128 px in the model (AVX-512, Intel
                     * Xeon, with and without alternating in one process,
                     * load ~1.6): 2048>512 and 512>2048 @4 0.50-0.53 ->
                     * 0.43-0.47 ms, 1024>2048 /2 @8 1.00-1.05 -> 0.84-0.89
                     * (1 thread); layer4's seven 1x1 layers together
                     * 0.87-0.89x on 1 thread, 0.91-0.94x on 2; the whole
                     * model 0.98x, 0.97-0.98x.  Alone, the weights
                     * rotated through 96 MB of copies: 0.96-1.06x (noise),
                     * 1024>2048 /2 0.92-0.99x; one layer repeated, its 4
                     * MB of weights hot in L3: 1.0-1.07x -- in the model
                     * they come from further. */
                    const size_t m2n = m0 + 2 * mr;
                    const int ask = stream_a && !nfull && !wide_cols && cfg->gemm_narrow_pf &&
                                    m2 > mr && m2n < m_end;
                    const size_t npass = !ask ? 0 : kk == kb && m2n + mr < m_end ? 2 : 1;
                    const size_t n_rows = (npass * kk * mr + nr - 1) / nr;
                    for (size_t c0 = 0, w; c0 < rem; c0 += w) {
                        w = rem - c0 <= nr / 2 + LC_GEMM_NARROW_TAIL ? rem - c0 : nr / 2;
                        if (c0 == 0 && n_rows && w + LC_GEMM_NARROW_TAIL >= nr / 2)
                            cfg->gemm_narrow_pf(m2, w, kk, ap, mr * kb, bk + nfull * bps + c0,
                                                bld, cr + nfull * c_pstride + m0 * ldc + c0,
                                                ldc, bm, ep, flags, LC_PASS_A(m2n), nr, n_rows);
                        else
                            narrow(m2, w, kk, ap, mr * kb, bk + nfull * bps + c0, bld,
                                   cr + nfull * c_pstride + m0 * ldc + c0, ldc, bm, ep, flags);
                    }
                }
                /* rows [m0, m0 + m) are final in every column once their last
                 * K block is stored (the narrow kernel did their remainder
                 * now or with the even panel before) */
                if (post && kabs + kk == K)
                    lc_gemm_postop(cfg, c, ldc, c_pstride, n, m0, m0 + m, post_res, post_bias,
                                   full_ep);
            }
        }
    }
#undef LC_PASS_A
#undef LC_PASS_BIAS
}

void lc_gemm_panels(const lc_isa_config *cfg, size_t Mg, size_t K, const float *a_packed,
                    const float *b, size_t ldb, size_t b_pstride, size_t n, float *c, size_t ldc,
                    size_t c_pstride, const float *bias, const lc_epilogue *ep,
                    int apply_epilogue) {
    lc_gemm_panels_rows(cfg, Mg, 0, Mg, K, a_packed, b, ldb, b_pstride, n, c, ldc, c_pstride,
                        bias, NULL, ep, apply_epilogue, NULL);
}

int64_t lc_row_chunks(int64_t items, int nthreads, int64_t Mg, int64_t mr) {
    /* Few work items for the threads (small images: fewer than two each,
     * often of unequal size as the last panel is partial): share out each
     * item's output channels too, one block per thread, in blocks of 2*MR
     * rows (the narrow kernel pairs MR panels from even ones, so pairs never
     * straddle a block).  Callers order items block-major, so each thread
     * takes one block of rows across all items: balanced.  Rows are
     * independent, so results stay bitwise identical. */
    if (nthreads <= 1 || items >= 2 * (int64_t)nthreads) return 1;
    return lc_max64(1, lc_min64(nthreads, lc_div_up(Mg, 2 * mr)));
}

void lc_row_chunk_range(int64_t chunk, int64_t chunks, int64_t Mg, int64_t mr, int64_t *begin,
                        int64_t *end) {
    const int64_t rows = lc_div_up(lc_div_up(Mg, chunks), 2 * mr) * 2 * mr;
    *begin = lc_min64(chunk * rows, Mg);
    *end = lc_min64(*begin + rows, Mg);
}

void lc_gemm_panel(const lc_isa_config *cfg, size_t Mg, size_t K, const float *a_packed,
                   const float *b, size_t ldb, size_t n, float *c, size_t ldc,
                   const float *bias, const lc_epilogue *ep, int apply_epilogue) {
    lc_gemm_panels(cfg, Mg, K, a_packed, b, ldb, 0, n, c, ldc, 0, bias, ep, apply_epilogue);
}

/* Panels the busiest thread runs when npanels go in chunks of `chunk` and
 * thread s takes chunks [n*s/T, n*(s+1)/T) (the pool's static ranges). */
static int64_t lc_busiest_panels(int64_t npanels, int64_t chunk, int64_t threads) {
    const int64_t n = lc_div_up(npanels, chunk);
    return lc_min64(lc_div_up(n, threads) * chunk, npanels);
}

int lc_handover_prefers_pixels(const lc_conv_desc *d, int64_t threads) {
    /* Floats a thread reads from the other cores' caches, taking the
     * neighbours to split by channels as depthwise layers do (MobileNets: a
     * 1 x 1 between two of them).  By channels: the share of the input
     * another thread wrote, K*P*(T-1)/T, and the output stays where the next
     * layer reads it.  By pixels: the input's (T-1)/T^2 -- none where Im2Col
     * packed B by pixels in this call -- plus the same share of the output
     * for the next layer: pixels when Mg <= K*(T-1) (a 1 x 1 input), Mg <= K*T
     * (B packed).  MobileNetV2's projections (144>24) and 3x3/2 stem go by
     * pixels; its expansions (24>144), which feed a depthwise layer, do not.
     * A tie goes to pixels (the neighbours of a square 1 x 1 at 2 threads
     * are seldom both split by channels: ResNet-50's and GoogLeNet's 64>64
     * @32 sit between a max-pool and a Winograd layer split by tiles): in
     * the model at 2 threads 64>64 @32 took 32-35 us against 45, ShuffleNet
     * V2's 58>58 @16 branches 9.5-10.8 against 10.7-11.6, DenseNet-121's
     * 128>128 @32 115-116 against 128 in two runs, 174 against 129 in a
     * third (pool trace, 20th percentile of 40-80 runs, both rules
     * interleaved in one process, load 2.5-4). */
    const double K = (double)(d->C / d->groups * d->kH * d->kW), Mg = (double)(d->M / d->groups);
    const double t = (double)threads;
    return threads > 1 && Mg <= K * (lc_gemm_is_pointwise(d) ? t - 1.0 : t);
}

/* Whether T threads should share a GEMM's panels (pixels) rather than its
 * output channels.  Each thread's reads from its own caches: by channels
 * all of B and 1/T of A; by pixels 1/T of B and, in 2 chunks or more, A
 * twice or more: K*P/T + 2*Mg*K against K*P + Mg*K/T, so pixels when
 * P*(T-1) > Mg*(2T-1); and the hand-overs between cores
 * (lc_handover_prefers_pixels), which count floats as if every read came
 * from a cache.  A 1 x 1 layer's input bigger than gemm_b_whole (half of
 * L2) does not: by channels every thread streams all of it from beyond
 * its L2, which costs more than the share of the output the next layer
 * would find on the other core, so it goes by pixels whatever the
 * hand-overs say.  MobileNetV2's 144>24 @56 x 56, split by channels
 * because an Intel Xeon's 2 MiB L2 let the chunks be few, took 1.5x as
 * long on 2 threads as on 1; ResNet-50's 64>256 @56 (784 KiB of input,
 * split by channels by the hand-overs) in the zoo model at 224 on an AMD
 * EPYC Zen 4 (1 MiB L2), 2 threads, busiest thread's CPU time in the
 * model (bench/step_cpu.py --env, 100 runs, load 10): 0.86-1.13 ms ->
 * 0.66-0.82 ms in all four of its steps (steps the rule leaves alone
 * moved 22 us median, 78 us p90). */
static int lc_gemm_split_pixels(const lc_conv_desc *d, int64_t P, int64_t threads) {
    const double input_bytes = (double)(d->C / d->groups) * (double)(d->H * d->W) * 4.0;
    return threads > 1 &&
           (double)P * (double)(threads - 1) > (double)(d->M / d->groups) * (double)(2 * threads - 1) &&
           (lc_handover_prefers_pixels(d, threads) ||
            (lc_gemm_is_pointwise(d) && input_bytes > (double)lc_blocking_get()->gemm_b_whole));
}

int64_t lc_gemm_chunk_panels(const lc_conv_desc *d) {
    /* As many panels as keep their kc-row slices within the L2 budget, but
     * at least one chunk per thread while there are panels to share. */
    const lc_isa_config *cfg = d->isa;
    const int64_t K = d->C / d->groups * d->kH * d->kW, P = d->OH * d->OW;
    const int64_t npanels = lc_div_up(P, cfg->nr);
    const int64_t kb = lc_min64(K, cfg->kc), threads = lc_max64(1, d->nthreads);
    int64_t chunk = lc_max64(1, lc_blocking_get()->gemm_b_l2 / lc_max64(1, kb * cfg->nr * 4));
    if (npanels >= 2 * threads && lc_gemm_split_pixels(d, P, threads)) {
        /* By pixels: at least 2 chunks per thread, so lc_row_chunks keeps
         * one channel block (cap: the largest chunk that makes 2T), and of
         * the chunk sizes down to half of that (A read at most twice as
         * often), the one that leaves the busiest thread the fewest panels,
         * a count of chunks that is a multiple of T if one does, the largest
         * on a tie.  98 panels, 2 threads: 4 x 25, not 3 x 42 split by
         * channels; 25 panels: 4 x 7; with chunks of at most 20, 6 x 17. */
        const int64_t cap = lc_min64(chunk, (npanels - 1) / (2 * threads - 1));
        int64_t best = cap, best_even = 0;
        for (int64_t c = cap; c >= lc_max64(1, cap / 2); c--) {
            const int64_t busiest = lc_busiest_panels(npanels, c, threads);
            if (busiest < lc_busiest_panels(npanels, best, threads)) best = c;
            if (lc_div_up(npanels, c) % threads == 0 &&
                (!best_even || busiest < lc_busiest_panels(npanels, best_even, threads)))
                best_even = c;
        }
        return best_even ? best_even : best;
    }
    chunk = lc_max64(1, lc_min64(chunk, lc_div_up(npanels, threads)));
    /* Enough chunks that no channel split follows (lc_row_chunks) but not a
     * multiple of the threads: even them out over the next multiple, so
     * every thread gets as many near-equal chunks (98 panels in chunks of 21
     * on 2 threads were 3 x 21 against 21 + 14; now 3 x 17 against
     * 2 x 17 + 13).  A count that no chunk size gives exactly (392 panels:
     * 34 chunks of 12 are 33) takes the next multiple.  Fewer chunks than
     * 2 per thread are split by channels instead. */
    const int64_t nchunks = lc_div_up(npanels, chunk);
    if (threads > 1 && nchunks >= 2 * threads && nchunks % threads)
        for (int64_t want = lc_div_up(nchunks, threads) * threads, tries = 0; tries < 4;
             want += threads, tries++) {
            const int64_t c = lc_div_up(npanels, want); /* want chunks, if c makes them */
            if (lc_div_up(npanels, c) == want) return c;
        }
    return chunk;
}

/* A run of a panel's pixels that lies on one output row. */
typedef struct {
    int64_t oy, ox, j, run;
} lc_pixel_run;

/* Most panels hold one or two runs; a panel of NR pixels holds at most NR. */
#define LC_MAX_RUNS 64

/* dst[i*dstride + r] = src[i*sstep + r*sw], i < rows, r < n: through the ISA's
 * strided copy when it has one, else plain loops (all reads inside the image). */
static inline void lc_copy_rows(const lc_isa_config *isa, float *dst, size_t dstride,
                                const float *src, size_t sstep, size_t rows, size_t n,
                                size_t sw) {
    if (isa->strided_copy) {
        isa->strided_copy(dst, dstride, src, sstep, rows, n, sw);
        return;
    }
    for (size_t i = 0; i < rows; i++, dst += dstride, src += sstep)
        lc_copy_strided(dst, src, (int64_t)((n - 1) * sw + 1), 0, (int64_t)sw, (int64_t)n);
}

static void lc_pack_runs(const lc_conv_desc *d, const float *xg, const lc_pixel_run *runs,
                         int64_t nruns, size_t nr, float *panel) {
    /* Everything about a tap (ky, kx) of a run -- which input row, which
     * part of the run reads inside the image -- is the same for every
     * channel, so it is worked out once and the copies batch over a whole
     * dimension: the channels (dst rows kH*kW*NR apart, src rows one plane
     * apart) when there are more channels than kx taps, else the kx taps
     * that read inside the row (dst rows NR apart, src rows dil_w apart).
     * Per-copy bookkeeping was a third of Patch2Vec's time on 3x3 layers. */
    const lc_isa_config *isa = d->isa;
    const int64_t Cg = d->C / d->groups, plane = d->H * d->W, W = d->W, kW = d->kW;
    const int64_t sw = d->stride_w, dw = d->dil_w;
    const size_t cstep = (size_t)(d->kH * kW) * nr; /* floats between channels */
    const int by_channel = Cg >= kW;
    for (int64_t s = 0; s < nruns; s++) {
        const lc_pixel_run *r = &runs[s];
        const int64_t run = r->run, ix0 = r->ox * sw - d->pad_l, span = (run - 1) * sw;
        /* taps [klo, khi) read inside the row for the whole run */
        int64_t klo = 0, khi = kW;
        while (klo < kW && ix0 + klo * dw < 0) klo++;
        while (khi > klo && ix0 + (khi - 1) * dw + span >= W) khi--;
        for (int64_t ky = 0; ky < d->kH; ky++) {
            const int64_t iy = r->oy * d->stride_h - d->pad_t + ky * d->dil_h;
            float *dst = panel + (size_t)(ky * kW) * nr + r->j;
            if (iy < 0 || iy >= d->H) {
                for (int64_t c = 0; c < Cg; c++)
                    for (int64_t kx = 0; kx < kW; kx++)
                        memset(dst + c * cstep + kx * nr, 0, (size_t)run * sizeof(float));
                continue;
            }
            const float *src = xg + iy * W;
            for (int64_t kx = 0; kx < kW; kx++) {
                const int64_t ix = ix0 + kx * dw;
                float *dk = dst + kx * nr;
                if (kx >= klo && kx < khi) {
                    if (by_channel)
                        lc_copy_rows(isa, dk, cstep, src + ix, (size_t)plane, (size_t)Cg,
                                     (size_t)run, (size_t)sw);
                    else if (kx == klo)
                        for (int64_t c = 0; c < Cg; c++)
                            lc_copy_rows(isa, dk + c * cstep, nr, src + c * plane + ix,
                                         (size_t)dw, (size_t)(khi - klo), (size_t)run,
                                         (size_t)sw);
                    continue;
                }
                /* a border tap: pixels [lo, hi) of the run read inside the row */
                int64_t lo = ix >= 0 ? 0 : (-ix + sw - 1) / sw;
                int64_t hi = ix < W ? (W - ix + sw - 1) / sw : 0;
                lo = lc_min64(lo, run);
                hi = lc_max64(lo, lc_min64(hi, run));
                if (hi > lo)
                    lc_copy_rows(isa, dk + lo, cstep, src + ix + lo * sw, (size_t)plane,
                                 (size_t)Cg, (size_t)(hi - lo), (size_t)sw);
                for (int64_t c = 0; c < Cg; c++) {
                    float *dc = dk + c * cstep;
                    for (int64_t q = 0; q < lo; q++) dc[q] = 0.0f;
                    for (int64_t q = hi; q < run; q++) dc[q] = 0.0f;
                }
            }
        }
    }
}

void lc_pack_patch_panel(const lc_conv_desc *d, const float *xg, int64_t p0, int64_t n,
                         size_t nr, float *panel) {
    /* Split the pixels into output-row runs once, then every (c, ky, kx) row
     * of the panel is a few strided copies with no division in sight. */
    lc_pixel_run runs[LC_MAX_RUNS];
    int64_t oy = p0 / d->OW, ox = p0 % d->OW, j = 0, nruns = 0;
    while (j < n) {
        if (nruns == LC_MAX_RUNS) {
            /* a panel wider than LC_MAX_RUNS output rows (tiny OW): pack
             * what we have, then carry on with the rest */
            lc_pack_runs(d, xg, runs, nruns, nr, panel);
            nruns = 0;
        }
        const int64_t run = lc_min64(n - j, d->OW - ox);
        runs[nruns].oy = oy;
        runs[nruns].ox = ox;
        runs[nruns].j = j;
        runs[nruns].run = run;
        nruns++;
        j += run;
        ox = 0;
        oy++;
    }
    lc_pack_runs(d, xg, runs, nruns, nr, panel);
}
