"""A frozen graph as a leanconv.onnx Program: the steps that leanconv.onnx's
Schedule compiles, per input shape, into one static activation arena
(liveness, buffers reused, elementwise steps in place, a Concat's inputs
written into it, consecutive convolutions one C loop over bound calls) --
the same machinery an ONNX model runs on, not a second one.

Each node of the fx graph becomes one step over NumPy arrays (views of the
arena at run time; torch.from_numpy wraps them for torch's ops, no copy):
- a FrozenConv2d on leanconv: a Conv step (ConvStep, bound to its buffers
  once), then, if torch runs part of its epilogue (a residual add or an
  activation torch computes faster), an elementwise step writing in place;
- a FrozenPool2d: leanconv's C pooling straight into its buffer;
- a FrozenDense (a classifier head): leanconv's C dense kernel, likewise;
- a ChannelLayerNorm (channels_first.py): leanconv._channel_norm (C) straight into its buffer;
- a shape query (x.size(), x.shape, x.dim()): folded, computed once per shape;
- a view (view, reshape, flatten, permute, getitem, chunk, ...): taken once
  of its input's buffer;
- torch.cat: into its buffer (out=), its inputs placed in it where they can be;
- anything else: the call as the graph makes it, its result copied into the
  arena (a model's own Linear, BatchNorm, layers left on torch, ...).

build() refuses (returns the reason; the module then runs its fx code as
before) a graph a static plan cannot honour: values of unknown kind, an
in-place op whose target another node also reads (the arena keeps values
that torch would have aliased apart), a random op (folding would freeze its
draw), a tuple result used whole, or outputs that are not tensors."""
from __future__ import annotations

import builtins
import inspect
import operator
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import map_aggregate, map_arg
from torch.utils import _pytree as pytree

from leanconv import _bound_pool, _scratch
from leanconv.torch.frozen import patterns
from leanconv.torch.frozen.frozen_conv import FrozenConv2d
from leanconv.torch.frozen.frozen_dense import FrozenDense
from leanconv._channel_norm import channel_layernorm_workspace
from leanconv.torch.frozen.frozen_norm import ChannelLayerNorm
from leanconv.torch.frozen.frozen_pool import FrozenPool2d

# Torch ops whose result is a view of their first argument, decided by shapes
# and strides alone: the schedule takes such a view once.  It checks that the
# result does share memory; otherwise the step runs each call, as a copy
# (dropout returns its input itself in eval mode, fresh values in training).
VIEW_METHODS = frozenset({
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute",
    "transpose", "t", "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "contiguous",
    "chunk", "split", "unbind", "select", "movedim", "detach", "unfold", "__getitem__"})
VIEW_FUNCTIONS = frozenset({
    torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze,
    torch.unsqueeze, torch.narrow, torch.chunk, torch.split, torch.unbind, torch.select,
    torch.movedim, torch.detach, operator.getitem, F.dropout})
_DROPOUT = nn.modules.dropout._DropoutNd
VIEW_MODULES = (nn.Flatten, nn.Unflatten, nn.Identity, _DROPOUT)
# Queries of a tensor's metadata: folded, whatever computed the tensor.
SHAPE_METHODS = frozenset({"size", "dim", "ndimension", "numel", "nelement", "stride"})
SHAPE_ATTRS = frozenset({"shape", "dtype", "ndim", "device", "is_cuda", "layout"})
# Ops that draw random numbers: a folded step would draw once for good.
RANDOM = frozenset({torch.rand, torch.randn, torch.randint, torch.randperm, torch.normal,
                    torch.bernoulli, torch.multinomial, torch.rand_like, torch.randn_like,
                    torch.randint_like, "random_", "uniform_", "normal_", "bernoulli_",
                    "exponential_", "geometric_", "cauchy_", "log_normal_"})


class Refused(Exception):
    """The graph has something a static plan cannot honour."""


def _kind(node):
    """'tensor', ('tensors', n) for a tuple/list of n tensors, or 'other'."""
    tm = node.meta.get("tensor_meta")
    if tm is not None and hasattr(tm, "shape"):
        return "tensor"
    if isinstance(tm, (tuple, list)) and tm and all(hasattr(t, "shape") for t in tm):
        return ("tensors", len(tm))
    t = node.meta.get("type")
    if t is None:
        raise Refused(f"node {node.name} has no recorded type")
    if isinstance(t, type) and issubclass(t, torch.Tensor):
        raise Refused(f"node {node.name}: a tensor without recorded shape")
    return "other"      # no tensor in it (shape propagation records any tensor it holds)


