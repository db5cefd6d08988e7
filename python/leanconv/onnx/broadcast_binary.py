"""Add, Sub, Mul and Div of float32 arrays, and the copy of a strided view,
as one bound C call
(_core.BoundBinary, kernels/binary.c) in the schedule's C loop on leanconv's
threads: a transformer's attention adds a bias and a mask broadcast over its
windows and scales strided views of q, which NumPy did on one thread
(~4% of Swin-T's run at one thread, twice that share at two)."""
from __future__ import annotations

import numpy as np

from leanconv import _core, _threads

OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3}
_COPY = 4
_MAX_AXES = 6   # LC_BINARY_DIMS


def _float_strides(view):
    """view's strides in floats, None where one is not a whole float."""
    out = []
    for s in view.strides:
        if s % 4:
            return None
        out.append(s // 4)
    return out


def merged_axes(shape, sa, sb):
    """(shape, a's strides, b's strides) with unit axes dropped and every
    pair of neighbouring axes both operands walk as one merged: a bias
    broadcast over 64 windows of (3, 49, 49) is then 64 x 7203 with b's
    strides (0, 1)."""
    dims, ta, tb = [], [], []
    for n, a, b in zip(shape, sa, sb):
        if n == 1:
            continue
        if dims and ta[-1] == a * n and tb[-1] == b * n:
            dims[-1] *= n
            ta[-1], tb[-1] = a, b
            continue
        dims.append(n)
        ta.append(a)
        tb.append(b)
    return (dims, ta, tb) if dims else ([1], [0], [0])


def _reads_elsewhere(y, x, x_strides, dims):
    """Whether x may overlap y without being y read in y's own order (the C
    loop would then read values it already wrote)."""
    if not np.may_share_memory(y, x):
        return False
    contiguous = list(np.cumprod([1] + dims[:0:-1])[::-1])
    return x.ctypes.data != y.ctypes.data or x_strides != contiguous


def binary_bind(op_type, y, a, b, threads):
    """The bound call writing a op b into y, or None where NumPy must do it:
    not all float32, y not contiguous of the broadcast shape, more axes than
    the C loop takes after merging, or an operand overlapping y otherwise
    than as y itself."""
    a, b = np.asarray(a), np.asarray(b)
    if not (a.dtype == b.dtype == y.dtype == np.float32 and y.flags.c_contiguous and y.size):
        return None
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return None
    if shape != y.shape:
        return None
    sa = _float_strides(np.broadcast_to(a, shape))
    sb = _float_strides(np.broadcast_to(b, shape))
    if sa is None or sb is None:
        return None
    dims, sa, sb = merged_axes(shape, sa, sb)
    if len(dims) > _MAX_AXES or _reads_elsewhere(y, a, sa, dims) or \
            _reads_elsewhere(y, b, sb, dims):
        return None
    return _core.BoundBinary(OPS[op_type], a, sa, b, sb, dims, y.reshape(-1),
                             _threads.resolve(threads))


def copy_bind(y, x, threads):
    """The bound call copying the float32 view x (any strides) into the
    contiguous y of as many elements (x's elements in C order), or None
    where NumPy must do it."""
    if not (x.dtype == y.dtype == np.float32 and y.flags.c_contiguous and y.size == x.size and
            x.size) or np.may_share_memory(y, x):
        return None
    sx = _float_strides(x)
    if sx is None:
        return None
    dims, sx, _ = merged_axes(x.shape, sx, sx)
    if len(dims) > _MAX_AXES:
        return None
    return _core.BoundBinary(_COPY, x, sx, x, sx, dims, y.reshape(-1), _threads.resolve(threads))
