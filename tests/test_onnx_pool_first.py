"""leanconv.onnx.pool_first: an average pool moved ahead of the 1x1 conv that
feeds it (DenseNet's transitions) gives onnxruntime's result, and the swap is
refused wherever the two orders differ or nothing is gained."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

C, K = 8, 6


def transition(pool=None, conv=None, bias=True, kernel=1, extra_reader=False):
    """BN -> Relu -> Conv(kernel x kernel) -> AveragePool, as in DenseNet."""
    g = np.random.default_rng(0)
    inits = [("s", (0.5 + g.random(C)).astype(np.float32)), ("b", g.random(C).astype(np.float32)),
             ("m", g.random(C).astype(np.float32)), ("v", (0.5 + g.random(C)).astype(np.float32)),
             ("w", g.standard_normal((K, C, kernel, kernel)).astype(np.float32))]
    if bias:
        inits.append(("cb", g.standard_normal(K).astype(np.float32)))
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Conv", ["r", "w"] + (["cb"] if bias else []), ["c"],
                              **(conv or {})),
             helper.make_node("AveragePool", ["c"], ["y"],
                              **(pool or dict(kernel_shape=[2, 2], strides=[2, 2])))]
    outputs = [("y", None)]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["c"], ["z"]))
        outputs.append(("z", None))
    return make_model(nodes, [("x", (1, C, 10, 12))], outputs, inits)


def pool_first(model):
    """Whether the pool runs before the 1x1 conv (the first Conv step is the
    lone BatchNormalization, rewrite.batchnorm_as_conv)."""
    order = [s.op_type for s in lco.prepare(model).program.steps]
    last_conv = len(order) - 1 - order[::-1].index("Conv")
    return order.index("AveragePool") < last_conv


def feeds():
    return {"x": np.random.default_rng(1).standard_normal((1, C, 10, 12)).astype(np.float32)}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("pool", [dict(kernel_shape=[2, 2], strides=[2, 2]),
                                  dict(kernel_shape=[3, 3], strides=[2, 2]),
                                  dict(kernel_shape=[2, 2], strides=[2, 1],
                                       count_include_pad=1)])
def test_the_pool_goes_first_and_matches_onnxruntime(bias, pool):
    model = transition(pool, bias=bias)
    assert pool_first(model)
    assert_matches_ort(model, feeds())


@pytest.mark.parametrize("pool, conv, kernel, extra", [
    (dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
     None, 1, False),                                                 # padded pool
    (dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), None, 1, False),   # ceil mode
    (dict(kernel_shape=[2, 2], strides=[1, 1]), None, 1, False),     # no smaller image
    (None, None, 3, False),                                           # a 3x3 conv
    (None, dict(strides=[2, 2]), 1, False),                           # a strided conv
    (None, None, 1, True),                                            # conv output read twice
])
def test_the_swap_is_refused_where_the_orders_differ(pool, conv, kernel, extra):
    model = transition(pool, conv, kernel=kernel, extra_reader=extra)
    assert not pool_first(model)
    assert_matches_ort(model, feeds())
