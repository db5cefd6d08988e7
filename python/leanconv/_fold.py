"""Folding an inference BatchNorm into the convolution before it: the one
implementation leanconv.onnx and leanconv.torch.freeze both use.

In NumPy rather than torch: freeze folding with torch's float64 ops paged in
~3 MB of torch kernels a frozen process otherwise never runs."""
from __future__ import annotations

import numpy as np


def fold_batchnorm(weight, bias, scale, beta, mean, var, eps):
    """Conv weights and bias with an inference BatchNormalization folded in:
    w' = w * s, b' = (b - mean) * s + beta, s = scale / sqrt(var + eps), s and
    b' in float64.  w' is one float32 product per weight (within an ulp
    of the float64 route) and overwrites `weight` when it is writeable, so folding
    needs no second copy of the layer's weights.  scale / beta None: 1 / 0
    (a BatchNorm without affine parameters)."""
    s = (1.0 if scale is None else scale.astype(np.float64)) / \
        np.sqrt(var.astype(np.float64) + eps)
    w = weight if weight.flags.writeable and weight.dtype == np.float32 else \
        np.array(weight, dtype=np.float32)
    w *= s.astype(np.float32).reshape((-1,) + (1,) * (weight.ndim - 1))
    b0 = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    b = (b0 - mean.astype(np.float64)) * s
    if beta is not None:
        b = b + beta.astype(np.float64)
    return w, b.astype(np.float32)
