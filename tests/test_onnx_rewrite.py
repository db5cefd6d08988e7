"""leanconv.onnx's prepare-time rewrites (rewrite.py) and the per-channel
Add/Mul folded into a Conv: each fused form against the unfused run
(fuse=False) and onnxruntime, and the patterns that must be left alone."""
from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model, rel_err, rng  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

SQRT2 = np.float32(math.sqrt(2))


def labels(rep):
    return [s.label() for s in rep.program.steps]


def fused_equals_unfused(model, feeds, tol=2e-6):
    """The fused and unfused runs agree within float rounding; returns the fused rep."""
    rep = lco.prepare(model)
    fused = rep.run(feeds)[0]
    plain = lco.prepare(model, fuse=False).run(feeds)[0]
    assert rel_err(fused, plain.astype(np.float64)) < tol
    assert_matches_ort(model, feeds, tol=1e-5)
    return rep


def gelu_nodes(form, x="x", out="y"):
    """GELU's erf form as the exporters write it, on value x."""
    if form == "div_then_half":   # torch.onnx TorchScript: ((x * (1 + erf(x / sqrt2))) * 0.5
        return [helper.make_node("Div", [x, "sqrt2"], ["g_d"]),
                helper.make_node("Erf", ["g_d"], ["g_e"]),
                helper.make_node("Add", ["g_e", "one"], ["g_a"]),
                helper.make_node("Mul", [x, "g_a"], ["g_m"]),
                helper.make_node("Mul", ["g_m", "half"], [out])]
    if form == "mul_then_half_first":   # (0.5 * x) * (1 + erf(x * (1 / sqrt2)))
        return [helper.make_node("Mul", ["half", x], ["g_h"]),
                helper.make_node("Mul", [x, "rsqrt2"], ["g_d"]),
                helper.make_node("Erf", ["g_d"], ["g_e"]),
                helper.make_node("Add", ["one", "g_e"], ["g_a"]),
                helper.make_node("Mul", ["g_h", "g_a"], [out])]
    raise AssertionError(form)


GELU_CONSTS = [("sqrt2", SQRT2), ("rsqrt2", np.float32(1 / math.sqrt(2))),
               ("one", np.float32(1)), ("half", np.float32(0.5))]


@pytest.mark.parametrize("form", ["div_then_half", "mul_then_half_first"])
def test_gelu_erf_forms_become_one_gelu(form):
    model = make_model(gelu_nodes(form), [("x", (2, 3, 5, 7))], [("y", None)], GELU_CONSTS)
    x = rng(1).standard_normal((2, 3, 5, 7)).astype(np.float32) * 4
    rep = fused_equals_unfused(model, {"x": x})
    assert labels(rep) == ["Gelu"]


def test_gelu_after_a_conv_goes_into_its_epilogue():
    w = rng(2).standard_normal((6, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])] + \
        gelu_nodes("div_then_half", x="c")
    model = make_model(nodes, [("x", (1, 3, 9, 9))], [("y", None)], GELU_CONSTS + [("w", w)])
    rep = fused_equals_unfused(model, {"x": rng(3).standard_normal((1, 3, 9, 9))
                                       .astype(np.float32)})
    assert labels(rep) == ["Conv+Gelu"]


@pytest.mark.parametrize("change", ["divisor", "add_two", "erf_also_an_output", "half_of_other"])
def test_near_gelu_patterns_are_left_alone(change):
    nodes = gelu_nodes("div_then_half")
    consts = dict(GELU_CONSTS)
    outputs = [("y", None)]
    if change == "divisor":
        consts["sqrt2"] = np.float32(1.5)
    elif change == "add_two":
        consts["one"] = np.float32(2)
    elif change == "erf_also_an_output":
        outputs.append(("g_e", None))
    else:   # the last Mul is by x, not by 0.5
        nodes[-1] = helper.make_node("Mul", ["g_m", "x"], ["y"])
    model = make_model(nodes, [("x", (1, 2, 4, 4))], outputs, list(consts.items()))
    x = rng(4).standard_normal((1, 2, 4, 4)).astype(np.float32)
    rep = fused_equals_unfused(model, {"x": x}, tol=1e-6)
    assert "Erf" in labels(rep) and "Gelu" not in labels(rep)


