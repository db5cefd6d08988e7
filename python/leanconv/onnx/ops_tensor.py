"""Shape and data-movement ops in NumPy: Concat, Flatten, Reshape, Transpose,
Unsqueeze, Constant, ConstantOfShape, Shape, Gather, GatherND, ScatterND."""
from __future__ import annotations

import numpy as np

from leanconv.onnx.node import as_int_list, unsupported
from leanconv.onnx.broadcast_binary import concat_bind, copy_bind
from leanconv.onnx.ops_reshape_copy import reshape_copy
from leanconv.onnx.program import Step


def build_concat(node, ctx):
    node.allow("axis")
    axis = node.attr("axis", None if node.opset >= 4 else 1)
    if axis is None:
        raise ValueError(f"Concat node {node.name} needs an axis attribute")
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    step = Step(node, lambda *xs: (np.concatenate(xs, axis=int(axis)),),
                into=lambda outs, *xs: np.concatenate(xs, axis=int(axis), out=outs[0]),
                bind=lambda outs, *xs: concat_bind(outs[0], xs, int(axis), settings.threads))
    step.concat_axis = int(axis)
    return step


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
    return Step(node, flatten, view=True, **reshape_copy(ctx.settings))


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
                    inputs=node.inputs[:1], view=True, **reshape_copy(ctx.settings))
    node.allow("allowzero")
    allowzero = int(node.attr("allowzero", 0)) == 1
    return Step(node, lambda x, shape: (x.reshape(reshape_target(x.shape, shape, allowzero)),),
                view=True, **reshape_copy(ctx.settings))


def build_transpose(node, ctx):
    node.allow("perm")
    perm = as_int_list(node.attr("perm"), "perm", node)
    return Step(node, lambda x: (np.transpose(x, perm),), view=True)


def _axes_list(axes):
    """An axes input as a list of ints; a scalar is one axis (onnxruntime takes
    that too, though the spec asks for 1-D)."""
    return [int(a) for a in np.asarray(axes).reshape(-1)]


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
        return Step(node, lambda x: (unsqueeze(x, axes),), inputs=node.inputs[:1], view=True,
                    **reshape_copy(ctx.settings))
    node.allow()
    return Step(node, lambda x, axes: (unsqueeze(x, _axes_list(axes)),), view=True,
                **reshape_copy(ctx.settings))


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
        return Step(node, lambda x: (squeeze(x, axes),), inputs=node.inputs[:1], view=True,
                    **reshape_copy(ctx.settings))
    node.allow()
    return Step(node, lambda x, axes=None: (squeeze(x, None if axes is None else
                                                    _axes_list(axes)),), view=True,
                **reshape_copy(ctx.settings))


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

    def check(data, idx):
        if not -data.ndim <= axis < data.ndim:
            raise ValueError(f"Gather node {node.name}: axis {axis} out of range for rank "
                             f"{data.ndim}")
        size = data.shape[axis]
        if idx.size and (idx.min() < -size or idx.max() >= size):
            raise IndexError(f"Gather node {node.name}: index out of range for axis size {size}")

    fixed = ctx.const(node.input(1))
    if fixed is not None and np.ndim(fixed) == 0 and np.asarray(fixed).dtype.kind in "iu":
        # one constant index: a view of its slice, not a copy (a transformer's
        # q, k and v selected from one projection: 10.8 ms of ViT-B's run copied)
        i = int(fixed)

        def select(data):
            check(data, np.asarray(i))
            return (data[(slice(None),) * (axis % data.ndim) + (i,)],)
        return Step(node, select, inputs=node.inputs[:1], view=True)

    def gather(data, indices):
        idx = np.asarray(indices, dtype=np.int64)
        check(data, idx)
        return (np.asarray(np.take(data, idx, axis=axis)),)
    return Step(node, gather)


def _ints(v):
    return None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]


def slice_array(x, starts, ends, axes=None, steps=None):
    """ONNX Slice: Python slice semantics per listed axis (clamped bounds)."""
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ValueError("Slice: steps must not be 0")
        index[a + x.ndim if a < 0 else a] = slice(s, e, st)
    return x[tuple(index)]


def build_slice(node, ctx):
    if node.opset < 10:
        node.allow("starts", "ends", "axes")
        starts, ends = node.attr("starts"), node.attr("ends")
        axes = node.attr("axes")
        return Step(node, lambda x: (slice_array(x, starts, ends, axes),),
                    inputs=node.inputs[:1], view=True)
    node.allow()
    return Step(node, lambda x, starts, ends, axes=None, steps=None: (
        slice_array(x, _ints(starts), _ints(ends), _ints(axes), _ints(steps)),), view=True)


