"""Element-wise and normalisation ops in NumPy: Relu, Clip, LeakyRelu,
Sigmoid, Add, Sum, Mul, Softmax, BatchNormalization (standalone), Dropout
(inference), Identity.  Each builder checks the node's attributes at prepare
time and returns a Step."""
from __future__ import annotations

import math

import numpy as np

from leanconv import _bound_pool, _core, _epilogue, _isa, _threads
from leanconv._fold import batchnorm_affine
from leanconv._channel_norm import (channel_layernorm_bind, channel_layernorm_into,
                                     channel_layernorm_workspace)
from leanconv.onnx.broadcast_binary import binary_bind, copy_bind
from leanconv.onnx.node import unsupported
from leanconv.onnx.program import Step


def _zero(x):
    return np.zeros((), dtype=x.dtype)


def build_relu(node, ctx):
    node.allow("consumed_inputs")   # opset 1 legacy attribute
    return Step(node, lambda x: (np.maximum(x, _zero(x)),), inplace=True,
                into=lambda outs, x: np.maximum(x, _zero(x), out=outs[0]))


def build_leakyrelu(node, ctx):
    node.allow("alpha", "consumed_inputs")
    alpha = float(node.attr("alpha", 0.01))

    def leaky(x):
        return (np.where(x < 0, x * x.dtype.type(alpha), x),)
    return Step(node, leaky)


def build_sigmoid(node, ctx):
    node.allow("consumed_inputs")

    def sigmoid(x):
        with np.errstate(over="ignore"):
            one = x.dtype.type(1)
            return (one / (one + np.exp(-x)),)

    def sigmoid_into(outs, x):
        y = outs[0]
        with np.errstate(over="ignore"):
            np.negative(x, out=y)
            np.exp(y, out=y)
            y += 1
            np.reciprocal(y, out=y)
    return Step(node, sigmoid, into=sigmoid_into, inplace=True)


def clip_bounds(node, lo_value, hi_value):
    """(lo, hi) of a Clip node: attributes before opset 11, inputs after."""
    if node.opset < 11:
        return node.attr("min"), node.attr("max")
    return lo_value, hi_value


def build_clip(node, ctx):
    if node.opset < 11:
        node.allow("min", "max", "consumed_inputs")
        lo, hi = node.attr("min"), node.attr("max")

        def clip_attr(x):
            return (np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi)
                    .astype(x.dtype, copy=False),)
        return Step(node, clip_attr, inputs=node.inputs[:1])
    node.allow()

    def clip(x, lo=None, hi=None):
        y = x
        if lo is not None:
            y = np.maximum(y, lo.astype(x.dtype))
        if hi is not None:
            y = np.minimum(y, hi.astype(x.dtype))
        return (y if y is not x else x.copy(),)

    def clip_into(outs, x, lo=None, hi=None):
        y = outs[0]
        np.copyto(y, x)
        if lo is not None:
            np.maximum(y, lo.astype(x.dtype), out=y)
        if hi is not None:
            np.minimum(y, hi.astype(x.dtype), out=y)
    return Step(node, clip, into=clip_into, inplace=True)


def _legacy_broadcast(node):
    """Before opset 7, broadcast=1 with axis=k aligns B with A's axes from k
    on (not from the right): B gets trailing unit axes."""
    node.allow("broadcast", "axis", "consumed_inputs")
    axis = node.attr("axis")
    if node.opset >= 7 or not int(node.attr("broadcast", 0)) or axis is None:
        return lambda a, b: b
    axis = int(axis)

    def align(a, b):
        a_axis = axis + a.ndim if axis < 0 else axis
        return b.reshape(b.shape + (1,) * (a.ndim - a_axis - b.ndim))
    return align


def _channel_gate(x, g):
    """Whether x * g scales each (image, channel) plane of a contiguous float32
    NCHW x by one value of g (N, C, 1, 1): LR-ASPP's attention, a gate made at
    run time (the C per-channel affine; a constant one folds into a Conv)."""
    return x.ndim == 4 and g.ndim == 4 and g.shape == x.shape[:2] + (1, 1) and \
        x.dtype == g.dtype == np.float32 and x.flags.c_contiguous and g.flags.c_contiguous and \
        x.size > 0


