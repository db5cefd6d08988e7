"""How Im2Col shares a GEMM's panels between threads (lc_gemm_chunk_panels,
lc_im2col_tiling): every thread gets as many near-equal chunks, and the bits
do not depend on the thread count."""
import numpy as np
import pytest

import leanconv as lc
from leanconv import _core, _isa
from leanconv._params import ConvSpec
from leanconv._select import filter_geometry
from reference import conv2d_ref

IM2COL = lc.algorithms().index("im2col")


def _op(isa, w):
    spec = ConvSpec.build(w.shape, 1, 0, 1, 1, None)
    op = _core.Op(IM2COL, _isa.isa_id(isa), w.reshape(-1), None, filter_geometry(spec),
                  spec.epilogue, 2, False)
    return op, spec


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("C, H", [(256, 112), (144, 56), (64, 120)])
def test_chunks_are_shared_out_evenly(isa, rng, C, H, threads):
    """Chunks of panels that are not split by channels come in a multiple of
    the thread count and differ by less than one chunk per thread, so no
    thread runs a whole chunk more than another (98 panels in chunks of 20
    were 3 chunks against 2 on two threads)."""
    w = rng.standard_normal((8, C, 1, 1)).astype(np.float32)
    op, _ = _op(isa, w)
    nr = _core._ukernel_tile(isa)[1]
    npanels = -(-H * H // nr)
    chunk, nchunks, mchunks = op.setup(1, H, H, threads, IM2COL).tiling[2:5]
    assert nchunks == -(-npanels // chunk) and mchunks >= 1
    if mchunks > 1 or nchunks < 2 * threads:
        return  # few chunks: split by output channels (lc_im2col_split)
    assert nchunks % threads == 0, (chunk, nchunks, npanels)
    # the pool hands thread t the contiguous run of items t * n / T .. (t + 1) * n / T
    per_thread = [sum(min(chunk, npanels - i * chunk)
                      for i in range(t * nchunks // threads, (t + 1) * nchunks // threads))
                  for t in range(threads)]
    assert max(per_thread) - min(per_thread) < chunk


def test_the_even_split_is_exercised():
    """The shape above that many-panel layers take: 392 panels of K = 256
    need more than two L2-sized chunks on any cache this suite meets."""
    isa = lc.available_isas()[-1]
    w = np.ones((8, 256, 1, 1), np.float32)
    op, _ = _op(isa, w)
    chunk, nchunks, mchunks = op.setup(1, 112, 112, 2, IM2COL).tiling[2:5]
    assert mchunks == 1 and nchunks >= 4 and nchunks % 2 == 0


def _pointwise_bits_and_values(rng, C, M, H, W, scale, activation, lo, hi):
    """A 1 x 1 Im2Col layer: the same bits on 1-3 threads, and float64's
    values (clipped to [lo, hi], the activation's range)."""
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((M, C, 1, 1)) * scale).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    plan = lc.Conv2d(w, b, algorithm="im2col", activation=activation)
    want = plan(x, threads=1)
    for threads in (2, 3):
        assert plan(x, threads=threads).tobytes() == want.tobytes(), threads
    ref = np.einsum("mc,chw->mhw", w[:, :, 0, 0].astype(np.float64), x[0].astype(np.float64))
    ref = np.clip(ref + b[:, None, None], lo, hi)
    np.testing.assert_allclose(want[0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("H, W", [(13, 13), (7, 7), (4, 4), (5, 5), (3, 3), (5, 9)])
def test_weights_streamed_from_far(isa, rng, H, W):
    """1 x 1 layers whose packed weights pass half of L2 (lc_blocking's
    gemm_a_stream), where each pass over whole tiles asks for the next A
    slice a share per call: full panels (13 x 13: 5 x 32 + 9), the wide tile
    (7 x 7), only the narrow remainder (4 x 4, whose pass pairs ask for the
    next pair's slices; 5 x 5, two narrow calls;
    3 x 3, too narrow to ask), a 45-column row (5 x 9)."""
    C = 320
    M = lc.cpu_features()["cache"]["l2"] // 2 // (4 * C) + 21  # past half of L2, not a multiple of MR
    _pointwise_bits_and_values(rng, C, M, H, W, 0.1, "relu", 0.0, np.inf)


@pytest.mark.parametrize("C, M, H", [(144, 24, 56), (256, 8, 112)])
def test_bits_do_not_depend_on_the_threads(isa, rng, C, M, H):
    _pointwise_bits_and_values(rng, C, M, H, H, 1.0, "relu6", 0.0, 6.0)


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("C, M, H", [(144, 24, 56), (96, 24, 56), (192, 32, 28), (256, 64, 56)])
def test_small_m_many_pixels_split_by_pixels(isa, rng, C, M, H, threads):
    """A 1 x 1 GEMM with more pixels than output channels (P(T-1) > M(2T-1)),
    fewer output than input channels (M < K(T-1)) and panels for 2 per thread
    is shared out by pixels, not channels: each thread reads its own columns
    of B rather than all of it (MobileNetV2's 144>24 @56 ran slower on 2
    threads than on 1 split by channels)."""
    op, _ = _op(isa, rng.standard_normal((M, C, 1, 1)).astype(np.float32))
    chunk, nchunks, mchunks = op.setup(1, H, H, threads, IM2COL).tiling[2:5]
    assert mchunks == 1 and nchunks >= 2 * threads, (chunk, nchunks, mchunks)


def _by_pixels(C, M, H, W, threads=2):
    """lc_gemm_split_pixels' rule for a 1 x 1 layer's input past gemm_b_whole:
    more pixels than the channel split's share, and an input every thread
    would stream from beyond its L2."""
    P = H * W
    return P * (threads - 1) > M * (2 * threads - 1) and \
        C * P * 4 > _core.blocking()["gemm_b_whole"]


@pytest.mark.parametrize("C, M, H", [(64, 384, 14), (96, 576, 14), (24, 144, 56), (64, 256, 56),
                                     (16, 96, 112)])
def test_many_channels_split_by_channels(isa, rng, C, M, H):
    """More output channels than pixels (14 x 14, 7 panels), or than input
    channels (an expansion, whose output a depthwise layer reads by
    channels): the channels are shared out -- unless the expansion's input
    is larger than gemm_b_whole (half of L2), which every thread would then
    stream from beyond its L2: then the pixels (ResNet-50's 64>256 @56, 784
    KiB, on a 1 MiB L2; by channels on a 2 MiB one).  By channels, one chunk
    of all the panels where a thread's rows are at least a chunk's pixels or
    the driver runs it panel-major (A streamed once); else, over short
    slices (pass-major), chunks within the L2 budget, as on 1 thread (B
    found in L2 by each pass: 16>96 @112 as one chunk ran slower on 2
    threads than on 1)."""
    op, _ = _op(isa, rng.standard_normal((M, C, 1, 1)).astype(np.float32))
    _, nr, _ = _core._ukernel_tile(isa)
    chunk, nchunks, mchunks = op.setup(1, H, H, 2, IM2COL).tiling[2:5]
    if _by_pixels(C, M, H, H):
        assert mchunks == 1 and nchunks >= 4, (chunk, nchunks, mchunks)
        return
    npanels = -(-H * H // nr)
    assert mchunks == 2 and nchunks == -(-npanels // chunk), (chunk, nchunks, mchunks)
    short = C * nr * 4 < _core.blocking()["gemm_panel_l1"]
    if H >= 56 and short:  # 98 panels or more, in chunks of the L2 budget
        assert nchunks > 1 and chunk * 2 <= npanels, (chunk, nchunks)
    if not short:
        assert nchunks == 1, (chunk, nchunks)


@pytest.mark.parametrize("C, M, H, W", [(16, 96, 57, 55), (24, 44, 56, 56), (16, 40, 113, 112)])
def test_channel_split_over_chunks_same_bits(isa, rng, C, M, H, W):
    """Channel blocks over several chunks each (odd pixel counts, M not a
    multiple of MR or of the tall tile): the same bits on 1-3 threads and
    float64's values."""
    op, _ = _op(isa, rng.standard_normal((M, C, 1, 1)).astype(np.float32))
    chunk, nchunks, mchunks = op.setup(1, H, W, 2, IM2COL).tiling[2:5]
    assert nchunks > 1 and mchunks == (1 if _by_pixels(C, M, H, W) else 2), \
        (chunk, nchunks, mchunks)
    _pointwise_bits_and_values(rng, C, M, H, W, 1.0, "relu6", 0.0, 6.0)


def test_large_expansion_input_split_by_pixels(isa, rng):
    """The rule above on whatever L2 this machine has: an expansion whose
    input is just past gemm_b_whole goes by pixels on 2 threads, the same
    shape with half its pixels by channels; the bits are the 1-thread ones."""
    whole = _core.blocking()["gemm_b_whole"]
    C, M = 16, 64
    H = int((whole / (C * 4)) ** 0.5) + 1          # C*H*H*4 just above the budget
    small = int((whole / 2 / (C * 4)) ** 0.5)       # below it
    op, _ = _op(isa, rng.standard_normal((M, C, 1, 1)).astype(np.float32))
    assert op.setup(1, H, H, 2, IM2COL).tiling[4] == 1
    assert op.setup(1, small, small, 2, IM2COL).tiling[4] == 2
    _pointwise_bits_and_values(rng, C, M, H, H, 1.0, "relu6", 0.0, 6.0)


@pytest.mark.parametrize("C, M, H, k, stride", [(192, 32, 28, 1, 1), (3, 32, 224, 3, 2),
                                                (24, 8, 30, 3, 1)])
def test_bits_with_residual_do_not_depend_on_the_threads(isa, rng, C, M, H, k, stride):
    """Pixel-split chunks (the stem's 3x3/2, a small-M 1x1 with a residual)
    give the same bits on any thread count."""
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    w = rng.standard_normal((M, C, k, k)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    plan = lc.Conv2d(w, b, algorithm="im2col", stride=stride, padding=k // 2)
    res = rng.standard_normal(plan.output_shape(x.shape)).astype(np.float32)
    want = plan(x, residual=res, threads=1)
    for threads in (2, 3, 4):
        assert plan(x, residual=res, threads=threads).tobytes() == want.tobytes(), threads


def test_packed_stem_splits_by_pixels(isa, rng):
    """Im2Col packs B by output rows, so the 3x3/2 stem's GEMM (M = 32 <
    K * T = 54) runs each thread's own packed pixels."""
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    spec = ConvSpec.build(w.shape, 2, 1, 1, 1, None)
    op = _core.Op(IM2COL, _isa.isa_id(isa), w.reshape(-1), None, filter_geometry(spec),
                  spec.epilogue, 2, False)
    chunk, nchunks, mchunks = op.setup(1, 224, 224, 2, IM2COL).tiling[2:5]
    assert mchunks == 1 and nchunks >= 4, (chunk, nchunks, mchunks)


def _packs(isa, C, M, H, W, threads):
    w = np.zeros((M, C, 1, 1), np.float32)
    spec = ConvSpec.build(w.shape, 1, 0, 1, 1, None)
    op = _core.Op(IM2COL, _isa.isa_id(isa), w.reshape(-1), None, filter_geometry(spec),
                  spec.epilogue, 2, False)
    return op.setup(1, H, W, threads, IM2COL).tiling[5] > 0


# (C, M, H, W): two K blocks (300 = 256 + 44) and a partial last panel (221
# pixels); 8 row passes over planes a page apart (40 x 40), chunks by pixels
# on 2 threads; 16 passes or more over small planes (14 x 14)
PACKED_B = [(300, 136, 13, 17), (256, 64, 40, 40), (512, 128, 14, 14)]
# Panel-major GEMMs (lc_gemm_panels_rows): 3 passes over planes read in place
# (144>24); a partial last pass and a partial last panel (20 rows, 900
# pixels); two K blocks, the first panel-major and the 44-row second one
# pass-major where the slices are short
PANEL_MAJOR = [(144, 24, 56, 56), (256, 20, 30, 30), (300, 36, 13, 17)]
# B read in place beyond a quarter of L2 (all but the smallest of these on
# caches up to 4 MiB): both orders hand the prefetching kernel
# (lc_gemm_pf_fn) the next panel's rows; after the last panel of the first
# K block, the first of the next (300 rows over 1600 pixels); pass-major
# short slices (K = 64), whose first pass prefetches up to the partial last
# panel (3844 = 120 x 32 + 4 pixels)
PASS_MAJOR = [(300, 36, 40, 40), (64, 40, 62, 62)]


# (C, M, H, W) 1 x 1 layers B read in place: below one group of the tall
# tile's rows (8, 16), one group (24), a group and a remainder (40 = 24 + 16,
# 52), several (64 = 2 x 24 + 16); P not a multiple of 16 (a partial last
# panel and tile: 247, 391, 899 pixels); pixel-split chunks (56 x 57) and
# channel-split ones (13 x 19 on 2 and 3 threads); K long enough for the
# first tall group to prefetch (144 x 56 x 57 floats are beyond L2 / 4)
# the tall tile runs on rows whole lines long (P a multiple of 16 floats) that
# start off a line: most shapes here are such, with and without a last
# partial panel; 13 x 19, 17 x 23 and 56 x 57 are not (the MR x NR kernel);
# three groups over an output beyond L2 / 4 on L2s up to 2.6 MiB (72 x 48 x 50
# floats: the later groups ask for the next panel's C rows, lc_tall_c_ahead)
TALL_LAYERS = [(40, 8, 13, 19), (72, 16, 17, 23), (144, 24, 16, 20), (96, 40, 16, 25),
               (64, 64, 24, 30), (120, 52, 12, 28), (144, 24, 56, 57), (144, 24, 56, 56),
               (48, 72, 48, 50)]


@pytest.mark.parametrize("C, M, H, W", PACKED_B + PANEL_MAJOR + PASS_MAJOR)
def test_packed_b_matches_the_reference(isa, rng, C, M, H, W):
    """A 1 x 1 layer whose GEMM copies its B blocks into contiguous panels
    (lc_im2col_packs_b) or runs them panel by panel computes the same as the
    float64 reference, with a residual beside the output or in it, and the
    same bits on any thread count."""
    _check_1x1_layer(rng, C, M, H, W)


def _check_1x1_layer(rng, C, M, H, W):
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, 1, 1)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    res = rng.standard_normal((1, M, H, W)).astype(np.float32)
    plan = lc.Conv2d(w, b, algorithm="im2col", activation="relu")
    want = plan(x, residual=res, threads=1)
    ref = np.maximum(conv2d_ref(x, w, b)[0] + res, 0.0)
    np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # Patch2Vec reads B in place with the same kernels and K blocks, one
    # panel a call: the packing and the order moved the loads, not the sums
    p2v = lc.Conv2d(w, b, algorithm="patch2vec", activation="relu")
    assert p2v(x, residual=res, threads=1).tobytes() == want.tobytes()
    # in place the sums start from the residual: other bits, as close
    want_in_place = res.copy()
    plan(x, out=want_in_place, residual=want_in_place, threads=1)
    np.testing.assert_allclose(want_in_place, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    for threads in (2, 3):
        assert plan(x, residual=res, threads=threads).tobytes() == want.tobytes(), threads
        acc = res.copy()
        plan(x, out=acc, residual=acc, threads=threads)
        assert acc.tobytes() == want_in_place.tobytes(), threads


@pytest.mark.parametrize("C, M, H, W", PACKED_B)
def test_packed_b_is_exercised(isa, C, M, H, W):
    """The shapes above pack B wherever a panel's kc-row slice is more than
    a quarter of L1d (the widest ISAs' on common caches), and a layer with
    few row passes over small planes (384>64 @14) or 8 over short slices
    (64>64 @56 on AVX-512) does not."""
    mr, nr, kc = _core._ukernel_tile(isa)
    if 4 * min(C, kc) * nr * 4 > _core.cache_sizes()["l1d"]:
        assert _packs(isa, C, M, H, W, 1)
    assert not _packs(isa, 384, 8 * mr, 14, 14, 1)
    assert not _packs(isa, 64, 8 * mr, 56, 56, 1)


def _panel_major(isa, C, M, cols):
    """Whether lc_gemm_panels_rows runs a 1 x 1 layer's first K block panel
    by panel (every MR pass over one B panel slice before the next panel),
    for a call of M rows over `cols` columns: the slice between
    gemm_panel_l1 and gemm_b_l1 bytes, more than one pass, and not A past
    gemm_a_far over twice as many rows as columns or more."""
    mr, nr, kc = _core._ukernel_tile(isa)
    b, slice_bytes = _core.blocking(), min(C, kc) * nr * 4
    far = -(-M // mr) * mr * C * 4 > b["gemm_a_far"]
    return M > mr and b["gemm_panel_l1"] <= slice_bytes <= b["gemm_b_l1"] and \
        not (far and M >= 2 * cols)


def test_far_a_over_many_rows_goes_pass_major_with_the_same_bits(isa, rng):
    """A 1 x 1 layer of 64 pixels whose packed A is 3/8 of L2 (past
    gemm_a_far, within gemm_a_stream) and whose rows are more than twice
    the pixels (a partial last pass) runs pass-major at 1 thread; split by
    channels on 2 and 3 threads its calls may run panel-major: close to the
    float64 reference, the same bits on any thread count (also in place, and
    as Patch2Vec's)."""
    mr, _, _ = _core._ukernel_tile(isa)
    b = _core.blocking()
    C, H, W = 256, 8, 8
    M = b["gemm_a_far"] * 3 // 2 // (C * 4) // mr * mr + mr // 2
    if M < 2 * H * W:
        pytest.skip("L2 too small for this shape")
    assert b["gemm_a_far"] < M * C * 4 <= b["gemm_a_stream"]
    _check_1x1_layer(rng, C, M, H, W)


def test_panel_major_is_exercised(isa):
    """On a 32-64 KiB L1d the widest ISAs' 256-row slices go panel by panel
    (900 pixels: 20 rows), but not where A is far and its rows twice the
    columns or more (2048 rows over 64 pixels), and short slices (K = 16:
    the C tiles are the traffic) never do."""
    _, nr, _ = _core._ukernel_tile(isa)
    l1d = _core.cache_sizes()["l1d"]
    if l1d // 4 <= 256 * nr * 4 <= l1d * 2 // 3:
        assert _panel_major(isa, 256, 20, 900)
        assert not _panel_major(isa, 256, 2048, 64)
    assert not _panel_major(isa, 16, 96, 900)


def _tall(isa, C, M, H, W, threads=1):
    w = np.zeros((M, C, 1, 1), np.float32)
    op, _ = _op(isa, w)
    return op.setup(1, H, W, threads, IM2COL).tiling[6] != 0


def _at(a, offset):
    """A copy of a whose data starts `offset` bytes past a 64-byte line."""
    raw = np.empty(a.size + 32, np.float32)
    start = ((-raw.ctypes.data) % 64 + offset) // 4
    out = raw[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("C, M, H, W", TALL_LAYERS)
def test_tall_tile_layers(isa, rng, C, M, H, W):
    """Input rows off the line boundaries take the tall tile where the ISA
    has one (lc_im2col_tall_rows), line-aligned ones the MR x NR kernel: the
    same bits either way and on 1, 2 and 3 threads, against float64 with a
    bias, a residual and SiLU (the post-op after the kernels)."""
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, 1, 1)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    res = rng.standard_normal((1, M, H, W)).astype(np.float32)
    plan = lc.Conv2d(w, b, algorithm="im2col", activation="silu")
    want = plan(_at(x, 0), residual=res, threads=1)
    for offset in (0, 4, 16, 32):
        for threads in (1, 2, 3):
            got = plan(_at(x, offset), residual=res, threads=threads)
            assert got.tobytes() == want.tobytes(), (offset, threads)
    z = np.einsum("mc,chw->mhw", w[:, :, 0, 0].astype(np.float64), x[0].astype(np.float64))
    z = z + b[:, None, None] + res[0]
    np.testing.assert_allclose(want[0], z / (1.0 + np.exp(-z)), rtol=1e-4,
                               atol=1e-4 * np.abs(z).max())


def test_tall_tile_is_exercised(isa):
    """Where the ISA has a tall tile, TALL_LAYERS from M = 24 on take it (and
    the ones below one group of its rows, with B packed, or split between
    threads by channels, do not: the input past gemm_b_whole that sends
    64>256 @56 by pixels gives it the tall tile back at 2 threads)."""
    if isa != "avx512":
        assert not any(_tall(isa, *shape) for shape in TALL_LAYERS)
        return
    for C, M, H, W in TALL_LAYERS:
        assert _tall(isa, C, M, H, W) == (M >= 24), (C, M, H, W)
    assert _tall(isa, 144, 24, 56, 56, threads=2)  # split by pixels
    # split by channels (no tall tile) unless the input is past gemm_b_whole
    whole = _core.blocking()["gemm_b_whole"]
    for C, M, H in ((64, 256, 56), (64, 256, 28)):
        assert _tall(isa, C, M, H, H, threads=2) == (C * H * H * 4 > whole), (C, M, H)
    assert not _tall(isa, 256, 64, 40, 40)  # B packed: 8 passes over planes a page apart


def _tall_kind(isa, C, M, H, W, threads=1):
    """lc_im2col_tiling's tall word: 1 where the tall tile may run (rows off
    a line: always; line-aligned rows: where the driver finds C far and the
    MR x NR order panel-major, lc_gemm_tall_far), else 0."""
    w = np.zeros((M, C, 1, 1), np.float32)
    op, _ = _op(isa, w)
    return op.setup(1, H, W, threads, IM2COL).tiling[6]


def _c_far_tall_shape(isa):
    """A 1 x 1 layer whose MR x NR passes would go panel-major (a panel's
    slice exactly gemm_panel_l1, not packed) over an output beyond gemm_c_far:
    5 tall groups and a 5-row remainder over 40 x 40 pixels; None where the
    detected caches give no such K."""
    _, nr, kc = _core._ukernel_tile(isa)
    b = _core.blocking()
    C = b["gemm_panel_l1"] // (nr * 4)
    if not 0 < C <= kc or C * (24 + nr) * 4 > _core.cache_sizes()["l1d"]:
        return None
    return C, 125, 40, 40


def test_tall_tile_on_aligned_rows_where_c_is_far(isa, rng):
    """Where the MR x NR kernel would store a tile in every output row per
    panel (panel-major) over an output past gemm_c_far, the tall tile takes
    line-aligned input too (decided per call in the driver by the tests its
    loop runs; short slices, pass-major, keep it for rows off a line): the
    same bits at every input offset and thread count, close to float64."""
    shape = _c_far_tall_shape(isa)
    if shape is None:
        pytest.skip("no K gives a slice of gemm_panel_l1 on these caches")
    C, M, H, W = shape
    assert _tall_kind(isa, C, M, H, W) == (1 if isa == "avx512" else 0)
    assert _tall_kind(isa, 16, 96, 112, 112) == (1 if isa == "avx512" else 0)
    if isa == "avx512":
        # the driver's own tests (lc_gemm_tall_far) on the 1-thread chunks:
        # the tall tile on aligned rows here, not over K = 16 (pass-major)
        _, nr, _ = _core._ukernel_tile(isa)
        w = np.zeros((M, C, 1, 1), np.float32)
        chunk, nchunks = _op(isa, w)[0].setup(1, H, W, 1, IM2COL).tiling[2:4]
        npanels = -(-H * W // nr)
        cols = min(-(-npanels // nchunks) * nr, H * W)  # the largest chunk's
        assert _core.gemm_tall_far(_isa.isa_id(isa), M, C, M, cols)
        assert not _core.gemm_tall_far(_isa.isa_id(isa), 96, 16, 96, cols)
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, 1, 1)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    plan = lc.Conv2d(w, b, algorithm="im2col", activation="relu")
    want = plan(_at(x, 0), threads=1)
    for offset, threads in ((16, 1), (0, 2), (16, 3)):
        got = plan(_at(x, offset), threads=threads)
        assert got.tobytes() == want.tobytes(), (offset, threads)
    ref = np.maximum(conv2d_ref(x, w, b)[0], 0.0)
    np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("C, H, W", [(16, 33, 33), (1, 32, 33)])
def test_short_slices_packed_without_a_tall_tile(isa, rng, C, H, W):
    """16 row passes over planes a page apart pack B even where a panel's
    slice is short (K = 16, K = 1: partial last panels), unless the ISA's
    tall tile takes the layer: close to float64, the same bits on any thread
    count and in Patch2Vec."""
    mr, _, _ = _core._ukernel_tile(isa)
    M = 16 * mr
    assert _packs(isa, C, M, H, W, 1) == (isa != "avx512" or M < 24)
    assert not _packs(isa, C, 15 * mr, H, W, 1)
    assert not _packs(isa, C, M, 31, 32, 1)  # planes under a page
    _check_1x1_layer(rng, C, M, H, W)


@pytest.mark.parametrize("C, H, W", [(64, 14, 14), (96, 13, 17)])
def test_small_planes_packed_where_a_panel_row_is_a_line(isa, rng, C, H, W):
    """16 row passes over planes under a page pack B where a panel's row is
    at most a cache line (AVX2's 16 floats, NEON's 8: read in place, each k
    step of a pass would be a line of its own) and at least 64 rows deep --
    not over 48 rows, nor with 15 passes, nor with AVX-512's 32-float rows
    (unless its slice passes a quarter of L1d, the general rule) -- close to
    float64, the same bits on any thread count and in Patch2Vec."""
    mr, nr, kc = _core._ukernel_tile(isa)
    l1d = _core.cache_sizes()["l1d"]

    def large(rows):   # the general rule's slice test (16 passes pack there)
        return 4 * min(rows, kc) * nr * 4 > l1d
    M, line = 16 * mr, nr * 4 <= 64
    assert _packs(isa, C, M, H, W, 1) == (line or large(C))
    assert _packs(isa, 48, M, H, W, 1) == large(48)
    assert not _packs(isa, C, 15 * mr, H, W, 1)   # 15 passes, planes under a page
    _check_1x1_layer(rng, C, M, H, W)
