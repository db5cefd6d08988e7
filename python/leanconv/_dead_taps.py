"""Kernel taps that only ever read padding, for an input size.

A dilated convolution on a small map can have taps that fall in the zero
padding for every output position: deeplabv3's ASPP runs 3x3 convolutions
of dilation 12, 24 and 36 on a 14x14 map (224 input; 8x8 at 128), where the
taps off the centre never touch the input -- each is a 1x1 convolution
doing 9x the work (and leanconv computes every tap; oneDNN and onnxruntime
skip them).  For such an input size the convolution is exactly the one of
the live taps' rows and columns, its padding reduced by what they drop.

Both front ends run that trimmed convolution: torch's freeze packs it
beside the full one for the example input's size (FrozenConv2d.for_shape
picks it for every input size whose dead taps are the same or more);
leanconv.onnx packs it instead of the full one for each input size it plans
(onnx/conv.py).  Here only the geometry: which taps are live, the trimmed
layer, whether a trimmed layer serves another size."""
from __future__ import annotations

import numpy as np

from leanconv._params import ConvSpec


def tap_outputs(k, s, d, pad, size, out):
    """[(o0, o1)] for each tap i of one axis: the outputs o0 <= o < o1 whose
    tap i reads the input (0 <= o * s + i * d - pad < size); empty (o0 >= o1)
    for a tap that reads only padding."""
    ranges = []
    for i in range(k):
        lo = i * d - pad                        # the input index output 0 reads
        o0 = 0 if lo >= 0 else (-lo + s - 1) // s       # the first output reading index >= 0
        o1 = min(out, (size - 1 - lo) // s + 1) if lo <= size - 1 else 0
        ranges.append((o0, max(o0, o1)))
    return ranges


def _live(k, s, d, pad, size, out):
    """(first, last) tap of one axis that reads the input for some output
    position, all between live too; None when the live taps are not one run."""
    live = [o0 < o1 for o0, o1 in tap_outputs(k, s, d, pad, size, out)]
    if not any(live):
        return None
    a = live.index(True)
    b = k - 1 - live[::-1].index(True)
    return (a, b) if all(live[a:b + 1]) else None


def live_window(spec, H, W):
    """((a, b), (c, e)): the live rows a..b and columns c..e of spec's kernel
    on an H x W input, or None if they do not form one block."""
    OH, OW = spec.output_hw(H, W)
    t, bt, l, r = spec.pads
    rows = _live(spec.kH, spec.stride[0], spec.dilation[0], t, H, OH)
    cols = _live(spec.kW, spec.stride[1], spec.dilation[1], l, W, OW)
    return None if rows is None or cols is None else (rows, cols)


def trimmed_spec(spec, x_shape):
    """(ConvSpec of the live taps, (rows, cols)) when some taps of spec are
    dead on x_shape's size and the rest is a convolution leanconv runs
    (padding not negative), else None."""
    H, W = x_shape[2:]
    window = live_window(spec, H, W)
    if window is None:
        return None
    (a, b), (c, e) = window
    if (b - a + 1, e - c + 1) == (spec.kH, spec.kW):
        return None
    t, bt, l, r = spec.pads
    dh, dw = spec.dilation
    pads = (t - a * dh, bt - (spec.kH - 1 - b) * dh, l - c * dw, r - (spec.kW - 1 - e) * dw)
    if min(pads) < 0:
        return None
    trimmed = ConvSpec.build((spec.M, spec.Cg, b - a + 1, e - c + 1), spec.stride, pads,
                             spec.dilation, spec.groups)
    if trimmed.output_hw(H, W) != spec.output_hw(H, W):     # (cannot differ: checked anyway)
        return None
    return trimmed, window


def covers(window, live):
    """True if a convolution trimmed to `window` ((a, b), (c, e)), or the
    full one (None), holds every tap of `live` (a live_window, None: all)."""
    if window is None:
        return True
    if live is None:
        return False
    (a, b), (c, e) = window
    (a2, b2), (c2, e2) = live
    return a <= a2 and b2 <= b and c <= c2 and e2 <= e


def applies(spec, window, x_shape):
    """True if the trimmed convolution of `window` gives spec's output on
    inputs of x_shape: every tap outside it is dead there too."""
    try:
        live = live_window(spec, *x_shape[2:])
    except ValueError:
        return False
    return live is not None and covers(window, live)


def live_weights(w, window):
    """The rows and columns of `window` of weights w (M, Cg, kH, kW), contiguous."""
    (a, b), (c, e) = window
    return np.ascontiguousarray(w[:, :, a:b + 1, c:e + 1])