def _binary(node, ctx, ufunc):
    """Add/Mul: broadcasting, written into the arena (in place when legal);
    float32 operands bound as one C call on leanconv's threads
    (broadcast_binary.py), else a float32 Add of equal shapes and a Mul by a
    per-plane gate in C, the rest NumPy."""
    align = _legacy_broadcast(node)
    legacy = node.opset < 7 and int(node.attr("broadcast", 0)) and node.attr("axis") is not None
    add = ufunc is np.add
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    zeros = {}   # the gate's shift: planes -> zeros

    def into(outs, a, b):
        y = outs[0]
        if add and a.shape == b.shape and a.dtype == b.dtype == np.float32 and \
                a.flags.c_contiguous and b.flags.c_contiguous:
            _epilogue.activate(a, None, residual=b, out=y, threads=settings.threads)
            return
        if not add:
            x, g = (a, b) if _channel_gate(a, b) else (b, a) if _channel_gate(b, a) else (a, None)
            if g is not None and y.shape == x.shape and y.flags.c_contiguous:
                shift = zeros.get(g.size)
                if shift is None:
                    shift = zeros[g.size] = np.zeros(g.size, np.float32)
                _core.channel_affine(x.reshape(-1), y.reshape(-1), g.size, x.size // g.size,
                                     g.reshape(-1), shift, False, _threads.resolve(settings.threads))
                return
        ufunc(a, align(a, b), out=y)

    def bind(outs, a, b):
        return None if legacy else binary_bind(node.op_type if node.op_type != "Sum" else "Add",
                                               outs[0], a, b, settings.threads)
    return Step(node, lambda a, b: (np.asarray(ufunc(a, align(a, b))),), into=into,
                inplace=True, bind=bind)


def build_add(node, ctx):
    return _binary(node, ctx, np.add)


def build_mul(node, ctx):
    return _binary(node, ctx, np.multiply)


def build_sum(node, ctx):
    node.allow("consumed_inputs")
    if len(node.inputs) == 2:   # an old export's residual: Add's step (C, in place)
        return _binary(node, ctx, np.add)

    def total(*xs):
        y = np.array(xs[0], copy=True)
        for x in xs[1:]:
            y = y + x
        return (y,)
    return Step(node, total)


def softmax(x, axis, legacy):
    """Softmax over `axis`; before opset 13 over all axes from `axis` on (the
    input coerced to 2-D)."""
    y = np.empty_like(x)
    softmax_into(y, x, axis, legacy)
    return y


def softmax_bind(y, x, axis, legacy, threads=None):
    """The C call (a _core.BoundSoftmax: kernels/softmax.c, the ISA's vector
    exp) writing softmax(x, axis, legacy) into y, for float32 C-contiguous
    arrays of one shape (y may be x), or None where NumPy must do it.  x is
    seen as outer x n x inner: n the softmax axis (legacy: every axis from
    it on, inner 1), inner the axes after it."""
    if not (x.dtype == np.float32 and y.dtype == np.float32 and x.ndim and x.size and
            y.shape == x.shape and x.flags.c_contiguous and y.flags.c_contiguous):
        return None
    axis = axis % x.ndim
    # math.prod, not np.prod: a NumPy reduction costs ~50 us as the first NumPy
    # work after a model's convolutions (its paths cold), 10x the softmax itself
    outer = math.prod(x.shape[:axis])
    n = math.prod(x.shape[axis:]) if legacy else x.shape[axis]
    return _core.BoundSoftmax(x.reshape(-1), y.reshape(-1), outer, n, x.size // (outer * n),
                              _threads.resolve(threads), _isa.isa_id())


def softmax_into(y, x, axis, legacy, threads=None):
    """softmax(x, axis, legacy) written into y (x's shape; may be x itself):
    in C where softmax_bind takes the arrays, else NumPy with no temporaries
    beyond the two reductions' few values.  threads: leanconv's setting."""
    call = softmax_bind(y, x, axis, legacy, threads)
    if call is not None:
        _bound_pool.run(call)
        return
    if legacy:
        axis = axis % max(x.ndim, 1)
        lead = math.prod(x.shape[:axis])
        x, y, axis = x.reshape(lead, -1), y.reshape(lead, -1), 1
    axis = axis % max(x.ndim, 1)
    np.subtract(x, np.max(x, axis=axis, keepdims=True), out=y)
    np.exp(y, out=y)
    y /= np.sum(y, axis=axis, keepdims=True)


