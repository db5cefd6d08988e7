"""leanconv.onnx's squeeze-and-excitation rewrite (onnx/se_block.py): the
exporters' forms become one SqueezeExcite step (kernels/se_block.c) matching
onnxruntime and the unfused run, and near misses stay separate steps."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model, rel_err  # noqa: E402
from test_onnx_model_file import record_cached_constants  # noqa: E402

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
    # compiled, the block runs among the bound calls (no Python step between C groups)
    from test_bound_pool import bound_types
    assert "BoundSEBlock" in bound_types(rep.program.schedule)


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


def test_raw_se_and_classifier_weights_are_read_once_not_kept(monkeypatch):
    """The SE block's two 1x1 weights (and a Gemm head's) are packed by their
    step: prepare reads them for that alone and never caches the raw arrays
    in its constants (which held them beside the packed copies until prepare
    ended: LR-ASPP's peak while preparing was 6 MB above its plan)."""
    cached = record_cached_constants(monkeypatch)
    g = np.random.default_rng(5)
    extra = [helper.make_node("GlobalAveragePool", ["y"], ["v"]),
             helper.make_node("Flatten", ["v"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["logits"], transB=1)]
    model = se_graph(extra=extra)
    model.graph.initializer.extend([
        numpy_helper.from_array(g.standard_normal((10, C)).astype(np.float32), "fc"),
        numpy_helper.from_array(g.standard_normal(10).astype(np.float32), "fb")])
    rep = lco.prepare(model)
    assert labels(rep)[:2] == ["Relu", "SqueezeExcite"] and "Gemm" in labels(rep)
    assert not {"w1", "w2", "fc"} & set(cached)
    assert_matches_ort(model, feeds(), tol=1e-5)


def test_se_weights_count_as_packed_and_a_budget_sees_them():
    """The SE step packs its two 1x1 weights itself: the plan counts them as
    packed weights (not as the executor's objects), and a memory_budget below
    what the model needs is refused -- never a plan over the budget."""
    from leanconv import _dense
    model = se_graph()
    rep = lco.prepare(model)
    m = rep.memory()
    se_bytes = sum(_dense.pack(np.zeros(s, np.float32)).nbytes for s in ((R, C), (C, R))) + \
        4 * (R + C)
    assert m["packed_weights"] >= se_bytes
    assert m["bookkeeping"] < se_bytes + 2**16
    for budget in (m["total"] - 1, m["total"] // 2):
        with pytest.raises(MemoryError, match=rf"needs at least \d+ bytes.*memory_budget={budget}"):
            lco.prepare(model, memory_budget=budget)
    roomy = lco.prepare(model, memory_budget=m["total"] + 2**16)
    assert roomy.memory_bytes() <= m["total"] + 2**16