def _to_torch(v):
    return torch.from_numpy(v) if type(v) is np.ndarray else v


def _to_numpy(v):
    if isinstance(v, torch.Tensor):
        if type(v) is not torch.Tensor or v.device.type != "cpu":
            raise Refused(f"a {type(v).__name__} on {v.device} in the graph")
        return v.detach().numpy()   # TypeError for dtypes NumPy lacks (bfloat16)
    return v


class _Slot:
    """Where the i-th input of a step goes in its call's arguments."""
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


def _fill(template, vals):
    return map_aggregate(template, lambda a: _to_torch(vals[a.i]) if type(a) is _Slot else a)


def _call_method(name):
    def call(obj, *args, **kwargs):
        return getattr(obj, name)(*args, **kwargs)
    return call


def _check_shapes(outs, vals):
    for o, v in zip(outs, vals):
        if o is not None and (not isinstance(v, np.ndarray) or v.shape != o.shape):
            # a shape that follows the data: the plan does not hold for this call
            raise ShapeChanged(f"a step gave {getattr(v, 'shape', type(v).__name__)} "
                               f"where the plan has {o.shape}")


class ShapeChanged(RuntimeError):
    """A step's result does not have the shape compiled for (data-dependent shapes)."""


class _TorchCall:
    """One fx node run by torch: fn(*arrays) -> tuple of outputs."""

    def __init__(self, fn, args, kwargs, n_out):
        self.target, self.args, self.kwargs, self.n_out = fn, args, kwargs, n_out
        self.last_bytes = 0

    def __call__(self, *vals):
        r = self.target(*_fill(self.args, vals), **_fill(self.kwargs, vals))
        outs = (r,) if self.n_out is None else tuple(r)
        outs = tuple(_to_numpy(v) for v in outs)
        self.last_bytes = sum(v.nbytes for v in outs if isinstance(v, np.ndarray))
        return outs

    def into(self, outs, *vals):
        vals_out = self(*vals)
        _check_shapes(outs, vals_out)
        for o, v in zip(outs, vals_out):
            if o is not None:
                np.copyto(o, v)

    def workspace(self, *vals):
        """Bytes of a call's own result, copied into the arena after (its last run's)."""
        return self.last_bytes


def _cat_into(dim):
    def into(outs, *vals):
        if outs[0] is not None:
            torch.cat([torch.from_numpy(v) for v in vals], dim, out=torch.from_numpy(outs[0]))
    return into


class ConvStep:
    """What a schedule asks of a Conv step (as of leanconv.onnx's ConvOp),
    for a FrozenConv2d: its plan is packed already, so the schedule packs
    nothing (weight_shape None), binds the call to its buffers once, and
    lends it the calling thread's workspace."""
    weight_shape = None

    def __init__(self, module, settings):
        self.m, self.settings = module, settings

    @property
    def last_plan(self):
        return self.m.plan

    @property
    def packed_bytes(self):
        return self.m.packed_bytes

    def shape_only(self, x, *rest):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4:
            raise Refused(f"a frozen convolution gets a {getattr(x, 'dtype', type(x))} input")
        m = self.m.for_shape(x.shape)
        m._geometry(tuple(x.shape), 1)   # a wrong channel count fails here, as eager
        return (np.zeros(m.output_shape(x.shape), np.float32),)

    def __call__(self, x, *rest):
        y = self.shape_only(x)[0]
        self.into((y,), x, *rest)
        return (y,)

    def workspace_bytes(self, x_shape):
        return self.m.for_shape(tuple(x_shape)).plan.workspace_bytes(tuple(x_shape),
                                                                     self.settings.threads)

    def _residual(self, y, r):
        if r is None:
            return None
        if np.shares_memory(r, y):   # the schedule gave the output the residual's buffer
            return y if r.ctypes.data == y.ctypes.data else np.array(r)
        return r

    def bind(self, outs, x, r=None):
        y = outs[0]
        if y is None:
            return None
        for a in (x, y, r):
            if a is not None and not (a.dtype == np.float32 and a.flags.c_contiguous):
                return None
        if np.shares_memory(x, y) or (r is not None and np.shares_memory(r, y) and
                                      r.ctypes.data != y.ctypes.data):
            return None
        return self.m.for_shape(x.shape).plan.bind(x, y, residual=self._residual(y, r),
                                                   threads=self.settings.threads)

    def into(self, outs, x, r=None):
        y = outs[0]
        if y is None:
            return   # nobody reads it
        m, threads = self.m.for_shape(x.shape), self.settings.threads
        geom, _, ws = m._geometry(tuple(x.shape), threads)
        r = self._residual(y, r)
        if np.shares_memory(x, y):      # (the schedule never plans this; a copy if it did)
            x = np.array(x)
        m._kernel_run(np.ascontiguousarray(x).reshape(-1), y.reshape(-1), m._bias_np, geom,
                      threads, None if r is None else np.ascontiguousarray(r).reshape(-1), -1,
                      _scratch.lend(ws) if ws else None)