def split_sizes(length, split, n_out, num_outputs, name):
    if split is not None:
        if sum(split) != length:
            raise ValueError(f"Split node {name}: split {split} does not sum to {length}")
        return split
    parts = num_outputs or n_out
    chunk = -(-length // parts)
    if num_outputs is None and length % parts:
        raise ValueError(f"Split node {name}: {length} does not divide into {parts} outputs")
    return [min(chunk, length - i * chunk) for i in range(parts)]


def build_split(node, ctx):
    node.allow("axis", "split", "num_outputs")
    axis = int(node.attr("axis", 0))
    n_out = len(node.outputs)
    num_outputs = node.attr("num_outputs")
    attr_split = node.attr("split") if node.opset < 13 else None

    def split(x, sizes=None):
        a = axis + x.ndim if axis < 0 else axis
        s = split_sizes(x.shape[a], _ints(sizes) if sizes is not None else attr_split, n_out,
                        num_outputs, node.name)
        bounds = np.cumsum([0] + list(s))
        index = [slice(None)] * x.ndim
        outs = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            index[a] = slice(int(lo), int(hi))
            outs.append(x[tuple(index)])
        return tuple(outs)
    return Step(node, split, inputs=node.inputs[:2] if node.opset >= 13 else node.inputs[:1],
                view=True)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad_widths(nd, pads, axes):
    """[(before, after)] per axis of an ONNX Pad's pads over `axes`."""
    axes = list(range(nd)) if axes is None else [a + nd if a < 0 else a for a in axes]
    width = [(0, 0)] * nd
    k = len(axes)
    for i, a in enumerate(axes):
        width[a] = (pads[i], pads[k + i])
    return width


def pad_in_place(y, x, width, mode, value):
    """y (x padded by `width`, y's shape) written with slice copies, no
    temporary: x into the middle, then each axis's borders from what is
    already in y, axis by axis (the order np.pad fills them in); one pass
    over y.  np.pad and a copy into the arena made two, through its generic
    per-axis code: 15 ms of a fast-neural-style network's 131 at 224 x 224
    (reflect pads of 1-4 around 32-128 planes).  Returns False, writing
    nothing, where this does not apply: a negative (cropping) pad, wrap, or
    a reflect pad as wide as its axis."""
    if mode not in ("constant", "edge", "reflect") or any(b < 0 or e < 0 for b, e in width):
        return False
    if mode == "reflect" and any((b or e) and max(b, e) >= n for (b, e), n in zip(width, x.shape)):
        return False
    y[tuple(slice(b, b + n) for (b, _), n in zip(width, x.shape))] = x
    for a, ((b, e), n) in enumerate(zip(width, x.shape)):
        if not (b or e):
            continue
        # axes before a are whole by now, those after it only their middle
        head = tuple(slice(None) for _ in range(a))
        tail = tuple(slice(wb, wb + wn) for (wb, _), wn in zip(width[a + 1:], x.shape[a + 1:]))

        def at(s, head=head, tail=tail):
            return head + (s,) + tail
        if mode == "constant":
            y[at(slice(0, b))] = value
            y[at(slice(b + n, b + n + e))] = value
        elif mode == "edge":
            y[at(slice(0, b))] = y[at(slice(b, b + 1))]
            y[at(slice(b + n, b + n + e))] = y[at(slice(b + n - 1, b + n))]
        else:   # reflect: index b - 1 - i from b + 1 + i, b + n + i from b + n - 2 - i
            y[at(slice(0, b))] = y[at(slice(2 * b, b, -1))]
            stop = b + n - 2 - e
            y[at(slice(b + n, b + n + e))] = y[at(slice(b + n - 2, stop if stop >= 0 else None,
                                                       -1))]
    return True


def build_pad(node, ctx):
    node.allow("mode", "pads", "value")
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise ValueError(f"Pad node {node.name}: mode must be one of {sorted(_PAD_MODES)}, "
                         f"got {mode!r}")

    def pad_with(x, pads, value, axes):
        nd = x.ndim
        width = _pad_widths(nd, pads, axes)
        # negative pads crop
        crop = tuple(slice(-b if b < 0 else None, e if e < 0 else None) for b, e in width)
        width = [(max(b, 0), max(e, 0)) for b, e in width]
        x = x[crop]
        if mode == "constant":
            return np.pad(x, width, mode="constant", constant_values=value)
        return np.pad(x, width, mode=_PAD_MODES[mode])

    def into(outs, x, pads, value, axes):
        if not pad_in_place(outs[0], x, _pad_widths(x.ndim, pads, axes), mode, value):
            np.copyto(outs[0], pad_with(x, pads, value, axes))

    if node.opset < 11:
        pads = as_int_list(node.attr("pads"), "pads", node)
        value = float(node.attr("value", 0.0))
        return Step(node, lambda x: (pad_with(x, pads, value, None),), inputs=node.inputs[:1],
                    into=lambda outs, x: into(outs, x, pads, value, None))

    def scalar(value):
        return 0 if value is None or np.asarray(value).size == 0 else np.asarray(value).reshape(-1)[0]

    def pad(x, pads, value=None, axes=None):
        return (pad_with(x, _ints(pads), scalar(value), _ints(axes)),)

    def pad_into(outs, x, pads, value=None, axes=None):
        into(outs, x, _ints(pads), scalar(value), _ints(axes))

    def shape_only(x, pads, value=None, axes=None):
        widths = _pad_widths(x.ndim, _ints(pads), _ints(axes))
        return (np.zeros([n + b + e for n, (b, e) in zip(x.shape, widths)], x.dtype),)

    settings = ctx.settings

    def pad_bind(outs, x, pads, value=None, axes=None):
        """A pad by nothing (Swin's to whole windows, where the image is whole
        windows already) as a bound C copy."""
        widths = _pad_widths(x.ndim, _ints(pads), _ints(axes))
        return copy_bind(outs[0], x, settings.threads) if not any(b or e for b, e in widths) \
            else None
    return Step(node, pad, into=pad_into, shape_only=shape_only, bind=pad_bind)


def build_expand(node, ctx):
    node.allow()

    def expand(x, shape):
        target = _ints(shape)
        out = np.broadcast_shapes(x.shape, tuple(target))
        return (np.array(np.broadcast_to(x, out)),)
    return Step(node, expand)


def build_tile(node, ctx):
    node.allow()
    return Step(node, lambda x, repeats: (np.tile(x, _ints(repeats)),))


def _nd_indices(ix, dims, node):
    """GatherND's and ScatterND's indices (..., k) into axes of sizes `dims`,
    checked and with negative ones wrapped."""
    dims = np.array(dims)
    if ix.size and ((ix < -dims).any() or (ix >= dims).any()):
        raise IndexError(f"{node.op_type} node {node.name}: index out of range")
    return np.where(ix < 0, ix + dims, ix)


def build_gathernd(node, ctx):
    node.allow("batch_dims")
    b = int(node.attr("batch_dims", 0))

    def gathernd(data, indices):
        idx = np.asarray(indices, dtype=np.int64)
        k = idx.shape[-1]
        batch = data.shape[:b]
        nb = int(np.prod(batch, dtype=np.int64))
        d = data.reshape((nb,) + data.shape[b:])
        ix = idx.reshape((nb, -1, k))
        ix = _nd_indices(ix, data.shape[b:b + k], node)
        out = np.stack([d[i][tuple(ix[i].T)] for i in range(nb)]) if nb else \
            np.zeros((0,) + ix.shape[1:2] + data.shape[b + k:], data.dtype)
        return (out.reshape(idx.shape[:-1] + data.shape[b + k:]),)
    return Step(node, gathernd)


_SCATTER_REDUCTIONS = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum,
                       "min": np.minimum}


