"""Shape and data-movement ops in NumPy: Concat, Flatten, Reshape, Transpose,
Unsqueeze, Constant, ConstantOfShape, Shape, Gather."""
from __future__ import annotations

import numpy as np

from leanconv.onnx.node import as_int_list, unsupported
from leanconv.onnx.program import Step


def build_concat(node, ctx):
    node.allow("axis")
    axis = node.attr("axis", None if node.opset >= 4 else 1)
    if axis is None:
        raise ValueError(f"Concat node {node.name} needs an axis attribute")
    return Step(node, lambda *xs: (np.concatenate(xs, axis=int(axis)),))


def build_flatten(node, ctx):
    node.allow("axis")
    axis = int(node.attr("axis", 1))

    def flatten(x):
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"Flatten node {node.name}: axis {axis} out of range for "
                             f"rank {x.ndim}")
        outer = int(np.prod(x.shape[:a], dtype=np.int64))
        return (x.reshape(outer, -1) if x.size else x.reshape(outer, int(np.prod(x.shape[a:]))),)
    return Step(node, flatten)


def reshape_target(shape_in, shape, allowzero):
    """ONNX Reshape: 0 copies the input's dimension (unless allowzero), -1 is inferred."""
    out = []
    for i, s in enumerate(int(v) for v in shape):
        if s == 0 and not allowzero:
            if i >= len(shape_in):
                raise ValueError(f"Reshape: 0 at position {i} has no input dimension to copy")
            s = shape_in[i]
        out.append(s)
    return tuple(out)


def build_reshape(node, ctx):
    if node.opset < 5:
        node.allow("shape", "consumed_inputs")
        target = as_int_list(node.attr("shape"), "shape", node)
        return Step(node, lambda x: (x.reshape(reshape_target(x.shape, target, False)),),
                    inputs=node.inputs[:1])
    node.allow("allowzero")
    allowzero = int(node.attr("allowzero", 0)) == 1
    return Step(node, lambda x, shape: (x.reshape(reshape_target(x.shape, shape, allowzero)),))


def build_transpose(node, ctx):
    node.allow("perm")
    perm = as_int_list(node.attr("perm"), "perm", node)
    return Step(node, lambda x: (np.transpose(x, perm),))


def unsqueeze(x, axes):
    rank = x.ndim + len(axes)
    norm = sorted(a + rank if a < 0 else a for a in axes)
    if len(set(norm)) != len(norm) or any(not 0 <= a < rank for a in norm):
        raise ValueError(f"Unsqueeze: axes {list(axes)} are invalid for an output of rank {rank}")
    shape = list(x.shape)
    for a in norm:
        shape.insert(a, 1)
    return x.reshape(shape)


def build_unsqueeze(node, ctx):
    if node.opset < 13:
        node.allow("axes")
        axes = as_int_list(node.attr("axes"), "axes", node)
        if axes is None:
            raise ValueError(f"Unsqueeze node {node.name} needs an axes attribute")
        return Step(node, lambda x: (unsqueeze(x, axes),), inputs=node.inputs[:1])
    node.allow()
    return Step(node, lambda x, axes: (unsqueeze(x, [int(a) for a in axes]),))


def squeeze(x, axes):
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    norm = sorted({a + x.ndim if a < 0 else a for a in axes})
    if any(not 0 <= a < x.ndim or x.shape[a] != 1 for a in norm):
        raise ValueError(f"Squeeze: axes {list(axes)} are not unit axes of shape {x.shape}")
    return x.reshape([d for i, d in enumerate(x.shape) if i not in norm])


def build_squeeze(node, ctx):
    """Squeeze (not in the required list, but PyTorch exports it around 1-D pooling)."""
    if node.opset < 13:
        node.allow("axes")
        axes = as_int_list(node.attr("axes"), "axes", node)
        return Step(node, lambda x: (squeeze(x, axes),), inputs=node.inputs[:1])
    node.allow()
    return Step(node, lambda x, axes=None: (squeeze(x, None if axes is None else
                                                    [int(a) for a in axes]),))


_CONSTANT_ATTRS = {
    "value": lambda v: np.asarray(v),
    "value_float": lambda v: np.asarray(v, dtype=np.float32),
    "value_floats": lambda v: np.asarray(v, dtype=np.float32),
    "value_int": lambda v: np.asarray(v, dtype=np.int64),
    "value_ints": lambda v: np.asarray(v, dtype=np.int64),
    "value_string": lambda v: np.asarray(v, dtype=object),
    "value_strings": lambda v: np.asarray(v, dtype=object),
}


def build_constant(node, ctx):
    if "sparse_value" in node.attrs:
        raise unsupported(f"Constant with sparse_value (node {node.name})")
    node.allow(*_CONSTANT_ATTRS)
    if len(node.attrs) != 1:
        raise ValueError(f"Constant node {node.name} needs exactly one value attribute")
    (key, raw), = node.attrs.items()
    value = _CONSTANT_ATTRS[key](raw)
    return Step(node, lambda: (value,), inputs=[])


def build_constantofshape(node, ctx):
    node.allow("value")
    fill = node.attr("value")
    fill = np.zeros(1, dtype=np.float32) if fill is None else np.asarray(fill).reshape(-1)
    if fill.size != 1:
        raise ValueError(f"ConstantOfShape node {node.name}: value must hold one element")

    def make(shape):
        dims = tuple(int(s) for s in np.asarray(shape).reshape(-1))
        if any(d < 0 for d in dims):
            raise ValueError(f"ConstantOfShape node {node.name}: negative dimension in {dims}")
        return (np.full(dims, fill[0], dtype=fill.dtype),)
    return Step(node, make)


def build_shape(node, ctx):
    node.allow("start", "end")
    start, end = node.attr("start", 0), node.attr("end")

    def shape(x):
        return (np.array(x.shape[slice(start, end)], dtype=np.int64),)
    return Step(node, shape)


def build_gather(node, ctx):
    node.allow("axis")
    axis = int(node.attr("axis", 0))

    def gather(data, indices):
        idx = np.asarray(indices, dtype=np.int64)
        size = data.shape[axis]
        if idx.size and (idx.min() < -size or idx.max() >= size):
            raise IndexError(f"Gather node {node.name}: index out of range for axis size {size}")
        return (np.asarray(np.take(data, idx, axis=axis)),)
    return Step(node, gather)
