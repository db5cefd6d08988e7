"""Graph rewrites at prepare time, after constant folding and before the
steps are built: each replaces a group of nodes by fewer that compute the
same values (within float rounding), so the fusions in graph.py and the C
kernels can take them.

- fuse_gelu: the exporters' erf form of GELU, x * 0.5 * (1 + Erf(x / sqrt 2))
  in its orders, becomes one Gelu node (the C epilogue's GELU, fused into a
  Conv before it).
- channels_first: a channels-last island -- Transpose(0,2,3,1), then only
  ops that act on each position's channel vector alone (MatMul by a constant
  matrix, LayerNormalization over the last axis, elementwise ops, constants
  broadcast along the last axis), closed by Transpose(0,3,1,2) -- is computed
  in NCHW instead: the MatMuls become 1x1 Convs (bias, GELU and layer scale
  then fuse into them), the LayerNormalization a ChannelLayerNorm (its scale
  and bias folded into a 1x1 Conv that alone reads it), and both Transposes
  disappear.  ConvNeXt's blocks are such islands.

- scalars_into_matmul: MatMul(Mul(a, s1), Mul(b, s2)) of run-time operands,
  s1 and s2 scalar constants (attention's q and k each scaled by d^-1/4),
  becomes ScaledMatMul(a, b) with alpha = s1 * s2, applied to each output
  of the C product: two passes over strided views go.

Each function takes and returns the node list in a valid order; a pattern
that does not match exactly is left as it is."""
from __future__ import annotations

import math

import numpy as np
from onnx import helper

from leanconv._fold import batchnorm_affine, fold_linear_affine
from leanconv.onnx.node import Node

CHANNEL_LAYERNORM = "ChannelLayerNorm"   # leanconv's own op: LayerNormalization over axis 1
SCALED_MATMUL = "ScaledMatMul"   # leanconv's own op: alpha * (A @ B), alpha an attribute


def _make(op_type, inputs, outputs, name, opset, **attrs):
    node = Node(helper.make_node(op_type, inputs, outputs, name=name, **attrs), opset)
    return node


def _readers(nodes, outputs):
    readers = {}
    for node in nodes:
        for name in node.inputs:
            if name:
                readers.setdefault(name, []).append(node)
    for name in outputs:
        readers.setdefault(name, []).append(None)   # a graph output: nobody may remove it
    return readers


def _scalar(constants, name):
    """The float value of a constant holding one number, else None."""
    if not name or name not in constants:
        return None
    v = np.asarray(constants[name])
    if v.size != 1 or not np.issubdtype(v.dtype, np.floating):
        return None
    return float(v.reshape(()))


def _other(node, value):
    """The input of a two-input node that is not `value` ('' if both are)."""
    a, b = (node.inputs + ["", ""])[:2]
    return b if a == value else a if b == value else ""


def _sole(readers, value):
    r = readers.get(value, [])
    return r[0] if len(r) == 1 and r[0] is not None else None


def _is_mul_by(node, value, constants, target):
    """node is Mul(value, c) or Mul(c, value) with c == target (a scalar)."""
    if node is None or node.op_type != "Mul" or node.attrs or len(node.inputs) != 2 or \
            value not in node.inputs:
        return False
    c = _scalar(constants, _other(node, value))
    return c is not None and c == target


