"""Grouped convolutions with few channels per group (kernels/grouped.c, run
by the depthwise algorithm): every ISA against the float64 reference over
channels per group 2-16, output channels per group != input, odd widths
and vector remainders, padding (also asymmetric and none), strides 1-2,
5x5 and dilation; bitwise identical for any thread count; rows too wide for
its buffer fall back to the naive loops; "auto" takes it on ResNeXt's
grouped 3x3."""
import numpy as np
import pytest

import leanconv as lc
from reference import conv2d_ref, normalised_error

TOL = 2e-6

CASES = [  # (N, C, H, W), M, groups, k, stride, padding, dilation
    ((1, 8, 9, 13), 8, 4, 3, 1, 1, 1),            # Cg 2
    ((2, 16, 11, 17), 16, 4, 3, 1, 1, 1),         # Cg 4, two images
    ((1, 32, 7, 33), 64, 4, 3, 1, 1, 1),          # Cg 8, Mg 16
    ((1, 32, 6, 40), 16, 2, 3, 1, 1, 1),          # Cg 16, Mg 8
    ((1, 12, 5, 3), 18, 3, 3, 1, 1, 1),           # a row narrower than a vector, Mg 6
    ((1, 20, 10, 57), 10, 5, 3, 1, 1, 1),         # Mg 2 < Cg 4, 57 = vectors + 9
    ((1, 24, 13, 29), 24, 3, 3, 2, 1, 1),         # stride 2, odd sizes
    ((1, 12, 12, 12), 21, 3, 3, 2, 0, 1),         # stride 2, no padding, Mg 7
    ((1, 8, 9, 15), 8, 2, 5, 1, 2, 1),            # 5x5
    ((1, 8, 12, 14), 12, 4, 3, 1, 2, 2),          # dilation 2
    ((1, 6, 8, 11), 9, 3, 3, 1, (0, 2, 1, 0), 1),  # asymmetric padding
    ((1, 12, 15, 16), 12, 3, 3, (2, 1), 1, 1),    # stride 2 x 1
]


def run(x, w, b, stride, padding, dilation, groups, **kw):
    return lc.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, algorithm="depthwise", **kw)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_grouped_matches_reference(isa, case, rng):
    xs, M, g, k, stride, padding, dilation = case
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal((M, xs[1] // g, k, k)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    y = run(x, w, b, stride, padding, dilation, g, activation="relu")
    s = stride if isinstance(stride, tuple) else (stride, stride)
    pads = padding if isinstance(padding, tuple) else (padding,) * 4
    ref, scale = conv2d_ref(x, w, b, s, pads, (dilation, dilation), g, (0, np.inf))
    assert normalised_error(y, ref, scale) <= TOL


def test_grouped_threads_bitwise(isa, rng):
    x = rng.standard_normal((2, 32, 23, 45)).astype(np.float32)
    w = rng.standard_normal((48, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    ys = [run(x, w, b, 1, 1, 1, 8, activation="silu", threads=t) for t in (1, 2, 3, 5)]
    for y in ys[1:]:
        np.testing.assert_array_equal(y, ys[0])


def test_grouped_wide_rows_fall_back(isa, rng):
    """Rows whose padded copies do not fit the band buffer: the naive loops."""
    x = rng.standard_normal((1, 32, 4, 900)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    y = run(x, w, None, 1, 1, 1, 2)
    ref, scale = conv2d_ref(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 2)
    assert normalised_error(y, ref, scale) <= TOL


def test_grouped_supports_and_choice():
    x = (1, 128, 56, 56)
    assert lc.supports("depthwise", x, (128, 4, 3, 3), padding=1, groups=32)
    assert lc.supports("depthwise", x, (128, 16, 3, 3), padding=1, groups=8)
    assert not lc.supports("depthwise", x, (128, 32, 3, 3), padding=1, groups=4)  # Cg 32
    assert not lc.supports("depthwise", x, (128, 128, 3, 3), padding=1)  # groups 1
    w = np.zeros((128, 4, 3, 3), np.float32)
    for isa in set(lc.available_isas()) & {"avx2", "avx512"}:  # the ISAs that price it
        with lc.use_isa(isa):
            plan = lc.Conv2d(w, padding=1, groups=32, input_shape=x)
            assert plan.algorithm == "depthwise", isa
        with lc.use_isa(isa):  # C/groups 16: Winograd's 4x fewer multiply-adds win
            plan = lc.Conv2d(np.zeros((64, 16, 3, 3), np.float32), padding=1, groups=4,
                             input_shape=(1, 64, 56, 56))
            assert plan.algorithm != "depthwise", isa
