"""LayerNorm over the channels of an NCHW array: leanconv.onnx's
ChannelLayerNorm and frozen torch models' (a channels-last LayerNorm that
freeze moved to NCHW) both run this one.  float32 C-contiguous arrays go to
leanconv's C (kernels/channel_norm.c: one read for the sums, two from L1, one
write); anything else to NumPy."""
from __future__ import annotations

import math

import numpy as np

from leanconv import _bound_pool, _core, _isa, _threads


def _on_c(y, x, scale, bias):
    return (x.dtype == np.float32 and y.dtype == np.float32 and x.ndim >= 2
            and x.flags.c_contiguous and y.flags.c_contiguous and y.shape == x.shape
            and all(a is None or (a.dtype == np.float32 and a.size == x.shape[1])
                    for a in (scale, bias)))


def channel_layernorm_workspace(x):
    """Bytes of temporary channel_layernorm_into takes for x: none in C, the
    square of the centred values in NumPy."""
    return 0 if _on_c(x, x, None, None) else x.nbytes


def channel_layernorm_bind(y, x, eps, scale=None, bias=None, threads=None):
    """The C call normalising x into y (a _core.BoundLayerNorm, which a
    compiled schedule runs with no Python around it), or None where NumPy
    must do it.  Arguments as channel_layernorm_into's."""
    if not _on_c(y, x, scale, bias):
        return None
    return _core.BoundLayerNorm(x.reshape(-1), y.reshape(-1), x.shape[0], x.shape[1],
                                math.prod(x.shape[2:]),   # (not np.prod: see ops_math.softmax_into)
                                eps, None if scale is None else scale.reshape(-1),
                                None if bias is None else bias.reshape(-1),
                                _threads.resolve(threads), _isa.isa_id())


def channel_layernorm_into(y, x, eps, scale=None, bias=None, threads=None):
    """y <- LayerNorm of NCHW x over axis 1 (then * scale + bias, C values
    each, e.g. shaped (C, 1, 1)), in x's float dtype, with the variance of the
    centred values (no cancellation).  y may be x or not overlap it.
    threads: leanconv's setting (None: the default count)."""
    call = channel_layernorm_bind(y, x, eps, scale, bias, threads)
    if call is not None:
        _bound_pool.run(call)
        return
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