def _epilogue_step(m):
    """fn and into for what torch runs after a frozen conv: y = conv (+ residual), act."""
    post = m._post

    def run(y, r):
        if r is not None:
            y.add_(r)
        if post is not None:
            post.apply_(y)

    def fn(c, r=None):
        y = torch.from_numpy(np.array(c))
        run(y, None if r is None else torch.from_numpy(r))
        return (y.numpy(),)

    def into(outs, c, r=None):
        y, ct = torch.from_numpy(outs[0]), torch.from_numpy(c)
        if not np.shares_memory(outs[0], c):
            y.copy_(ct)
        run(y, None if r is None else torch.from_numpy(r))
    return fn, into


def _pool_into(m, settings):
    def into(outs, x):
        y = outs[0]
        if y is not None and not m.run_into(x, y, settings.threads):
            np.copyto(y, m.torch_fn(torch.from_numpy(x)).numpy())
    return into


def _dense_into(m, settings):
    def into(outs, x):
        y = outs[0]
        if y is None:
            return
        call = m.bind(y, np.ascontiguousarray(x), settings.threads)   # (run now: a copy is fine)
        if call is not None:
            _bound_pool.run(call)
        else:
            np.copyto(y, m.torch_forward(torch.from_numpy(x)).numpy())
    return into


def _linear_on_blas(node, m):
    """nn.Linear on a (rows, features) float32 input that freeze left to
    torch (more rows than a FrozenDense takes): NumPy's BLAS runs it, as
    leanconv.onnx runs a many-row Gemm (torch's took ~2x as long for
    MobileNetV2's 1280 -> 1000 head, its weights cold from memory)."""
    tm = node.args[0].meta.get("tensor_meta") if len(node.args) == 1 and not node.kwargs and \
        isinstance(node.args[0], torch.fx.Node) else None
    return tm is not None and hasattr(tm, "shape") and len(tm.shape) == 2 and \
        tm.dtype == torch.float32 and m.weight.dtype == torch.float32 and \
        (m.bias is None or m.bias.dtype == torch.float32)


def _linear_step(node, m, names, outputs):
    w = m.weight.detach().numpy()       # torch's own tensors, not a copy
    b = None if m.bias is None else m.bias.detach().numpy()

    def into(outs, x):
        y = outs[0]
        if y is not None:
            np.matmul(x, w.T, out=y)
            if b is not None:
                y += b

    def fn(x):
        y = np.empty((x.shape[0], w.shape[0]), np.float32)
        into((y,), x)
        return (y,)
    return _step("torch.Linear", node.name, fn, [names[node.args[0]][0]], outputs, into=into,
                 blas=True)


def _norm_step(node, m, names, outputs, settings):
    """A ChannelLayerNorm straight into its buffer (leanconv._channel_norm: C
    on the threads for float32, else NumPy, whose one temporary is the
    workspace)."""
    args, kwargs, ins = _inputs_of(node, names)
    call = _TorchCall(m, args, kwargs, None)

    def into(outs, x):
        if outs[0] is not None:
            m.into(outs[0], x, settings.threads)
    return _step("ChannelLayerNorm", node.name, call, ins, outputs, into=into,
                 workspace=channel_layernorm_workspace,
                 bind=lambda outs, x: None if outs[0] is None else
                 m.bind(outs[0], x, settings.threads))


