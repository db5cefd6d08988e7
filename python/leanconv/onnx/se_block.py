"""The squeeze-and-excitation block as one step: a rewrite finds it, a C call
(kernels/se_block.c) runs it.

    p = GlobalAveragePool(x)             (or ReduceMean over H, W, keepdims)
    h = act1(Conv_1x1(p, W1, b1))        (Relu, SiLU as Sigmoid + Mul, HardSwish, ...
                                          or none)
    g = gate(Conv_1x1(h, W2, b2))        (Sigmoid, HardSigmoid, ...)
    y = Mul(x, g)                        (either order)

becomes one SqueezeExcite node (leanconv's own op) reading x alone: its
weights are packed for the C matrix-vector kernel at prepare time.  Six to
seven steps of Python dispatch, three tiny convolutions and a broadcasting
NumPy multiply become one call.

The rewrite refuses when the values would differ or something else needs an
intermediate: every value between x and y must be read only by the next node
of the block (and not be a graph output), the convolutions must be plain
1x1 ones (stride, dilation 1, no padding, one group) with constant float32
weights of matching shapes, and the pool must average exactly H and W."""
from __future__ import annotations

import numpy as np

from leanconv import _bound_pool, _core, _dense, _epilogue, _isa, _threads
from leanconv.onnx.node import as_int_list
from leanconv.onnx.program import Step

SQUEEZE_EXCITE = "SqueezeExcite"   # leanconv's own op, made here, never accepted from a model


def fuse_squeeze_excite(nodes, constants, outputs, activation_of):
    """The node list with every squeeze-and-excitation block as one
    SqueezeExcite node at the position of its Mul.  activation_of(node,
    constants): the epilogue activation a node amounts to, or None
    (graph._activation)."""
    from leanconv.onnx.rewrite import _make
    readers, producer = {}, {}
    for n in nodes:
        for name in n.inputs:
            if name:
                readers.setdefault(name, []).append(n)
        for name in n.outputs:
            if name:
                producer[name] = n
    for name in outputs:
        readers.setdefault(name, []).append(None)
    replace, removed = {}, set()
    for mul in nodes:
        if mul.op_type != "Mul" or mul.attrs or len(mul.inputs) != 2:
            continue
        m = _match(mul, readers, producer, constants, activation_of)
        if m is None or any(id(k) in removed for k in m["group"]):
            continue
        attrs = {"act1": m["act1"][0], "gate": m["gate"][0]}
        for key in ("act1", "gate"):
            if len(m[key]) > 1:   # (an empty list has no ONNX attribute type)
                attrs[key + "_params"] = [float(v) for v in m[key][1:]]
        node = _make(SQUEEZE_EXCITE, [m["x"], m["w1"], m["b1"], m["w2"], m["b2"]],
                     mul.outputs, f"{mul.name} (squeeze-excite)", mul.opset, **attrs)
        removed.update(id(k) for k in m["group"])
        replace[id(mul)] = node
    if not replace:
        return nodes
    return [replace.get(id(n), n) for n in nodes if id(n) in replace or id(n) not in removed]


def _only_reader(readers, value, node):
    """`value` is read by `node` alone, once (a graph output has reader None)."""
    r = readers.get(value, [])
    return len(r) == 1 and r[0] is node and node.inputs.count(value) == 1


def _as_tuple(activation):
    """An activation (graph._activation's form) as (name, *params)."""
    return (activation,) if isinstance(activation, str) else tuple(activation)


def _match(mul, readers, producer, constants, activation_of):
    for x, gv in (mul.inputs, mul.inputs[::-1]):
        if not x or not gv or x == gv:
            continue
        gate_node = producer.get(gv)
        if gate_node is None or not _only_reader(readers, gv, mul):
            continue
        gate = activation_of(gate_node, constants)
        if gate is None or gate_node.op_type == "Clip" or not _only_reader(
                readers, gate_node.inputs[0], gate_node) or len(gate_node.outputs) != 1:
            continue
        conv2 = producer.get(gate_node.inputs[0])
        if conv2 is None or conv2.op_type != "Conv" or \
                not _only_reader(readers, conv2.inputs[0], conv2):
            continue
        act1, act_nodes, conv1_out = _first_activation(conv2.inputs[0], readers, producer,
                                                       constants, activation_of)
        if act1 is False:
            continue
        conv1 = producer.get(conv1_out)
        if conv1 is None or conv1.op_type != "Conv":
            continue
        pool = producer.get(conv1.inputs[0])
        if pool is None or not _only_reader(readers, conv1.inputs[0], conv1) or \
                not _averages_hw(pool, constants) or pool.inputs[0] != x:
            continue
        w1, b1 = _pointwise(conv1, constants)
        w2, b2 = _pointwise(conv2, constants)
        if w1 is None or w2 is None:
            continue
        r, c = constants.meta(w1)[0][:2]
        if tuple(constants.meta(w2)[0][:2]) != (c, r):
            continue
        return {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2,
                "act1": _as_tuple(act1) if act1 is not None else ("none",),
                "gate": _as_tuple(gate),
                "group": [pool, conv1, *act_nodes, conv2, gate_node, mul]}
    return None


