"""The optional multi-plane depthwise 3x3 kernel (lc_dw3x3_planes_fn: small
planes, 7x7 two to an AVX-512 vector at stride 1, 14x14 -> 7x7 two to a
vector at stride 2) called directly through ctypes on
every ISA that has one, between guard pages, against a float64 reference and
bitwise against the one-plane kernel; and the layers that take it
(kernels/depthwise.c, lc_dw_planes_run) through the API: residuals, the
epilogue, batches, runs of channels with an odd one out, thread counts."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from reference import activation_ref, conv2d_ref
from test_depthwise_kernels import Epilogue, _fp, _lib, _sz, call_plane, fenced, ref_plane

import leanconv as lc

PLANES_ISAS = [isa for isa in lc.available_isas()
               if hasattr(_lib, f"lc_f32_dw3x3_planes__{isa}")]


def planes_fn(isa):
    f = getattr(_lib, f"lc_f32_dw3x3_planes__{isa}")
    f.restype = ctypes.c_int
    f.argtypes = [_fp, _sz, _fp, _sz, _sz, _sz, _sz, _sz, _sz, _sz, _sz, _sz, _fp, _fp,
                  ctypes.POINTER(Epilogue)]
    return f


def call_planes(isa, x, pt, pl, OH, OW, w, bias, clamp=None, stride=1):
    """The kernel on x (channels, H, W) between guard pages: (taken, out)."""
    C, H, W = x.shape
    xf = fenced(C * H * W, keep=False)
    xf[:] = x.reshape(-1)
    out = fenced(C * OH * OW, keep=False)
    out[:] = 12345.0
    ep = Epilogue(*(clamp if clamp else (0.0, 0.0)), 1 if clamp else 0)
    b = None if bias is None else bias.ctypes.data_as(_fp)
    taken = planes_fn(isa)(out.ctypes.data_as(_fp), OH * OW, xf.ctypes.data_as(_fp), H * W, C,
                           OH, OW, H, W, stride, pt, pl, w.ctypes.data_as(_fp), b,
                           ctypes.byref(ep))
    return taken, out.reshape(C, OH, OW).copy()


def two_to_a_vector(W, pl, OW):
    return W + pl <= 8 and OW + 2 <= 8 + pl and OW <= 8


def check_planes(isa, got, x, w, b, stride, pt, pl, OH, OW, clamp):
    """Each plane of the kernel's output against float64 and, bitwise, the
    one-plane kernel on that plane alone."""
    for c in range(x.shape[0]):
        want, scale = ref_plane(x[c], w[9 * c:9 * c + 9], b[c], stride, stride, pt, pl, OH, OW,
                                clamp)
        assert np.all(np.abs(got[c] - want) <= 1e-6 * scale + 1e-30)
        one = call_plane(isa, x[c], stride, stride, pt, pl, OH, OW, w[9 * c:9 * c + 9],
                         float(b[c]), clamp)
        assert np.array_equal(got[c], one), (x.shape, stride, pt, pl, OH, OW, c)


pytestmark = pytest.mark.skipif(not PLANES_ISAS, reason="no ISA here has a multi-plane kernel")


@pytest.mark.parametrize("isa", PLANES_ISAS)
def test_every_geometry_it_takes_matches_float64_and_the_plane_kernel(isa):
    """Up to 16 outputs wide (two planes to a vector where they fit, a
    plane's walk each otherwise), runs of 1-5 channels."""
    r = np.random.default_rng(9000)
    seen = 0
    pairs = 0
    for H in (1, 2, 3, 7, 9):
        for W in range(1, 17):
            for pl in range(0, 4):
                for pt, pb, pr in ((1, 1, 1), (0, 2, 0), (2, 0, 2), (3, 3, 3), (0, 0, 1)):
                    OH, OW = H + pt + pb - 2, W + pl + pr - 2
                    if OH < 1 or OW < 1 or OW > 16:
                        continue
                    seen += 1
                    pairs += two_to_a_vector(W, pl, OW)
                    C = 1 + seen % 5                      # odd counts leave one out
                    x = r.standard_normal((C, H, W)).astype(np.float32)
                    w = r.standard_normal(9 * C).astype(np.float32)
                    b = r.standard_normal(C).astype(np.float32)
                    clamp = (-0.5, 0.75) if seen % 2 else None
                    taken, got = call_planes(isa, x, pt, pl, OH, OW, w, b, clamp)
                    assert taken == 1, (H, W, pt, pl, pb, pr)
                    check_planes(isa, got, x, w, b, 1, pt, pl, OH, OW, clamp)
    assert seen > 300 and pairs > 50


@pytest.mark.parametrize("isa", PLANES_ISAS)
def test_stride_2_matches_float64_and_the_plane_kernel(isa):
    """Stride 2 (both ways): every geometry the kernel takes (on AVX-512, a
    row's raw floats in a vector and up to 7 outputs wide: 14x14 -> 7x7),
    runs of 1-5 channels (odd counts leave one to the one-plane kernel),
    bitwise the one-plane kernel on each plane; wider ones refused untouched."""
    r = np.random.default_rng(9050)
    seen = 0
    for H in (1, 2, 3, 6, 7, 14, 15):
        for W in range(1, 17):
            for pl in range(0, 4):
                for pt, pb, pr in ((1, 1, 1), (0, 1, 0), (2, 0, 2), (3, 3, 3), (0, 0, 1)):
                    OH, OW = (H + pt + pb - 3) // 2 + 1, (W + pl + pr - 3) // 2 + 1
                    if OH < 1 or OW < 1:
                        continue
                    C = 1 + seen % 5
                    x = r.standard_normal((C, H, W)).astype(np.float32)
                    w = r.standard_normal(9 * C).astype(np.float32)
                    b = r.standard_normal(C).astype(np.float32)
                    clamp = (-0.5, 0.75) if seen % 2 else None
                    taken, got = call_planes(isa, x, pt, pl, OH, OW, w, b, clamp, stride=2)
                    if not taken:
                        assert np.all(got == 12345.0)
                        assert W + pl > 16 or OW > 7, (H, W, pt, pl, pb, pr)
                        continue
                    seen += 1
                    check_planes(isa, got, x, w, b, 2, pt, pl, OH, OW, clamp)
    assert seen > 300


@pytest.mark.parametrize("isa", PLANES_ISAS)
def test_other_strides_are_refused_untouched(isa):
    x = np.ones((2, 14, 14), np.float32)
    w = np.ones(18, np.float32)
    for stride, OH in ((3, 5), (4, 4)):
        taken, got = call_planes(isa, x, 1, 1, OH, OH, w, None, stride=stride)
        assert taken == 0 and np.all(got == 12345.0), stride


@pytest.mark.parametrize("isa", PLANES_ISAS)
def test_no_bias_and_nan(isa):
    r = np.random.default_rng(9100)
    x = r.standard_normal((4, 7, 7)).astype(np.float32)
    x[1, 3, 0] = np.nan
    w = r.standard_normal(36).astype(np.float32)
    taken, got = call_planes(isa, x, 1, 1, 7, 7, w, None, (0.0, 6.0))
    assert taken == 1
    for c in range(4):
        want, _ = ref_plane(x[c], w[9 * c:9 * c + 9], 0.0, 1, 1, 1, 1, 7, 7, (0.0, 6.0))
        assert np.array_equal(np.isnan(got[c]), np.isnan(want))
        ok = ~np.isnan(want)
        assert np.max(np.abs(got[c][ok] - want[ok])) < 1e-5


@pytest.mark.parametrize("isa", PLANES_ISAS)
def test_geometries_it_does_not_take_are_refused_untouched(isa):
    r = np.random.default_rng(9200)
    for H, W, pt, pl, OH, OW in ((17, 17, 1, 1, 17, 17), (7, 15, 0, 2, 7, 17), (28, 28, 1, 1, 28, 28)):
        x = r.standard_normal((2, H, W)).astype(np.float32)
        w = r.standard_normal(18).astype(np.float32)
        taken, got = call_planes(isa, x, pt, pl, OH, OW, w, None)
        assert taken == 0 and np.all(got == 12345.0), (H, W, pl, OW)


def layer(seed, C, H, W, pads, activation=None, residual=False, n=2, threads=1, stride=1):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, C, H, W)).astype(np.float32)
    w = r.standard_normal((C, 1, 3, 3)).astype(np.float32)
    b = r.standard_normal(C).astype(np.float32)
    want, _ = conv2d_ref(x, w, b, stride=(stride, stride), pads=pads, dilation=(1, 1), groups=C)
    res = r.standard_normal(want.shape).astype(np.float32) if residual else None
    if res is not None:
        want = want + res
    want = activation_ref(want, activation)
    y = lc.conv2d(x, w, b, stride=stride, padding=pads, groups=C, algorithm="depthwise",
                  activation=activation, residual=res, threads=threads)
    assert y.shape == want.shape
    assert np.max(np.abs(y - want)) <= 2e-6 * max(np.max(np.abs(want)), 1.0)
    return y