def _gelu_at(erf, readers, producer, constants):
    """(x, output name, nodes to remove) if the Erf node `erf` is the middle of
    x * 0.5 * (1 + Erf(x / sqrt 2)) (any order of the Muls, x / sqrt 2 also as
    x * (1 / sqrt 2)), every intermediate read only inside the pattern; else None."""
    if erf.attrs or len(erf.inputs) != 1:
        return None
    d = producer.get(erf.inputs[0])
    if d is None or d.attrs or len(d.inputs) != 2 or _sole(readers, d.outputs[0]) is not erf:
        return None
    if d.op_type == "Div":
        x, c = d.inputs
        ok = _scalar(constants, c) is not None and \
            abs(_scalar(constants, c) / math.sqrt(2) - 1) < 1e-7
    elif d.op_type == "Mul":
        c = next((n for n in d.inputs if _scalar(constants, n) is not None), "")
        x = _other(d, c) if c else ""
        ok = bool(c) and abs(_scalar(constants, c) * math.sqrt(2) - 1) < 1e-7
    else:
        return None
    if not ok or not x or x in constants:
        return None
    add = _sole(readers, erf.outputs[0])
    if add is None or add.op_type != "Add" or add.attrs or len(add.inputs) != 2 or \
            _scalar(constants, _other(add, erf.outputs[0])) != 1.0:
        return None
    m1 = _sole(readers, add.outputs[0])
    if m1 is None or m1.op_type != "Mul" or m1.attrs or len(m1.inputs) != 2:
        return None
    p = _other(m1, add.outputs[0])
    if p == x:   # (x * (1 + erf)) * 0.5
        m2 = _sole(readers, m1.outputs[0])
        if not _is_mul_by(m2, m1.outputs[0], constants, 0.5):
            return None
        return x, m2.outputs[0], [d, erf, add, m1, m2]
    h = producer.get(p)   # (x * 0.5) * (1 + erf)
    if _is_mul_by(h, x, constants, 0.5) and _sole(readers, p) is m1:
        return x, m1.outputs[0], [h, d, erf, add, m1]
    return None


def fuse_gelu(nodes, constants, outputs):
    """Every erf-form GELU as one Gelu node, placed where its last node was."""
    readers = _readers(nodes, outputs)
    producer = {o: n for n in nodes for o in n.outputs if o}
    replace, removed = {}, set()
    for n in nodes:
        if n.op_type != "Erf" or id(n) in removed:
            continue
        m = _gelu_at(n, readers, producer, constants)
        if m is None or any(id(k) in removed for k in m[2]):
            continue
        x, out, group = m
        last = max(group, key=lambda k: nodes.index(k))
        replace[id(last)] = _make("Gelu", [x], [out], n.name + "/gelu", n.opset)
        removed.update(id(k) for k in group)
    if not replace:
        return nodes
    return [replace.get(id(n), n) for n in nodes if id(n) not in removed or id(n) in replace]


def _scaled_operand(mul, readers, matmul, constants):
    """(operand, scalar) when `mul` is Mul(operand, s) (either order) of a
    scalar constant s (rank <= 1: the product keeps the operand's shape),
    read by `matmul` alone; else None."""
    if mul is None or mul.op_type != "Mul" or mul.attrs or len(mul.inputs) != 2 or \
            _sole(readers, mul.outputs[0]) is not matmul:
        return None
    for a, c in ((mul.inputs[0], mul.inputs[1]), (mul.inputs[1], mul.inputs[0])):
        s = _scalar(constants, c)
        if s is not None and a not in constants and np.asarray(constants[c]).ndim <= 1:
            return a, s
    return None


def scalars_into_matmul(nodes, constants, outputs):
    """Every MatMul of run-time operands whose operands are Muls by scalar
    constants (read by it alone) as one ScaledMatMul of the Muls' inputs."""
    readers = _readers(nodes, outputs)
    producer = {o: n for n in nodes for o in n.outputs if o}
    replace, removed = {}, set()
    for n in nodes:
        if n.op_type != "MatMul" or n.attrs or len(n.inputs) != 2 or \
                any(name in constants for name in n.inputs):
            continue
        alpha, ins, taken = 1.0, list(n.inputs), []
        for k, name in enumerate(n.inputs):
            mul = producer.get(name)
            found = None if mul is None or id(mul) in removed else \
                _scaled_operand(mul, readers, n, constants)
            if found is not None:
                ins[k], alpha = found[0], alpha * found[1]
                taken.append(mul)
        if taken:
            replace[id(n)] = _make(SCALED_MATMUL, ins, n.outputs, n.name, n.opset, alpha=alpha)
            removed.update(id(m) for m in taken)
    if not replace:
        return nodes
    return [replace.get(id(n), n) for n in nodes if id(n) not in removed]


# ops of a channels-last island that treat every element alike (unary)
_ELEMENTWISE = {"Relu", "Sigmoid", "Tanh", "Gelu", "Erf", "Abs", "Neg", "Exp", "Sqrt",
                "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Softplus"}
# binary ops whose constant operand may be broadcast along the channel axis
_BINARY = {"Add", "Sub", "Mul", "Div"}


