"""Winograd driver paths against the float64 reference: the input transform
reads the tile windows straight from the planes (AVX-512) or from a zero
padded strip or gather (the other ISAs); runs are cut by panels (NR tiles) and tile rows, so image widths
around multiples of m and NR, asymmetric padding and tiny images all take
different splits.  Also the GEMMs over the real tile count (a short last
panel) and results that do not depend on the thread count."""
import ctypes
import mmap
import sys

import numpy as np
import pytest

import leanconv as lc
from reference import TOLERANCE, conv2d_ref, error_for

WINO = ("winograd_f2", "winograd_f4", "winograd_f6")

# (C, M, H, W, padding (top, bottom, left, right))
SHAPES = [
    (3, 5, 7, 7, (1, 1, 1, 1)),       # one panel, runs of 2-4 tiles
    (4, 9, 14, 14, (1, 1, 1, 1)),
    (2, 3, 9, 70, (1, 1, 1, 1)),      # tile rows longer than a panel
    (2, 3, 11, 130, (0, 2, 2, 0)),    # asymmetric padding, tiles past the right edge
    (5, 4, 16, 33, (0, 0, 0, 0)),     # no padding: only the right/bottom runs cross
    (1, 2, 3, 3, (2, 2, 2, 2)),       # every window crosses the border
    (3, 3, 20, 3, (1, 1, 1, 1)),      # one tile per row: runs of 1
    (2, 17, 29, 61, (1, 0, 0, 1)),
]


def check(algorithm, x, w, b, pads, threads=1, activation=None):
    y = lc.conv2d(x, w, b, padding=pads, algorithm=algorithm, threads=threads,
                  activation=activation)
    clamp = lc.Conv2d(w, b, padding=pads, algorithm=algorithm, activation=activation).spec.clamp
    ref, scale = conv2d_ref(x, w, b, (1, 1), pads, (1, 1), 1, clamp)
    assert y.shape == ref.shape
    assert error_for(algorithm, y, ref, scale) <= TOLERANCE[algorithm]
    return y


