"""An inverted-residual block's expanding 1x1 Conv and the depthwise Conv
after it as one step (leanconv._ir_block, kernels/ir_block.c), where that
pays:

    t = act_e(Conv_1x1(x) [+ BatchNormalization])      (a built Conv step)
    y = act_d(Conv_depthwise(t) [+ BatchNormalization]) (the next one)

becomes one InvertedResidual step reading x and writing y, computed band by
band of y's rows: the expanded tensor t is never stored, so the memory plan
drops it and counts the band buffers (the step's workspace) instead.  Where
the next Conv step is the block's projection,

    z = act_p(Conv_1x1(y) [+ BatchNormalization] [+ residual])

and the C rule says that pays too (lc_ir_block_project_pays: y would not
stay in L2 either), it joins the step, which then writes z and reads the
residual as its second input; y is not stored either.  A depthwise step
left over (no expanding 1x1 before it: MobileNetV2's first block) and its
projection become such a step too where that rule says so, reading x
directly:

    y = act_d(Conv_depthwise(x)), z = act_p(Conv_1x1(y) ...)  ->  one step

Runs on the Conv steps graph.py built (BatchNormalization, per-channel
affines and the activation already folded in).  Refuses -- leaves the two
steps as they are -- unless: t is read by the depthwise alone and is not a
graph output; neither Conv adds a residual; both have constant float32 2-D
weights, the first 1x1 with stride 1, no padding, one group, the second one
input channel per group with explicit pads (auto_pad SAME pads depend on
the input size); the 1x1's input has a static shape (ONNX shape inference
at prepare); and the C rule says fusing pays on this CPU for that shape
(lc_ir_block_pays: the expanded tensor would not stay in one core's L2
between the steps)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from leanconv._ir_block import InvertedResidual, fusion_info
from leanconv.onnx.program import Step

OP_TYPE = "InvertedResidual"   # the fused step's op type (leanconv's own, never a model's)


class _Node:
    """What a Step takes from a node."""

    def __init__(self, name, inputs, outputs):
        self.op_type, self.name, self.inputs, self.outputs = OP_TYPE, name, inputs, outputs


def static_shapes(model):
    """name -> static shape of every value ONNX shape inference can tell,
    from the graph's structure alone (initializers as typed inputs, not
    copied); {} if inference fails."""
    g = model.graph
    inputs = {vi.name for vi in g.input}
    typed = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
             for t in g.initializer if t.name not in inputs]
    try:
        m = helper.make_model(helper.make_graph(list(g.node), "shapes", list(g.input) + typed,
                                                list(g.output)),
                              opset_imports=list(model.opset_import))
        m.ir_version = model.ir_version
        inferred = onnx.shape_inference.infer_shapes(m).graph
    except Exception:   # a graph inference cannot follow: no fusion, nothing wrong
        return {}
    shapes = {}
    for vi in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if all(d > 0 for d in dims):
                shapes[vi.name] = tuple(dims)
    return shapes


def _pointwise(op, residual=False):
    """The ConvOp is a plain 1x1: stride 1, no padding, one group, 2-D (with
    a residual Add folded in only where `residual`)."""
    ws = op.weight_shape
    return (ws is not None and len(ws) == 4 and ws[2:] == (1, 1) and op.group == 1 and
            op.auto_pad in ("NOTSET", "VALID") and (residual or not op.residual) and
            all(v is None or all(i == 1 for i in v) for v in (op.strides, op.dilations)) and
            (op.pads is None or not any(op.pads)))


def _projection(op, channels):
    """The ConvOp is a plain 1x1 over `channels` inputs (a residual allowed)."""
    return _pointwise(op, residual=True) and op.weight_shape[1] == channels


def _depthwise(op, channels):
    ws = op.weight_shape
    return (ws is not None and len(ws) == 4 and ws[:2] == (channels, 1) and
            op.group == channels and op.auto_pad == "NOTSET" and not op.residual)


def _reader_counts(steps, outputs):
    counts = {}
    for s in steps:
        for n in s.inputs:
            if n:
                counts[n] = counts.get(n, 0) + 1
    for n in outputs:
        counts[n] = counts.get(n, 0) + 1
    return counts


def fuse_inverted_residual(steps, outputs, shapes, settings):
    """The step list with every (1x1 Conv step, depthwise Conv step) pair that
    passes the checks above as one InvertedResidual step, placed where the
    depthwise was.  shapes() -> static_shapes' dict, asked for once, when a
    pair is found."""
    readers = _reader_counts(steps, outputs)
    by_input = {}
    for i, s in enumerate(steps):
        if s.conv is not None and s.inputs:
            by_input.setdefault(s.inputs[0], []).append(i)
    replace, removed, known = {}, set(), None
    for i, a in enumerate(steps):
        if a.conv is None or not _pointwise(a.conv) or len(a.outputs) != 1 or i in removed:
            continue
        t = a.outputs[0]
        js = [j for j in by_input.get(t, []) if j > i]
        if readers.get(t) != 1 or len(js) != 1:
            continue
        b = steps[js[0]]
        if b.conv is None or not _depthwise(b.conv, a.conv.weight_shape[0]) or \
                len(b.outputs) != 1 or b.inputs != [t]:
            continue
        known = shapes() if known is None else known
        x_shape = known.get(a.inputs[0])
        if x_shape is None or len(x_shape) != 4 or not _pays(a.conv, b.conv, x_shape, settings):
            continue
        k = _projection_step(steps, by_input, readers, js[0], known)
        c = steps[k] if k is not None and _pays(a.conv, b.conv, x_shape, settings,
                                                steps[k].conv) else None
        block = _block(a.conv, b.conv, x_shape, c.conv if c is not None else None)
        if block is None:
            continue
        last = js[0] if c is None else k
        replace[last] = _step(a, b, c, block, settings)
        removed.update((i, js[0], last))
    known = _fuse_projections(steps, by_input, readers, replace, removed, shapes, known, settings)
    if not replace:
        return steps
    return [replace.get(k, s) for k, s in enumerate(steps) if k in replace or k not in removed]


def _fuse_projections(steps, by_input, readers, replace, removed, shapes, known, settings):
    """Into replace / removed: every depthwise step not fused above whose
    projection joins it (the C rule, no expanding 1x1).  Returns `known`
    (the static shapes, if asked for)."""
    for j, b in enumerate(steps):
        if j in removed or b.conv is None or not b.inputs or len(b.outputs) != 1 or \
                b.conv.weight_shape is None or len(b.inputs) != 1 or \
                not _depthwise(b.conv, b.conv.weight_shape[0]):
            continue
        known = shapes() if known is None else known
        x_shape = known.get(b.inputs[0])
        if x_shape is None or len(x_shape) != 4:
            continue
        k = _projection_step(steps, by_input, readers, j, known)
        if k is None or k in removed or \
                not _pays(None, b.conv, x_shape, settings, steps[k].conv):
            continue
        block = _block(None, b.conv, x_shape, steps[k].conv)
        if block is None:
            continue
        replace[k] = _step(None, b, steps[k], block, settings)
        removed.update((j, k))
    return known


def _projection_step(steps, by_input, readers, j, known):
    """The index of the Conv step projecting depthwise step j's output (its
    sole reader, a plain 1x1 whose residual, if any, has the output's static
    shape), or None."""
    y = steps[j].outputs[0]
    ks = [k for k in by_input.get(y, []) if k > j]
    if readers.get(y) != 1 or len(ks) != 1:
        return None
    c = steps[ks[0]]
    if c.conv is None or not _projection(c.conv, steps[j].conv.weight_shape[0]) or \
            len(c.outputs) != 1 or c.inputs[0] != y or len(c.inputs) != 1 + bool(c.conv.residual):
        return None
    if c.conv.residual and (known.get(c.inputs[-1]) is None or
                            known.get(c.inputs[-1]) != known.get(c.outputs[0])):
        return None
    return ks[0]


def _pays(a, b, x_shape, settings, c=None):
    """The C rule, from the shapes alone (no weights loaded): for the pair,
    or with c, for the projection joining it (a None: the depthwise and c
    alone)."""
    we_shape, wd_shape = (None if a is None else a.weight_shape), b.weight_shape
    t_shape = tuple(x_shape) if a is None else (x_shape[0], we_shape[0]) + tuple(x_shape[2:])
    try:
        stride, pads, dilation = b.geometry(t_shape, wd_shape)
        info = fusion_info(we_shape, wd_shape, stride, pads, dilation, x_shape, settings.threads,
                           None if c is None else c.weight_shape)
    except ValueError:   # shapes the block cannot take (a kernel larger than the image)
        return False
    return info["why"] is None and info["project_pays" if c is not None else "pays"]


def _block(a, b, x_shape, c=None):
    """The InvertedResidual of ConvOps a (1x1, or None: none), b (depthwise)
    and c (the projecting 1x1, or None) for inputs of x_shape, or None when
    their weights are not float32."""
    we, be = a._constants() if a is not None else (None, None)
    wd, bd = b._constants()
    wp, bp = c._constants() if c is not None else (None, None)
    for op in (a, b, c):   # the block holds what it needs
        if op is not None:
            op.weight = op.bias = None
    if any(w is not None and w.dtype != np.float32 for w in (we, wd, wp)):
        return None
    t_shape = tuple(x_shape) if we is None else (x_shape[0], we.shape[0]) + tuple(x_shape[2:])
    stride, pads, dilation = b.geometry(t_shape, wd.shape)
    return InvertedResidual(we, be, None if a is None else a.activation, wd, bd, b.activation,
                            stride, pads, dilation,
                            project=None if c is None else (wp, bp, c.activation))


def _step(a, b, c, block, settings):
    last = b if c is None else c
    x, y = (b if a is None else a).inputs[0], last.outputs[0]
    inputs = [x] + ([c.inputs[-1]] if c is not None and c.conv.residual else [])

    def run(xv, rv=None):
        return (block(xv, threads=settings.threads, residual=rv),)

    def into(outs, xv, rv=None):
        block(xv, out=outs[0], threads=settings.threads, residual=rv)

    def bind(outs, xv, rv=None):
        return block.bind(xv, outs[0], threads=settings.threads, residual=rv)

    fused = [part for s in (a, b, c) if s is not None for part in s.label().split("+")]
    name = "+".join(s.name for s in (a, b, c) if s is not None)
    step = Step(_Node(name, inputs, [y]), run, fused=fused, into=into,
                workspace=lambda xv, rv=None: block.workspace_bytes(xv.shape, settings.threads),
                held=block.weights, bind=bind)
    step.outputs = [y]
    return step