def _perm(node):
    p = node.attr("perm")
    return None if p is None else [int(v) for v in p]


def _last_axis_constant(c):
    """c broadcast against an NHWC tensor, as the same broadcast against its
    NCHW form: (C,) or (1, 1, 1, C) -> (C, 1, 1) or (1, C, 1, 1); a scalar as
    it is.  None when c varies along another axis."""
    c = np.asarray(c)
    if c.ndim > 4 or any(d != 1 for d in c.shape[:-1]):
        return None
    if c.size == 1:
        return c
    out = c.reshape(-1, 1, 1)
    return out.reshape((1,) * (c.ndim - 3) + out.shape) if c.ndim == 4 else out


def _island(entry, readers, constants):
    """(region nodes, exit Transposes) reachable from the Transpose `entry`
    (perm 0,2,3,1), when every node reading a value inside is one channels_first
    can rewrite and every way out is a Transpose(0,3,1,2); else None."""
    region, exits, seen = [], [], set()
    todo = [entry.outputs[0]]
    while todo:
        value = todo.pop()
        for r in readers.get(value, []):
            if r is None:
                return None   # a graph output in channels-last layout
            if id(r) in seen:
                continue
            seen.add(id(r))
            if r.op_type == "Transpose" and _perm(r) == [0, 3, 1, 2] and len(r.inputs) == 1:
                exits.append(r)
                continue
            if not _rewritable(r, value, constants):
                return None
            region.append(r)
            todo.extend(o for o in r.outputs if o)
    inner = {o for n in region for o in n.outputs} | {entry.outputs[0]}
    for n in region:   # a run-time operand from outside would be in the other layout
        if n.op_type in _BINARY and any(v and v not in inner and v not in constants
                                        for v in n.inputs):
            return None
    return (region, exits) if region else None


def _rewritable(node, value, constants):
    op = node.op_type
    if op in _ELEMENTWISE:
        return len(node.inputs) == 1 and len(node.outputs) == 1
    if op in _BINARY:
        if node.attrs or len(node.inputs) != 2 or len(node.outputs) != 1:
            return False
        other = _other(node, value)
        # both operands inside the island (checked once it is known): both are
        # the same N, H, W in either layout, so their broadcast (channels 1
        # against C) carries over
        return other == "" or other not in constants or \
            _last_axis_constant(constants[other]) is not None
    if op == "MatMul":
        meta = constants.meta(node.inputs[1]) if node.inputs[0] == value else None
        return meta is not None and len(meta[0]) == 2 and meta[1] == np.float32
    if op == "LayerNormalization":
        if node.inputs[0] != value or node.n_outputs() != 1 or \
                int(node.attr("axis", -1)) not in (-1, 3):
            return False
        return all(n in constants and np.asarray(constants[n]).ndim == 1
                   for n in node.inputs[1:3] if n)
    return False


def channels_first(nodes, constants, outputs):
    """Every channels-last island computed in NCHW (see the module's doc)."""
    readers = _readers(nodes, outputs)
    rename, new, dropped = {}, {}, set()
    for t in nodes:
        if t.op_type != "Transpose" or _perm(t) != [0, 2, 3, 1] or id(t) in dropped or \
                len(t.inputs) != 1 or t.outputs[0] in outputs:
            continue
        island = _island(t, readers, constants)
        if island is None:
            continue
        region, exits = island
        inner = {o for n in region for o in n.outputs} | {t.outputs[0]}
        if any(id(n) in dropped for n in region + exits) or \
                any(e.inputs[0] not in inner for e in exits):
            continue
        rename[t.outputs[0]] = t.inputs[0]
        dropped.add(id(t))
        for e in exits:
            if e.outputs[0] in outputs:   # keep the name: an Identity (a view)
                new[id(e)] = _make("Identity", e.inputs, e.outputs, e.name, e.opset)
            else:
                rename[e.outputs[0]] = e.inputs[0]
                dropped.add(id(e))
        for n in region:
            new[id(n)] = _nchw(n, constants, inner)
            if n.op_type == "MatMul" and readers.get(n.inputs[1]) == [n]:
                constants.drop(n.inputs[1])   # its 1x1 copy replaces it
        _fold_norm_affine([new[id(n)] for n in region], readers, constants)
    if not rename:
        return nodes

    def resolve(name):
        while name in rename:
            name = rename[name]
        return name
    out = []
    for n in nodes:
        if id(n) in dropped:
            continue
        n = new.get(id(n), n)
        n.inputs = [resolve(v) if v else v for v in n.inputs]
        out.append(n)
    return out