def build_softmax(node, ctx):
    node.allow("axis")
    legacy = node.opset < 13
    axis = int(node.attr("axis", 1 if legacy else -1))
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    return Step(node, lambda x: (softmax(x, axis, legacy),), inplace=True,
                into=lambda outs, x: softmax_into(outs[0], x, axis, legacy, settings.threads),
                bind=lambda outs, x: softmax_bind(outs[0], x, axis, legacy, settings.threads))


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2)) if ndim >= 2 else v


def batchnorm_inference(x, scale, bias, mean, var, eps):
    nd = x.ndim
    s = _per_channel(scale, nd) / np.sqrt(_per_channel(var, nd) + x.dtype.type(eps))
    return ((x - _per_channel(mean, nd)) * s + _per_channel(bias, nd)).astype(x.dtype, copy=False)


def build_batchnorm(node, ctx):
    node.allow("epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs")
    eps = float(node.attr("epsilon", 1e-5))
    momentum = float(node.attr("momentum", 0.9))
    if int(node.attr("spatial", 1)) != 1:
        raise unsupported(f"BatchNormalization with spatial=0 (node {node.name})")
    training = int(node.attr("training_mode", 0)) == 1
    if not training and node.n_outputs() > 1:
        raise unsupported(f"BatchNormalization's training outputs outside training_mode "
                          f"(node {node.name}, opset {node.opset})")
    if not training:
        settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

        def bind(outs, x, s, b, m, v):
            """The norm as one bound C pass of the per-channel affine map
            (kernels/channel_affine.c), folded as a Conv's norm is: a lone norm
            the prepare-time rewrites missed because the input's rank was not
            known then (MaxViT's MBConv pre-norm after a Reshape: 0.35-0.48 ms
            a block in NumPy at 56 x 56, 1 thread)."""
            params = [np.asarray(p) for p in (s, b, m, v)]
            if x.ndim != 4 or any(p.dtype != np.float32 or p.shape != (x.shape[1],)
                                  for p in params):
                return None
            w, t = batchnorm_affine(*params, eps)
            return _bound_pool.channel_affine(outs[0], x,
                                              np.ascontiguousarray(w.reshape(-1), np.float32),
                                              np.ascontiguousarray(t, np.float32), False,
                                              settings.threads)
        # folded once at bind: only parameters that cannot change between runs
        constant = len(node.inputs) == 5 and all(ctx.const(n) is not None for n in node.inputs[1:])
        return Step(node, lambda x, s, b, m, v: (batchnorm_inference(x, s, b, m, v, eps),),
                    bind=bind if constant else None)

    def train(x, s, b, m, v):
        axes = (0,) + tuple(range(2, x.ndim))
        bm, bv = x.mean(axis=axes), x.var(axis=axes)
        y = batchnorm_inference(x, s, b, bm, bv, eps)
        run_m = (m * momentum + bm * (1 - momentum)).astype(m.dtype)
        run_v = (v * momentum + bv * (1 - momentum)).astype(v.dtype)
        return (y, run_m, run_v)
    return Step(node, train)


def build_dropout(node, ctx):
    """Inference Dropout: the identity, and an all-true mask."""
    node.allow("ratio", "seed", "is_test", "consumed_inputs")
    if node.opset < 7 and int(node.attr("is_test", 0)) == 0:
        raise unsupported(f"training-mode Dropout (node {node.name}: is_test=0)")
    legacy_mask = node.opset < 12

    def dropout(x, ratio=None, training_mode=None):
        if training_mode is not None and bool(np.asarray(training_mode)):
            raise NotImplementedError(f"leanconv.onnx does not support training-mode Dropout "
                                      f"(node {node.name})")
        mask = np.ones(x.shape, dtype=x.dtype if legacy_mask else np.bool_)
        return (x, mask)
    return Step(node, dropout, view=node.n_outputs() == 1)


def build_identity(node, ctx):
    node.allow()
    return Step(node, lambda x: (x,), view=True)


