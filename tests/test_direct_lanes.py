"""direct_lanes (kernels/direct_lanes.c): the direct convolution with output
channels in the vector lanes.  Its micro-kernel called directly on every ISA,
and its half-width kernel where the ISA has one (input and tile ending at a
guard page, nothing outside the named tile floats written), then the whole
algorithm forced on every ISA against the float64 reference: output
channels not a multiple of the lanes (or of half of them), rows not a
multiple of the pixel block, padding on every side, strides, dilations,
groups, every epilogue; the same bits at any thread count; and "auto"
taking it only for strided layers with a kernel larger than 1 x 1 (and for
1 x 1 layers on small images: tests/test_pointwise_lanes.py)."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core
from reference import TOLERANCE, conv2d_ref, normalised_error
from test_ukernels import assert_close, clamp_ref, guarded

ISAS = lc.available_isas()
ACC, FINAL = _core.GEMM_ACCUMULATE, _core.GEMM_FINAL


def kernel_case(isa, n, C, kH, kW, xts, flags, clamp, seed, half=False):
    L, CW, R = _core._ukernel_dl_shape(isa, half)
    r = np.random.default_rng(seed)
    # pixels at uneven offsets (a block running on past a row end)
    xoff = np.cumsum(r.integers(1, 4, size=n)) - 1
    xrs = (kW - 1) * xts + int(xoff[-1]) + 2
    xcs = kH * xrs + 3
    need = (C - 1) * xcs + (kH - 1) * xrs + (kW - 1) * xts + int(xoff[-1]) + 1
    x = guarded(need)  # the last tap the kernel may read is the last readable float
    x[:] = r.standard_normal(need)
    w = r.standard_normal(C * kH * kW * CW).astype(np.float32)
    bias = r.standard_normal(CW).astype(np.float32)
    ldt = R * L + 5
    nt = (CW // L - 1) * ldt + n * L
    t = guarded(nt)
    t0 = r.standard_normal(nt).astype(np.float32)
    t[:] = t0
    _core._ukernel_dl(isa, n, x, 0, w, t, 0, ldt, bias, C, kH, kW, xcs, xrs, xts,
                      [int(v) for v in xoff], flags, clamp, half=half)
    xd, wd = x.astype(np.float64), w.astype(np.float64).reshape(C, kH, kW, CW)
    want = np.zeros((CW, n))
    scale = np.zeros((CW, n))
    for j in range(n):
        for c in range(C):
            for ky in range(kH):
                for kx in range(kW):
                    v = xd[c * xcs + ky * xrs + kx * xts + xoff[j]]
                    want[:, j] += wd[c, ky, kx] * v
                    scale[:, j] += np.abs(wd[c, ky, kx] * v)
    check_tile(t, t0, want, scale, bias, L, ldt, flags, clamp,
               f"{isa} n={n} C={C} {kH}x{kW} xts={xts} flags={flags}")


def check_tile(t, t0, want, scale, bias, L, ldt, flags, clamp, label):
    """A lanes kernel's tile t (t0 before the call) against want and scale
    (CW x n, the sums without their start): the start is t0 or the bias, the
    clamp applies when FINAL, and nothing outside the named floats changed."""
    CW, n = want.shape
    want, scale = want.copy(), scale.copy()
    got = np.zeros((CW, n))
    written = np.zeros(t.shape[0], bool)
    for o in range(CW):
        for j in range(n):
            at = (o // L) * ldt + j * L + o % L
            got[o, j] = t[at]
            init = float(t0[at]) if flags & ACC else float(bias[o])
            want[o, j] += init
            scale[o, j] += abs(init)
            written[at] = True
    if flags & FINAL:
        want = clamp_ref(want, clamp)
    assert_close(got, want, scale, 1e-6, label)
    assert np.array_equal(t[~written], t0[~written]), "wrote outside the tile's named floats"


# (isa, half): every ISA's kernel and, where it has one, its half-width kernel
KERNELS = [(isa, half) for isa in ISAS for half in (False, True)
           if _core._ukernel_dl_shape(isa, half) is not None]


@pytest.mark.parametrize("isa,half", KERNELS)
@pytest.mark.parametrize("C,kH,kW,xts", [(1, 1, 1, 1), (3, 7, 7, 1), (2, 3, 3, 2), (5, 2, 5, 3)])
def test_kernel_every_pixel_count(isa, half, C, kH, kW, xts):
    R = _core._ukernel_dl_shape(isa, half)[2]
    for n in range(1, R + 1):
        kernel_case(isa, n, C, kH, kW, xts, FINAL, None, seed=n + 10 * C, half=half)


@pytest.mark.parametrize("isa,half", KERNELS)
@pytest.mark.parametrize("flags", [0, ACC, FINAL, ACC | FINAL])
def test_kernel_accumulate_and_clamp(isa, half, flags):
    R = _core._ukernel_dl_shape(isa, half)[2]
    for n in sorted({1, R // 2 or 1, R}):
        kernel_case(isa, n, 3, 3, 3, 2, flags, (-0.5, 0.75), seed=flags + n, half=half)


@pytest.mark.parametrize("isa,half", KERNELS)
@pytest.mark.parametrize("kH,kW", [(3, 3), (2, 5)])
def test_kernel_prefetch_changes_no_bit(isa, half, kH, kW):
    """Asked to prefetch the driver's next weights (pf, pf_lines: the 3 x 3
    and the general copies of its body that do), the kernel computes the
    same bits as without, and a pf too short for C x pf_lines lines is
    refused by the binding."""
    L, CW, R = _core._ukernel_dl_shape(isa, half)
    r = np.random.default_rng(3)
    C, n = 5, R
    xoff = [int(v) for v in np.cumsum(r.integers(1, 4, size=n)) - 1]
    xrs = kW + xoff[-1] + 2
    xcs = kH * xrs + 3
    x = r.standard_normal(C * xcs + 1).astype(np.float32)
    w = r.standard_normal(C * kH * kW * CW).astype(np.float32)
    pf = r.standard_normal(C * 3 * 16).astype(np.float32)
    tiles = []
    for extra in ({}, {"pf": pf, "pf_lines": 3}):
        t = np.zeros((CW // L) * R * L, np.float32)
        _core._ukernel_dl(isa, n, x, 0, w, t, 0, R * L, None, C, kH, kW, xcs, xrs, 1, xoff,
                          FINAL, half=half, **extra)
        tiles.append(t)
    assert tiles[0].tobytes() == tiles[1].tobytes()
    with pytest.raises(ValueError, match="pf is too small"):
        _core._ukernel_dl(isa, n, x, 0, w, tiles[0], 0, R * L, None, C, kH, kW, xcs, xrs, 1,
                          xoff, FINAL, half=half, pf=pf, pf_lines=4)


def test_half_kernel_absent_is_refused():
    for isa in ISAS:
        if _core._ukernel_dl_shape(isa, True) is None:
            z = np.zeros(64, np.float32)
            with pytest.raises(ValueError, match="half-width"):
                _core._ukernel_dl(isa, 1, z, 0, z, z, 0, 16, None, 1, 1, 1, 1, 1, 1, [0], FINAL,
                                  half=True)


def test_kernel_checks_its_arguments():
    isa = ISAS[-1]
    L, CW, R = _core._ukernel_dl_shape(isa)
    x = np.zeros(64, np.float32)
    w = np.zeros(9 * CW, np.float32)
    t = np.zeros(4 * R * L * 4, np.float32)
    with pytest.raises(ValueError):  # n > R
        _core._ukernel_dl(isa, R + 1, x, 0, w, t, 0, R * L, None, 1, 3, 3, 20, 5, 1,
                          list(range(R + 1)), FINAL)
    with pytest.raises(ValueError):  # the last tap past x
        _core._ukernel_dl(isa, 1, x, 0, w, t, 0, R * L, None, 1, 3, 3, 20, 40, 1, [0], FINAL)


# ------------------------------------------------------ the whole algorithm --

# (x shape, w shape, conv kwargs): stem-like, 3x3/2 downsampling, odd
# channel counts (not a multiple of any lane count), rows not a multiple of
# the pixel block, padding on every side (and larger than the kernel),
# dilation, groups, 1x1
SHAPES = [
    ((1, 3, 23, 29), (20, 3, 7, 7), dict(stride=2, padding=3)),
    ((2, 5, 9, 11), (70, 5, 3, 3), dict(stride=2, padding=(1, 2, 0, 3))),
    ((1, 8, 10, 13), (18, 4, 3, 3), dict(stride=(1, 2), padding=1, dilation=(2, 1), groups=2)),
    ((1, 16, 14, 14), (33, 16, 3, 3), dict(stride=2, padding=1)),
    ((1, 4, 5, 7), (9, 4, 1, 1), dict()),
    ((1, 3, 4, 4), (5, 3, 3, 3), dict(padding=5)),
    ((1, 6, 17, 5), (17, 6, 2, 4), dict(stride=(3, 1), padding=(2, 0, 1, 2), dilation=(1, 2))),
    ((1, 3, 30, 30), (32, 3, 3, 3), dict(stride=2, padding=1)),  # MobileNet's stem
    ((1, 4, 9, 9), (96, 4, 3, 3), dict(stride=2, padding=1)),  # AVX-512: in 32-channel blocks
    # weights outweighing the input: items are runs of channel blocks
    ((1, 16, 7, 7), (200, 16, 3, 3), dict(padding=1)),
    ((1, 12, 5, 6), (130, 6, 3, 3), dict(padding=1, groups=2)),
    # groups of 16 output channels (RegNetX's group width; AVX-512's
    # one-vector kernel), stride 2 and 1, and a grouped 1 x 1
    ((1, 32, 20, 23), (32, 16, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 48, 9, 7), (48, 16, 3, 3), dict(padding=1, groups=3)),
    ((1, 32, 6, 9), (32, 16, 1, 1), dict(groups=2)),
    # stride 2 at its edges: odd sizes whose last row and column reach the
    # bottom and right padding, no padding at all, rows of a width that
    # leaves a remainder of every pixel block, an odd-sized stem
    ((1, 7, 15, 15), (19, 7, 3, 3), dict(stride=2, padding=1)),
    ((1, 9, 16, 26), (40, 9, 3, 3), dict(stride=2, padding=0)),
    ((2, 5, 27, 13), (24, 5, 3, 3), dict(stride=2, padding=1)),
    ((1, 3, 33, 31), (64, 3, 7, 7), dict(stride=2, padding=3)),
]


def check(isa_name, x, w, b, kw, activation=None, residual=None, threads=1):
    with lc.use_isa(isa_name):
        y = lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation,
                      residual=residual, threads=threads, **kw)
        spec = lc.Conv2d(w, b, algorithm="direct", **kw).spec
    ref, scale = conv2d_ref(x, w, b, spec.stride, spec.pads, spec.dilation, spec.groups)
    return y, ref, scale


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_forced_on_every_isa(isa, shape, rng):
    xs, ws, kw = shape
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    y, ref, scale = check(isa, x, w, b, kw)
    assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"]
    # no bias, and ReLU in the kernel
    y, ref, scale = check(isa, x, w, None, kw, activation="relu")
    assert normalised_error(y, np.maximum(ref, 0), scale) <= TOLERANCE["direct_lanes"]


@pytest.mark.parametrize("activation", ["silu", "relu6"])
def test_residual_and_activations(isa, activation, rng):
    """Residual added before the activation, out of place and in place (the
    residual is the output), against the plan of the naive algorithm."""
    xs, ws, kw = SHAPES[1]
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    with lc.use_isa(isa):
        r = rng.standard_normal(lc.conv2d(x, w, b, algorithm="direct", **kw).shape).astype(np.float32)
        want = lc.conv2d(x, w, b, algorithm="direct", activation=activation, residual=r, **kw)
        got = lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, residual=r, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        inplace = r.copy()
        lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, residual=inplace,
                  out=inplace, **kw)
        np.testing.assert_array_equal(inplace, got)
        # an activation the kernels do not do, without a residual
        plain = lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, **kw)
        ref = lc.conv2d(x, w, b, algorithm="direct", activation=activation, **kw)
        np.testing.assert_allclose(plain, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[1], SHAPES[3], SHAPES[7], SHAPES[9],
                                   SHAPES[10]], ids=range(6))
def test_same_bits_at_any_thread_count(isa, shape, rng):
    xs, ws, kw = shape
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    with lc.use_isa(isa):
        plan = lc.Conv2d(w, None, algorithm="direct_lanes", **kw)
        first = plan(x, threads=1)
        for t in (2, 3, 5):
            np.testing.assert_array_equal(plan(x, threads=t), first)


# Small images with more weights than input (SqueezeNet's 48>192@7x7: 332 KB
# against 16 KB) split the channel blocks between the threads, so each reads
# its part of the weights once (AVX-512: 3 blocks of 64 channels, in 2 bands
# for 2 items a thread: 6 items, where 4 bands of rows made 4); larger images
# split the rows (16>64@31x31: 4 bands).  Five blocks (160 channels in 32)
# go in 5 spans of 2 bands (10 items, 35 block-rows a thread), not 4 spans
# (3 blocks against 2); on 7 rows no band of fewer rows than twice the
# kernel's halo: 192>224@7 (7 blocks) keeps 4 spans.
@pytest.mark.skipif(_core.parallel_backend() != "pool", reason="no pthread pool in this build")
@pytest.mark.skipif("avx512" not in lc.available_isas(), reason="the counts are AVX-512's blocks")
@pytest.mark.parametrize("C, M, H, items", [(48, 192, 7, 6), (16, 64, 31, 4), (160, 160, 14, 10),
                                            (192, 224, 7, 4)])
def test_small_images_split_the_channel_blocks(C, M, H, items, rng):
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    w = rng.standard_normal((M, C, 3, 3)).astype(np.float32)
    with lc.use_isa("avx512"):
        plan = lc.Conv2d(w, None, padding=1, algorithm="direct_lanes")
        first = plan(x, threads=1)
        _core.pool_trace(10)
        try:
            got = plan(x, threads=2)
            recs = _core.pool_trace()
        finally:
            _core.pool_trace(0)
    assert got.tobytes() == first.tobytes()
    assert [(r["count"], r["team"]) for r in recs] == [(items, 2)]
    # the trace's items per slot: each thread took whole runs of blocks
    assert sum(recs[0]["items"][:2]) == items



# A thread whose next item is the same band's next run of channel blocks
# keeps the padded input it copied (lc_dl_ctx.band_in): with the scratch
# poisoned before each item (all but that kept input) and the items run last
# to first in rotated slots, the bits stay those of one thread.  One band in
# 4 spans (192>224 @7, AVX-512: two runs a thread at 2 threads), 2 bands in
# 5 spans (160>160 @14: a thread's items alternate bands, so it copies
# again) and 2 images (the key holds the image).
@pytest.mark.parametrize("N, C, M, H, stride", [(1, 192, 224, 7, 1), (1, 160, 160, 14, 1),
                                                (2, 24, 200, 9, 2)])
def test_kept_band_input_gives_the_same_bits(isa, N, C, M, H, stride, rng):
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((M, C, 3, 3)).astype(np.float32)
    with lc.use_isa(isa):
        plan = lc.Conv2d(w, None, stride=stride, padding=1, algorithm="direct_lanes")
        first = plan(x, threads=1)
        try:
            for mode in ("poison_scratch", "reverse"):
                _core.debug_schedule(**{mode: True})
                for t in (1, 2, 3):
                    assert plan(x, threads=t).tobytes() == first.tobytes(), (mode, t)
        finally:
            _core.debug_schedule()
        y, ref, scale = check(isa, x, w, None, dict(stride=stride, padding=1), threads=2)
        assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"]

def _same_with_small_l2(probe):
    """The JSON that the script `probe` prints in a child process with a
    128 KiB L2 (LEANCONV_CACHE), checked equal to what it prints with this
    machine's caches."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = dict(os.environ, PYTHONPATH=str(Path(lc.__file__).resolve().parent.parent))
    runs = []
    for cache in (None, "32K,128K,0"):
        env.pop("LEANCONV_CACHE", None)
        if cache:
            env["LEANCONV_CACHE"] = cache
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, check=True)
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    return runs[1]


