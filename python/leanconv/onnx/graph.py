"""ModelProto -> Program: constants, op builders, constant folding, and the
Conv [+ BatchNormalization] [+ Relu | Clip] fusion.

Everything a model needs is checked here, at prepare time: an op, domain,
attribute or feature leanconv does not implement raises NotImplementedError
naming it before any input is seen."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from leanconv import _core, _epilogue, _isa, _threads
from leanconv.onnx import conv as conv_mod
from leanconv.onnx import (ops_elementwise, ops_linalg, ops_math, ops_pool, ops_resize,
                           ops_tensor, pool_first, rewrite, se_block)
from leanconv.onnx import ir_block
from leanconv.onnx import channel_affine
from leanconv.onnx.node import NP_TYPES, Node, unsupported
from leanconv.onnx.program import Program, Settings, Step

BUILDERS = {
    "BatchNormalization": ops_math.build_batchnorm,
    "Relu": ops_math.build_relu,
    "Clip": ops_math.build_clip,
    "LeakyRelu": ops_math.build_leakyrelu,
    "Sigmoid": ops_math.build_sigmoid,
    "Add": ops_math.build_add,
    "Sum": ops_math.build_sum,
    "Mul": ops_math.build_mul,
    "Softmax": ops_math.build_softmax,
    "LogSoftmax": ops_math.build_logsoftmax,
    **{op: ops_math.build_reduce for op in ops_math._REDUCERS},
    "LayerNormalization": ops_math.build_layernorm,
    "InstanceNormalization": ops_math.build_instancenorm,
    **{op: ops_elementwise.build_unary for op in ops_elementwise.UNARY},
    **{op: ops_elementwise.build_binary for op in ops_elementwise.BINARY},
    **{op: ops_elementwise.build_variadic for op in ("Max", "Min", "Mean")},
    "HardSigmoid": ops_elementwise.build_hardsigmoid,
    "HardSwish": ops_elementwise.build_hardswish,
    "Gelu": ops_elementwise.build_gelu,
    "Elu": ops_elementwise.build_elu,
    "Mod": ops_elementwise.build_mod,
    "Where": ops_elementwise.build_where,
    "Cast": ops_elementwise.build_cast,
    "CastLike": ops_elementwise.build_castlike,
    "Slice": ops_tensor.build_slice,
    "Split": ops_tensor.build_split,
    "Pad": ops_tensor.build_pad,
    "Expand": ops_tensor.build_expand,
    "Tile": ops_tensor.build_tile,
    "GatherND": ops_tensor.build_gathernd,
    "ScatterND": ops_tensor.build_scatternd,
    "Range": ops_tensor.build_range,
    "Resize": ops_resize.build_resize,
    "Dropout": ops_math.build_dropout,
    "Identity": ops_math.build_identity,
    "Concat": ops_tensor.build_concat,
    "Flatten": ops_tensor.build_flatten,
    "Reshape": ops_tensor.build_reshape,
    "Transpose": ops_tensor.build_transpose,
    "Unsqueeze": ops_tensor.build_unsqueeze,
    "Squeeze": ops_tensor.build_squeeze,
    "Constant": ops_tensor.build_constant,
    "ConstantOfShape": ops_tensor.build_constantofshape,
    "Shape": ops_tensor.build_shape,
    "Gather": ops_tensor.build_gather,
    "MaxPool": ops_pool.build_maxpool,
    "AveragePool": ops_pool.build_averagepool,
    "GlobalAveragePool": ops_pool.build_globalaveragepool,
    "GlobalMaxPool": ops_pool.build_globalmaxpool,
    "LRN": ops_pool.build_lrn,
    "Gemm": ops_linalg.build_gemm,
    "MatMul": ops_linalg.build_matmul,
    "Einsum": ops_linalg.build_einsum,
    # "Conv" is built below: it can absorb the nodes after it.
}
SUPPORTED_OPS = tuple(sorted(list(BUILDERS) + ["Conv"]))
# leanconv's own ops, made by the rewrites (rewrite.py), never accepted from a model
_INTERNAL_BUILDERS = {rewrite.CHANNEL_LAYERNORM: ops_math.build_channel_layernorm,
                      rewrite.SCALED_MATMUL: ops_linalg.build_scaled_matmul,
                      channel_affine.CHANNEL_AFFINE_RELU: channel_affine.build_channel_affine_relu,
                      se_block.SQUEEZE_EXCITE: se_block.build_squeeze_excite}
_DEFAULT_DOMAINS = ("", "ai.onnx")

_NP_TYPES = NP_TYPES   # (bench imports it from here)


class _Unread:
    """A constant not read yet: its shape and dtype, load() -> a fresh array
    each call (nothing cached), and rows(start, stop) when it can be read by
    rows straight from the model file (else None)."""
    __slots__ = ("shape", "dtype", "load", "rows")

    def __init__(self, shape, dtype, load, rows=None):
        self.shape, self.dtype, self.load, self.rows = tuple(shape), np.dtype(dtype), load, rows


def _unread_initializer(proto, file):
    """The _Unread of an initializer.  Its loaders hold the file (or the
    proto, for data not left in a file), not the Constants: a source kept
    until its Conv is packed must not keep every value folded or rewritten at
    prepare alive with it (ConvNeXt's transposed and 1x1 copies of every
    MatMul weight: 150 MB above the plan while packing)."""
    shape, dtype = tuple(proto.dims), NP_TYPES.get(proto.data_type, np.dtype("O"))
    if file is not None and proto.name in file:
        name = proto.name

        def rows(start, stop):
            return file.read_rows(name, start, stop)
        return _Unread(shape, dtype, lambda: file.read(name), rows)
    if file is not None:
        # a model prepare opened itself: a small initializer is copied out of
        # it, since one live TensorProto keeps the whole ModelProto alive (a
        # small Conv's weights kept ShuffleNet's 0.9 MB graph through packing)
        own = onnx.TensorProto()
        own.CopyFrom(proto)
        proto = own
    return _Unread(shape, dtype, lambda: numpy_helper.to_array(proto))


class Constants(dict):
    """Values known at prepare time.  Initializers -- and values derived from
    them alone by a Transpose or a rewrite (derive) -- stay unread until a
    step asks: a Conv's or a classifier's weights are then read straight from
    the model when packed (weight_source, row_reader, read_once) and never
    held twice; any other access reads and keeps the value here."""

    def __init__(self, initializers, file_weights=None):
        super().__init__()
        self._unread = {t.name: _unread_initializer(t, file_weights) for t in initializers}

    def __contains__(self, name):
        return dict.__contains__(self, name) or name in self._unread

    def __missing__(self, name):
        value = self._unread.pop(name).load()
        self[name] = value
        return value

    def get(self, name, default=None):
        return self[name] if name in self else default

    def drop(self, name):
        """Forget constant `name` (nothing reads it any more)."""
        self._unread.pop(name, None)
        self.pop(name, None)

    def read_once(self, name):
        """The value of constant `name` for a step that keeps its own (packed)
        copy: a value not read yet is read without being kept here, so
        prepare never holds the raw and the packed copy of every such weight
        at once; None when `name` is not a constant."""
        u = self._unread.get(name) if name else None
        if u is not None:
            return u.load()
        return self[name] if name and name in self else None

    def row_reader(self, name):
        """read(start, stop) -> rows [start, stop) of `name`, straight from the
        model file and not kept here, or None when it is not an initializer
        still in the file."""
        u = self._unread.get(name)
        return None if u is None else u.rows

    def alias(self, name, source):
        """Constant `name` is `source` (an Identity of it): a value not read
        yet stays unread, rather than being read whole to be copied."""
        u = self._unread.get(source)
        if u is None:
            return False
        self._unread[name] = u
        return True

    def derive(self, name, source, shape, fn):
        """Constant `name` is fn(value of `source`), of `shape` and the same
        dtype: when `source` is not read yet, `name` is computed only when read
        -- for a weight, when it is packed -- and returns True; else False (the
        caller computes it now)."""
        u = self._unread.get(source)
        if u is None:
            return False
        load = u.load
        self._unread[name] = _Unread(shape, u.dtype, lambda: fn(load()))
        return True

    def meta(self, name):
        """(shape, dtype) of constant `name` without reading it, or None."""
        u = self._unread.get(name)
        if u is not None:
            return u.shape, u.dtype
        if dict.__contains__(self, name):
            a = np.asarray(self[name])
            return a.shape, a.dtype
        return None

    def weight_source(self, name):
        """A WeightSource reading `name` when loaded (not cached here: the Conv
        drops it once packed), or None if it has been read already."""
        u = self._unread.get(name)
        return None if u is None else conv_mod.WeightSource(u.shape, u.dtype, u.load)


class BuildContext:
    def __init__(self, constants, settings):
        self.constants = constants
        self.settings = settings

    def const(self, name):
        return self.constants.get(name) if name else None


def _fold_unread(node, constants):
    """Fold an Identity or a Transpose of a value not read yet without reading
    it (Constants.alias / derive): the exporters share weights through
    Identity nodes and feed MatMuls through Transposes of them.  False when
    the node must run now."""
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    if node.op_type == "Identity":
        return constants.alias(node.outputs[0], node.inputs[0])
    meta = constants.meta(node.inputs[0]) if node.op_type == "Transpose" else None
    if meta is None:
        return False
    perm = node.attr("perm")
    perm = list(reversed(range(len(meta[0])))) if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(len(meta[0]))):
        return False   # the step names the problem
    return constants.derive(node.outputs[0], node.inputs[0], tuple(meta[0][p] for p in perm),
                            lambda a: np.transpose(a, perm))


def _opset(model):
    version = None
    for imp in model.opset_import:
        if imp.domain in _DEFAULT_DOMAINS:
            version = imp.version
    if version is None:
        raise ValueError("the model imports no version of the default ONNX domain")
    return version


def _tensor_type(vi):
    """(numpy dtype or None, rank or None) of a graph input's declared type."""
    if not vi.type.HasField("tensor_type"):
        raise unsupported(f"non-tensor graph input {vi.name!r}")
    tt = vi.type.tensor_type
    dtype = _NP_TYPES.get(tt.elem_type)
    rank = len(tt.shape.dim) if tt.HasField("shape") else None
    return dtype, rank