@pytest.mark.parametrize("C", [1, 2, 31, 33, 65, 960])
@pytest.mark.parametrize("activation", [None, "relu6", "silu"])
@pytest.mark.parametrize("residual", [False, True])
def test_layers_through_the_api(isa, C, activation, residual):
    """MobileNetV2's 960@7 and 384@14, channel counts around the runs of 32
    (on ISAs without the kernel: the other paths, the same answers)."""
    layer(9300 + C, C, 7, 7, (1, 1, 1, 1), activation, residual)
    layer(9350 + C, C, 14, 14, (1, 1, 1, 1), activation, residual, n=1)
    layer(9370 + C, C, 14, 14, (1, 1, 1, 1), activation, residual, n=1, stride=2)


def test_asymmetric_padding_through_the_api(isa):
    layer(9400, 40, 6, 5, (0, 2, 2, 1), "relu")
    layer(9401, 40, 5, 6, (2, 0, 0, 2))


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("H, stride", [(7, 1), (14, 2)])
def test_same_bits_at_any_thread_count(isa, threads, H, stride):
    one = layer(9500, 200, H, H, (1, 1, 1, 1), "relu6", residual=True, threads=1, stride=stride)
    many = layer(9500, 200, H, H, (1, 1, 1, 1), "relu6", residual=True, threads=threads,
                 stride=stride)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("H, stride", [(7, 1), (14, 2)])
def test_same_bits_as_the_plane_kernel_per_channel(isa, H, stride):
    """A layer through the multi-plane path and each of its planes run
    alone (a one-channel layer: no pair to share a vector with)."""
    r = np.random.default_rng(9600)
    x = r.standard_normal((1, 9, H, H)).astype(np.float32)
    w = r.standard_normal((9, 1, 3, 3)).astype(np.float32)
    b = r.standard_normal(9).astype(np.float32)
    whole = lc.conv2d(x, w, b, stride=stride, padding=1, groups=9, algorithm="depthwise",
                      activation="relu6")
    for c in range(9):
        one = lc.conv2d(x[:, c:c + 1], w[c:c + 1], b[c:c + 1], stride=stride, padding=1,
                        groups=1, algorithm="depthwise", activation="relu6")
        np.testing.assert_array_equal(whole[:, c:c + 1], one)