_REDUCERS = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min",
             "ReduceProd": "prod", "ReduceL2": "l2", "ReduceSumSquare": "sumsquare"}


def build_logsoftmax(node, ctx):
    node.allow("axis")
    legacy = node.opset < 13
    axis = int(node.attr("axis", 1 if legacy else -1))

    def logsoftmax(x):
        if legacy:
            a = axis % max(x.ndim, 1)
            flat = x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), -1)
            return (logsoftmax_axis(flat, 1).reshape(x.shape),)
        return (logsoftmax_axis(x, axis),)
    return Step(node, logsoftmax)


def logsoftmax_axis(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    return (z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))).astype(x.dtype, copy=False)


def build_reduce(node, ctx):
    """ReduceMean/Sum/Max/Min/Prod/L2/SumSquare: axes an attribute before the
    opset that made it an input (13 for ReduceSum, 18 for the others)."""
    kind = _REDUCERS[node.op_type]
    keepdims = int(node.attr("keepdims", 1)) == 1
    axes_as_input = node.opset >= (13 if kind == "sum" else 18)
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive
    if not axes_as_input:
        node.allow("axes", "keepdims")
        axes_attr = node.attr("axes")
        return Step(node, lambda x: (reduce(kind, x, axes_attr, keepdims, False),),
                    inputs=node.inputs[:1],
                    into=_mean_into(kind, lambda x: reduce(kind, x, axes_attr, keepdims, False),
                                    lambda: axes_attr, settings),
                    bind=_mean_bind(kind, axes_attr, settings))
    node.allow("keepdims", "noop_with_empty_axes")
    noop = int(node.attr("noop_with_empty_axes", 0)) == 1

    def axes_list(axes=None):
        return None if axes is None else list(np.asarray(axes).reshape(-1))

    def run(x, axes=None):
        return (reduce(kind, x, axes_list(axes), keepdims, noop),)
    axes_name = node.inputs[1] if len(node.inputs) > 1 else ""
    known = axes_list(ctx.constants[axes_name]) if axes_name and axes_name in ctx.constants \
        else None
    return Step(node, run, into=_mean_into(kind, lambda x, axes=None: run(x, axes)[0],
                                           axes_list, settings),
                bind=_mean_bind(kind, known, settings) if known else None)


def _mean_into(kind, compute, axes_of, settings):
    """into() of a Reduce node: a float32 mean over trailing axes (ReduceMean
    over H, W: the dynamo exporter's global average pool) in C, as
    GlobalAveragePool (the call _trailing_mean makes); anything else computed
    by `compute` and copied."""
    def into(outs, x, *axes):
        call = _trailing_mean(kind, outs[0], x, axes_of(*axes), settings)
        if call is not None:
            _bound_pool.run(call)
            return
        np.copyto(outs[0], compute(x, *axes))
    return into


def _mean_bind(kind, axes, settings):
    """bind() of a Reduce node whose axes are known at prepare (an attribute or
    a constant input): the compiled schedule runs the C mean among the Convs'
    calls, with no Python step between them (the dynamo exporter's global
    average pool sat between MobileNetV2's last Conv and its classifier)."""
    def bind(outs, x, *_):
        return _trailing_mean(kind, outs[0], x, axes, settings)
    return bind


def _trailing_mean(kind, y, x, axes, settings):
    """The C call averaging float32 x over its trailing `axes` into y (a
    _core.BoundPool global average, holding both), or None."""
    if kind != "mean" or axes is None or not len(axes) or y is None or \
            x.dtype != np.float32 or y.dtype != np.float32 or not x.ndim or \
            not (x.flags.c_contiguous and y.flags.c_contiguous):
        return None
    norm = sorted({int(v) % x.ndim for v in axes})
    k = norm[0]
    planes = math.prod(x.shape[:k])   # (not np.prod: see softmax_into)
    if norm != list(range(k, x.ndim)) or k == 0 or not planes or not x.size or y.size != planes:
        return None
    return _core.BoundPool(x.reshape(-1), y.reshape(-1), None, planes, x.size // planes, False,
                           False, _threads.resolve(settings.threads))