def build_scatternd(node, ctx):
    """ScatterND: a copy of data with updates written (or reduced) at
    indices.  Swin Transformer's exports build their shifted-window mask
    with it (folded at prepare: its inputs are constants)."""
    node.allow("reduction")
    reduction = node.attr("reduction", "none")
    if reduction not in _SCATTER_REDUCTIONS:
        raise ValueError(f"ScatterND node {node.name}: reduction must be one of "
                         f"{sorted(_SCATTER_REDUCTIONS)}, got {reduction!r}")
    combine = _SCATTER_REDUCTIONS[reduction]

    def scatternd(data, indices, updates):
        idx = np.asarray(indices, dtype=np.int64)
        k = idx.shape[-1] if idx.ndim else 0
        if idx.ndim < 1 or not 1 <= k <= data.ndim:
            raise ValueError(f"ScatterND node {node.name}: indices of shape {idx.shape} for "
                             f"data of rank {data.ndim}")
        want = idx.shape[:-1] + data.shape[k:]
        if updates.shape != want:
            raise ValueError(f"ScatterND node {node.name}: updates of shape {updates.shape}, "
                             f"expected {want}")
        at = tuple(_nd_indices(idx.reshape(-1, k), data.shape[:k], node).T)
        out = np.array(data, copy=True)
        rows = updates.reshape((-1,) + data.shape[k:]).astype(data.dtype, copy=False)
        if combine is None:
            out[at] = rows
        else:
            combine.at(out, at, rows)
        return (out,)
    return Step(node, scatternd)


def build_range(node, ctx):
    node.allow()
    return Step(node, lambda start, limit, delta: (np.arange(
        start.item(), limit.item(), delta.item(), dtype=start.dtype),))
