"""A BatchNormalization that no convolution absorbs, with the Relu that
alone reads it (DenseNet's pre-activation norms: BN -> ReLU -> 1x1 conv on
the growing concatenation), and any Mul and Add of a per-channel constant
between the two (the onnx zoo's DenseNet: BN -> Mul -> Add -> Relu), as one
pass of leanconv's C per-channel affine map (kernels/channel_affine.c):
y = max(x * s + t, 0), s and t folded from the norm's (and those nodes')
constants at prepare.  The pass reads and writes each float once;
as a depthwise 1x1 convolution (rewrite.batchnorm_as_conv, which still takes
every other lone norm) the same map took 2-3 times as long, and took longer
at 2 threads than at 1 (zoo DenseNet-121's 480>480 @28: 0.13 -> 0.19 ms).

Refused (left to batchnorm_as_conv or NumPy) for a norm whose output anything
else reads, a norm a Conv before it absorbs, non-constant or non-float32
parameters, training mode, and tensors not known to be 4-D."""
from __future__ import annotations

import numpy as np

from leanconv import _bound_pool
from leanconv._fold import batchnorm_affine
from leanconv.onnx.conv import fold_affine
from leanconv.onnx.program import Step
from leanconv.onnx.rewrite import _make, _readers, _sole, lone_batchnorms, per_channel_affine

CHANNEL_AFFINE_RELU = "ChannelAffineRelu"   # leanconv's own op: inputs x, scale, shift


def batchnorm_relu_as_affine(nodes, constants, outputs, input_ranks):
    """nodes with every lone BatchNormalization -> [Mul | Add of a per-channel
    constant ...] -> Relu chain as one CHANNEL_AFFINE_RELU node."""
    lone = lone_batchnorms(nodes, constants, outputs, input_ranks)
    readers = _readers(nodes, outputs)
    merged = {}   # id(bn) -> the new node; id(each node it absorbs) -> None
    for n in nodes:
        params = lone.get(id(n))
        if params is None:
            continue
        channels = params[0].size
        value, chain, affine = n.outputs[0], [], (np.ones(channels), np.zeros(channels))
        while True:
            nxt = _sole(readers, value)
            fold = per_channel_affine(nxt, value, constants, 4, channels)
            if fold is None:
                break
            affine = (affine[0] * fold[0], affine[1] * fold[0] + fold[1])
            chain.append(nxt)
            value = nxt.outputs[0]
        relu = _sole(readers, value)
        if relu is None or relu.op_type != "Relu" or relu.attrs:
            continue
        s, t = f"{n.name}/leanconv_affine_scale", f"{n.name}/leanconv_affine_shift"
        # the folding batchnorm_as_conv and every Conv (graph._loader) use: the same rounding
        w, b = batchnorm_affine(*params)
        if chain:
            w, b = fold_affine(w, b, *affine)
        constants[s] = np.ascontiguousarray(w.reshape(-1), np.float32)
        constants[t] = np.ascontiguousarray(b, np.float32)
        merged[id(n)] = _make(CHANNEL_AFFINE_RELU, [n.inputs[0], s, t], relu.outputs[:1], n.name,
                              n.opset)
        for absorbed in chain + [relu]:
            merged[id(absorbed)] = None
    return [merged.get(id(n), n) for n in nodes if merged.get(id(n), n) is not None]


def build_channel_affine_relu(node, ctx):
    settings = ctx.settings   # not ctx: a closure over ctx would keep the ModelProto alive

    def affine(x, s, t):
        v = x * s.reshape(-1, 1, 1) + t.reshape(-1, 1, 1)
        return (np.where(v < 0, np.float32(0), v).astype(x.dtype, copy=False),)

    def affine_bind(outs, x, s, t):
        """The C call for these buffers (run among the Convs' bound calls, no
        Python around it), or None where NumPy must do it."""
        return _bound_pool.channel_affine(outs[0], x, s, t, True, settings.threads)

    def affine_into(outs, x, s, t):
        call = affine_bind(outs, x, s, t)
        if call is None:
            np.copyto(outs[0], affine(x, s, t)[0])
        else:
            _bound_pool.run(call)
    return Step(node, affine, into=affine_into, fused=("Relu",), bind=affine_bind)