def reduce(kind, x, axes, keepdims, noop_when_empty):
    if axes is None or len(axes) == 0:
        if noop_when_empty:
            return x
        axes = range(x.ndim)
    axes = tuple(sorted({int(a) % x.ndim for a in axes})) if x.ndim else ()
    acc = np.float64 if x.dtype.kind == "f" else None
    if kind == "mean":
        y = x.mean(axis=axes, keepdims=keepdims, dtype=acc)
    elif kind == "sum":
        y = x.sum(axis=axes, keepdims=keepdims, dtype=acc)
    elif kind == "prod":
        y = x.prod(axis=axes, keepdims=keepdims, dtype=acc)
    elif kind == "sumsquare":
        y = np.square(x, dtype=acc).sum(axis=axes, keepdims=keepdims)
    elif kind == "l2":
        y = np.sqrt(np.square(x, dtype=acc).sum(axis=axes, keepdims=keepdims))
    elif x.size == 0:
        if x.dtype == np.bool_:
            fill = kind == "min"   # the identity of any (max) and all (min)
        elif x.dtype.kind in "iu":
            fill = (np.iinfo(x.dtype).min if kind == "max" else np.iinfo(x.dtype).max)
        else:
            fill = -np.inf if kind == "max" else np.inf
        y = np.full([1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or
                     i not in axes], fill)
    else:
        y = (x.max if kind == "max" else x.min)(axis=axes, keepdims=keepdims)
    return np.asarray(y).astype(x.dtype, copy=False)