def _fold_norm_affine(region, readers, constants):
    """A ChannelLayerNorm read only by a 1x1 Conv made from a MatMul: its scale
    and bias go into the Conv (w' = w * scale per input channel, conv bias =
    w @ bias), two passes fewer over the normalised tensor."""
    made = {n.outputs[0]: n for n in region}
    for conv in region:
        norm = made.get(conv.inputs[0]) if conv.op_type == "Conv" else None
        if norm is None or norm.op_type != CHANNEL_LAYERNORM or len(norm.inputs) < 2 or \
                len(conv.inputs) != 2 or any(r is None or r.outputs[0] != conv.outputs[0]
                                             for r in readers.get(norm.outputs[0], [])):
            continue
        shift = constants.get(norm.input(2)) if norm.input(2) else None
        scale = constants[norm.inputs[1]]

        def fold(w, scale=scale, shift=shift):   # (scales w in place when it may)
            return fold_linear_affine(w, None, in_scale=scale, in_shift=shift)
        name = conv.inputs[1]
        meta = constants.meta(name)
        if shift is not None:   # the bias needs the weights now: read them, keep the bias
            b = fold(constants.read_once(name))[1]
        # a weight not read yet is folded when read (for packing), a fresh array each time
        if not constants.derive(name, name, meta[0], lambda w, fold=fold: fold(w)[0]):
            w, b = fold(np.array(constants[name], np.float32))   # a constant others may read
            constants[name] = w
        if shift is not None:
            constants[f"{conv.name}/leanconv_norm_bias"] = b
            conv.inputs.append(f"{conv.name}/leanconv_norm_bias")
        norm.inputs = norm.inputs[:1]


def _as_1x1(b):
    """A MatMul's (K, N) weight as the (N, K, 1, 1) weight of the 1x1 Conv."""
    return np.ascontiguousarray(b.T)[:, :, None, None]


def _nchw(node, constants, inner):
    """The NCHW form of one island node."""
    op = node.op_type
    if op == "MatMul":
        w = f"{node.name}/leanconv_1x1_weight"
        k, n = constants.meta(node.inputs[1])[0]
        if not constants.derive(w, node.inputs[1], (n, k, 1, 1), _as_1x1):
            constants[w] = _as_1x1(np.asarray(constants[node.inputs[1]], dtype=np.float32))
        return _make("Conv", [node.inputs[0], w], node.outputs, node.name, node.opset,
                     kernel_shape=[1, 1])
    if op == "LayerNormalization":
        names = [node.inputs[0]]
        for k, n in enumerate(node.inputs[1:3]):
            if n:
                names.append(f"{node.name}/leanconv_nchw_{('scale', 'bias')[k]}")
                constants[names[-1]] = np.asarray(constants[n]).reshape(-1, 1, 1)
        return _make(CHANNEL_LAYERNORM, names, node.outputs[:1], node.name, node.opset,
                     epsilon=float(node.attr("epsilon", 1e-5)))
    if op in _BINARY:
        inputs = list(node.inputs)
        for k, n in enumerate(inputs):
            if n and n not in inner and n in constants:
                inputs[k] = f"{node.name}/leanconv_nchw_{k}"
                constants[inputs[k]] = _last_axis_constant(constants[n])
        node.inputs = inputs
    return node


# ops whose output has the rank of their first input
_SAME_RANK = {"Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip",
              "HardSigmoid", "HardSwish", "Gelu", "Erf", "Elu", "MaxPool", "AveragePool",
              "GlobalAveragePool", "LRN", "Dropout", "Identity", "Concat", "Softplus"}
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean"}


