"""LayerNorm over the channels of an NCHW array, in NumPy: leanconv.onnx's
ChannelLayerNorm and frozen torch models' (a channels-last LayerNorm that
freeze moved to NCHW) both run this one."""
from __future__ import annotations

import numpy as np


def channel_layernorm_into(y, x, eps, scale=None, bias=None):
    """y <- LayerNorm of NCHW x over axis 1 (then * scale + bias, shaped
    (C, 1, 1)), in x's float dtype, with the variance of the centred values
    (no cancellation); the square of the centred values is the one
    full-size temporary.  y may not overlap x."""
    mean = x.mean(axis=1, keepdims=True)
    np.subtract(x, mean, out=y)
    var = np.square(y).mean(axis=1, keepdims=True)
    var += x.dtype.type(eps)
    np.sqrt(var, out=var)
    np.divide(y, var, out=y)
    if scale is not None:
        y *= scale
    if bias is not None:
        y += bias