def _normalise64(x, axes, eps):
    """(x - mean, mean, 1 / sqrt(variance + eps)) over `axes`, in float64:
    the NumPy statistics of LayerNormalization and InstanceNormalization."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    centred = x64 - mean
    return centred, mean, 1.0 / np.sqrt(np.square(centred).mean(axis=axes, keepdims=True) + eps)


def build_layernorm(node, ctx):
    """LayerNormalization over the axes from `axis` on, statistics in float64
    (stash_type 1).  Over float32 C-contiguous rows with a scale (and bias)
    of the normalised shape -- a transformer's tokens, Swin's 3136 rows of 96
    -- in leanconv's C on its threads (kernels/instance_norm.c), when only Y
    is read; else in NumPy (13.9 ms of Swin-T's 224 px run in NumPy, 29 nodes)."""
    node.allow("axis", "epsilon", "stash_type")
    axis = int(node.attr("axis", -1))
    eps = float(node.attr("epsilon", 1e-5))
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def layernorm(x, scale, bias=None):
        centred, mean, inv = _normalise64(x, tuple(range(axis % x.ndim, x.ndim)), eps)
        y = centred * inv * scale
        if bias is not None:
            y = y + bias
        return (y.astype(x.dtype), mean.astype(np.float32), inv.astype(np.float32))

    def on_c(y, x, scale, bias):
        tail = x.shape[axis % x.ndim:] if x.ndim else ()
        return x.ndim > 0 and y.shape == x.shape and math.prod(tail) > 0 and \
            all(a is None or (a.dtype == np.float32 and a.flags.c_contiguous)
                for a in (y, x, scale, bias)) and \
            scale.shape == tail and (bias is None or bias.shape == tail)

    def rows_bind(outs, x, scale, bias):
        y = outs[0]
        if any(o is not None for o in outs[1:]) or y is None or not on_c(y, x, scale, bias):
            return None
        width = math.prod(x.shape[axis % x.ndim:])
        return _core.BoundLayerNormRows(x.reshape(-1), y.reshape(-1), x.size // width, width,
                                        eps, scale.reshape(-1),
                                        None if bias is None else bias.reshape(-1),
                                        _threads.resolve(settings.threads), _isa.isa_id())

    def layernorm_bind(outs, x, scale, bias=None):
        """The C rows; for a strided view (Swin's first norm reads the patch
        embedding's permuted output, MaxViT's grid attention its partition)
        first its copy into y, then the rows in place there: NumPy's float64
        statistics took 7 MB of temporaries and 5x the time."""
        call = rows_bind(outs, x, scale, bias)
        y = outs[0]
        if call is not None or y is None or x.shape != y.shape or x.flags.c_contiguous:
            return call
        copy = copy_bind(y, x, settings.threads)
        rows = rows_bind(outs, y, scale, bias) if copy is not None else None
        return None if rows is None else _core.BoundSequence(copy, rows)

    def layernorm_into(outs, x, scale, bias=None):
        call = layernorm_bind(outs, x, scale, bias)
        if call is not None:
            _bound_pool.run(call)
            return
        for o, r in zip(outs, layernorm(x, scale, bias)):
            if o is not None:
                np.copyto(o, r)

    def shape_only(x, scale, bias=None):
        stats = x.shape[:axis % x.ndim] + (1,) * (x.ndim - axis % x.ndim)
        return (np.zeros(x.shape, x.dtype), np.zeros(stats, np.float32),
                np.zeros(stats, np.float32))
    return Step(node, layernorm, into=layernorm_into, bind=layernorm_bind, shape_only=shape_only)


def build_instancenorm(node, ctx):
    """InstanceNormalization: each (image, channel) plane normalised over
    its spatial axes, then scale[c] * . + bias[c], statistics in float64
    (style-transfer and GAN generators use it after their Convs).  float32
    C-contiguous planes in leanconv's C on its threads
    (kernels/instance_norm.c), anything else in NumPy."""
    node.allow("epsilon")
    eps = float(node.attr("epsilon", 1e-5))
    where = f"InstanceNormalization node {node.name}"
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def check(x, scale, bias):
        if x.ndim < 3:
            raise ValueError(f"{where}: input of rank {x.ndim}, needs (N, C, spatial...)")
        if scale.shape != (x.shape[1],) or bias.shape != (x.shape[1],):
            raise ValueError(f"{where}: scale {scale.shape} and bias {bias.shape} must have "
                             f"the input's {x.shape[1]} channels")

    def on_c(y, x, scale, bias):
        return all(a.dtype == np.float32 and a.flags.c_contiguous for a in (y, x, scale, bias)) \
            and y.shape == x.shape and x.shape[1] > 0

    def instancenorm_into(outs, x, scale, bias):
        check(x, scale, bias)
        y = outs[0]
        if not on_c(y, x, scale, bias):
            np.copyto(y, instancenorm(x, scale, bias)[0])
            return
        _core.instance_norm(x.reshape(-1), y.reshape(-1), x.shape[0] * x.shape[1], x.shape[1],
                            math.prod(x.shape[2:]), eps, scale, bias,
                            _threads.resolve(settings.threads))

    def instancenorm(x, scale, bias):
        check(x, scale, bias)
        per_channel = (1, -1) + (1,) * (x.ndim - 2)
        centred, _, inv = _normalise64(x, tuple(range(2, x.ndim)), eps)
        y = centred * inv * scale.reshape(per_channel) + bias.reshape(per_channel)
        return (y.astype(x.dtype),)

    def shape_only(x, scale, bias):
        # (the compile pass: in float64 NumPy a 32 x 224 x 224 plane stack made
        # ~40 MB of temporaries, the model's peak RSS, 1.7x its memory plan)
        check(x, scale, bias)
        return (np.zeros(x.shape, x.dtype),)
    return Step(node, instancenorm, into=instancenorm_into, shape_only=shape_only)


def build_channel_layernorm(node, ctx):
    """leanconv's ChannelLayerNorm (made by rewrite.channels_first): a
    LayerNormalization over axis 1 of NCHW, scale and bias shaped (C, 1, 1)
    (absent when folded into the Conv after it).
    float32 with the variance of the centred values (no cancellation), in
    leanconv's C on its threads (_channel_norm)."""
    node.allow("epsilon")
    eps = float(node.attr("epsilon", 1e-5))
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def norm_into(outs, x, scale=None, bias=None):
        channel_layernorm_into(outs[0], x, eps, scale, bias, settings.threads)

    def norm(x, scale=None, bias=None):
        y = np.empty_like(x)
        norm_into([y], x, scale, bias)
        return (y,)
    def norm_bind(outs, x, scale=None, bias=None):
        return channel_layernorm_bind(outs[0], x, eps, scale, bias, settings.threads)
    return Step(node, norm, into=norm_into, bind=norm_bind,
                workspace=lambda x, *rest: channel_layernorm_workspace(x))