def ranks(nodes, constants, input_ranks):
    """value name -> rank, where it follows from the graph inputs' declared
    ranks through ops that keep or broadcast ranks (others: unknown)."""
    rank = dict(input_ranks)

    def of(name):
        if name in rank:
            return rank[name]
        return np.asarray(constants[name]).ndim if name in constants else None
    for n in nodes:
        if n.op_type in _SAME_RANK:
            r = of(n.inputs[0]) if n.inputs else None
        elif n.op_type in _BROADCAST:
            rs = [of(v) for v in n.inputs if v]
            r = max(rs) if rs and None not in rs else None
        else:
            r = None
        if r is not None and n.outputs and n.outputs[0]:
            rank[n.outputs[0]] = r
    return rank


def per_channel_affine(node, value, constants, rank, channels):
    """(scale, shift), float64 vectors of `channels` values, when `node` is
    Mul or Add of the rank-`rank` tensor `value` and a float32 constant that
    is one number per channel (axis 1) or one number and does not broadcast
    `value` up; else None.  What a Conv's epilogue (graph.py) and a lone
    norm's affine pass (channel_affine.py) fold into their scale and shift."""
    if node is None or node.op_type not in ("Add", "Mul") or node.attrs or \
            len(node.inputs) != 2 or node.inputs.count(value) != 1:
        return None
    c = constants.get(_other(node, value))
    if c is None:
        return None
    c = np.asarray(c)
    if c.dtype != np.float32 or c.ndim > rank:
        return None
    dims = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for k, d in enumerate(dims) if k != 1) or dims[1] not in (1, channels):
        return None
    v = np.broadcast_to(c.astype(np.float64).reshape(-1), (channels,))
    return (v, np.zeros(channels)) if node.op_type == "Mul" else (np.ones(channels), v)


def lone_batchnorms(nodes, constants, outputs, input_ranks):
    """{id(node): (scale, beta, mean, var, eps)} of every inference
    BatchNormalization of a 4-D tensor with constant parameters that no Conv
    before it absorbs (DenseNet's norm on a Concat, pre-activation blocks)."""
    rank = ranks(nodes, constants, input_ranks)
    readers = _readers(nodes, outputs)
    producer = {o: n for n in nodes for o in n.outputs if o}
    lone = {}
    for n in nodes:
        params = _bn_constants(n, constants)
        x = n.inputs[0] if n.inputs else ""
        p = producer.get(x)
        if params is not None and rank.get(x) == 4 and \
                not (p is not None and p.op_type == "Conv" and _sole(readers, x) is n):
            lone[id(n)] = params
    return lone


def batchnorm_as_conv(nodes, constants, outputs, input_ranks):
    """A lone BatchNormalization (lone_batchnorms) as a depthwise 1x1 Conv,
    y = x * s + (beta - mean * s): one C pass, and a Relu after it then fuses
    into its epilogue."""
    lone = lone_batchnorms(nodes, constants, outputs, input_ranks)
    out = []
    for n in nodes:
        params = lone.get(id(n))
        if params is None:
            out.append(n)
            continue
        channels = params[0].size
        w, b = f"{n.name}/leanconv_dw_weight", f"{n.name}/leanconv_dw_bias"
        # the identity's weights with the BatchNormalization folded in: w = s, b = beta - mean * s
        constants[w], constants[b] = batchnorm_affine(*params)
        out.append(_make("Conv", [n.inputs[0], w, b], n.outputs[:1], n.name, n.opset,
                         group=int(channels), kernel_shape=[1, 1]))
    return out


def _bn_constants(n, constants):
    """(scale, beta, mean, var, eps) of an inference BatchNormalization with
    float32 constant 1-D parameters, else None."""
    if n.op_type != "BatchNormalization" or n.n_outputs() != 1 or len(n.inputs) != 5 or \
            int(n.attr("training_mode", 0)) or int(n.attr("spatial", 1)) != 1 or \
            set(n.attrs) - {"epsilon", "momentum", "training_mode", "spatial", "is_test",
                            "consumed_inputs"}:
        return None
    ps = [constants.get(v) for v in n.inputs[1:]]
    if any(p is None or np.asarray(p).dtype != np.float32 or np.asarray(p).ndim != 1
           for p in ps) or len({np.asarray(p).size for p in ps}) != 1:
        return None
    return tuple(np.asarray(p) for p in ps) + (float(n.attr("epsilon", 1e-5)),)
