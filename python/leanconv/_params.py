"""Argument normalisation and validation, shared by conv2d, Conv2d and the
size queries.  Every bad input ends here as a TypeError or ValueError that
names the problem, before anything reaches C."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import _epilogue

# Sizes beyond this are refused before they reach int64 arithmetic in C.
_MAX_DIM = 1 << 62

def _int(value, name):
    if type(value) is int:  # fast path: shapes are plain ints on every call
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def pair(value, name, minimum):
    """An int or a pair of ints, each >= minimum -> (a, b)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        a, b = (_int(v, name) for v in value)
    else:
        a = b = _int(value, name)
    if a < minimum or b < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    _below_max(max(a, b), name, value)
    return a, b


def _below_max(v, name, value):
    """Geometry values go to C as int64: refuse, by name, what cannot be one."""
    if v >= _MAX_DIM:
        raise ValueError(f"{name} must be < 2**62, got {value!r}")


def padding4(padding, kernel, stride, dilation):
    """padding -> (top, bottom, left, right).

    int, (h, w), (top, bottom, left, right), "valid", or "same" (stride 1;
    when the total is odd the extra row/column goes at the end, as ONNX
    SAME_UPPER and PyTorch do)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            th, tw = (d * (k - 1) for d, k in zip(dilation, kernel))
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise ValueError(f"padding must be an int, a pair, a 4-tuple, 'valid' or 'same'; got {padding!r}")
    if isinstance(padding, (tuple, list)):
        vals = tuple(_int(v, "padding") for v in padding)
        if len(vals) == 2:
            vals = (vals[0], vals[0], vals[1], vals[1])
        elif len(vals) != 4:
            hint = " (a 1-tuple is not accepted: pass the int itself)" if len(vals) == 1 else ""
            raise ValueError(f"padding must be an int, a pair (h, w), a 4-tuple (top, bottom, "
                             f"left, right), 'valid' or 'same'; got {padding!r}{hint}")
    else:
        p = _int(padding, "padding")
        vals = (p, p, p, p)
    if min(vals) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    _below_max(max(vals), "padding", padding)
    return vals


def swapped_float32(dtype) -> bool:
    """float32 in the other byte order (e.g. '>f4' on a little-endian CPU)."""
    return dtype.kind == "f" and dtype.itemsize == 4 and not dtype.isnative


def float32_array(a, name):
    """A C-contiguous, aligned, native-byte-order float32 ndarray view or copy
    of `a` (an ndarray, or an object with __array__ such as a CPU tensor)."""
    if not isinstance(a, np.ndarray):
        if isinstance(a, (list, tuple)) or not hasattr(a, "__array__"):
            raise TypeError(f"{name} must be a float32 NumPy array, got a {type(a).__name__}; "
                            f"pass np.asarray({name}, dtype=np.float32)")
        a = np.asarray(a)
    if swapped_float32(a.dtype):
        a = a.astype(np.float32)  # the other byte order: same values, converted once
    if a.dtype != np.float32:
        raise TypeError(f"leanconv computes in float32, but {name} has dtype {a.dtype}; "
                        f"convert it with {name}.astype(np.float32)")
    if not (a.flags.c_contiguous and a.flags.aligned):
        a = np.array(a, dtype=np.float32, order="C", copy=True)
    return a


def shape_tuple(shape, name, ndims):
    try:
        dims = tuple(_int(s, name) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if len(dims) not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {want} dimensions, got shape {dims}")
    if min(dims) <= 0:
        raise ValueError(f"{name} has a zero-size or negative dimension: {dims}")
    if max(dims) >= _MAX_DIM:
        raise ValueError(f"{name} has an absurd dimension: {dims}")
    return dims


@dataclass(frozen=True)
class ConvSpec:
    """Everything about a convolution except the input size."""
    M: int
    Cg: int
    kH: int
    kW: int
    groups: int
    stride: tuple
    dilation: tuple
    pads: tuple  # (top, bottom, left, right)
    epilogue: tuple | None  # _epilogue.parse(activation): None or (code, a, b)

    @classmethod
    def build(cls, w_shape, stride=1, padding=0, dilation=1, groups=1, activation=None):
        M, Cg, kH, kW = shape_tuple(w_shape, "weight shape", (4,))
        groups = _int(groups, "groups")
        if groups <= 0:
            raise ValueError(f"groups must be >= 1, got {groups}")
        if M % groups:
            raise ValueError(f"out channels M={M} must be divisible by groups={groups}")
        stride = pair(stride, "stride", 1)
        dilation = pair(dilation, "dilation", 1)
        pads = padding4(padding, (kH, kW), stride, dilation)
        return cls(M, Cg, kH, kW, groups, stride, dilation, pads, _epilogue.parse(activation))

    @property
    def clamp(self):
        """(lo, hi) when the activation is a clamp (relu, relu6), else None."""
        ep = self.epilogue
        return ep[1:] if ep is not None and ep[0] == _epilogue.CLAMP else None

    @property
    def C(self):
        return self.Cg * self.groups

    @property
    def is_depthwise(self):
        """groups == C: one input channel per group (any channel multiplier)."""
        return self.Cg == 1

    def output_hw(self, H, W):
        (sh, sw), (dh, dw) = self.stride, self.dilation
        t, b, l, r = self.pads
        eh, ew = dh * (self.kH - 1) + 1, dw * (self.kW - 1) + 1
        if H + t + b < eh or W + l + r < ew:
            raise ValueError(f"kernel {self.kH}x{self.kW} (dilated extent {eh}x{ew}) is larger "
                             f"than the padded input {H + t + b}x{W + l + r}")
        return (H + t + b - eh) // sh + 1, (W + l + r - ew) // sw + 1

    def input_dims(self, x_shape):
        """(N, C, H, W, batched) of an input shape, checked against the weights."""
        dims = shape_tuple(x_shape, "input", (3, 4))
        batched = len(dims) == 4
        N, C, H, W = dims if batched else (1,) + dims
        if C != self.C:
            raise ValueError(f"input has {C} channels but the weights expect "
                             f"C = {self.Cg} x groups {self.groups} = {self.C}")
        return N, C, H, W, batched

    def geometry(self, N, C, H, W):
        """The tuple the C layer takes: (N, C, H, W, M, kH, kW, OH, OW, sh, sw,
        dh, dw, pt, pb, pl, pr, groups)."""
        OH, OW = self.output_hw(H, W)
        if N * self.M * OH * OW * 4 >= _MAX_DIM or N * C * H * W * 4 >= _MAX_DIM:
            raise ValueError(f"input {(N, C, H, W)} with {self.M} output channels is too large "
                             f"to address in 64 bits")
        return (N, C, H, W, self.M, self.kH, self.kW, OH, OW) + self.stride + \
            self.dilation + self.pads + (self.groups,)