def _normal_arrays(seed, *shapes):
    """float32 standard normals of these shapes, drawn in turn from one
    generator seeded `seed` (as a probe script draws them)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(sh).astype(np.float32) for sh in shapes]


def test_channel_passes_give_the_same_bits():
    """With a 128 KiB L2 (LEANCONV_CACHE, in a child process) a pass holds a
    few input channels (the kernels accumulate into the tile over several
    passes); with this machine's caches one pass holds them all.  Both sum
    each output in the same order: the same bits, on every ISA."""
    probe = """
import json, sys, numpy as np, leanconv as lc
rng = np.random.default_rng(5)
x = rng.standard_normal((1, 96, 9, 9)).astype(np.float32)
w = rng.standard_normal((8, 96, 7, 7)).astype(np.float32)
out = {}
for isa in lc.available_isas():
    with lc.use_isa(isa):
        y = lc.conv2d(x, w, None, stride=2, padding=3, algorithm="direct_lanes", threads=1)
    out[isa] = y.ravel().view(np.uint32).tolist()
print(json.dumps(out))
"""
    runs = _same_with_small_l2(probe)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 96, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 96, 7, 7)).astype(np.float32)
    ref, scale = conv2d_ref(x, w, None, (2, 2), (3, 3, 3, 3), (1, 1), 1)
    for isa, bits in runs.items():
        y = np.array(bits, np.uint32).view(np.float32).reshape(ref.shape)
        assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"], isa


def test_output_beyond_l2_gives_the_same_bits():
    """An output beyond half of L2 (a stem's 3.2 MB) has the lines each
    segment writes asked for during its multiply-adds.  With a 128 KiB L2
    (LEANCONV_CACHE, in a child process) a 64-channel 24 x 24 output (144
    KiB) is such an output, with this machine's caches it is not: the same
    bits on every ISA, plain and with a residual added in place."""
    probe = """
import json, numpy as np, leanconv as lc
rng = np.random.default_rng(7)
x = rng.standard_normal((1, 3, 47, 47)).astype(np.float32)
w = rng.standard_normal((61, 3, 7, 7)).astype(np.float32)
b = rng.standard_normal(61).astype(np.float32)
r = rng.standard_normal((1, 61, 24, 24)).astype(np.float32)
out = {}
for isa in lc.available_isas():
    with lc.use_isa(isa):
        y = lc.conv2d(x, w, b, stride=2, padding=3, algorithm="direct_lanes", threads=2)
        z = r.copy()
        lc.conv2d(x, w, b, stride=2, padding=3, algorithm="direct_lanes", residual=z, out=z)
    out[isa] = [y.ravel().view(np.uint32).tolist(), z.ravel().view(np.uint32).tolist()]
print(json.dumps(out))
"""
    runs = _same_with_small_l2(probe)
    x, w, b, r = _normal_arrays(7, (1, 3, 47, 47), (61, 3, 7, 7), 61, (1, 61, 24, 24))
    ref, scale = conv2d_ref(x, w, b, (2, 2), (3, 3, 3, 3), (1, 1), 1)
    for isa, (plain, res) in runs.items():
        y = np.array(plain, np.uint32).view(np.float32).reshape(ref.shape)
        assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"], isa
        z = np.array(res, np.uint32).view(np.float32).reshape(ref.shape)
        assert normalised_error(z, ref + r, scale + np.abs(r)) <= TOLERANCE["direct_lanes"], isa


def test_weights_beyond_l2_give_the_same_bits():
    """A thread's weights beyond L2 (ResNet's 512@7: 9.4 MB) run in short
    passes, each prefetching the next.  With a 128 KiB L2 (LEANCONV_CACHE, in
    a child process) a 64>70 3 x 3 layer's 166-221 KiB of packed weights are
    such at one thread (passes of a few channels), with this machine's
    caches they are not: the same bits on every ISA at one and two threads,
    stride 1 and 2."""
    probe = """
