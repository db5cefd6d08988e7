"""A dilated convolution on a small map as a sum of 1x1 convolutions, one per
kernel tap, each over the rectangle of outputs where its tap reads the input.

deeplabv3's ASPP at 224 px runs a 3x3 convolution of dilation 12 on a 14x14
map: each off-centre tap reads the input for 2 of the 14 rows (or columns)
and padding for the other 12, so 18% of the layer's multiply-adds touch the
input.  leanconv's GEMMs multiplied the padding's zeros too (960>256: 11.0
ms, against onnxruntime's 2.65 with a direct convolution that skips them).
Where no tap is dead everywhere (those dead_taps.py trims) but the live
(tap, output) pairs are at most LIVE_SHARE of all, the layer runs here: the
tap that reads the input at every output first (with the bias and the
residual), then each other tap's 1x1 convolution of its input rectangle
(copied out, strided by the stride) added into its output rectangle, then
the activation.  The taps' 1x1 weights together are the layer's, packed
once each; the bits do not depend on the thread count (each tap's plan's do
not, and the taps are added in a fixed order)."""
from __future__ import annotations

import numpy as np

from leanconv import _dead_taps, _epilogue, _isa
from leanconv._params import ConvSpec
from leanconv._plan import Conv2d
from leanconv._select import choose

LIVE_SHARE = 0.5
MIN_CHANNELS = 16   # input channels a group: each tap's product a GEMM worth its copies
_ALIGN = 64   # bytes: each piece of the workspace starts on a line


def tap_rectangles(spec, H, W):
    """[(a, c, (y0, y1), (x0, x1))]: each tap (kernel row a, column c) that
    reads the input at some output, and the outputs y0 <= y < y1, x0 <= x <
    x1 where it does."""
    OH, OW = spec.output_hw(H, W)
    t, _, l, _ = spec.pads
    rows = _dead_taps.tap_outputs(spec.kH, spec.stride[0], spec.dilation[0], t, H, OH)
    cols = _dead_taps.tap_outputs(spec.kW, spec.stride[1], spec.dilation[1], l, W, OW)
    return [(a, c, rows[a], cols[c]) for a in range(spec.kH) for c in range(spec.kW)
            if rows[a][0] < rows[a][1] and cols[c][0] < cols[c][1]]


def applies(spec, H, W):
    """True where the tap sum pays: a dilated layer of at least MIN_CHANNELS
    input channels a group, some of whose live taps read the input at only
    part of the outputs, the live (tap, output) pairs at most LIVE_SHARE.
    Not where each tap's 1x1 convolution is too little work for its copies
    and call: undilated 3x3 layers on 2x2 maps qualify by the share, and
    MobileNetV3's dilated 5x5 depthwise layers on 8x8 maps (49%) ran 2.6x
    slower (deeplabv3_mobilenet_v3_large 128: 5.1 -> 13.4 ms)."""
    if spec.dilation == (1, 1) or spec.Cg < MIN_CHANNELS:
        return False
    OH, OW = spec.output_hw(H, W)
    rects = tap_rectangles(spec, H, W)
    whole = ((0, OH), (0, OW))
    live = sum((y1 - y0) * (x1 - x0) for _, _, (y0, y1), (x0, x1) in rects)
    return any((r, c) != whole for _, _, r, c in rects) and \
        live <= LIVE_SHARE * spec.kH * spec.kW * OH * OW


