"""An independent float64 reference convolution (NumPy only), and the error
measure the tests use: |y - ref| normalised by sum |x|*|w| over the receptive
field (+|bias|), so that an error is judged against the size of the terms that
were summed, not against a result that may cancel to ~0."""
import math

import numpy as np


def output_hw(H, W, kH, kW, stride, pads, dilation):
    (sh, sw), (dh, dw) = stride, dilation
    t, b, l, r = pads
    return ((H + t + b - dh * (kH - 1) - 1) // sh + 1,
            (W + l + r - dw * (kW - 1) - 1) // sw + 1)


def conv2d_ref(x, w, bias=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1,
               clamp=None):
    """y and scale, both float64 (N, M, OH, OW); x (N, C, H, W), w (M, Cg, kH, kW)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    M, Cg, kH, kW = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    t, b, l, r = pads
    OH, OW = output_hw(H, W, kH, kW, stride, pads, dilation)
    xp = np.zeros((N, C, H + t + b, W + l + r))
    xp[:, :, t:t + H, l:l + W] = x
    y = np.zeros((N, M, OH, OW))
    scale = np.zeros((N, M, OH, OW))
    Mg = M // groups
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Mg:(g + 1) * Mg]
        for ky in range(kH):
            for kx in range(kW):
                patch = xg[:, :, ky * dh: ky * dh + sh * (OH - 1) + 1: sh,
                           kx * dw: kx * dw + sw * (OW - 1) + 1: sw]
                # NaN/Inf must reach the result as in a plain sum: no 0*NaN skipping
                y[:, g * Mg:(g + 1) * Mg] += np.einsum("ncij,mc->nmij", patch, wg[:, :, ky, kx])
                scale[:, g * Mg:(g + 1) * Mg] += np.einsum("ncij,mc->nmij", np.abs(patch),
                                                           np.abs(wg[:, :, ky, kx]))
    if bias is not None:
        bias = np.asarray(bias, np.float64)
        y += bias[None, :, None, None]
        scale += np.abs(bias)[None, :, None, None]
    if clamp is not None:
        lo, hi = clamp
        y = np.where(np.isnan(y), y, np.clip(y, lo, hi))
    return y, scale


def tile_max(scale, m):
    """Each output gets the largest scale in its m x m Winograd output tile:
    the transforms mix a tile's whole input window, so a tile's rounding error
    follows its biggest terms, not each pixel's own receptive field."""
    out = scale.copy()
    H, W = scale.shape[-2:]
    for i in range(0, H, m):
        for j in range(0, W, m):
            block = scale[..., i:i + m, j:j + m]
            out[..., i:i + m, j:j + m] = block.max(axis=(-2, -1), keepdims=True)
    return out


def error_for(algorithm, y, ref, scale):
    """normalised_error with the scale each algorithm's error follows."""
    if algorithm.startswith("winograd_f"):   # winograd_f{m}, winograd_f{m}_lean
        scale = tile_max(scale, int(algorithm.split("_")[1][1:]))
    return normalised_error(y, ref, scale)


def normalised_error(y, ref, scale):
    """max |y - ref| / scale over finite reference values.

    The scale has a floor of 1e-3 of its largest value: an output whose
    receptive field is all padding has scale 0, and Winograd legitimately
    leaves rounding noise there from the rest of its tile's window."""
    y = np.asarray(y, np.float64)
    finite = np.isfinite(ref)
    if not finite.any():
        return 0.0
    floor = 1e-3 * float(scale[finite].max()) + 1e-30
    err = np.abs(y[finite] - ref[finite]) / np.maximum(scale[finite], floor)
    return float(err.max())


# Max normalised error each algorithm is held to (see README "Tolerances").
# direct accumulates in double; the GEMM family sums K float products;
# Winograd adds transform rounding that grows with the tile size.
TOLERANCE = {
    "direct": 1e-6,
    "im2col": 2e-6,
    "patch2vec": 2e-6,
    "depthwise": 2e-6,
    "direct_lanes": 2e-6,
    "winograd_f2": 1e-5,
    "winograd_f4": 5e-5,
    "winograd_f6": 5e-4,  # F(6,3) with the +-1/2, +-2 points: ~1e-4 seen
    # U transformed in float on every call: a few ulps on each weight's terms
    "winograd_f2_lean": 1e-5,
    "winograd_f4_lean": 5e-5,
}


# ---- the epilogue's activations in float64 (tests/test_epilogue.py) ----
_SQRT1_2 = 0.70710678118654752440
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(v):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(v))
        return np.where(v >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _gate(v, s):
    """v * s with s -> 0 as v -> -inf: the limit 0 there, not -inf * 0."""
    with np.errstate(invalid="ignore"):
        return np.where(s == 0, 0.0, v * s)


def _clip(v, lo, hi):
    return np.where(np.isnan(v), v, np.clip(v, lo, hi))


def activation_ref(v, activation):
    """activation (any form conv2d takes) applied to float64 v, in float64,
    from the textbook definitions (math.erfc for GELU)."""
    v = np.asarray(v, np.float64)
    if activation is None:
        return v
    name, params = (activation, ()) if isinstance(activation, str) else \
        (activation[0], tuple(activation[1:]))
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "relu":
            return _clip(v, 0.0, np.inf)
        if name == "relu6":
            return _clip(v, 0.0, 6.0)
        if name == "clamp":
            return _clip(v, *params)
        if name == "sigmoid":
            return _sigmoid(v)
        if name == "tanh":
            return np.tanh(v)
        if name == "silu":
            return _gate(v, _sigmoid(v))
        if name == "gelu":
            return _gate(v, 0.5 * _erfc(-v * _SQRT1_2))
        if name == "gelu_tanh":
            u = 0.79788456080286535588 * (v + 0.044715 * v ** 3)
            return _gate(v, _sigmoid(2.0 * u))  # (1 + tanh u) / 2 without cancellation
        if name == "hardswish":
            return np.where(v <= -3, 0.0, np.where(v >= 3, v, v * (v + 3) / 6))
        if name == "hardsigmoid":
            alpha, beta = params if params else (1.0 / 6.0, 0.5)
            return _clip(alpha * v + beta, 0.0, 1.0)
        if name == "leaky_relu":
            slope = params[0] if params else 0.01
            return np.where(v > 0, v, slope * v)
    raise ValueError(f"no reference for activation {activation!r}")