import json, numpy as np, leanconv as lc
rng = np.random.default_rng(11)
x = rng.standard_normal((1, 64, 9, 9)).astype(np.float32)
w = rng.standard_normal((70, 64, 3, 3)).astype(np.float32)
b = rng.standard_normal(70).astype(np.float32)
out = {}
for isa in lc.available_isas():
    with lc.use_isa(isa):
        out[isa] = [lc.conv2d(x, w, b, stride=s, padding=1, algorithm="direct_lanes",
                              threads=t).ravel().view(np.uint32).tolist()
                    for s in (1, 2) for t in (1, 2)]
print(json.dumps(out))
"""
    runs = _same_with_small_l2(probe)
    x, w, b = _normal_arrays(11, (1, 64, 9, 9), (70, 64, 3, 3), 70)
    for isa, ys in runs.items():
        for i, s in enumerate((1, 1, 2, 2)):
            ref, scale = conv2d_ref(x, w, b, (s, s), (1, 1, 1, 1), (1, 1), 1)
            y = np.array(ys[i], np.uint32).view(np.float32).reshape(ref.shape)
            assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"], (isa, s)
        assert ys[0] == ys[1] and ys[2] == ys[3], isa


def test_auto_takes_it_for_strided_layers_only():
    """The candidate rule of kernels/choose.c: strided, kernel above 1 x 1
    (1 x 1 layers on small images are weighed too: test_pointwise_lanes.py)."""
    from leanconv import _select
    from leanconv._params import ConvSpec
    isa_id = _core.ISA_NAMES.index(lc.isa())
    for (C, M, k, s, H) in [(3, 64, 7, 2, 224), (64, 128, 3, 2, 56), (256, 256, 3, 1, 14),
                            (64, 128, 1, 2, 56), (1024, 256, 1, 1, 56)]:
        spec = ConvSpec.build((M, C, k, k), stride=s, padding=k // 2)
        g = spec.geometry(1, C, H, H)
        picked = _select.cost_model("auto", isa_id, g, 1)
        if s == 1 or k == 1:
            assert picked != "direct_lanes", (C, M, k, s, H)


def test_workspace_is_exact_and_small(rng):
    """The binding allocates exactly workspace_bytes(); it is the padded band
    input plus two tiles per thread, far below Im2Col's matrix on the stem."""
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    w = rng.standard_normal((64, 3, 7, 7)).astype(np.float32)
    plan = lc.Conv2d(w, None, stride=2, padding=3, algorithm="direct_lanes")
    plan(x)
    assert _core.last_workspace_bytes() == plan.workspace_bytes(x.shape)
    im2col = lc.workspace_bytes(x.shape, w.shape, stride=2, padding=3, algorithm="im2col")
    assert plan.workspace_bytes(x.shape) < im2col