def convnext_block(c=8, hidden=24, gelu="node", scale_after=True):
    """ConvNeXt's block as both exporters write it: depthwise Conv, Transpose to
    NHWC, LayerNormalization, MatMul + bias, GELU, MatMul + bias, layer scale,
    Transpose back, residual Add."""
    g = rng(5)
    inits = [("dw", g.standard_normal((c, 1, 7, 7)).astype(np.float32) * 0.1),
             ("ln_s", g.standard_normal(c).astype(np.float32)),
             ("ln_b", g.standard_normal(c).astype(np.float32)),
             ("w1", g.standard_normal((c, hidden)).astype(np.float32) * 0.3),
             ("b1", g.standard_normal(hidden).astype(np.float32)),
             ("w2", g.standard_normal((hidden, c)).astype(np.float32) * 0.3),
             ("b2", g.standard_normal(c).astype(np.float32)),
             ("gamma", g.standard_normal((c, 1, 1)).astype(np.float32))] + GELU_CONSTS
    nodes = [helper.make_node("Conv", ["x", "dw"], ["d"], pads=[3] * 4, group=c),
             helper.make_node("Transpose", ["d"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "ln_s", "ln_b"], ["n"], axis=-1,
                              epsilon=1e-6),
             helper.make_node("MatMul", ["n", "w1"], ["m1"]),
             helper.make_node("Add", ["b1", "m1"], ["h"])]
    if gelu == "node":
        nodes.append(helper.make_node("Gelu", ["h"], ["g"]))
    else:
        nodes += gelu_nodes("div_then_half", x="h", out="g")
    nodes += [helper.make_node("MatMul", ["g", "w2"], ["m2"]),
              helper.make_node("Add", ["m2", "b2"], ["o"])]
    if scale_after:   # layer scale in NCHW, after the Transpose back
        nodes += [helper.make_node("Transpose", ["o"], ["tb"], perm=[0, 3, 1, 2]),
                  helper.make_node("Mul", ["gamma", "tb"], ["s"])]
    else:             # layer scale in NHWC (shape (c,)), before it
        inits[-len(GELU_CONSTS) - 1] = ("gamma", inits[-len(GELU_CONSTS) - 1][1].reshape(c))
        nodes += [helper.make_node("Mul", ["o", "gamma"], ["so"]),
                  helper.make_node("Transpose", ["so"], ["s"], perm=[0, 3, 1, 2])]
    nodes.append(helper.make_node("Add", ["s", "x"], ["y"]))
    return nodes, inits


@pytest.mark.parametrize("gelu, scale_after, batch", [("node", True, 1), ("erf", True, 2),
                                                      ("erf", False, 1)])
def test_channels_last_block_runs_in_nchw_as_convs(gelu, scale_after, batch):
    nodes, inits = convnext_block(gelu=gelu, scale_after=scale_after)
    shape = (batch, 8, 6, 5)
    model = make_model(nodes, [("x", shape)], [("y", None)], inits, opset=20)
    rep = fused_equals_unfused(model, {"x": rng(6).standard_normal(shape).astype(np.float32)})
    # the layer scale folds into the second Conv before or after the Transpose back
    assert labels(rep) == ["Conv", "ChannelLayerNorm", "Conv+Add+Gelu", "Conv+Add+Mul+Add"]
    # and the norm's scale and bias into the first
    assert rep.program.steps[1].inputs == ["d"]


def test_norm_read_by_more_than_its_conv_keeps_scale_and_bias():
    nodes, inits = convnext_block()
    # a second reader of the norm inside the island: its Sigmoid feeds the first MatMul's bias
    nodes[4] = helper.make_node("Add", ["m1", "ns"], ["h"])
    nodes.insert(3, helper.make_node("MatMul", ["n", "w1"], ["nm"]))
    nodes.insert(4, helper.make_node("Sigmoid", ["nm"], ["ns"]))
    model = make_model(nodes, [("x", (1, 8, 6, 5))], [("y", None)], inits, opset=20)
    rep = fused_equals_unfused(model, {"x": rng(17).standard_normal((1, 8, 6, 5))
                                       .astype(np.float32)})
    norm = [s for s in rep.program.steps if s.op_type == "ChannelLayerNorm"]
    assert len(norm) == 1 and len(norm[0].inputs) == 3


@pytest.mark.parametrize("change", ["inner_output", "outside_operand", "runtime_matrix",
                                    "constant_along_width", "layernorm_two_axes"])
