"""direct_lanes on 1 x 1 / stride-1 / unpadded layers (kernels/pointwise_lanes.c):
output channels in the lanes, pixels broadcast straight from the NCHW input.
Its micro-kernel (lc_pw_kernel_fn) called directly on every ISA, full and
half width (input and tile ending at a guard page, nothing outside the named
tile floats written), then the layer forced on every ISA against the float64
reference: output channels not a multiple of the lanes, P = 1..200, odd K,
groups, batches, every epilogue and residual (in place too); the same bits at
1-3 threads; the workspace the binding lends is exactly what it asks for;
"auto" weighing it only on small images, and on AVX-512 (the one ISA with a
price for it) taking it for 14 x 14 layers of long K and the longest 7 x 7."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core
from reference import TOLERANCE, conv2d_ref, normalised_error
from test_direct_lanes import check_tile
from test_ukernels import guarded

ISAS = lc.available_isas()
ACC, FINAL, PF = _core.GEMM_ACCUMULATE, _core.GEMM_FINAL, _core.PW_PREFETCH
KERNELS = [(isa, half) for isa in ISAS for half in (False, True)
           if _core._ukernel_pw_shape(isa, half) is not None]


def kernel_case(isa, half, n, k, ldx, flags, clamp, seed):
    L, CW, R = _core._ukernel_pw_shape(isa, half)
    r = np.random.default_rng(seed)
    need = (k - 1) * ldx + n
    x = guarded(need)  # the last pixel the kernel may read is the last readable float
    x[:] = r.standard_normal(need)
    w = r.standard_normal(k * CW).astype(np.float32)
    bias = r.standard_normal(CW).astype(np.float32)
    ldt = R * L + 3
    nt = (CW // L - 1) * ldt + n * L
    t = guarded(nt)
    t0 = r.standard_normal(nt).astype(np.float32)
    t[:] = t0
    _core._ukernel_pw(isa, n, k, x, 0, ldx, w, t, 0, ldt, bias, flags, clamp, half=half)
    xd = np.stack([x[c * ldx:c * ldx + n] for c in range(k)]).astype(np.float64)  # k x n
    wd = w.astype(np.float64).reshape(k, CW)
    check_tile(t, t0, wd.T @ xd, np.abs(wd.T) @ np.abs(xd), bias, L, ldt, flags, clamp,
               f"{isa} half={half} n={n} k={k} flags={flags}")


@pytest.mark.parametrize("isa,half", KERNELS)
@pytest.mark.parametrize("k,ldx", [(1, 1), (3, 7), (17, 49), (64, 13)])
def test_kernel_every_pixel_count(isa, half, k, ldx):
    R = _core._ukernel_pw_shape(isa, half)[2]
    for n in range(1, R + 1):
        kernel_case(isa, half, n, k, max(ldx, n), FINAL, None, seed=n + 10 * k)


@pytest.mark.parametrize("isa,half", KERNELS)
@pytest.mark.parametrize("flags", [0, ACC, FINAL, ACC | FINAL, PF | FINAL, PF | ACC | FINAL])
def test_kernel_accumulate_and_clamp(isa, half, flags):
    R = _core._ukernel_pw_shape(isa, half)[2]
    for n in sorted({1, R // 2 or 1, R}):
        kernel_case(isa, half, n, 5, 20, flags, (-0.5, 0.75), seed=flags + n)


@pytest.mark.parametrize("isa,half", KERNELS)
def test_kernel_prefetching_copy_same_bits(isa, half):
    """LC_PW_PREFETCH (weights asked for ahead, within the k channels) changes
    no bits, whatever k against the prefetch distance; x and the tile end at
    guard pages (kernel_case) for the reads."""
    L, CW, R = _core._ukernel_pw_shape(isa, half)
    r = np.random.default_rng(77)
    for k in (1, 15, 16, 17, 40):
        for n in sorted({1, R}):
            x = r.standard_normal(k * 20).astype(np.float32)
            w = r.standard_normal(k * CW).astype(np.float32)
            bias = r.standard_normal(CW).astype(np.float32)
            ldt = R * L
            outs = []
            for flags in (FINAL, FINAL | PF):
                t = np.zeros((CW // L) * ldt, np.float32)
                _core._ukernel_pw(isa, n, k, x, 0, 20, w, t, 0, ldt, bias, flags, (-1.0, 1.0),
                                  half=half)
                outs.append(t)
            np.testing.assert_array_equal(outs[0], outs[1])


def test_kernel_checks_its_arguments():
    isa = ISAS[-1]
    L, CW, R = _core._ukernel_pw_shape(isa)
    x = np.zeros(64, np.float32)
    w = np.zeros(4 * CW, np.float32)
    t = np.zeros(4 * R * L * 4, np.float32)
    with pytest.raises(ValueError):  # n > R
        _core._ukernel_pw(isa, R + 1, 1, x, 0, 16, w, t, 0, R * L, None, FINAL)
    with pytest.raises(ValueError):  # the last channel's pixels past x
        _core._ukernel_pw(isa, 2, 4, x, 0, 32, w, t, 0, R * L, None, FINAL)


# ------------------------------------------------------ the whole layer --

# (N, C, M, H, W, groups): P = H * W from 1 to 200 (7x7 and 14x14 among them) and
# past a chunk, M not a multiple of any lane count (and below one vector), odd K
SHAPES = [(1, 1, 1, 1, 1, 1), (1, 3, 5, 1, 7, 1), (1, 17, 33, 7, 7, 1), (2, 9, 70, 5, 3, 1),
          (1, 31, 96, 14, 14, 1), (1, 255, 17, 10, 20, 1), (1, 40, 160, 7, 7, 1),
          (1, 8, 18, 9, 11, 2), (1, 64, 129, 13, 15, 1), (1, 6, 3, 2, 100, 3),
          (1, 13, 67, 2, 4, 1),  # 8 pixels: AVX-512's R + 1
          (1, 5, 7, 17, 19, 1)]  # 323 pixels: two chunks
ACTIVATIONS = [None, "relu", "relu6", "silu"]


def reference(x, w, b):
    return conv2d_ref(x, w, b, groups=x.shape[1] // w.shape[1])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layer_against_float64(isa, shape, rng):
    N, C, M, H, W, groups = shape
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C // groups, 1, 1)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    ref, scale = reference(x, w, b)
    with lc.use_isa(isa):
        for activation in ACTIVATIONS:
            y = lc.conv2d(x, w, b, groups=groups, algorithm="direct_lanes",
                          activation=activation, threads=1)
            want = ref
            if activation == "relu":
                want = np.maximum(ref, 0)
            elif activation == "relu6":
                want = np.clip(ref, 0, 6)
            elif activation == "silu":
                want = ref / (1 + np.exp(-ref))
            assert normalised_error(y, want, scale) <= TOLERANCE["direct_lanes"], (isa, activation)


@pytest.mark.parametrize("isa", ISAS)
def test_residual_and_in_place(isa, rng):
    x = rng.standard_normal((1, 24, 7, 7)).astype(np.float32)
    w = rng.standard_normal((40, 24, 1, 1)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    r = rng.standard_normal((1, 40, 7, 7)).astype(np.float32)
    ref, scale = reference(x, w, b)
    with lc.use_isa(isa):
        for activation in (None, "relu"):
            want = ref + r if activation is None else np.maximum(ref + r, 0)
            got = lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, residual=r)
            assert normalised_error(got, want, scale + np.abs(r)) <= TOLERANCE["direct_lanes"]
            inplace = r.copy()
            lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, residual=inplace,
                      out=inplace)
            np.testing.assert_array_equal(inplace, got)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", [(1, 160, 96, 7, 7), (1, 960, 320, 7, 7), (2, 64, 200, 14, 14),
                                   (1, 33, 7, 3, 3), (1, 96, 40, 14, 14), (2, 576, 96, 14, 14),
                                   (1, 1024, 256, 14, 14), (1, 301, 150, 9, 11)], ids=str)
def test_same_bits_at_any_thread_count(isa, shape, rng):
    """Threads split the channel blocks, and the pixels where there are few
    blocks or more pixels than channels; each output's sum runs in the same
    order either way."""
    N, C, M, H, W = shape
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((M, C, 1, 1)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    with lc.use_isa(isa):
        ys = [lc.conv2d(x, w, b, algorithm="direct_lanes", activation="relu", threads=t)
              for t in (1, 2, 3)]
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])


def test_workspace_is_exact_and_no_input_copy(rng):
    """Two tiles per thread (output channels x pixels), no padded input rows:
    far below what the general direct_lanes path asks for a 1 x 1 layer of
    the same size with padding."""
    x = rng.standard_normal((1, 256, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 256, 1, 1)).astype(np.float32)
    plan = lc.Conv2d(w, None, algorithm="direct_lanes", threads=1)
    plan(x)
    assert _core.last_workspace_bytes() == plan.workspace_bytes(x.shape)
    padded = lc.workspace_bytes(x.shape, w.shape, padding=1, algorithm="direct_lanes")
    assert plan.workspace_bytes(x.shape) < padded


def auto_choice(isa, C, M, H, threads=1):
    from leanconv import _select
    from leanconv._params import ConvSpec
    g = ConvSpec.build((M, C, 1, 1)).geometry(1, C, H, H)
    return _select.cost_model("auto", _core.ISA_NAMES.index(isa), g, threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_auto_weighs_it_on_small_images(threads):
    """kernels/choose.c: 1 x 1 layers of at most 256 pixels, on ISAs that
    price the 1 x 1 kernel (cost.pw_mac: AVX-512).  Taken where the GEMM's
    last pixel panel is part-empty (14 x 14) and K is long enough that the
    output transpose weighs little (1024>256 and 256>1024 too, where Im2Col
    packs its B blocks), and on 7 x 7 (49 pixels: the GEMM's wide tile takes
    them whole, 7 blocks of 7 here) only for the longest K; not for short K
    (the transpose per multiply-add), nor 960>160 @7 (the half-width kernel's
    blocks of 12 pixels run 9 and 10), nor larger images."""
    ahead = [(576, 96, 14), (384, 64, 14), (1024, 256, 14), (256, 1024, 14), (2048, 512, 7)]
    behind = [(960, 160, 7), (160, 960, 7), (96, 576, 14), (64, 384, 14), (512, 2048, 7),
              (256, 64, 56), (512, 128, 28)]
    for isa in ISAS:
        for C, M, H in ahead + behind:
            picked = auto_choice(isa, C, M, H, threads)
            if isa == "avx512" and (C, M, H) in ahead:
                assert picked == "direct_lanes", (isa, C, M, H, threads)
            else:
                assert picked != "direct_lanes", (isa, C, M, H, threads)


@pytest.mark.parametrize("C, M, H, W", [(384, 64, 14, 14), (192, 64, 14, 14), (576, 96, 14, 14),
                                        (960, 160, 7, 7), (7, 5, 17, 19), (4, 3, 1, 2)])
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_chunks_tile_the_pixels_and_give_the_threads_equal_shares(C, M, H, W, threads):
    """Chunks are runs of whole R-pixel blocks (R: the kernel's pixels a
    call), contiguous and covering every pixel once, and the threads' item
    ranges (lc_range_of: items channel block major, chunk minor) hold pixel
    counts within one block (R <= 12) of each other.  14 x 14 in chunks
    rounded up to whole vectors was 64 + 64 + 64 + 4: 128 pixels for one
    thread of two."""
    from leanconv._params import ConvSpec
    isa = _core.ISA_NAMES.index(lc.isa())
    g = ConvSpec.build((M, C, 1, 1)).geometry(1, C, H, W)
    chunks = _core._pointwise_lanes_chunks(isa, g, threads)
    P = H * W
    assert chunks[0][0] == 0 and sum(n for _, n in chunks) == P
    assert all(a + n == b for (a, n), (b, _) in zip(chunks, chunks[1:]))
    assert all(n > 0 for _, n in chunks)
    blocks = -(-M // 64) if lc.isa() == "avx512" else None
    if blocks == 1 and threads > 1:   # one channel block: the threads split the pixels alone
        items = len(chunks)
        shares = [sum(chunks[i][1] for i in range(items * t // threads, items * (t + 1) // threads))
                  for t in range(min(threads, items))]
        assert max(shares) - min(shares) <= 12, shares


@pytest.mark.parametrize("C, M, H", [(576, 96, 14), (384, 96, 14), (96, 40, 14)])
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_more_pixels_than_channels_split_by_pixels(C, M, H, threads):
    """More pixels than (padded) output channels: the pixels go in a multiple
    of T chunks, each thread running every channel block over its own (it
    reads 1/T of the input, not all of it)."""
    from leanconv._params import ConvSpec
    isa = _core.ISA_NAMES.index(lc.isa())
    g = ConvSpec.build((M, C, 1, 1)).geometry(1, C, H, H)
    chunks = _core._pointwise_lanes_chunks(isa, g, threads)
    assert len(chunks) % threads == 0, chunks


def _split_by_pixels(C, M, H, W, threads):
    """Whether the threads share the pixels (items chunk-major, each thread
    over every channel block of its pixels) rather than the channel blocks."""
    from leanconv._params import ConvSpec
    isa = _core.ISA_NAMES.index(lc.isa())
    g = ConvSpec.build((M, C, 1, 1)).geometry(1, C, H, W)
    return _core._pointwise_lanes_chunks(isa, g, threads, with_order=True)[1]


@pytest.mark.skipif(lc.isa() != "avx512", reason="block counts below are AVX-512's 64 channels")
@pytest.mark.parametrize("C, M, H, threads, blocks, was", [(960, 320, 7, 2, 5, 3 * 49),
                                                          (960, 160, 7, 2, 3, 77)])
def test_a_last_channel_block_is_cut_into_chunks_for_even_shares(C, M, H, threads, blocks, was):
    """By channels, a count of blocks that is no multiple of the threads
    leaves one thread a whole block more: MobileNetV2's 960>320 @7 went 3
    blocks against 2 on 2 threads (its loop 173 us against 148 even).  The
    pixels then go in more chunks (lc_pw_balanced_chunks), so the busiest
    thread's pixel count (items block-major, the pool's contiguous ranges) is
    within 1/16 of an even share; 960>160 @7 keeps its 2 chunks (3 would be
    worse)."""
    from leanconv._params import ConvSpec
    isa = _core.ISA_NAMES.index(lc.isa())
    g = ConvSpec.build((M, C, 1, 1)).geometry(1, C, H, H)
    chunks, by_pixels = _core._pointwise_lanes_chunks(isa, g, threads, with_order=True)
    assert not by_pixels
    sizes = [n for _, n in chunks] * blocks             # items block-major, chunk minor
    items = len(sizes)
    busiest = max(sum(sizes[items * t // threads:items * (t + 1) // threads]) for t in range(threads))
    assert busiest <= was and 16 * busiest <= 17 * blocks * H * H / threads, (chunks, busiest)


@pytest.mark.skipif(lc.isa() != "avx512", reason="block counts below are AVX-512's 64 channels")
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_input_from_other_cores_weighs_more_than_weights(threads):
    """kernels/pointwise_lanes.c (lc_pw_split_pixels): by channels each thread
    reads all of the input, (T-1)/T of it written by the other cores, as one
    short run per plane; by pixels it streams all the weights.  An input
    float is weighed at 4 weight floats: ResNet-50's 1024>256 @14 (196 pixels,
    256 channels) goes by pixels (by channels it ran at 1.2x its 1-thread
    speed in the model), 256>1024 @14 stays by channels (its weights are 5x
    its input; the hand-over rule says channels too), and at 2 threads
    1024>512 @14 (pixels are 0.38 of the channels) stays by channels."""
    assert _split_by_pixels(1024, 256, 14, 14, threads)
    assert not _split_by_pixels(256, 1024, 14, 14, threads)
    if threads == 2:
        assert not _split_by_pixels(1024, 512, 14, 14, threads)
        assert not _split_by_pixels(960, 320, 7, 7, threads)
    assert not _split_by_pixels(1024, 256, 14, 14, 1)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_split_by_pixels_against_reference(isa, threads, rng):
    """The layer the pixel rule now splits by pixels (1024>256 @14), and an
    odd one (pixels not a multiple of the kernel's R, channels not of the
    lanes), with a residual, against the float64 reference at 1-3 threads."""
    for C, M, H, W in [(1024, 256, 14, 14), (301, 150, 9, 11)]:
        x = rng.standard_normal((1, C, H, W)).astype(np.float32)
        w = rng.standard_normal((M, C, 1, 1)).astype(np.float32)
        b = rng.standard_normal(M).astype(np.float32)
        r = rng.standard_normal((1, M, H, W)).astype(np.float32)
        ref, scale = reference(x, w, b)
        with lc.use_isa(isa):
            got = lc.conv2d(x, w, b, algorithm="direct_lanes", activation="relu", residual=r,
                            threads=threads)
        want = np.maximum(ref + r, 0)
        assert normalised_error(got, want, scale + np.abs(r)) <= TOLERANCE["direct_lanes"], \
            (isa, C, M, H, W, threads)
