"""direct_lanes' tap mode (kernels/tap_lanes.c): dilated layers whose kernel
taps read padding at most outputs (deeplabv3's ASPP: 3x3 of dilation 12 on a
14x14 map) compute only the (tap, output) pairs that read the input.  Forced
on every ISA against the float64 reference: the ASPP shape, strides,
unequal dilations, 5x5 kernels, groups, outputs that no tap reads the input
at (their value is the bias through the activation), maps wider than a
window (LC_TL_CHUNK, 256 outputs), two images; the residual in and out of
place and every kind of activation; the same bits at any thread count; the
cost model counting the live pairs; and "auto" taking it for the ASPP."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core, _isa
from leanconv._select import algorithm_id
from reference import TOLERANCE, activation_ref, conv2d_ref, normalised_error

# (x shape, w shape, conv kwargs): each with at most half of its (tap,
# output) pairs live and at least 16 input channels a group
SHAPES = [
    ((1, 48, 14, 14), (70, 48, 3, 3), dict(padding=12, dilation=12)),   # ASPP's, at 224 px
    ((2, 32, 9, 11), (33, 32, 3, 3), dict(stride=2, padding=6, dilation=6)),
    ((1, 16, 10, 13), (20, 16, 3, 3), dict(padding=(8, 4), dilation=(8, 4))),
    ((1, 24, 10, 10), (17, 24, 5, 5), dict(padding=9, dilation=5)),
    ((1, 32, 8, 8), (40, 16, 3, 3), dict(padding=6, dilation=6, groups=2)),
    # padding beyond the kernel's reach: border outputs read no input at all
    ((1, 16, 5, 6), (19, 16, 3, 3), dict(padding=(20, 3, 1, 22), dilation=10)),
    # 300 columns: two windows across a row
    ((1, 16, 3, 300), (18, 16, 3, 3), dict(padding=(40, 2), dilation=(40, 2))),
]


def live_pairs(spec, H, W):
    """(tap, output) pairs of one image that read the input, counted
    directly."""
    OH, OW = spec.output_hw(H, W)
    t, _, l, _ = spec.pads
    rows = [sum(0 <= oy * spec.stride[0] + a * spec.dilation[0] - t < H for a in range(spec.kH))
            for oy in range(OH)]
    cols = [sum(0 <= ox * spec.stride[1] + c * spec.dilation[1] - l < W for c in range(spec.kW))
            for ox in range(OW)]
    return sum(rows) * sum(cols)


def arrays(shape, rng):
    xs, ws, _ = shape
    return (rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32),
            rng.standard_normal(ws[0]).astype(np.float32))


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_tap_mode_taken_and_counted(isa, shape):
    """The shapes run in tap mode, which counts the live pairs as they are,
    and the cost model prices those multiply-adds (images x output channels
    rounded up to the channel block x input channels a group x pairs), not
    every tap's at every output."""
    xs, ws, kw = shape
    spec = lc.Conv2d(np.zeros(ws, np.float32), None, algorithm="direct", **kw).spec
    geometry = spec.geometry(*xs)
    assert _core._direct_lanes_mode(_isa.isa_id(isa), geometry) == "taps"
    pairs = live_pairs(spec, *xs[2:])
    assert _core._tap_lanes_live_pairs(_isa.isa_id(isa), geometry) == pairs
    assert pairs <= 0.5 * spec.kH * spec.kW * np.prod(spec.output_hw(*xs[2:]))
    _, features = _core.cost(algorithm_id("direct_lanes"), _isa.isa_id(isa), geometry, 1)
    padded = features[0] / (xs[0] * spec.groups * spec.Cg * pairs)
    Mg, CW = spec.M // spec.groups, _core._ukernel_dl_shape(isa)[1]
    assert padded == int(padded) and Mg <= padded < Mg + CW, (padded, Mg)


def test_live_pairs_counted_as_they_are_on_random_geometries():
    """Tap mode's count of live (tap, output) pairs (from each kernel row's
    and column's run of outputs) against a direct count, on 300 random
    geometries: strides, dilations, paddings on each side beyond the kernel's
    reach, kernels up to 9."""
    r = np.random.default_rng(3)
    checked = 0
    for _ in range(300):
        k = tuple(int(v) for v in r.integers(1, 10, 2))
        s = tuple(int(v) for v in r.integers(1, 4, 2))
        dil = tuple(int(v) for v in r.integers(1, 13, 2))
        pads = tuple(int(v) for v in r.integers(0, 30, 4))
        H, W = (int(v) for v in r.integers(1, 40, 2))
        spec = lc.Conv2d(np.zeros((16, 16) + k, np.float32), None, stride=s, padding=pads,
                         dilation=dil, algorithm="direct").spec
        try:
            spec.output_hw(H, W)
        except ValueError:   # the dilated kernel is larger than the padded input
            continue
        got = _core._tap_lanes_live_pairs(_isa.isa_id(), spec.geometry(1, 16, H, W))
        assert got == live_pairs(spec, H, W), (k, s, dil, pads, H, W)
        checked += 1
    assert checked >= 100
    wide = lc.Conv2d(np.zeros((16, 16, 1, 33), np.float32), None, padding=(0, 40),
                     dilation=(1, 2), algorithm="direct").spec
    assert _core._tap_lanes_live_pairs(_isa.isa_id(), wide.geometry(1, 16, 5, 5)) == -1


