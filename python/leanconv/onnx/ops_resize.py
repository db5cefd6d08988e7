"""Resize (opset 11+): nearest and (n-)linear, one axis at a time in NumPy;
a float32 NCHW resize of H and W in C from the same per-axis tables.

Linear interpolation over several axes is the product of 1-D weights, so
interpolating each resized axis in turn gives exactly the n-linear result.
Cubic, antialiasing and tf_crop_and_resize are refused at prepare."""
from __future__ import annotations

import numpy as np

from leanconv import _core, _threads
from leanconv.onnx.node import unsupported
from leanconv.onnx.program import Step

TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(out_len, in_len, scale, mode):
    """Input coordinate of each output index along one axis.  The output
    width in these formulas is in_len * scale unrounded (as ONNX's reference
    computes it); it differs from out_len when scales, not sizes, were given."""
    x = np.arange(out_len, dtype=np.float64)
    width = scale * in_len
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return np.zeros(out_len) if width == 1 else x * (in_len - 1) / (width - 1)
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if width != 1 else np.full(out_len, -0.5)
    if mode == "half_pixel_symmetric":
        adjustment = out_len / width
        offset = in_len / 2 * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5   # half_pixel


def nearest_index(c, rounding, in_len):
    if rounding == "floor":
        i = np.floor(c)
    elif rounding == "ceil":
        i = np.ceil(c)
    elif rounding == "round_prefer_ceil":
        i = np.floor(c + 0.5)
    else:   # round_prefer_floor: halves go down
        i = np.ceil(c - 0.5)
    return np.clip(i, 0, in_len - 1).astype(np.int64)


class Resize:
    def __init__(self, node):
        node.allow("mode", "coordinate_transformation_mode", "nearest_mode", "antialias",
                   "axes", "cubic_coeff_a", "exclude_outside", "extrapolation_value",
                   "keep_aspect_ratio_policy")
        if node.opset < 11:
            raise unsupported(f"Resize before opset 11 (node {node.name}, opset {node.opset})")
        self.name = node.name
        self.mode = node.attr("mode", "nearest")
        if self.mode not in ("nearest", "linear"):
            raise unsupported(f"Resize mode {self.mode!r} (node {node.name})")
        self.transform = node.attr("coordinate_transformation_mode", "half_pixel")
        if self.transform not in TRANSFORMS:
            raise unsupported(f"Resize coordinate_transformation_mode {self.transform!r} "
                              f"(node {node.name})")
        self.rounding = node.attr("nearest_mode", "round_prefer_floor")
        if self.rounding not in NEAREST_MODES:
            raise ValueError(f"Resize node {node.name}: unknown nearest_mode {self.rounding!r}")
        if int(node.attr("antialias", 0)):
            raise unsupported(f"Resize with antialias (node {node.name})")
        if node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise unsupported(f"Resize keep_aspect_ratio_policy "
                              f"{node.attr('keep_aspect_ratio_policy')!r} (node {node.name})")
        self.axes = node.attr("axes")
        self.settings = None
        self._tables = None   # (key, tables) of the last input shape (see tables())

    def sizes_and_scales(self, shape, scales, sizes):
        nd = len(shape)
        axes = list(range(nd)) if self.axes is None else [a % nd for a in self.axes]
        out, sc = list(shape), [1.0] * nd
        if sizes is not None and np.asarray(sizes).size:
            for a, s in zip(axes, np.asarray(sizes).reshape(-1)):
                out[a], sc[a] = int(s), int(s) / shape[a]
        elif scales is not None and np.asarray(scales).size:
            for a, s in zip(axes, np.asarray(scales, dtype=np.float64).reshape(-1)):
                out[a], sc[a] = int(np.floor(shape[a] * float(s))), float(s)
        else:
            raise ValueError(f"Resize node {self.name} needs scales or sizes")
        return out, sc

    def __call__(self, x, roi=None, scales=None, sizes=None):
        out, sc = self.sizes_and_scales(x.shape, scales, sizes)
        y = x
        for a in range(x.ndim):
            if out[a] == x.shape[a] and sc[a] == 1.0:
                continue
            c = source_coords(out[a], x.shape[a], sc[a], self.transform)
            if self.mode == "nearest":
                y = np.take(y, nearest_index(c, self.rounding, x.shape[a]), axis=a)
                continue
            c = np.clip(c, 0, x.shape[a] - 1)
            i0 = np.floor(c).astype(np.int64)
            i1 = np.minimum(i0 + 1, x.shape[a] - 1)
            w = (c - i0).reshape((-1,) + (1,) * (x.ndim - a - 1))
            lo, hi = np.take(y, i0, axis=a), np.take(y, i1, axis=a)
            y = (lo + (hi - lo) * w.astype(y.dtype)) if y.dtype.kind == "f" else \
                (lo + (hi - lo) * w).astype(y.dtype)
        return (y if y is not x else x.copy(),)


    def shape_only(self, x, roi=None, scales=None, sizes=None):
        """Zeros of the output's shape (the compile pass's shape learning;
        np.zeros leaves the pages untouched): an upsampled segmentation map
        computed in NumPy only for its shape paged in ~0.6 MB of NumPy's,
        libc's and Python's code and several temporaries of the output's size."""
        out, _ = self.sizes_and_scales(x.shape, scales, sizes)
        return (np.zeros(out, x.dtype),)

    def tables(self, shape, scales, sizes):
        """(output shape, [(index0, index1, weight) for H and W]) for the C
        resize when only H and W of a 4-D input change, else None; cached per
        input shape and scales/sizes."""
        key = (tuple(shape), None if scales is None else np.asarray(scales).tobytes(),
               None if sizes is None else np.asarray(sizes).tobytes())
        if self._tables is not None and self._tables[0] == key:
            return self._tables[1]
        out, sc = self.sizes_and_scales(shape, scales, sizes)
        result = None
        if len(shape) == 4 and out[:2] == list(shape[:2]) and sc[:2] == [1.0, 1.0]:
            result = (tuple(out), [self._axis_table(out[a], shape[a], sc[a]) for a in (2, 3)])
        self._tables = (key, result)
        return result

    def _axis_table(self, out_len, in_len, scale):
        if out_len == in_len and scale == 1.0:   # not resized: weight 0 reads index0 alone
            i = np.arange(in_len, dtype=np.int64)
            return i, i, np.zeros(in_len, np.float32)
        c = source_coords(out_len, in_len, scale, self.transform)
        if self.mode == "nearest":
            i = nearest_index(c, self.rounding, in_len)
            return i, i, np.zeros(out_len, np.float32)
        c = np.clip(c, 0, in_len - 1)
        i0 = np.floor(c).astype(np.int64)
        return i0, np.minimum(i0 + 1, in_len - 1), (c - i0).astype(np.float32)

    def into(self, outs, x, roi=None, scales=None, sizes=None):
        """A float32 NCHW resize of H and W in C (kernels/resize.c); else NumPy."""
        y = outs[0]
        t = None
        if x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 4 and x.size:
            t = self.tables(x.shape, scales, sizes)
        if t is None or t[0] != y.shape:
            np.copyto(y, self(x, roi, scales, sizes)[0])
            return
        (r0, r1, rw), (c0, c1, cw) = t[1]
        N, C, H, W = x.shape
        _core.resize2d(x.reshape(-1), y.reshape(-1), N * C, H, W, r0, r1, rw, c0, c1, cw,
                       self.mode == "linear", _threads.resolve(self.settings.threads))


def build_resize(node, ctx):
    op = Resize(node)
    op.settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    return Step(node, op, into=op.into, shape_only=op.shape_only)