def test_channels_last_islands_that_cannot_move_stay(change):
    nodes, inits = convnext_block()
    inits = dict(inits)
    outputs = [("y", None)]
    inputs = [("x", (1, 8, 6, 5))]
    feeds = {"x": rng(10).standard_normal((1, 8, 6, 5)).astype(np.float32)}
    if change == "inner_output":
        outputs.append(("h", None))
    elif change == "outside_operand":   # adds an NHWC tensor made outside the island
        nodes[4] = helper.make_node("Add", ["m1", "tx"], ["h"])
        nodes.insert(0, helper.make_node("Transpose", ["x"], ["tx0"], perm=[0, 2, 3, 1]))
        nodes.insert(1, helper.make_node("MatMul", ["tx0", "w1"], ["tx"]))
    elif change == "runtime_matrix":   # the MatMul's matrix is a graph input
        nodes[3] = helper.make_node("MatMul", ["n", "wm"], ["m1"])
        inputs.append(("wm", (8, 24)))
        feeds["wm"] = inits.pop("w1")
    elif change == "constant_along_width":   # NHWC (1, 1, W, 1): not per channel
        inits["b2"] = rng(7).standard_normal((1, 1, 5, 1)).astype(np.float32)
    else:
        nodes[2] = helper.make_node("LayerNormalization", ["t", "ln_s2", "ln_b2"], ["n"],
                                    axis=-2, epsilon=1e-6)
        inits["ln_s2"] = rng(8).standard_normal((5, 8)).astype(np.float32)
        inits["ln_b2"] = rng(9).standard_normal((5, 8)).astype(np.float32)
    model = make_model(nodes, inputs, outputs, list(inits.items()), opset=20)
    rep = fused_equals_unfused(model, feeds)
    assert "Transpose" in labels(rep) and "ChannelLayerNorm" not in labels(rep)


def test_per_channel_constants_fold_into_the_conv():
    g = rng(11)
    w = g.standard_normal((6, 4, 3, 3)).astype(np.float32)
    inits = [("w", w), ("s", g.standard_normal((1, 6, 1, 1)).astype(np.float32)),
             ("c", g.standard_normal((6, 1, 1)).astype(np.float32)), ("k", np.float32(0.5)),
             ("hw", g.standard_normal((7, 7)).astype(np.float32)),
             ("big", g.standard_normal((2, 6, 1, 1)).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["s", "a"], ["b"]),
             helper.make_node("Add", ["b", "c"], ["d"]),
             helper.make_node("Mul", ["d", "k"], ["e"]),
             helper.make_node("Relu", ["e"], ["y"])]
    x = {"x": g.standard_normal((1, 4, 7, 7)).astype(np.float32)}
    model = make_model(nodes, [("x", (1, 4, 7, 7))], [("y", None)], inits)
    assert labels(fused_equals_unfused(model, x)) == ["Conv+Mul+Add+Mul+Relu"]
    # varies along width, or broadcasts the output up to batch 2: separate steps
    for other, kept in (("hw", "Mul"), ("big", "Add")):
        nodes[2] = helper.make_node(kept, ["b", other], ["d"])
        model = make_model(nodes, [("x", (1, 4, 7, 7))], [("y", None)], inits)
        assert labels(fused_equals_unfused(model, x)) == ["Conv+Mul", kept, "Mul", "Relu"]


@pytest.mark.parametrize("where, act, label", [
    ("concat", "Relu", "ChannelAffineRelu+Relu"),   # with its Relu: channel_affine.py
    ("concat", "Sigmoid", "Conv+Sigmoid"),          # else a depthwise 1x1 Conv
    ("rank2", "Relu", "BatchNormalization"), ("reshaped", "Relu", "BatchNormalization")])
def test_lone_batchnorm_of_a_4d_tensor_runs_in_one_c_pass(where, act, label):
    g = rng(12)
    C = 6
    inits = [("scale", (0.5 + g.random(C)).astype(np.float32)),
             ("beta", g.standard_normal(C).astype(np.float32)),
             ("mean", g.standard_normal(C).astype(np.float32)),
             ("var", (0.5 + g.random(C)).astype(np.float32)),
             ("shape", np.array([1, C, 4, 6], np.int64))]
    bn = helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["n"])
    relu = helper.make_node(act, ["n"], ["y"])
    if where == "concat":   # DenseNet: the norm of a Concat
        shape = (1, 2, 5, 5)
        nodes = [helper.make_node("Sigmoid", ["x"], ["a"]),
                 helper.make_node("Concat", ["x", "a", "x"], ["c"], axis=1), bn, relu]
    elif where == "rank2":
        shape = (3, C)
        nodes = [helper.make_node("Sigmoid", ["x"], ["c"]), bn, relu]
    else:                   # rank not known without running the Reshape
        shape = (1, C * 24)
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["c"]), bn, relu]
    model = make_model(nodes, [("x", shape)], [("y", None)], inits)
    rep = fused_equals_unfused(model, {"x": (3 * g.standard_normal(shape)).astype(np.float32)})
    assert label in labels(rep)