def test_not_taken_where_most_pairs_are_live_or_channels_few(isa):
    """Undilated layers, dilated ones whose taps read the input at most
    outputs, and fewer than 16 input channels a group keep the padded path."""
    for ws, xs, kw in (((8, 32, 3, 3), (1, 32, 4, 4), dict(padding=1)),
                       ((8, 32, 3, 3), (1, 32, 16, 16), dict(padding=2, dilation=2)),
                       ((8, 8, 3, 3), (1, 8, 14, 14), dict(padding=12, dilation=12))):
        spec = lc.Conv2d(np.zeros(ws, np.float32), None, algorithm="direct", **kw).spec
        assert _core._direct_lanes_mode(_isa.isa_id(isa), spec.geometry(*xs)) == "padded"


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_forced_on_every_isa(isa, shape, rng):
    x, w, b = arrays(shape, rng)
    kw = shape[2]
    spec = lc.Conv2d(w, b, algorithm="direct", **kw).spec
    ref, scale = conv2d_ref(x, w, b, spec.stride, spec.pads, spec.dilation, spec.groups)
    y = lc.conv2d(x, w, b, algorithm="direct_lanes", **kw)
    assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"]
    # no bias; the clamp in the kernel (ReLU), also where no tap is live
    y = lc.conv2d(x, w, None, algorithm="direct_lanes", activation="relu6", **kw)
    ref0, scale0 = conv2d_ref(x, w, None, spec.stride, spec.pads, spec.dilation, spec.groups)
    assert normalised_error(y, np.clip(ref0, 0, 6), scale0) <= TOLERANCE["direct_lanes"]


@pytest.mark.parametrize("activation", ["relu", "silu", "hardswish"])
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[5]], ids=["aspp", "dead-borders"])
def test_residual_and_activations(isa, shape, activation, rng):
    """Residual added before the activation, out of place and in place (the
    residual is the output)."""
    x, w, b = arrays(shape, rng)
    kw = shape[2]
    spec = lc.Conv2d(w, b, algorithm="direct", **kw).spec
    ref, scale = conv2d_ref(x, w, b, spec.stride, spec.pads, spec.dilation, spec.groups)
    r = rng.standard_normal(ref.shape).astype(np.float32)
    want = activation_ref(ref + r, activation)
    got = lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, residual=r, **kw)
    assert normalised_error(got, want, scale + np.abs(r)) <= TOLERANCE["direct_lanes"]
    inplace = r.copy()
    lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, residual=inplace,
              out=inplace, **kw)
    np.testing.assert_array_equal(inplace, got)
    plain = lc.conv2d(x, w, b, algorithm="direct_lanes", activation=activation, **kw)
    assert normalised_error(plain, activation_ref(ref, activation), scale) <= \
        TOLERANCE["direct_lanes"]


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_same_bits_at_any_thread_count(isa, shape, rng):
    x, w, b = arrays(shape, rng)
    plan = lc.Conv2d(w, b, algorithm="direct_lanes", **shape[2])
    first = plan(x, threads=1)
    try:
        for mode in (None, "poison_scratch", "reverse"):
            if mode:
                _core.debug_schedule(**{mode: True})
            for t in (2, 3, 5):
                assert plan(x, threads=t).tobytes() == first.tobytes(), (mode, t)
    finally:
        _core.debug_schedule()


def test_auto_takes_it_for_aspp(rng):
    """deeplabv3's ASPP branch at 224 px (960>256, dilation 12 on 14x14):
    "auto" runs it in direct_lanes (tap mode: 18% of the dense
    multiply-adds)."""
    w = rng.standard_normal((256, 960, 3, 3)).astype(np.float32)
    plan = lc.Conv2d(w, None, padding=12, dilation=12)
    x = rng.standard_normal((1, 960, 14, 14)).astype(np.float32)
    y = plan(x)
    assert plan.algorithm == "direct_lanes"
    # against the GEMM (every tap at every output, tested against the float64
    # reference in test_correctness.py)
    want = lc.conv2d(x, w, None, padding=12, dilation=12, algorithm="im2col")
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
