"""kernels/instance_norm.c (leanconv.onnx's InstanceNormalization) against a
float64 reference: plane sizes around its eight partial sums, planes of one
value (variance 0), a large offset over a small spread (cancellation), in
place, without scale or bias, and the same bits at any thread count."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core


def reference(x, eps, scale, bias):
    x64 = x.astype(np.float64)
    axes = tuple(range(2, x.ndim))
    mean = x64.mean(axis=axes, keepdims=True)
    var = np.square(x64 - mean).mean(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * len(axes)
    s = 1.0 if scale is None else scale.astype(np.float64).reshape(shape)
    b = 0.0 if bias is None else bias.astype(np.float64).reshape(shape)
    return (x64 - mean) / np.sqrt(var + eps) * s + b


def run(x, eps=1e-5, scale=None, bias=None, threads=1, out=None):
    y = np.empty_like(x) if out is None else out
    _core.instance_norm(x.reshape(-1), y.reshape(-1), x.shape[0] * x.shape[1], x.shape[1],
                        int(np.prod(x.shape[2:])), eps, scale, bias, threads)
    return y


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 1, 7), (1, 4, 3, 3), (2, 5, 8, 9),
                                   (1, 3, 17), (1, 2, 64, 65), (3, 2, 2, 2, 3)])
def test_matches_the_float64_reference(shape):
    g = np.random.default_rng(sum(shape))
    x = g.standard_normal(shape).astype(np.float32)
    C = shape[1]
    scale = (0.5 + g.random(C)).astype(np.float32)
    bias = g.standard_normal(C).astype(np.float32)
    y = run(x, 1e-5, scale, bias)
    ref = reference(x, 1e-5, scale, bias)
    assert np.abs(y - ref).max() <= 2e-6 * max(1.0, np.abs(ref).max())


def test_planes_of_one_value_give_the_bias_and_large_offsets_do_not_cancel():
    g = np.random.default_rng(1)
    flat = np.full((2, 3, 5, 5), 7.25, np.float32)
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    y = run(flat, 1e-3, None, bias)
    assert np.array_equal(y, np.broadcast_to(bias.reshape(1, 3, 1, 1), y.shape))
    # 1000 + N(0, 0.01): float32 sums of squares would cancel to noise
    x = (1000.0 + 0.01 * g.standard_normal((1, 2, 32, 32))).astype(np.float32)
    ref = reference(x, 1e-8, None, None)
    assert np.abs(run(x, 1e-8) - ref).max() < 1e-3


def test_in_place_and_the_same_bits_at_any_thread_count():
    g = np.random.default_rng(2)
    x = g.standard_normal((2, 16, 24, 24)).astype(np.float32)
    scale = g.random(16).astype(np.float32)
    one = run(x, 1e-5, scale, None, threads=1)
    assert np.array_equal(run(x, 1e-5, scale, None, threads=2), one)
    assert np.array_equal(run(x, 1e-5, scale, None, threads=7), one)
    inplace = x.copy()
    run(inplace, 1e-5, scale, None, threads=2, out=inplace)
    assert np.array_equal(inplace, one)


@pytest.mark.parametrize("out_len, planes, channels, scale, threads, match", [
    (24, 4, 3, None, 1, "geometry"),     # planes not whole images of `channels`
    (23, 4, 2, None, 1, "geometry"),     # out of another size
    (24, 4, 2, np.ones(3, np.float32), 1, "scale must hold 2"),
    (24, 4, 2, None, 0, "threads"),
])
def test_bad_geometry_and_vectors_are_value_errors(out_len, planes, channels, scale, threads,
                                                   match):
    with pytest.raises(ValueError, match=match):
        _core.instance_norm(np.zeros(24, np.float32), np.zeros(out_len, np.float32), planes,
                            channels, 6, 1e-5, scale, None, threads)