@pytest.mark.parametrize("axes, keepdims, opset", [([2, 3], 1, 18), ([-1, -2], 0, 18),
                                                   ([2, 3], 1, 13), ([1, 2, 3], 1, 18),
                                                   ([1, 3], 1, 18), (None, 1, 18)])
def test_reduce_mean_over_trailing_axes_runs_as_the_c_global_average(axes, keepdims, opset,
                                                                     monkeypatch):
    """The dynamo exporter's global average pool, as GlobalAveragePool's bound C
    call; other axes take the NumPy path."""
    from leanconv import _core
    from leanconv.onnx import ops_math
    calls = []

    class Spy:
        def __getattr__(self, name):
            return getattr(_core, name)

        def BoundPool(self, *args):
            if args[2] is None:   # a global average
                calls.append(args[3:5])
            return _core.BoundPool(*args)
    monkeypatch.setattr(ops_math, "_core", Spy())
    inits, inputs = [], ["x"]
    attrs = dict(keepdims=keepdims)
    if axes is not None and opset >= 18:
        inits, inputs = [("axes", np.array(axes, np.int64))], ["x", "axes"]
    elif axes is not None:
        attrs["axes"] = axes
    nodes = [helper.make_node("ReduceMean", inputs, ["y"], **attrs)]
    model = make_model(nodes, [("x", (2, 5, 6, 7))], [("y", None)], inits, opset=opset)
    x = rng(13).standard_normal((2, 5, 6, 7)).astype(np.float32)
    fused_equals_unfused(model, {"x": x}, tol=1e-6)
    trailing = axes is not None and sorted(a % 4 for a in axes) in ([2, 3], [1, 2, 3])
    assert bool(calls) == trailing
    if trailing:   # bound among the schedule's C calls
        import leanconv.onnx as lco
        from test_bound_pool import bound_types
        assert bound_types(lco.prepare(model).program.schedule) == ["BoundPool"]


@pytest.mark.parametrize("axes_from", ["constant", "attribute", "computed"])
def test_a_trailing_reduce_mean_runs_bound_among_the_convs(axes_from):
    """Conv -> ReduceMean over H, W -> Gemm (the dynamo exporter's MobileNetV2
    head): with the axes known at prepare the mean is a BoundPool in the
    schedule's one C group, with the bits of its unbound call; axes computed
    at run time keep the Python step (bind cannot read them)."""
    from test_bound_pool import bound_types
    g = rng(31)
    inits = [("cw", g.standard_normal((6, 3, 3, 3)).astype(np.float32)),
             ("w", g.standard_normal((4, 6)).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["a"], pads=[1] * 4)]
    if axes_from == "attribute":
        opset = 17
        nodes.append(helper.make_node("ReduceMean", ["a"], ["p"], axes=[-1, -2], keepdims=0))
    else:
        opset = 18
        inits.append(("axes", np.array([-1, -2], np.int64)))
        axes = "axes"
        if axes_from == "computed":
            nodes.append(helper.make_node("Identity", ["axes"], ["axes2"]))
            nodes.append(helper.make_node("Neg", ["axes2"], ["axes3"]))
            nodes.append(helper.make_node("Neg", ["axes3"], ["axes4"]))
            axes = "axes4"
        nodes.append(helper.make_node("ReduceMean", ["a", axes], ["p"], keepdims=0))
    nodes.append(helper.make_node("Gemm", ["p", "w"], ["y"], transB=1))
    model = make_model(nodes, [("x", (1, 3, 8, 8))], [("y", None)], inits, opset=opset)
    x = {"x": g.standard_normal((1, 3, 8, 8)).astype(np.float32)}
    rep = lco.prepare(model, threads=2)
    sched = rep.program.schedule
    got = rep.run(x)[0]
    if axes_from == "computed" and "BoundPool" not in bound_types(sched):
        assert len(sched._fns) > 1
    else:
        assert bound_types(sched) == ["BoundConv", "BoundPool", "BoundDense"]
    for s in rep.program.steps:   # the same schedule through the steps' into()
        s.bind = None
    sched._bind(sched.threads)
    assert "BoundPool" not in bound_types(sched)
    assert got.tobytes() == rep.run(x)[0].tobytes()
    assert_matches_ort(model, x, tol=1e-5)
