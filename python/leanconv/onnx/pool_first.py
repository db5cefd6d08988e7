"""Average pooling moved ahead of the 1x1 convolution that feeds it.

A 1x1 convolution at stride 1 without padding works on each pixel alone,
y = W x + b, and an average pool without padding is a weighted sum of pixels
whose weights add up to 1, so AvgPool(Conv(x)) = Conv(AvgPool(x)) (up to
rounding).  Pooling first makes the convolution work on the pooled pixels:
DenseNet's transitions (BN, ReLU, 1x1 conv, 2x2/2 average pool) do a quarter
of their multiply-adds.  The pool then runs on the convolution's input
channels instead of its output channels; it is far cheaper than the
convolution either way.

Refused where the two differ: a conv output that anything else reads (or a
graph output), a conv that is not 1x1 stride 1 without padding, a pool with
padding or ceil_mode (where the divisor need not make the weights add up to
1), a pool that does not shrink the image (nothing to gain)."""
from __future__ import annotations

import copy

import numpy as np

from leanconv.onnx.rewrite import _readers, _sole


def _shape(constants, name):
    """A constant's shape without reading a weight left in the file."""
    if dict.__contains__(constants, name):
        return np.shape(dict.__getitem__(constants, name))
    source = getattr(constants, "weight_source", lambda _: None)(name)
    return None if source is None else tuple(source.shape)


def _all(values, want):
    return values is None or all(int(v) == want for v in values)


def _pointwise_conv(conv, constants):
    if conv.op_type != "Conv" or len(conv.inputs) < 2 or not conv.inputs[1] or \
            conv.inputs[1] not in constants or conv.n_outputs() != 1:
        return False
    shape = _shape(constants, conv.inputs[1])
    return (shape is not None and len(shape) == 4 and tuple(shape[2:]) == (1, 1) and
            conv.attr("auto_pad", "NOTSET") in ("NOTSET", "VALID") and
            _all(conv.attr("strides"), 1) and _all(conv.attr("pads"), 0) and
            set(conv.attrs) <= {"auto_pad", "dilations", "group", "kernel_shape", "pads",
                                "strides"})


def _shrinking_plain_avgpool(pool):
    kernel = pool.attr("kernel_shape")
    strides = pool.attr("strides") or [1] * len(kernel or [])
    return (pool.op_type == "AveragePool" and pool.n_outputs() == 1 and kernel is not None and
            len(kernel) == 2 and pool.attr("auto_pad", "NOTSET") in ("NOTSET", "VALID") and
            _all(pool.attr("pads"), 0) and int(pool.attr("ceil_mode", 0)) == 0 and
            int(np.prod(strides)) > 1 and
            set(pool.attrs) <= {"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                                "kernel_shape", "pads", "strides"})


def avgpool_before_pointwise_conv(nodes, constants, outputs):
    """nodes with every Conv(1x1) -> AveragePool pair that may be swapped
    swapped: the pool reads the conv's input, the conv the pooled tensor and
    writes the pool's output (both where the conv was)."""
    readers = _readers(nodes, outputs)
    producer = {o: n for n in nodes for o in n.outputs if o}
    swapped = {}   # id(conv) -> (pool first, conv after); id(pool) -> None
    for pool in nodes:
        if pool.op_type != "AveragePool" or not pool.inputs:
            continue
        conv = producer.get(pool.inputs[0])
        if conv is None or _sole(readers, pool.inputs[0]) is not pool or \
                not _pointwise_conv(conv, constants) or not _shrinking_plain_avgpool(pool):
            continue
        pooled = f"{pool.name}/leanconv_pooled_input"
        first, after = copy.copy(pool), copy.copy(conv)
        first.name, first.inputs, first.outputs = f"{pool.name}/leanconv_first", \
            [conv.inputs[0]], [pooled]
        after.inputs, after.outputs = [pooled] + conv.inputs[1:], list(pool.outputs)
        first.attrs, after.attrs = dict(pool.attrs), dict(conv.attrs)
        swapped[id(conv)], swapped[id(pool)] = (first, after), None
    out = []
    for n in nodes:
        pair = swapped.get(id(n), n)
        if pair is None:
            continue
        out.extend(pair if isinstance(pair, tuple) else [pair])
    return out