@pytest.mark.parametrize("algorithm", WINO)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[2]}x{s[3]}" for s in SHAPES])
def test_paths_match_reference(isa, algorithm, shape, rng):
    C, M, H, W, pads = shape
    x = rng.standard_normal((2, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, 3, 3)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    check(algorithm, x, w, b, pads, activation="relu")


@pytest.mark.parametrize("algorithm", WINO)
def test_thread_count_does_not_change_bits(isa, algorithm, rng):
    x = rng.standard_normal((1, 6, 23, 45)).astype(np.float32)
    w = rng.standard_normal((7, 6, 3, 3)).astype(np.float32)
    y1 = check(algorithm, x, w, None, (1, 1, 1, 1), threads=1)
    y2 = check(algorithm, x, w, None, (1, 1, 1, 1), threads=2)
    assert np.array_equal(y1, y2)


@pytest.mark.parametrize("algorithm", WINO)
def test_bits_do_not_depend_on_thread_count_or_scratch(isa, algorithm, rng):
    """1, 2, 3 and 7 threads (more than this machine's cores: items change
    hands between threads; they split blocks, channel ranges and output rows
    differently, phased or not, and 56 x 56 goes in whole blocks of fewer
    panels at 2 threads), each run after another layer has left its own
    values in the scratch: always the same bits."""
    for C, M, H, W in ((24, 40, 14, 14), (8, 16, 28, 30), (5, 7, 7, 70), (6, 8, 56, 56)):
        x = rng.standard_normal((1, C, H, W)).astype(np.float32)
        w = rng.standard_normal((M, C, 3, 3)).astype(np.float32)
        b = rng.standard_normal(M).astype(np.float32)
        noise = (rng.standard_normal((1, C, H, W)) * 1e30).astype(np.float32)
        outs = []
        for threads in (1, 2, 3, 7, 1):
            lc.conv2d(noise, w, b, padding=1, algorithm=algorithm, threads=threads)
            outs.append(lc.conv2d(x, w, b, padding=1, algorithm=algorithm, threads=threads))
        for y in outs[1:]:
            assert np.array_equal(outs[0], y)


@pytest.mark.parametrize("algorithm", WINO)
def test_image_edge_is_not_over_read(isa, algorithm, rng):
    """The last window of the last channel ends the input buffer: a view at
    the end of a larger array whose tail is NaN would leak NaN if read."""
    C, H, W = 3, 12, 12
    big = np.full(C * H * W + 64, np.nan, np.float32)
    big[:C * H * W] = rng.standard_normal(C * H * W)
    x = big[:C * H * W].reshape(1, C, H, W)
    w = rng.standard_normal((4, C, 3, 3)).astype(np.float32)
    y = check(algorithm, x, w, None, (0, 0, 0, 0))
    assert np.isfinite(y).all()


_keep_alive = []


def guarded_input(shape, at_start):
    """A float32 array of `shape` flush against a PROT_NONE page: its first
    float right after one (at_start), or its last right before one (Linux;
    a plain array elsewhere)."""
    n = int(np.prod(shape))
    if not sys.platform.startswith("linux"):
        return np.zeros(shape, np.float32)
    page = mmap.PAGESIZE
    span = (n * 4 + page - 1) // page * page + 2 * page
    buf = mmap.mmap(-1, span, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for guard in (base, base + span - page):
        if libc.mprotect(ctypes.c_void_p(guard), page, 0) != 0:
            return np.zeros(shape, np.float32)
    _keep_alive.append(buf)
    start = page if at_start else span - page - n * 4
    return np.frombuffer(buf, dtype=np.float32, count=n, offset=start).reshape(shape)


@pytest.mark.parametrize("algorithm", WINO)
@pytest.mark.parametrize("at_start", [True, False], ids=["front", "back"])
def test_windows_read_only_inside_the_input(isa, algorithm, at_start, rng):
    """The input transform reads the windows straight from the planes where
    the ISA can (masked loads, kernels/<isa>/winograd.c): padding and the
    lanes of other tile rows must not read before the first plane or past
    the last one, whatever the padding and widths."""
    for C, M, H, W, pads in SHAPES:
        x = guarded_input((1, C, H, W), at_start)
        x[:] = rng.standard_normal(x.shape)
        w = rng.standard_normal((M, C, 3, 3)).astype(np.float32)
        check(algorithm, x, w, None, pads)


# One tile row of t tiles: t around every transform vector width (1 scalar,
# 4 NEON, 8 AVX2, 16 AVX-512) and panel width (NR 8, 16, 32), so the last
# panel is partial in every way -- its transforms run only the vectors that
# hold real tiles, and the output transform reads the GEMM's unwritten lanes
# as zero.
TILE_COUNTS = (1, 3, 4, 5, 7, 9, 15, 17, 31, 33)


@pytest.mark.parametrize("algorithm", WINO)
def test_partial_panels_of_every_width(isa, algorithm, rng):
    m = int(algorithm[-1])
    for t in TILE_COUNTS:
        x = rng.standard_normal((1, 3, m, m * t)).astype(np.float32)
        w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
        b = rng.standard_normal(5).astype(np.float32)
        check(algorithm, x, w, b, (1, 1, 1, 1), activation="relu")


@pytest.mark.parametrize("algorithm", WINO)
@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (7, 7), (13, 11)])
def test_many_channels_small_images_with_residual(isa, algorithm, hw, rng):
    """Deep layers on tiny images (one tile up to a partial panel, odd sizes):
    bias, residual and activation fused, in a separate output and in place,
    with the same bits at 1 and 2 threads."""
    H, W = hw
    C, M = 70, 40
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((M, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    r = rng.standard_normal((1, M, H, W)).astype(np.float32)
    ref, scale = conv2d_ref(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1, None)
    want = np.maximum(ref + r, 0.0)
    outs = []
    for threads in (1, 2):
        y = lc.conv2d(x, w, b, padding=1, algorithm=algorithm, activation="relu", residual=r,
                      threads=threads)
        acc = r.copy()
        lc.conv2d(x, w, b, padding=1, algorithm=algorithm, activation="relu", residual=acc,
                  out=acc, threads=threads)
        assert np.array_equal(y, acc)
        assert error_for(algorithm, y, want, scale + np.abs(r)) <= TOLERANCE[algorithm]
        outs.append(y)
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("algorithm", WINO)
@pytest.mark.parametrize("hw,groups", [((1, 1), 1), ((5, 7), 1), ((14, 14), 1), ((7, 9), 2)])
def test_channel_lanes_gemm_layers(isa, algorithm, hw, groups, rng):
    """Groups of >= 256 input channels take the channel-lanes GEMM where the
    ISA's is used (U packed with output channels in the lanes;
    kernels/winograd.c lc_wino_channel_lanes), the MR x NR GEMM elsewhere:
    bias, residual and activation fused, partial tile rows, output channels
    that fill its panels or not (72 is a multiple of neither 16 nor 32), the same bits
    at 1 and 2 threads."""
    H, W = hw
    C = 256 * groups
    for M in (64 * groups, 72 * groups):
        x = rng.standard_normal((1, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((M, C // groups, 3, 3)) / np.sqrt(9 * C / groups)).astype(np.float32)
        b = rng.standard_normal(M).astype(np.float32)
        r = rng.standard_normal((1, M, H, W)).astype(np.float32)
        ref, scale = conv2d_ref(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), groups, None)
        want = np.maximum(ref + r, 0.0)
        outs = [lc.conv2d(x, w, b, padding=1, groups=groups, algorithm=algorithm,
                          activation="relu", residual=r, threads=t) for t in (1, 2)]
        assert error_for(algorithm, outs[0], want, scale + np.abs(r)) <= TOLERANCE[algorithm]
        assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("algorithm", WINO)
@pytest.mark.parametrize("C,M,H,W", [(16, 72, 8, 8), (24, 96, 7, 9), (256, 96, 7, 7),
                                     (8, 130, 5, 11), (16, 72, 16, 16)])
def test_threads_split_output_channels_when_they_outnumber_tiles(isa, algorithm, C, M, H, W,
                                                                 rng):
    """More output channels than tiles, in few blocks: at 2 and 3 threads
    each thread transforms the whole input and takes a range of the output
    channels (kernels/winograd.c lc_wino_by_channels), with the MR x NR GEMM
    and, on 256 input channels, the channel-lanes one; a partial last channel
    block (130); at 7 threads (fewer channel ranges than threads) the two
    phases; 16 x 16 in whole blocks.  Against the reference, and the same bits at 1, 2,
    3 and 7 threads, each run after another layer left its values in the
    scratch."""
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((M, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    noise = (rng.standard_normal((1, C, H, W)) * 1e30).astype(np.float32)
    outs = []
    for threads in (1, 2, 3, 7):
        lc.conv2d(noise, w, b, padding=1, algorithm=algorithm, threads=threads)
        outs.append(check(algorithm, x, w, b, (1, 1, 1, 1), threads=threads, activation="relu"))
    for y in outs[1:]:
        assert np.array_equal(outs[0], y)


@pytest.mark.parametrize("mode", ["poison_scratch", "reverse"])
@pytest.mark.parametrize("C,M,H", [(16, 256, 8), (256, 512, 5)])
def test_channel_ranges_reuse_the_threads_transformed_input(isa, mode, C, M, H, rng):
    """By channels (more output channels than tiles), with two output-channel
    ranges a thread at 2 threads (4 items; 3 at 3 threads), a thread that
    takes the block's next range keeps the block's transformed input from
    its last item (kernels/winograd.c lc_wino_range_item); the MR x NR GEMM
    and, on 256 input channels, the channel-lanes one.  Under poisoned
    scratch (everything but the kept input) and reversed item order the bits
    are those of one thread, after a call on other data at the same thread
    count left its transformed input in the scratch."""
    from leanconv import _core
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((M, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    plan = lc.Conv2d(w, b, padding=1, algorithm="winograd_f2", activation="relu")
    ref = plan(x, threads=1)
    noise = (rng.standard_normal(x.shape) * 1e30).astype(np.float32)
    _core.debug_schedule(**{mode: True})
    try:
        for threads in (2, 3):
            plan(noise, threads=threads)  # its transformed input left in the scratch
            assert np.array_equal(plan(x, threads=threads), ref), threads
    finally:
        _core.debug_schedule()


@pytest.mark.parametrize("algorithm,C,H", [("winograd_f2", 128, 16), ("winograd_f4", 64, 32)])
def test_weights_from_far_same_bits(isa, algorithm, C, H, rng):
    """U past a quarter of L2 (1 MiB at 128>128 F2, 576 KiB at 64>64 F4 on a
    2 MiB L2): a thread's first block prefetches U's slices and passes over
    it row-panel first (kernels/winograd.c lc_wino_u_far), its later blocks
    may not.  Which blocks do depends on the threads; the bits must not."""
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    outs = [check(algorithm, x, w, b, (1, 1, 1, 1), threads=t, activation="relu") for t in (1, 2, 3)]
    for y in outs[1:]:
        assert np.array_equal(outs[0], y)


@pytest.mark.parametrize("algorithm, M, expected", [
    ("winograd_f4", 128, "phased"), ("winograd_f6", 128, "phased"),
    ("winograd_f2", 128, "channels"), ("winograd_f4", 64, "blocks")])
def test_few_uneven_blocks_go_in_phases(isa, algorithm, M, expected, rng):
    """One image of 1.5 panels of tiles plus one (49 tiles at NR = 32, the
    AVX-512 F4 28 x 28 case): whole blocks would give one thread a full panel
    and the other just over half, so at 2 threads, on 32-lane panels and with
    128 output channels or more, the call goes in two phases
    (kernels/winograd.c LC_WINO_FEW_SLACK), F4 and F6 not by channels (their
    input transforms are not redone per thread), F2 by channels (more output
    channels than tiles); with 64 output channels, or on narrower panels,
    whole blocks stay.  Two full panels always go in whole blocks.  Against
    the reference, and the same bits at 1, 2, 3 and 7 threads."""
    from leanconv import _core
    from leanconv._params import ConvSpec
    nr = _core.isa_tile(_core.ISA_NAMES.index(isa))[1]
    m = {"winograd_f2": 2, "winograd_f4": 4, "winograd_f6": 6}[algorithm]
    algo_id = _core.ALGORITHMS.index(algorithm)
    isa_id = _core.ISA_NAMES.index(isa)
    C = 8
    uneven = expected if nr >= 32 else "blocks"
    for tiles, split in ((nr + nr // 2 + 1, uneven), (2 * nr, "blocks")):
        H, W = m, m * tiles  # one tile row
        g = ConvSpec.build((M, C, 3, 3), padding=1).geometry(1, C, H, W)
        assert _core._winograd_split(algo_id, isa_id, g, 2) == split, (tiles, nr)
        x = rng.standard_normal((1, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((M, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
        b = rng.standard_normal(M).astype(np.float32)
        outs = [check(algorithm, x, w, b, (1, 1, 1, 1), threads=t) for t in (1, 2, 3, 7)]
        for y in outs[1:]:
            assert np.array_equal(outs[0], y)