def _first_activation(h, readers, producer, constants, activation_of):
    """(activation or None, its nodes, the first Conv's output) for the value h
    the second Conv reads; activation False when the pattern does not hold."""
    a = producer.get(h)
    if a is None:
        return False, [], None
    if a.op_type == "Conv":
        return None, [], h
    if a.op_type == "Mul" and len(a.inputs) == 2 and not a.attrs:   # SiLU: u * Sigmoid(u)
        for u, s in (a.inputs, a.inputs[::-1]):
            sig = producer.get(s)
            if sig is not None and sig.op_type == "Sigmoid" and sig.inputs == [u] and \
                    _only_reader(readers, s, a) and \
                    sorted(map(id, readers.get(u, []))) == sorted([id(a), id(sig)]):
                return "silu", [sig, a], u
        return False, [], None
    act = activation_of(a, constants)
    if act is None or not a.inputs or not _only_reader(readers, a.inputs[0], a) or \
            (a.op_type == "Clip" and any(n and n not in constants for n in a.inputs[1:])):
        return False, [], None
    return act, [a], a.inputs[0]


def _averages_hw(pool, constants):
    """pool is GlobalAveragePool, or a ReduceMean keeping dims over exactly
    axes 2 and 3 of a rank-4 tensor (the Conv reading it makes x rank 4)."""
    if pool.op_type == "GlobalAveragePool":
        return not pool.attrs
    if pool.op_type != "ReduceMean" or int(pool.attr("keepdims", 1)) != 1 or \
            int(pool.attr("noop_with_empty_axes", 0)) != 0:
        return False
    if pool.opset >= 18:
        if len(pool.inputs) < 2 or pool.inputs[1] not in constants or pool.attr("axes") is not None:
            return False
        axes = np.asarray(constants[pool.inputs[1]]).reshape(-1).tolist()
    else:
        axes = pool.attr("axes")
    return axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3] and len(axes) == 2


def _pointwise(conv, constants):
    """(weight name, bias name or '') of a plain 1x1 Conv with constant
    float32 weights, else (None, None)."""
    bad = (None, None)
    if set(conv.attrs) - {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"}:
        return bad
    if len(conv.inputs) < 2:
        return bad
    w_name, b_name = conv.input(1), conv.input(2)
    if w_name not in constants or (b_name and b_name not in constants):
        return bad
    # shapes only: the weights are read once, by the fused step that packs them
    w_shape, w_dtype = constants.meta(w_name)
    if w_dtype != np.float32 or len(w_shape) != 4 or tuple(w_shape[2:]) != (1, 1) or \
            min(w_shape) < 1:
        return bad
    if b_name:
        b_shape, b_dtype = constants.meta(b_name)
        if b_dtype != np.float32 or tuple(b_shape) != (w_shape[0],):
            return bad
    ints = {k: as_int_list(conv.attr(k), k, conv) for k in ("strides", "pads", "dilations")}
    if any(v is not None and any(i != 1 for i in v) for k, v in ints.items() if k != "pads") or \
            (ints["pads"] is not None and any(ints["pads"])) or int(conv.attr("group", 1)) != 1 or \
            conv.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or \
            as_int_list(conv.attr("kernel_shape"), "kernel_shape", conv) not in (None, [1, 1]):
        return bad
    return w_name, b_name


def _epilogue_of(name, params):
    if name == "none":
        return None
    return _epilogue.parse(name if not params else (name, *params))


def _packed(constants, name, rows, k):
    """A 1x1 weight (rows, k, 1, 1) in the dense kernel's panels, read a few
    panels at a time when it is still in the model file, else read once."""
    read = constants.row_reader(name)
    if read is not None:
        return _dense.pack_rows(read, rows, k)
    return _dense.pack(np.asarray(constants.read_once(name)).reshape(rows, k))


def build_squeeze_excite(node, ctx):
    node.allow("act1", "act1_params", "gate", "gate_params")
    r, c = ctx.constants.meta(node.inputs[1])[0][:2]   # (the matcher checked both shapes)
    w1p = _packed(ctx.constants, node.inputs[1], r, c)
    w2p = _packed(ctx.constants, node.inputs[3], c, r)
    b1 = np.ascontiguousarray(ctx.constants[node.inputs[2]], np.float32) if node.inputs[2] else None
    b2 = np.ascontiguousarray(ctx.constants[node.inputs[4]], np.float32) if node.inputs[4] else None
    act1 = _epilogue_of(node.attr("act1"), node.attr("act1_params", []))
    gate = _epilogue_of(node.attr("gate"), node.attr("gate_params", []))
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    name = node.name

    def check(x):
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"{name}: expected a float32 (N, {c}, H, W) input, got "
                             f"{x.dtype} {x.shape}")

    def call(y, x):
        """The C call writing the block of the contiguous x into y."""
        return _core.BoundSEBlock(x.reshape(-1), y.reshape(-1), x.shape[0], c,
                                  x.shape[2] * x.shape[3], w1p, b1, r, act1, w2p, b2, gate,
                                  _threads.resolve(settings.threads), _isa.isa_id())

    def into(outs, x):
        check(x)
        if x.shape[0] * x.shape[2] * x.shape[3] == 0:
            return
        _bound_pool.run(call(outs[0], x if x.flags.c_contiguous else np.ascontiguousarray(x)))

    def bind(outs, x):
        """The C call for these buffers, in the schedule's C loop (a Python step
        between bound groups cost EfficientNet and MobileNetV3 a hand-over per
        block at 2 threads), or None where into() must run."""
        check(x)
        y = outs[0]
        if not x.flags.c_contiguous or y is None or not y.flags.c_contiguous or \
                x.shape[0] * x.shape[2] * x.shape[3] == 0:
            return None
        return call(y, x)

    def run(x):
        check(x)
        y = np.empty(x.shape, np.float32)
        into([y], x)
        return (y,)
    held = [a for a in (w1p, w2p, b1, b2) if a is not None]
    return Step(node, run, inputs=node.inputs[:1], into=into, inplace=(0,), bind=bind,
                workspace=lambda x: 4 * (2 * c + r), held=lambda: held)
