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


def batchnorm_affine(scale, beta, mean, var, eps):
    """An inference BatchNormalization on its own as a per-channel affine map
    y = x * w + b: the identity's (C, 1, 1, 1) weights folded as a Conv's
    norm is (fold_batchnorm: the same rounding)."""
    return fold_batchnorm(np.ones((np.asarray(var).size, 1, 1, 1), np.float32), None, scale,
                          beta, mean, var, eps)


def fold_linear_affine(weight, bias, in_scale=None, in_shift=None, out_scale=None):
    """A linear map (a 1x1 conv's or Linear's weight, M output rows) with a
    per-input-channel affine before it (a channels-last LayerNorm's scale and
    shift) and a per-output scale after it (ConvNeXt's layer scale) folded
    in: for y = out_scale * (W (x * in_scale + in_shift) + b),
    w' = W * in_scale * out_scale and b' = (b + W in_shift) * out_scale.
    float32 throughout (a float64 copy of a large W would stay resident in a
    frozen process); `weight` is scaled in place when it is a writeable float32
    array, so folding needs no second copy.  Any of the three may be None;
    bias None is 0.  Returns (w', b') with b' float32 of M values."""
    w = weight if weight.flags.writeable and weight.dtype == np.float32 else \
        np.array(weight, dtype=np.float32)
    M = w.shape[0]
    w2 = w.reshape(M, -1)   # a view: (M, C) for a 1x1 conv's (M, C, 1, 1)
    b = np.zeros(M, np.float32) if bias is None else np.array(bias, np.float32).reshape(M)
    if in_shift is not None:   # with W before its scaling
        b += w2 @ np.asarray(in_shift, np.float32).reshape(-1)
    if in_scale is not None:
        w2 *= np.asarray(in_scale, np.float32).reshape(1, -1)
    if out_scale is not None:
        s = np.asarray(out_scale, np.float32).reshape(M)
        w2 *= s.reshape(M, 1)
        b *= s
    return w, b