def _static_shape(vi):
    """The declared shape of a graph input when every dimension is a number, else None."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    return tuple(dims) if all(d >= 0 for d in dims) else None


def _readers(nodes, outputs):
    """value name -> indices of the nodes reading it (a graph output counts as
    a reader nobody can fuse away: index -1)."""
    readers = {}
    for i, n in enumerate(nodes):
        for name in n.inputs:
            if name:
                readers.setdefault(name, []).append(i)
    for name in outputs:
        readers.setdefault(name, []).append(-1)
    return readers


def _sole_reader(nodes, readers, value, done):
    """Index of the one node reading `value` with it as its first input, else None."""
    r = readers.get(value, [])
    if len(r) != 1 or r[0] < 0 or r[0] in done:
        return None
    j = r[0]
    return j if nodes[j].inputs and nodes[j].inputs[0] == value and \
        nodes[j].inputs.count(value) == 1 else None


def _bn_params(node, constants):
    """(scale, bias, mean, var, eps) if `node` is an inference BatchNormalization
    with constant parameters, else None."""
    if node.op_type != "BatchNormalization" or node.n_outputs() != 1:
        return None
    if int(node.attr("training_mode", 0)) or int(node.attr("spatial", 1)) != 1:
        return None
    params = [constants.get(n) for n in node.inputs[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        return None
    return (*params, float(node.attr("epsilon", 1e-5)))


def _activation(node, constants):
    """The leanconv epilogue activation a node amounts to, else None."""
    op = node.op_type
    if op == "Relu":
        return "relu"
    if op in ("Sigmoid", "Tanh", "HardSwish"):
        return op.lower()
    if op == "LeakyRelu":
        return ("leaky_relu", float(node.attr("alpha", 0.01)))
    if op == "HardSigmoid":
        return ("hardsigmoid", float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5)))
    if op == "Gelu":
        approx = node.attr("approximate", "none")
        return {"none": "gelu", "tanh": "gelu_tanh"}.get(approx)
    if op != "Clip":
        return None
    if node.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")
    else:
        names = node.inputs[1:3] + [""] * (3 - len(node.inputs))
        vals = [constants.get(n) if n else None for n in names[:2]]
        if any(n and v is None for n, v in zip(names[:2], vals)):
            return None   # a bound known only at run time
        lo, hi = (None if v is None else float(np.asarray(v).reshape(())) for v in vals)
    return conv_mod.clamp_activation(lo, hi)


_ACTIVATION_ATTRS = ("consumed_inputs", "alpha", "beta", "approximate", "min", "max")


def _silu(nodes, readers, value, done):
    """(sigmoid index, mul index) when `value` is read by exactly Sigmoid(value)
    and Mul(value, that sigmoid) and nothing else reads the sigmoid: x * sigmoid(x)."""
    r = readers.get(value, [])
    if len(r) != 2 or any(j < 0 or j in done for j in r):
        return None
    sig = [j for j in r if nodes[j].op_type == "Sigmoid" and nodes[j].inputs == [value]]
    mul = [j for j in r if nodes[j].op_type == "Mul"]
    if len(sig) != 1 or len(mul) != 1:
        return None
    s_out = nodes[sig[0]].outputs[0]
    if sorted(nodes[mul[0]].inputs) != sorted([value, s_out]) or \
            readers.get(s_out, []) != [mul[0]] or nodes[mul[0]].attrs:
        return None
    return sig[0], mul[0]


def _is_add(n):
    """An Add, or a Sum of two inputs (old exports' residual, e.g. the zoo's
    ResNet-50 at opset 9: the same sum, with consumed_inputs a no-op)."""
    if n.op_type == "Sum":
        return len(n.inputs) == 2 and set(n.attrs) <= {"consumed_inputs"}
    return n.op_type == "Add" and not n.attrs and len(n.inputs) == 2


def _sole_add(nodes, readers, value, done):
    """(index, other input) of an Add (or two-input Sum) that is the sole
    reader of `value` and reads it once, else None."""
    r = readers.get(value, [])
    if len(r) != 1 or r[0] < 0 or r[0] in done:
        return None
    n = nodes[r[0]]
    if not _is_add(n) or n.inputs.count(value) != 1:
        return None
    return r[0], (n.inputs[1] if n.inputs[0] == value else n.inputs[0])


def _residual_add(nodes, readers, value, done, constants):
    """_sole_add's Add when it adds a run-time tensor to `value` (a constant
    stays a separate step)."""
    add = _sole_add(nodes, readers, value, done)
    return None if add is None or add[1] in constants else add


def _build_conv(nodes, i, ctx, readers, fuse, done):
    """(step, position): the Conv at nodes[i] with what reads its output alone
    fused in -- a BatchNormalization (folded into the weights), then Adds and
    Muls of a per-channel constant (folded into weights and bias), then a residual
    Add of a run-time tensor, then an activation (Relu, Clip, LeakyRelu,
    Sigmoid, Tanh, HardSigmoid, HardSwish, Gelu, or x * Sigmoid(x) as SiLU);
    marks those nodes done.  The step runs at the position of the last node
    it absorbed, where every input it reads is computed."""
    node = nodes[i]
    w = ctx.constants.weight_source(node.input(1))
    if w is None and node.input(1) in ctx.constants:   # a folded constant, already an array
        a = ctx.constants[node.input(1)]
        w = conv_mod.WeightSource(a.shape, a.dtype, lambda a=a: a)
    b = ctx.const(node.input(2))
    if node.input(2) and b is None:
        w = None   # a bias fed at run time: no packing at prepare time
    fused, activation, out, bn, residual, last = [], None, node.outputs[0], None, None, i
    affine = None
    if fuse and w is not None and len(w.shape) in (3, 4) and w.dtype == np.float32:
        j = _sole_reader(nodes, readers, out, done)
        bn = _bn_params(nodes[j], ctx.constants) if j is not None else None
        if bn is not None:
            nodes[j].allow("epsilon", "momentum", "training_mode", "spatial", "is_test",
                           "consumed_inputs")
            fused.append("BatchNormalization")
            out = nodes[j].outputs[0]
            done.add(j)
            last = max(last, j)
        while True:   # Add / Mul of a per-channel constant: folded into weights and bias
            fold = _channel_affine(nodes, readers, out, done, ctx.constants, w.shape)
            if fold is None:
                break
            j, scale, shift = fold
            a, c = affine if affine is not None else (np.ones(w.shape[0]), np.zeros(w.shape[0]))
            affine = (a * scale, c * scale + shift)
            fused.append(nodes[j].op_type)
            out = nodes[j].outputs[0]
            done.add(j)
            last = max(last, j)
        residual = None
        add = _residual_add(nodes, readers, out, done, ctx.constants)
        if add is not None:
            last = max(last, add[0])
            residual = add[1]
            fused.append(nodes[add[0]].op_type)
            out = nodes[add[0]].outputs[0]
            done.add(add[0])
        silu = _silu(nodes, readers, out, done)
        j = _sole_reader(nodes, readers, out, done)
        act = _activation(nodes[j], ctx.constants) if j is not None else None
        if silu is not None:
            activation = "silu"
            fused += ["Sigmoid", "Mul"]
            out = nodes[silu[1]].outputs[0]
            done.update(silu)
            last = max(last, *silu)
        elif act is not None:
            nodes[j].allow(*_ACTIVATION_ATTRS)
            activation = act
            fused.append(nodes[j].op_type)
            out = nodes[j].outputs[0]
            done.add(j)
            last = max(last, j)
    if w is not None:
        w = conv_mod.WeightSource(w.shape, w.dtype, _loader(w.load, b, bn, affine))
    op = conv_mod.ConvOp(node, w, None, ctx.settings, activation, residual is not None)
    inputs = ([node.inputs[0]] if w is not None else node.inputs) + \
        ([residual] if residual is not None else [])
    step = Step(node, op, inputs=inputs, conv=op, fused=fused, into=op.into,
                inplace=(len(inputs) - 1,) if residual is not None else ())
    step.outputs = [out]
    return step, last


def _build_dense(nodes, i, ctx, readers, done):
    """(step, position) of the Gemm or MatMul by a constant matrix at
    nodes[i] with what reads its output alone fused in -- for a MatMul an
    Add of a constant 1-D bias of its columns, then a residual Add of a
    run-time tensor, then an activation (as for a Conv) -- or None where it
    is no such product (the plain builder then).  A transformer's linear
    layers: the token GEMM applies them in its pass over the output."""
    node = nodes[i]
    out, last, fused, bias, residual, activation = node.outputs[0], i, [], None, None, None
    taken = []
    add = _sole_add(nodes, readers, out, done) if node.op_type == "MatMul" else None
    c = np.asarray(ctx.constants[add[1]]) if add and add[1] in ctx.constants else None
    if c is not None and c.ndim == 1 and c.dtype == np.float32:
        bias, out, last = c, nodes[add[0]].outputs[0], add[0]
        fused.append(nodes[add[0]].op_type)
        taken.append(add[0])
    add = _residual_add(nodes, readers, out, done, ctx.constants)
    if add is not None:
        residual, out, last = add[1], nodes[add[0]].outputs[0], add[0]
        fused.append(nodes[add[0]].op_type)
        taken.append(add[0])
    j = _sole_reader(nodes, readers, out, done)
    act = _activation(nodes[j], ctx.constants) if j is not None else None
    if act is not None:
        activation, out, last = act, nodes[j].outputs[0], j
        fused.append(nodes[j].op_type)
        taken.append(j)
    step = ops_linalg.dense_step(node, ctx, bias, activation, residual)
    if step is None:
        return None
    if act is not None:
        nodes[j].allow(*_ACTIVATION_ATTRS)
    done.update(taken)
    step.fused = tuple(fused)
    step.outputs = [out]
    return step, last


def _loader(load, bias, bn, affine=None):
    """load() -> (weight, bias) with the BatchNormalization `bn` (or None), then
    the per-channel y * scale + shift `affine` (or None), folded in."""
    def weights():
        w, b = load(), bias
        if bn is not None:
            w, b = conv_mod.fold_batchnorm(w, b, *bn)
        if affine is not None:
            w, b = conv_mod.fold_affine(w, b, *affine)
        return w, b
    return weights


def _channel_affine(nodes, readers, value, done, constants, w_shape):
    """(index, scale, shift) when the one reader of the Conv output `value`
    is Add or Mul of it and a per-channel constant (rewrite.per_channel_affine)."""
    r = readers.get(value, [])
    if len(r) != 1 or r[0] < 0 or r[0] in done:
        return None
    fold = rewrite.per_channel_affine(nodes[r[0]], value, constants, len(w_shape), w_shape[0])
    return None if fold is None else (r[0],) + fold


def _build(node, ctx):
    if node.op_type == "Conv":
        op = conv_mod.ConvOp(node, None, None, ctx.settings)
        return Step(node, op, conv=op, into=op.into)
    step = (BUILDERS.get(node.op_type) or _INTERNAL_BUILDERS[node.op_type])(node, ctx)
    act = _activation(node, ctx.constants)
    if act is not None:   # a standalone activation: the C epilogue's elementwise entry
        step.into, step.inplace = _c_activation(step.fn, act, ctx.settings), True
    return step


def _c_activation(fn, activation, settings):
    """into(outs, x, ...) running `activation` in C (threaded, vectorised) on
    float32 input, else fn in NumPy."""
    code, a, b = _epilogue.parse(activation)

    def into(outs, x, *rest):
        y = outs[0]
        if x.dtype == np.float32 and x.flags.c_contiguous:
            # the checks of _epilogue.activate hold by construction: y is x's
            # shape, C-contiguous float32, and x itself or disjoint from it
            _core.activate(x.reshape(-1), y.reshape(-1), code, a, b, None,
                           _threads.resolve(settings.threads), _isa.isa_id())
        else:
            np.copyto(y, fn(x, *rest)[0])
    return into


def build_program(model, algorithm="auto", threads=None, fuse=True,
                  file_weights=None) -> Program:
    """file_weights: the model_file.FileWeights of a model opened without its
    large initializers' data, else None.  model may be a one-element list
    holding a ModelProto nothing else references (prepare's own skeleton of
    a file): it is then freed once constants are folded, unless an
    inverted-residual fusion may need its shape inference (a grouped Conv).
    Its messages live in one protobuf arena that only the whole message's
    end frees, and Swin-T's (7,639 nodes) is 7.3 MB, otherwise held while
    every weight is packed, at prepare's peak."""
    owned = isinstance(model, list) and len(model) == 1
    if owned:
        model = model.pop()
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    opset = _opset(model)
    graph = model.graph
    settings = Settings(algorithm, threads)
    constants = Constants(graph.initializer, file_weights)
    if graph.sparse_initializer:
        raise unsupported("sparse initializers")
    inputs = []
    for vi in graph.input:
        if vi.name not in constants:
            inputs.append((vi.name,) + _tensor_type(vi))
    refused = {}
    for proto in graph.node:
        if proto.domain not in _DEFAULT_DOMAINS:
            refused.setdefault(f"{proto.domain}.{proto.op_type}", proto.name or list(proto.output))
        elif proto.op_type not in BUILDERS and proto.op_type != "Conv":
            refused.setdefault(proto.op_type, proto.name or list(proto.output))
    if refused:
        raise unsupported(f"op{'s' if len(refused) > 1 else ''} " + ", ".join(
            f"{op} (node {where})" for op, where in sorted(refused.items())))
    outputs = [o.name for o in graph.output]
    ctx = BuildContext(constants, settings)
    # pass 1, constant folding: a node whose inputs are all known runs now, once; a
    # constant it was the last reader of goes (a Transpose of a MatMul's weight would
    # otherwise keep the raw weight beside its transposed copy to the end of prepare).
    # Each Node is made as pass 1 reaches it, and a folded one goes at once: every
    # Python object prepare holds at its peak adds to the process's memory for good
    # (Python's allocator keeps the pages it touched; ShuffleNet's 390 Nodes made
    # at once were 0.7 MB of it)
    live = []
    unread = {}
    for proto in graph.node:
        for name in proto.input:
            unread[name] = unread.get(name, 0) + 1
    for name in outputs:
        unread[name] = unread.get(name, 0) + 1
    for proto in graph.node:
        node = Node(proto, opset)
        if all(not n or n in constants for n in node.inputs):
            if not _fold_unread(node, constants):
                _build(node, ctx).run(constants)
            for n in node.inputs:
                unread[n] = unread.get(n, 1) - 1
                if n and unread[n] == 0:
                    constants.drop(n)
        else:
            live.append(node)
    del unread
    initializer_names = frozenset(init.name for init in graph.initializer)
    declared_shapes = {vi.name: _static_shape(vi) for vi in graph.input
                       if vi.name not in initializer_names}
    if owned and not any(n.op_type == "Conv" and int(n.attr("group", 1)) > 1 for n in live):
        # every view into its arena too (the loops' last node and input)
        model = graph = proto = vi = None
    if fuse:   # GELU's erf form as one node; channels-last islands in NCHW; squeeze-and-
        # excitation blocks as one node (se_block.py); lone BNs with their Relu as one
        # affine pass, other lone BNs as Convs; average pools ahead of the 1x1 Convs
        # that feed them
        live = rewrite.fuse_gelu(live, constants, outputs)
        live = rewrite.scalars_into_matmul(live, constants, outputs)
        live = rewrite.channels_first(live, constants, outputs)
        live = se_block.fuse_squeeze_excite(live, constants, outputs, _activation)
        input_ranks = {n: r for n, _, r in inputs if r is not None}
        live = channel_affine.batchnorm_relu_as_affine(live, constants, outputs, input_ranks)
        live = rewrite.batchnorm_as_conv(live, constants, outputs, input_ranks)
        live = pool_first.avgpool_before_pointwise_conv(live, constants, outputs)
    # pass 2: steps, with Conv [+ BatchNormalization] [+ Relu | Clip] fused
    # A fused step runs where its last node was: a residual Add's other input
    # may come from nodes after the Conv.
    readers = _readers(live, outputs)
    for node in live:   # a Dropout mask nobody reads is not made: the step is then a view
        if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1] not in readers:
            node.outputs[1] = ""
    placed, done = [], set()
    for i, node in enumerate(live):
        if i in done:
            continue
        if node.op_type == "Conv":
            step, at = _build_conv(live, i, ctx, readers, fuse, done)
            placed.append((at, i, step))
        elif node.op_type in ("Gemm", "MatMul") and fuse and \
                (built := _build_dense(live, i, ctx, readers, done)) is not None:
            placed.append((built[1], i, built[0]))
        else:
            placed.append((i, i, _build(node, ctx)))
    steps = [s for _, _, s in sorted(placed, key=lambda p: p[:2])]
    del live, readers, placed, done
    if fuse:   # an expanding 1x1 Conv and the depthwise after it as one step, where that
        # pays for the declared input shape (ir_block.py)
        steps = ir_block.fuse_inverted_residual(
            steps, outputs, lambda: {} if model is None else ir_block.static_shapes(model), settings)
    # weights now baked into Conv steps (and any constant nobody reads) need not stay
    read = {n for s in steps for n in s.inputs} | set(outputs)
    constants = {k: constants[k] for k in read if k in constants}
    program = Program(steps, constants, inputs, outputs, settings)
    program.initializer_names = initializer_names
    program.declared_shapes = declared_shapes
    return program