def _step(op_type, name, fn, inputs, outputs, **kw):
    from leanconv.onnx.program import Step
    node = types.SimpleNamespace(op_type=op_type, name=name, inputs=inputs, outputs=outputs)
    return Step(node, fn, **kw)


def _mutated(node, modules):
    """The node whose value `node` writes into, or None."""
    if node.op == "call_module" and isinstance(modules[node.target], _DROPOUT) and \
            not modules[node.target].training:
        return None     # an eval-mode dropout, in place or not, leaves its input as it is
    if node.op == "call_function" and node.target is operator.setitem:
        return node.args[0]
    if "out" in node.kwargs:
        raise Refused(f"node {node.name} writes into out=")
    if node.args and isinstance(node.args[0], torch.fx.Node) and \
            patterns.mutates(node, node.args[0], modules):
        return node.args[0]
    return None


class Built:
    """A Program and how the module's call maps onto it."""

    def __init__(self, program, inputs, out_spec, out_names, non_tensor):
        self.program = program
        self.inputs = inputs          # placeholder names, in call order
        self.out_spec = out_spec      # pytree spec of the graph's output
        self.out_names = out_names    # the Program's outputs: one per tensor leaf
        self.non_tensor = non_tensor  # values that must be folded (known per shape)
        self.single = out_spec.is_leaf()   # the graph returns one tensor


def build(gm, settings):
    """A Built for GraphModule `gm`, or the reason (a string) it cannot be planned."""
    try:
        return _build(gm, settings)
    except Refused as e:
        return str(e)


def _build(gm, settings):
    modules = dict(gm.named_modules())
    graph_nodes = list(gm.graph.nodes)
    names = {}        # node -> [value names]
    steps, inputs, non_tensor = [], [], set()
    out_node = None
    for node in graph_nodes:
        if node.op == "output":
            out_node = node
            continue
        if node.op == "placeholder":
            if _kind(node) != "tensor":
                raise Refused(f"input {node.name} is not a tensor")
            names[node] = [node.name]
            inputs.append(node.name)
            continue
        if node.op == "get_attr":
            names[node] = None       # a constant: passed to the calls as itself
            continue
        target = node.target
        if target in RANDOM or (node.op == "call_function" and
                                getattr(target, "__module__", "") == "torch.random"):
            raise Refused(f"node {node.name} draws random numbers")
        hit = _mutated(node, modules)
        if hit is not None:
            if not isinstance(hit, torch.fx.Node) or len(hit.users) != 1 or \
                    hit.op not in ("call_module", "call_function", "call_method") or \
                    _is_view(hit, modules):
                raise Refused(f"node {node.name} writes into {hit}, which other nodes read "
                              f"or which is an input, a constant or a view")
        if node.op == "call_function" and target is operator.getitem and \
                isinstance(node.args[0], torch.fx.Node) and \
                isinstance(_kind_or_none(node.args[0]), tuple):
            src, k = node.args
            if not isinstance(k, int):
                raise Refused(f"node {node.name} indexes a tuple with {k!r}")
            names[node] = [names[src][k]]
            continue
        kind = _kind(node)
        steps.extend(_node_steps(node, kind, gm, modules, names, settings))
        if kind == "other":
            non_tensor.update(names[node])
    leaves, spec = pytree.tree_flatten(out_node.args[0])
    out_names = []
    for leaf in leaves:
        if not isinstance(leaf, torch.fx.Node) or names.get(leaf) is None or \
                _kind_or_none(leaf) != "tensor":
            raise Refused(f"the output {leaf!r} is not a tensor the graph computes")
        out_names.append(names[leaf][0])
    from leanconv.onnx.program import Program
    program = Program(steps, {}, [(n, None, None) for n in inputs], out_names, settings)
    return Built(program, inputs, spec, out_names, frozenset(non_tensor))


def _kind_or_none(node):
    try:
        return _kind(node)
    except Refused:
        return None


def _is_view(node, modules):
    if node.op == "call_method":
        return node.target in VIEW_METHODS
    if node.op == "call_function":
        return node.target in VIEW_FUNCTIONS
    if node.op == "call_module":
        return isinstance(modules[node.target], VIEW_MODULES)
    return False


