"""Depthwise over tiny planes (kernels/depthwise_tiny.c and the ISAs' dw_tiny
kernels: a plane per vector, a permute per tap) through the API on every ISA
(those without a dw_tiny kernel, or past its dw_tiny_taps, take the other
paths: the same answers),
against a float64 grouped convolution: kernel sizes, strides, dilations,
padding that leaves taps with nothing to read, channel multipliers whose
groups straddle a chunk, the epilogue, residuals, and thread counts."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from reference import activation_ref, conv2d_ref


def run_case(seed, C, mult, H, W, k, stride=1, pads=None, dil=1, activation=None,
             residual=False, n=2, threads=1):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, C, H, W)).astype(np.float32)
    w = r.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = r.standard_normal(C * mult).astype(np.float32)
    pads = pads if pads is not None else (k // 2 * dil,) * 4
    want, _ = conv2d_ref(x, w, b, stride=(stride, stride), pads=pads, dilation=(dil, dil),
                         groups=C)
    res = r.standard_normal(want.shape).astype(np.float32) if residual else None
    if res is not None:
        want = want + res
    want = activation_ref(want, activation)
    y = lc.conv2d(x, w, b, stride=stride, padding=pads, dilation=dil, groups=C,
                  algorithm="depthwise", activation=activation, residual=res, threads=threads)
    assert y.shape == want.shape
    assert np.max(np.abs(y - want)) <= 2e-6 * max(np.max(np.abs(want)), 1.0)
    return y


@pytest.mark.parametrize("C, mult, H, W, k, stride, pads, dil", [
    (1152, 1, 4, 4, 3, 1, None, 1),        # EfficientNet-B0 / MobileNetV3 at 128 px
    (960, 1, 4, 4, 5, 1, None, 1),
    (40, 1, 4, 4, 3, 2, (0, 0, 0, 0), 1),
    (17, 1, 3, 5, 3, 1, (1, 0, 2, 1), 1),  # asymmetric padding
    (20, 1, 4, 4, 3, 1, None, 2),          # dilation
    (9, 1, 2, 2, 7, 1, (3, 3, 3, 3), 1),   # a kernel wider than the plane
    (64, 1, 1, 1, 3, 1, None, 1),          # a single pixel
    (12, 1, 4, 4, 3, 1, (4, 4, 4, 4), 1),  # outputs whose every tap is padding
    (30, 3, 4, 4, 3, 1, None, 1),          # groups of 3 straddle the 64-channel chunks
    (5, 2, 4, 4, 5, 2, None, 1)])
def test_tiny_planes_match_float64(isa, C, mult, H, W, k, stride, pads, dil):
    run_case(C + 10 * k + stride, C, mult, H, W, k, stride, pads, dil, activation="relu6")


@pytest.mark.parametrize("activation", ["silu", "hardswish", None])
@pytest.mark.parametrize("residual", [False, True])
def test_tiny_planes_epilogue(isa, activation, residual):
    run_case(3, 100, 1, 4, 4, 5, activation=activation, residual=residual)


@pytest.mark.parametrize("hw", [4, 7])
def test_tiny_planes_in_place_residual(isa, hw):
    """out = residual: the tiny path (4x4) and the multi-plane one (7x7,
    tests/test_dw_planes_kernel.py) step aside (their kernels would overwrite
    the residual before adding it); the answer is the same within rounding
    (the other path sums in another order)."""
    r = np.random.default_rng(4)
    x = r.standard_normal((1, 70, hw, hw)).astype(np.float32)
    w = r.standard_normal((70, 1, 3, 3)).astype(np.float32)
    res = r.standard_normal((1, 70, hw, hw)).astype(np.float32)
    want = lc.conv2d(x, w, padding=1, groups=70, algorithm="depthwise", residual=res.copy())
    lc.conv2d(x, w, padding=1, groups=70, algorithm="depthwise", residual=res, out=res)
    np.testing.assert_allclose(res, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [2, 3])
def test_tiny_planes_same_bits_at_any_thread_count(isa, threads):
    one = run_case(5, 300, 1, 4, 4, 3, activation="silu", threads=1)
    many = run_case(5, 300, 1, 4, 4, 3, activation="silu", threads=threads)
    np.testing.assert_array_equal(one, many)


def test_tiny_planes_nan_reaches_only_the_outputs_that_read_it(isa):
    """A NaN pixel turns exactly the outputs whose window holds it into NaN:
    the kernels' permutes also move it into lanes a tap masks off (padding,
    or the other half of an AVX2 plane), which must stay 0."""
    r = np.random.default_rng(6)
    x = r.standard_normal((1, 37, 4, 4)).astype(np.float32)
    x[0, :, 1, 2] = np.nan
    x[0, 5, 3, 0] = np.nan
    w = r.standard_normal((37, 1, 3, 3)).astype(np.float32)
    want, _ = conv2d_ref(x, w, None, stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1),
                         groups=37)
    y = lc.conv2d(x, w, padding=1, groups=37, algorithm="depthwise")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    fin = ~np.isnan(want)
    assert np.max(np.abs(y[fin] - want[fin])) <= 2e-6 * max(np.max(np.abs(want[fin])), 1.0)
