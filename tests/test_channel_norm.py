"""kernels/channel_norm.c (leanconv._core.channel_layernorm, the LayerNorm over
the channels of NCHW that leanconv.onnx's ChannelLayerNorm and frozen torch
models run) against a float64 reference: channel counts from 1 to ConvNeXt's
768, pixel counts across the kernel's blocks (32x32 planes, whose rows fall
in the same L1 sets), 1-D and 3-D spatial, several images, with and without
scale and bias, in place; the same bits at 1 to 4 threads on every ISA; and
_channel_norm's NumPy path for what the C does not take."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _bound_pool, _core, _isa
from leanconv._channel_norm import (channel_layernorm_bind, channel_layernorm_into,
                                     channel_layernorm_workspace)


def reference(x, eps, scale, bias):
    x = x.astype(np.float64)
    mean = x.mean(axis=1, keepdims=True)
    y = (x - mean) / np.sqrt(np.square(x - mean).mean(axis=1, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if scale is not None:
        y = y * scale.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


CASES = [  # (n, C, spatial, affine)
    (1, 96, (32, 32), True),     # ConvNeXt-tiny's first stage at 128
    (2, 192, (16, 16), True),
    (1, 768, (4, 4), False),     # its last: one block of 16 pixels
    (1, 3, (5, 7), True),        # fewer pixels than a vector
    (3, 1000, (1, 1), True),     # one pixel an image
    (1, 1, (300,), True),        # one channel: all zeros, then the bias
    (2, 7, (2, 3, 37), False),   # 3-D spatial, a block's tail
]


@pytest.mark.parametrize("n, C, spatial, affine", CASES)
def test_channel_layernorm_matches_the_float64_reference_the_same_at_any_thread_count(
        isa, n, C, spatial, affine):
    rng = np.random.default_rng(C)
    # an offset far above the spread: the centred variance has no cancellation
    x = (rng.standard_normal((n, C) + spatial) * 3 + 50).astype(np.float32)
    scale = rng.standard_normal(C).astype(np.float32) if affine else None
    bias = rng.standard_normal(C).astype(np.float32) if affine else None
    hw = int(np.prod(spatial))
    outs = []
    for threads in (1, 2, 3, 4):
        y = np.full_like(x, 7.0)
        _core.channel_layernorm(x.reshape(-1), y.reshape(-1), n, C, hw, 1e-6, scale, bias,
                                threads, _isa.isa_id(isa))
        outs.append(y)
    for y in outs[1:]:
        assert y.tobytes() == outs[0].tobytes()
    want = reference(x, 1e-6, scale, bias)
    assert np.abs(outs[0] - want).max() <= 2e-5 * max(1.0, np.abs(want).max())
    # in place: the same bits
    z = x.copy()
    channel_layernorm_into(z, z, 1e-6, scale, bias, 2)
    assert z.tobytes() == outs[0].tobytes()


def test_channel_layernorm_into_takes_numpy_for_other_dtypes_and_layouts(isa):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3, 4))
    scale, bias = rng.standard_normal((5, 1, 1)), rng.standard_normal((5, 1, 1))
    y = np.empty_like(x)
    channel_layernorm_into(y, x, 1e-5, scale, bias)
    np.testing.assert_allclose(y, reference(x, 1e-5, scale, bias), rtol=1e-12, atol=1e-12)
    assert channel_layernorm_workspace(x) == x.nbytes
    x32 = x.astype(np.float32)
    assert channel_layernorm_workspace(x32) == 0
    xt = np.asfortranarray(x32)   # not C-contiguous: NumPy
    y32 = np.empty_like(x32)
    channel_layernorm_into(y32, xt, 1e-5, scale.astype(np.float32), bias.astype(np.float32))
    np.testing.assert_allclose(y32, reference(x32, 1e-5, scale, bias), rtol=1e-5, atol=1e-5)


def test_channel_layernorm_refuses_a_bad_geometry():
    x = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.channel_layernorm(x, np.zeros(11, np.float32), 1, 3, 4, 1e-5, None, None, 1)
    with pytest.raises(ValueError, match="scale"):
        _core.channel_layernorm(x, np.zeros(12, np.float32), 1, 3, 4, 1e-5,
                                np.ones(2, np.float32), None, 1)
    with pytest.raises(ValueError, match="bias"):
        _core.channel_layernorm(x, np.zeros(12, np.float32), 1, 3, 4, 1e-5, None,
                                np.ones(4, np.float32), 1)
    with pytest.raises(ValueError, match="threads"):
        _core.channel_layernorm(x, np.zeros(12, np.float32), 1, 3, 4, 1e-5, None, None, 0)


def test_channel_layernorm_binds_a_c_call_for_float32_only():
    x = np.random.default_rng(3).standard_normal((1, 4, 3, 3)).astype(np.float32)
    y = np.empty_like(x)
    call = channel_layernorm_bind(y, x, 1e-5, None, np.ones((4, 1, 1), np.float32), 1)
    assert isinstance(call, _core.BoundLayerNorm)
    _bound_pool.run(call)
    np.testing.assert_allclose(y, reference(x, 1e-5, None, np.ones(4)), rtol=1e-5, atol=1e-5)
    assert channel_layernorm_bind(y.astype(np.float64), x.astype(np.float64), 1e-5) is None