def _round(n):
    return -(-n // _ALIGN) * _ALIGN


class TapSum:
    """The plan of such a layer for inputs of one size hw: what the ONNX
    front end asks of a leanconv.Conv2d (call, output_shape,
    workspace_bytes, packed_bytes, bind -- None: it is not one C call)."""

    def __init__(self, weight, bias, stride, pads, dilation, groups, activation, hw):
        self.spec = ConvSpec.build(weight.shape, stride, pads, dilation, groups)
        self.activation = activation
        self.hw = tuple(hw)
        H, W = self.hw
        OH, OW = self.spec.output_hw(H, W)
        rects = tap_rectangles(self.spec, H, W)
        # the tap reading the input at every output first: it writes the output
        rects.sort(key=lambda r: (r[2], r[3]) != ((0, OH), (0, OW)))
        self.covers_all = (rects[0][2], rects[0][3]) == ((0, OH), (0, OW))
        self._bias = None if bias is None else np.asarray(bias, np.float32)
        self.parts = []
        isa_id = _isa.isa_id()
        for i, (a, c, rows, cols) in enumerate(rects):
            w = np.ascontiguousarray(weight[:, :, a:a + 1, c:c + 1])
            b = self._bias if i == 0 and self.covers_all else None
            # the algorithm named, so the plan packs once and keeps no copy of w
            name = choose("auto", ConvSpec.build(w.shape, groups=groups), isa_id,
                          (rows[1] - rows[0], cols[1] - cols[0]))
            self.parts.append((a, c, rows, cols, Conv2d(w, b, groups=groups, algorithm=name)))
        self.algorithm = "tap_sum"
        self._pieces = {}   # batch size -> _piece_shapes
        self.isa = self.parts[0][-1].isa

    @property
    def packed_bytes(self):
        return sum(p.packed_bytes for *_, p in self.parts)

    def output_shape(self, x_shape):
        return (x_shape[0], self.spec.M) + self.spec.output_hw(*x_shape[2:])

    def _piece_shapes(self, n):
        """(input piece, output piece, its plan's workspace) bytes at batch n,
        the largest of any tap's (worked out once a batch size)."""
        if n not in self._pieces:
            self._pieces[n] = self._largest_pieces(n)
        return self._pieces[n]

    def _largest_pieces(self, n):
        C, M = self.spec.C, self.spec.M
        big_x = big_y = ws = 0
        for _, _, (y0, y1), (x0, x1), plan in self.parts:
            px = (y1 - y0) * (x1 - x0)
            big_x, big_y = max(big_x, 4 * n * C * px), max(big_y, 4 * n * M * px)
            ws = max(ws, plan.workspace_bytes((n, C, y1 - y0, x1 - x0)))
        return _round(big_x), _round(big_y), _round(ws)

    def workspace_bytes(self, x_shape, threads=None):
        return sum(self._piece_shapes(x_shape[0]))

    def bind(self, x, y, residual=None, threads=None):
        return None

    def __call__(self, x, out=None, *, residual=None, threads=None, workspace=None):
        if tuple(x.shape[2:]) != self.hw:
            raise ValueError(f"this tap-sum plan convolves inputs of size {self.hw}, "
                             f"got {tuple(x.shape[2:])}")
        n = x.shape[0]
        y = np.empty(self.output_shape(x.shape), np.float32) if out is None else out
        xb, yb, wb = self._piece_shapes(n)
        ws = workspace if workspace is not None and workspace.nbytes >= xb + yb + wb else \
            np.empty(xb + yb + wb + _ALIGN, np.uint8)
        base = (-ws.ctypes.data) % _ALIGN
        sh, sw = self.spec.stride
        dh, dw = self.spec.dilation
        t, _, l, _ = self.spec.pads
        for i, (a, c, (y0, y1), (x0, x1), plan) in enumerate(self.parts):
            iy, ix = y0 * sh + a * dh - t, x0 * sw + c * dw - l   # the input its first output reads
            src = x[:, :, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw]
            piece = ws[base:base + src.nbytes].view(np.float32).reshape(src.shape)
            np.copyto(piece, src)
            scratch = ws[base + xb + yb:base + xb + yb + wb] if wb else None
            if i == 0 and self.covers_all:
                plan(piece, out=y, residual=residual, threads=threads, workspace=scratch)
                continue
            if i == 0:   # no tap reads the input at every output: start from bias + residual
                y[...] = 0.0 if self._bias is None else self._bias.reshape(1, -1, 1, 1)
                if residual is not None:
                    y += residual
            part_shape = (n, self.spec.M, y1 - y0, x1 - x0)
            part = ws[base + xb:base + xb + 4 * int(np.prod(part_shape))]
            part = part.view(np.float32).reshape(part_shape)
            plan(piece, out=part, threads=threads, workspace=scratch)
            y[:, :, y0:y1, x0:x1] += part
        if _epilogue.parse(self.activation) is not None:
            _epilogue.activate(y, self.activation, out=y, threads=threads)
        return y
