"""direct_lanes' stem mode (kernels/stem_lanes.c): layers of at most 4 input
channels and a short K = C x kH x kW, or of at most the kernel's R output
channels (an image-to-image network's last layer), with output pixels in the vector lanes,
on ISAs with a stem kernel (AVX-512; elsewhere the same calls run the
channel-lanes path, so every case runs on every ISA).  Forced against the
float64 reference: 1 to 4 input channels, kernels 1 to 7, strides 1, 2, 3
and 4, dilation, padding on every side, odd image sizes, rows narrower than
a vector and not a multiple of it, output channels not a multiple of the
kernel's R; every epilogue, the residual in and out of place; the same bits
at 1 to 3 threads; and "auto" taking it for the stems where it pays."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core
from reference import TOLERANCE, activation_ref, conv2d_ref, normalised_error

# (x shape, w shape, conv kwargs)
SHAPES = [
    ((1, 3, 47, 45), (64, 3, 3, 3), dict(stride=2)),  # SqueezeNet's stem, odd
    ((1, 3, 40, 38), (32, 3, 3, 3), dict(stride=2, padding=1)),  # MobileNet's
    ((2, 3, 33, 35), (16, 3, 3, 3), dict(stride=2, padding=1)),  # MobileNetV3's, 2 images
    ((1, 3, 36, 52), (24, 3, 4, 4), dict(stride=4)),  # ConvNeXt's patchify
    ((1, 1, 29, 70), (5, 1, 7, 7), dict(stride=2, padding=3)),  # grey, 7 x 7 (K 49)
    ((1, 2, 23, 41), (7, 2, 5, 5), dict(stride=3, padding=(2, 1, 0, 3))),
    ((1, 4, 19, 37), (13, 4, 3, 3), dict(padding=1, dilation=2)),  # RGBA, stride 1
    ((1, 3, 9, 11), (6, 3, 3, 3), dict(padding=(0, 2, 3, 1))),  # rows below a vector
    ((1, 3, 21, 20), (9, 3, 1, 1), dict(stride=2)),  # 1 x 1, strided
    ((1, 3, 30, 134), (10, 3, 3, 3), dict(stride=1, padding=1)),  # 134: 9 vectors a row
    # a few output channels from many (an image-to-image network's last layer)
    ((1, 32, 21, 19), (3, 32, 9, 9), dict(padding=4)),  # K 2592: offsets in the workspace
    ((1, 16, 31, 29), (1, 16, 3, 3), dict(stride=2, padding=1)),  # a mask, strided
    ((2, 8, 20, 21), (4, 8, 5, 5), dict(padding=2, dilation=2)),  # M = the kernel's R
]


def run(isa, x, w, b, kw, algorithm="direct_lanes", **call):
    with lc.use_isa(isa):
        return lc.conv2d(x, w, b, algorithm=algorithm, **kw, **call)


def reference(x, w, b, kw):
    spec = lc.Conv2d(w, b, algorithm="direct", **kw).spec
    return conv2d_ref(x, w, b, spec.stride, spec.pads, spec.dilation, spec.groups)


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
def test_forced_on_every_isa(isa, shape, rng):
    xs, ws, kw = shape
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    ref, scale = reference(x, w, b, kw)
    y = run(isa, x, w, b, kw)
    assert normalised_error(y, ref, scale) <= TOLERANCE["direct_lanes"]
    # no bias, ReLU in the kernel
    ref, scale = reference(x, w, None, kw)
    y = run(isa, x, w, None, kw, activation="relu")
    assert normalised_error(y, np.maximum(ref, 0), scale) <= TOLERANCE["direct_lanes"]


@pytest.mark.parametrize("activation", ["relu6", "hardswish", "silu"])
def test_epilogues_and_residual(isa, activation, rng):
    """The clamp in the kernel (ReLU6), other activations after it, a
    residual before the activation, out of place and in place (the residual
    is the output), against the naive algorithm's plan."""
    xs, ws, kw = SHAPES[1]
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    ref, scale = reference(x, w, b, kw)
    plain = run(isa, x, w, b, kw, activation=activation)
    assert normalised_error(plain, activation_ref(ref, activation), scale) <= \
        TOLERANCE["direct_lanes"]
    r = rng.standard_normal(ref.shape).astype(np.float32)
    want = run(isa, x, w, b, kw, algorithm="direct", activation=activation, residual=r)
    got = run(isa, x, w, b, kw, activation=activation, residual=r)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    inplace = r.copy()
    run(isa, x, w, b, kw, activation=activation, residual=inplace, out=inplace)
    np.testing.assert_array_equal(inplace, got)


