"""The squeeze-and-excitation block in one C call (kernels/se_block.c, the
ISAs' gemv16 panels) against a float64 reference on every ISA, and the
leanconv.onnx rewrite that uses it (onnx/se_block.py): the exporters' forms
become one SqueezeExcite step matching onnxruntime, and near misses stay
separate steps."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core, _epilogue, _isa
from reference import activation_ref

ACTS = [None, "relu", "silu", "hardswish", ("hardsigmoid", 0.2, 0.5), "sigmoid"]


def packed(w):
    out = np.empty(_core.se_packed_floats(*w.shape), np.float32)
    _core.se_pack(np.ascontiguousarray(w, np.float32).reshape(-1), out, *w.shape)
    return out


def se_reference(x, w1, b1, act1, w2, b2, gate):
    """float64: x * gate(W2 act1(W1 mean(x) + b1) + b2) per image and channel."""
    x = x.astype(np.float64)
    p = x.mean(axis=(2, 3))                                      # (n, c)
    h = activation_ref(p @ w1.T.astype(np.float64) + (0 if b1 is None else b1), act1)
    g = activation_ref(h @ w2.T.astype(np.float64) + (0 if b2 is None else b2), gate)
    return x * g[:, :, None, None]


def run_se(x, w1, b1, act1, w2, b2, gate, out=None, threads=1):
    n, c, h, w = x.shape
    r = w1.shape[0]
    y = np.empty_like(x) if out is None else out
    _core.se_block(x.reshape(-1), y.reshape(-1), n, c, h * w, packed(w1), b1, r,
                   _epilogue.parse(act1), packed(w2), b2, _epilogue.parse(gate), threads,
                   _isa.isa_id())
    return y


@pytest.mark.parametrize("n, c, r, hw", [(1, 1, 1, (1, 1)), (1, 5, 3, (3, 3)), (2, 16, 4, (4, 4)),
                                         (1, 17, 33, (2, 3)), (1, 72, 24, (16, 16)),
                                         (1, 240, 60, (1, 1)), (2, 37, 19, (7, 5))])
@pytest.mark.parametrize("act1, gate", [("relu", ("hardsigmoid", 0.2, 0.5)), ("silu", "sigmoid"),
                                        (None, None), ("hardswish", "sigmoid")])
def test_se_block_matches_float64(isa, n, c, r, hw, act1, gate):
    g = np.random.default_rng(c * 100 + r)
    x = g.standard_normal((n, c) + hw).astype(np.float32)
    w1 = (g.standard_normal((r, c)) / np.sqrt(c)).astype(np.float32)
    w2 = (g.standard_normal((c, r)) / np.sqrt(r)).astype(np.float32)
    b1 = g.standard_normal(r).astype(np.float32) if c % 2 else None
    b2 = g.standard_normal(c).astype(np.float32)
    want = se_reference(x, w1, b1, act1, w2, b2, gate)
    got = run_se(x, w1, b1, act1, w2, b2, gate)
    assert np.max(np.abs(got - want)) <= 1e-5 * max(np.max(np.abs(want)), 1.0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_se_block_in_place_and_threads_give_the_same_bits(isa, threads):
    g = np.random.default_rng(5)
    c, r = 96, 40
    x = g.standard_normal((2, c, 9, 9)).astype(np.float32)
    w1, w2 = g.standard_normal((r, c)).astype(np.float32), g.standard_normal((c, r)).astype(np.float32)
    b1, b2 = g.standard_normal(r).astype(np.float32), g.standard_normal(c).astype(np.float32)
    one = run_se(x, w1, b1, "relu", w2, b2, "sigmoid")
    xs = x.copy()
    run_se(xs, w1, b1, "relu", w2, b2, "sigmoid", out=xs, threads=threads)
    np.testing.assert_array_equal(xs, one)


def test_se_block_refuses_mismatched_buffers():
    x = np.zeros(2 * 4 * 9, np.float32)
    w1p, w2p = packed(np.zeros((3, 4), np.float32)), packed(np.zeros((4, 3), np.float32))
    isa = _isa.isa_id()
    with pytest.raises(ValueError, match="n \\* c \\* hw"):
        _core.se_block(x, np.zeros(5, np.float32), 2, 4, 9, w1p, None, 3, None, w2p, None, None,
                       1, isa)
    with pytest.raises(ValueError, match="packed weights"):
        _core.se_block(x, x, 2, 4, 9, w2p[:-16], None, 3, None, w2p, None, None, 1, isa)
    with pytest.raises(ValueError, match="b1"):
        _core.se_block(x, x, 2, 4, 9, w1p, np.zeros(4, np.float32), 3, None, w2p, None, None,
                       1, isa)
    with pytest.raises(ValueError, match="positive"):
        _core.se_block(x, x, 2, 4, 9, w1p, None, 0, None, w2p, None, None, 1, isa)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.se_pack(np.zeros(12, np.float32), np.zeros(3, np.float32), 3, 4)


# --- the ONNX rewrite ----------------------------------------------------------------------

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model, rel_err  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

C, R = 24, 8


def se_graph(pool="gap", act1="Relu", gate="HardSigmoid", mul_order=("x", "g"), extra=(),
             conv_attrs=None, opset=17):
    """x -> [pool -> 1x1 conv -> act1 -> 1x1 conv -> gate] -> Mul(x, gate); x
    is a Relu of the input so that it is an intermediate like in a model."""
    g = np.random.default_rng(3)
    inits = [("w1", (g.standard_normal((R, C, 1, 1)) / 5).astype(np.float32)),
             ("b1", g.standard_normal(R).astype(np.float32)),
             ("w2", (g.standard_normal((C, R, 1, 1)) / 3).astype(np.float32)),
             ("b2", g.standard_normal(C).astype(np.float32))]
    nodes = [helper.make_node("Relu", ["inp"], ["x"])]
    if pool == "gap":
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["p"]))
    else:   # the dynamo exporter's ReduceMean, axes as an input from opset 18
        inits.append(("axes", np.array(pool, np.int64)))
        nodes.append(helper.make_node("ReduceMean", ["x", "axes"], ["p"], keepdims=1))
    nodes.append(helper.make_node("Conv", ["p", "w1", "b1"], ["u" if act1 else "h"],
                                  **(conv_attrs or {})))
    if act1 == "SiLU":
        nodes += [helper.make_node("Sigmoid", ["u"], ["us"]),
                  helper.make_node("Mul", ["u", "us"], ["h"])]
    elif act1 is not None:
        nodes.append(helper.make_node(act1, ["u"], ["h"]))
    nodes += [helper.make_node("Conv", ["h", "w2", "b2"], ["z"]),
              helper.make_node(gate, ["z"], ["g"]),
              helper.make_node("Mul", list(mul_order), ["y"])]
    nodes += list(extra)
    outputs = [("y", None)] + [(o, None) for n in extra for o in n.output]
    return make_model(nodes, [("inp", (2, C, 5, 6))], outputs, inits, opset=opset)


def labels(rep):
    return [s.label() for s in rep.program.steps]


def feeds():
    return {"inp": np.random.default_rng(4).standard_normal((2, C, 5, 6)).astype(np.float32)}


@pytest.mark.parametrize("pool, act1, gate, order, opset", [
    ("gap", "Relu", "HardSigmoid", ("x", "g"), 17),       # MobileNetV3
    ("gap", "SiLU", "Sigmoid", ("g", "x"), 17),           # EfficientNet
    ([2, 3], "Relu", "HardSigmoid", ("x", "g"), 18),      # dynamo
    ([-1, -2], "SiLU", "Sigmoid", ("x", "g"), 18),
    ("gap", "HardSwish", "Sigmoid", ("x", "g"), 17),
    ("gap", None, "Sigmoid", ("x", "g"), 17)])
def test_se_block_becomes_one_step(isa, pool, act1, gate, order, opset):
    model = se_graph(pool, act1, gate, order, opset=opset)
    rep = lco.prepare(model)
    assert labels(rep) == ["Relu", "SqueezeExcite"]
    assert_matches_ort(model, feeds(), tol=1e-5)
    plain = lco.prepare(model, fuse=False).run(feeds())[0]
    assert rel_err(rep.run(feeds())[0], plain.astype(np.float64)) < 2e-6


@pytest.mark.parametrize("change", ["pool_read_twice", "gate_is_output", "hidden_read_twice",
                                    "other_mul_input", "strided_conv", "reduce_over_h",
                                    "grouped_conv"])
def test_near_se_blocks_are_left_alone(change):
    extra, kwargs = (), {}
    if change == "pool_read_twice":
        extra = (helper.make_node("Relu", ["p"], ["p2"]),)
    elif change == "gate_is_output":
        extra = (helper.make_node("Identity", ["g"], ["g_out"]),)
    elif change == "hidden_read_twice":
        extra = (helper.make_node("Sigmoid", ["h"], ["h2"]),)
    elif change == "other_mul_input":
        kwargs["mul_order"] = ("inp", "g")   # scales another tensor than the pooled one
    elif change == "strided_conv":
        kwargs["conv_attrs"] = {"strides": [2, 2]}
    elif change == "reduce_over_h":   # the gate then varies along W
        kwargs.update(pool=[2], opset=18)
    elif change == "grouped_conv":
        kwargs["conv_attrs"] = {"group": 2}
    if change == "grouped_conv":
        model = se_graph(**kwargs)
        # a grouped 1x1 conv needs weights of C / 2 input channels
        for init in model.graph.initializer:
            if init.name == "w1":
                w = np.random.default_rng(6).standard_normal((R, C // 2, 1, 1)).astype(np.float32)
                init.CopyFrom(onnx.numpy_helper.from_array(w, "w1"))
    else:
        model = se_graph(extra=extra, **kwargs)
    rep = lco.prepare(model)
    assert "SqueezeExcite" not in labels(rep)
    assert_matches_ort(model, feeds(), tol=1e-5)