def _inputs_of(node, names):
    """(argument templates, input value names): each value node becomes a
    _Slot, each constant (get_attr) the object itself."""
    order = []
    slots = {}

    def slot(n):
        if names.get(n, 0) is None:           # get_attr: the constant
            obj = n.graph.owning_module
            for part in n.target.split("."):
                obj = getattr(obj, part)
            return obj
        if n not in names:
            raise Refused(f"node {n.name} is used before it is computed")
        if len(names[n]) != 1:
            raise Refused(f"the tuple {n.name} is used whole by {node.name}")
        if n not in slots:
            slots[n] = _Slot(len(order))
            order.append(names[n][0])
        return slots[n]
    args = map_arg(node.args, slot)
    kwargs = map_arg(node.kwargs, slot)
    return args, kwargs, order


def _outputs(node, kind):
    if isinstance(kind, tuple):
        return [f"{node.name}.{i}" for i in range(kind[1])]
    return [node.name]


def _node_steps(node, kind, gm, modules, names, settings):
    outputs = _outputs(node, kind)
    names[node] = outputs
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, FrozenConv2d) and m.plan is not None and not node.kwargs:
            return _conv_steps(node, m, names, settings)
        if isinstance(m, FrozenDense) and len(node.args) == 1 and not node.kwargs:
            args, kwargs, ins = _inputs_of(node, names)
            call = _TorchCall(m, args, kwargs, None)
            return [_step("Dense", node.name, call, ins, outputs, into=_dense_into(m, settings),
                          bind=lambda outs, x, m=m: m.bind(outs[0], x, settings.threads))]
        if type(m) is nn.Linear and _linear_on_blas(node, m):
            return [_linear_step(node, m, names, outputs)]
        if isinstance(m, ChannelLayerNorm) and len(node.args) == 1 and not node.kwargs:
            return [_norm_step(node, m, names, outputs, settings)]
        if isinstance(m, FrozenPool2d) and len(node.args) == 1 and not node.kwargs:
            args, kwargs, ins = _inputs_of(node, names)
            call = _TorchCall(m, args, kwargs, None)
            return [_step("torch.pool", node.name, call, ins, outputs,
                          into=_pool_into(m, settings),
                          bind=lambda outs, x, m=m: m.bind(outs[0], x, settings.threads))]
        fn = m
    elif node.op == "call_method":
        fn = _call_method(node.target)
    else:
        fn = node.target
    args, kwargs, ins = _inputs_of(node, names)
    call = _TorchCall(fn, args, kwargs, kind[1] if isinstance(kind, tuple) else None)
    shape_query = (node.op == "call_method" and node.target in SHAPE_METHODS) or \
        (node.op == "call_function" and node.target is builtins.getattr and
         len(node.args) == 2 and node.args[1] in SHAPE_ATTRS) or \
        (node.op == "call_function" and node.target is builtins.len)
    if shape_query:
        return [_step("Shape", node.name, call, ins, outputs)]
    out_form = _out_form(node, call) if kind == "tensor" else None
    if out_form is not None:
        into, inplace = out_form
        step = _step(f"torch.{getattr(fn, '__name__', type(fn).__name__)}", node.name, call,
                     ins, outputs, into=into, inplace=inplace)
        return [step]
    step = _step(f"torch.{getattr(fn, '__name__', type(fn).__name__)}", node.name, call, ins,
                 outputs, into=call.into, view=_is_view(node, modules),
                 workspace=call.workspace)
    if node.op == "call_function" and node.target is torch.cat and kind == "tensor":
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        seq = node.args[0] if node.args else node.kwargs.get("tensors")
        if isinstance(dim, int) and isinstance(seq, (list, tuple)) and len(seq) == len(ins) \
                and set(node.kwargs) <= {"dim", "tensors"} and len(node.args) <= 2 and \
                all(isinstance(a, torch.fx.Node) and _kind_or_none(a) == "tensor"
                    for a in seq):
            step.concat_axis = dim
            step.into = _cat_into(dim)
    elif patterns.mutates(node, node.args[0], modules) if node.args and \
            isinstance(node.args[0], torch.fx.Node) else False:
        step.inplace = (0,)     # its target dies here (checked): the result may take its buffer
    return [step]