@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[2], SHAPES[3], SHAPES[5], SHAPES[9]],
                         ids=range(5))
def test_same_bits_at_any_thread_count(isa, shape, rng):
    xs, ws, kw = shape
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    with lc.use_isa(isa):
        plan = lc.Conv2d(w, b, algorithm="direct_lanes", activation="relu", **kw)
        first = plan(x, threads=1)
        for t in (2, 3):
            np.testing.assert_array_equal(plan(x, threads=t), first)


def test_full_size_stem_bands_give_the_same_bits(rng):
    """A 224 x 224 stem runs in several bands a thread (the band's buffer
    within a quarter of L2): the same bits at 1, 2 and 3 threads, and the
    reference's values."""
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    kw = dict(stride=2, padding=1)
    for isa in lc.available_isas():
        ys = [run(isa, x, w, b, kw, threads=t) for t in (1, 2, 3)]
        np.testing.assert_array_equal(ys[1], ys[0])
        np.testing.assert_array_equal(ys[2], ys[0])
    ref, scale = reference(x, w, b, kw)
    assert normalised_error(ys[0], ref, scale) <= TOLERANCE["direct_lanes"]


# The ISAs with a stem kernel (the portable C path has none).
STEM_ISAS = [i for i in ("avx512", "avx2", "neon") if i in lc.available_isas()]


@pytest.mark.parametrize("stem_isa", STEM_ISAS or [pytest.param(None, marks=pytest.mark.skip(
    reason="no ISA with a stem kernel"))])
def test_auto_takes_it_for_short_stems(stem_isa):
    """On every ISA with a stem kernel, "auto" picks direct_lanes for the
    3 x 3 stems (K = 27) and keeps Im2Col for ConvNeXt's 4x4/4 patchify (no
    patch overlap: Im2Col's unwrapping is a plain copy there).  AVX2 forced
    on an AMD EPYC Zen 4, 1 thread: 3>32 3x3/2 @224 0.295 ms against the
    channel lanes' 0.350 and Im2Col's 0.378; SqueezeNet's 3>64 3x3/2 0.574
    against Im2Col's 0.616 (auto's pick before)."""
    from leanconv import _select
    from leanconv._params import ConvSpec
    isa_id = _core.ISA_NAMES.index(stem_isa)
    for (C, M, k, s, p, H, want) in [(3, 64, 3, 2, 0, 224, "direct_lanes"),
                                     (3, 32, 3, 2, 1, 224, "direct_lanes"),
                                     (3, 16, 3, 2, 1, 224, "direct_lanes"),
                                     (3, 96, 4, 4, 0, 224, "im2col")]:
        spec = ConvSpec.build((M, C, k, k), stride=s, padding=p)
        g = spec.geometry(1, C, H, H)
        for t in (1, 2):
            assert _select.cost_model("auto", isa_id, g, t) == want, (C, M, k, s, H, t)


@pytest.mark.parametrize("stem_isa", STEM_ISAS or [pytest.param(None, marks=pytest.mark.skip(
    reason="no ISA with a stem kernel"))])
def test_auto_takes_it_for_a_few_output_channels(stem_isa):
    """A fast-neural-style network's last layer (32>3 9x9) and a mask head
    (64>1 3x3) go to the stem kernel (4 output channels a call) rather than
    to a GEMM that fills 3 rows of its MR, whose time it cut to 0.35x on
    AVX-512 and to 0.41x on AVX2 forced (Patch2Vec's 27.0 -> 11.1 ms; AMD
    EPYC Zen 4).  The same bits at 1 to 3 threads."""
    from leanconv import _select
    from leanconv._params import ConvSpec
    isa_id = _core.ISA_NAMES.index(stem_isa)
    for (C, M, k, p, H) in [(32, 3, 9, 0, 232), (64, 1, 3, 1, 128)]:
        spec = ConvSpec.build((M, C, k, k), stride=1, padding=p)
        g = spec.geometry(1, C, H, H)
        for t in (1, 2):
            assert _select.cost_model("auto", isa_id, g, t) == "direct_lanes", (C, M, k, H, t)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 32, 70, 66)).astype(np.float32)
    w = rng.standard_normal((3, 32, 9, 9)).astype(np.float32)
    ys = [run(stem_isa, x, w, None, {}, threads=t) for t in (1, 2, 3)]
    np.testing.assert_array_equal(ys[1], ys[0])
    np.testing.assert_array_equal(ys[2], ys[0])
