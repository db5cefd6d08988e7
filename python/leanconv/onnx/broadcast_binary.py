"""Add, Sub, Mul and Div of float32 arrays, and copies of strided views, as
one bound C call (_core.BoundBinary, kernels/binary.c) in the schedule's C
loop on leanconv's threads: a transformer's attention adds a bias and a mask
broadcast over its windows and scales strided views of q, Swin's cyclic
shifts are Concats of slices, and permuted views are copied by Reshapes --
all of which NumPy did on one thread (~6% of Swin-T's run at one thread,
twice that share at two)."""
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


def merged_axes(shape, *strides):
    """(shape, [each operand's strides]) with unit axes dropped and every
    pair of neighbouring axes all operands walk as one merged: a bias
    broadcast over 64 windows of (3, 49, 49) is then 64 x 7203 with the
    bias's strides (0, 1)."""
    dims, merged = [], [[] for _ in strides]
    for k, n in enumerate(shape):
        if n == 1:
            continue
        if dims and all(m[-1] == s[k] * n for m, s in zip(merged, strides)):
            dims[-1] *= n
            for m, s in zip(merged, strides):
                m[-1] = s[k]
            continue
        dims.append(n)
        for m, s in zip(merged, strides):
            m.append(s[k])
    # one element: any stride reads it (1, as y's last must be)
    return (dims, merged) if dims else ([1], [[1] for _ in strides])


def _reads_elsewhere(y, y_strides, x, x_strides):
    """Whether x may overlap y without being y read in y's own order (the C
    loop would then read values it already wrote)."""
    if not np.may_share_memory(y, x):
        return False
    return x.ctypes.data != y.ctypes.data or x_strides != y_strides


def _bound(op, y, a, b, threads):
    """The bound call for y = a op b, all three of y's shape once broadcast
    (a and b float32 arrays), or None where the C loop cannot take them."""
    views = [np.broadcast_to(v, y.shape) if v.shape != y.shape else v for v in (y, a, b)]
    strides = [_float_strides(v) for v in views]
    if any(s is None for s in strides):
        return None
    dims, (sy, sa, sb) = merged_axes(y.shape, *strides)
    if sy[-1] != 1:   # y's last axis was a unit one (a Concat's one-column slice): put it back
        dims, sy, sa, sb = dims + [1], sy + [1], sa + [1], sb + [1]
    if len(dims) > _MAX_AXES or \
            _reads_elsewhere(y, sy, a, sa) or _reads_elsewhere(y, sy, b, sb):
        return None
    return _core.BoundBinary(op, a, sa, b, sb, dims, y, sy, _threads.resolve(threads))


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
    return _bound(OPS[op_type], y, a, b, threads)


def copy_bind(y, x, threads):
    """The bound call copying the float32 view x (any strides) into y: y
    contiguous of as many elements (x's in C order), or a writeable view of
    x's shape whose last axis is contiguous (a Concat's slice of its output);
    None where NumPy must do it."""
    if not (x.dtype == y.dtype == np.float32 and x.size and y.flags.writeable) or \
            np.may_share_memory(y, x):
        return None
    if y.shape != x.shape:
        if not (y.flags.c_contiguous and y.size == x.size):
            return None
        y = y.reshape(x.shape)
    return _bound(_COPY, y, x, x, threads)


def concat_bind(y, xs, axis, threads):
    """One bound call (a BoundSequence of copies) writing the concatenation
    of float32 arrays xs along `axis` into y, or None where NumPy must."""
    a = axis % y.ndim if y.ndim else 0
    calls, at = [], 0
    for x in xs:
        n = x.shape[a] if x.ndim == y.ndim else -1
        if n < 0 or x.shape[:a] + x.shape[a + 1:] != y.shape[:a] + y.shape[a + 1:]:
            return None
        if n:
            call = copy_bind(y[(slice(None),) * a + (slice(at, at + n),)], x, threads)
            if call is None:
                return None
            calls.append(call)
        at += n
    if at != (y.shape[a] if y.ndim else 0) or not calls:
        return None
    return calls[0] if len(calls) == 1 else _core.BoundSequence(*calls)