# Elementwise arithmetic torch runs with out= straight into the step's buffer
# (no result allocated per call and copied in; the output may take over a
# same-shaped input that dies there, as leanconv.onnx's elementwise steps do).
_BINARY_OUT = {operator.add: torch.add, torch.add: torch.add, "add": torch.add,
               operator.sub: torch.sub, torch.sub: torch.sub, "sub": torch.sub,
               operator.mul: torch.mul, torch.mul: torch.mul, "mul": torch.mul,
               operator.truediv: torch.div, torch.div: torch.div, "div": torch.div}
_INTERPOLATE = inspect.signature(F.interpolate)


def _float32(v):
    tm = v.meta.get("tensor_meta") if isinstance(v, torch.fx.Node) else None
    return tm is not None and hasattr(tm, "shape") and tm.dtype == torch.float32


def _out_form(node, call):
    """(into, inplace) running `node` with out= into its buffer, or None
    (the call runs as it is and its result is copied in).  Only where that
    gives torch's own values: float32 in and out; an interpolation only for
    the modes whose out= kernels F.interpolate itself calls."""
    if not _float32(node):
        return None
    target = node.target if node.op in ("call_function", "call_method") else None
    try:
        binary = _BINARY_OUT.get(target)
    except TypeError:       # an unhashable target
        return None
    if binary is not None and len(node.args) == 2 and not node.kwargs:
        if not all(_float32(a) or (type(a) in (int, float)) for a in node.args) or \
                not any(isinstance(a, torch.fx.Node) for a in node.args):
            return None

        def binary_into(outs, *vals):
            if outs[0] is not None:
                a, b = _fill(call.args, vals)
                binary(a, b, out=torch.from_numpy(outs[0]))
        return binary_into, True
    if target is F.interpolate and node.op == "call_function":
        return _interpolate_form(node, call)
    return None


def _interpolate_form(node, call):
    """(into, ()) for F.interpolate of a 4-D float32 input in a mode with an
    out= kernel (nearest, bilinear; fixed in the graph), else None."""
    try:
        a = _INTERPOLATE.bind(*node.args, **node.kwargs).arguments
    except TypeError:
        return None
    tm = a["input"].meta.get("tensor_meta") if isinstance(a["input"], torch.fx.Node) else None
    mode = a.get("mode", "nearest")
    if tm is None or not hasattr(tm, "shape") or len(tm.shape) != 4 or not _float32(a["input"]) \
            or mode not in ("nearest", "bilinear") or a.get("antialias", False) is not False or \
            a.get("recompute_scale_factor") not in (None, False) or \
            isinstance(a.get("align_corners"), torch.fx.Node):
        return None
    align = bool(a.get("align_corners"))

    def into(outs, *vals):
        y = outs[0]
        if y is None:
            return
        v = _INTERPOLATE.bind(*_fill(call.args, vals), **_fill(call.kwargs, vals)).arguments
        sf = v.get("scale_factor")
        scales = (None, None) if sf is None else tuple(sf) if isinstance(sf, (tuple, list)) \
            else (sf, sf)
        out, size = torch.from_numpy(y), list(y.shape[2:])
        if mode == "bilinear":
            torch._C._nn.upsample_bilinear2d(v["input"], size, align, *scales, out=out)
        else:
            torch._C._nn.upsample_nearest2d(v["input"], size, *scales, out=out)
    return into, ()


def _conv_steps(node, m, names, settings):
    x = node.args[0]
    r = node.args[1] if len(node.args) > 1 else None
    if not isinstance(x, torch.fx.Node) or (r is not None and not isinstance(r, torch.fx.Node)):
        raise Refused(f"frozen convolution {node.name} takes a constant")
    xin = names[x][0]
    rin = None if r is None else names[r][0]
    native = rin is not None and m._residual_native
    torch_part = m._post is not None or (rin is not None and not native)
    out = node.name
    conv_out = out + ".conv" if torch_part else out
    conv = ConvStep(m, settings)
    ins = [xin] + ([rin] if native else [])
    steps = [_step("Conv", node.name, conv, ins, [conv_out], conv=conv, into=conv.into,
                   inplace=(1,) if native else ())]
    if torch_part:
        torch_r = rin if not native else None
        fn, into = _epilogue_step(m)
        steps.append(_step("torch.epilogue", node.name + ".epilogue", fn,
                           [conv_out] + ([torch_r] if torch_r else []), [out], into=into,
                           inplace=(0,)))
    return steps
