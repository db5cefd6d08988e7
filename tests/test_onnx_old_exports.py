"""Old-opset exports (the onnx zoo's ResNet-50 and SqueezeNet, opset 9): a
two-input Sum is a residual Add fused into the Conv before it, an inference
Dropout whose mask nobody reads is a view, Softmax writes into the arena; each
matches onnxruntime, and the fusion is refused where it would differ."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

C = 6
SHAPE = (1, C, 9, 10)


def residual(sum_inputs=2, extra_reader=False, attrs=None, opset=9):
    """Conv(x) -> Sum(conv, x[, x]) -> Relu, as an opset-9 ResNet block ends."""
    g = np.random.default_rng(0)
    inits = [("w", g.standard_normal((C, C, 3, 3)).astype(np.float32)),
             ("cb", g.standard_normal(C).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Sum", ["c"] + ["x"] * (sum_inputs - 1), ["s"], **(attrs or {})),
             helper.make_node("Relu", ["s"], ["y"])]
    outputs = [("y", SHAPE)]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["c"], ["z"]))
        outputs.append(("z", SHAPE))
    return make_model(nodes, [("x", SHAPE)], outputs, inits, opset=opset)


def feeds():
    return {"x": np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)}


def labels(model):
    return [s.label() for s in lco.prepare(model).program.steps]


@pytest.mark.parametrize("opset", [9, 13])
def test_two_input_sum_fuses_into_the_conv(opset):
    model = residual(opset=opset)
    assert labels(model) == ["Conv+Sum+Relu"]
    assert_matches_ort(model, feeds())


def test_legacy_consumed_inputs_does_not_stop_the_fusion():
    model = residual(attrs=dict(consumed_inputs=[0, 0]), opset=5)
    assert labels(model) == ["Conv+Sum+Relu"]
    out = lco.prepare(model).run(feeds())[0]
    # onnxruntime does not read opset 5; the same block at opset 9 is the reference
    ref = assert_matches_ort(residual(opset=9), feeds())[0]
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("sum_inputs, extra", [(3, False),    # three terms: not an Add
                                               (2, True)])    # conv output read twice
def test_sum_fusion_refused_where_it_differs(sum_inputs, extra):
    model = residual(sum_inputs, extra_reader=extra)
    assert "Conv+Sum+Relu" not in labels(model)
    assert_matches_ort(model, feeds())


def test_standalone_two_input_sum_matches_and_broadcasts():
    nodes = [helper.make_node("Sum", ["a", "b"], ["y"])]
    model = make_model(nodes, [("a", (2, 3, 4)), ("b", (3, 1))], [("y", None)], opset=9)
    g = np.random.default_rng(2)
    assert_matches_ort(model, {"a": g.standard_normal((2, 3, 4)).astype(np.float32),
                               "b": g.standard_normal((3, 1)).astype(np.float32)})


def dropout_softmax(read_mask, opset=9):
    nodes = [helper.make_node("Dropout", ["x"], ["d", "mask"]),
             helper.make_node("Softmax", ["d"], ["y"])]
    outputs = [("y", SHAPE)] + ([("mask", SHAPE)] if read_mask else [])
    model = make_model(nodes, [("x", SHAPE)], outputs, opset=opset)
    if read_mask:   # since opset 12 the mask is bool
        model.graph.output[1].type.tensor_type.elem_type = onnx.TensorProto.BOOL
    return model


def test_unread_dropout_mask_makes_the_dropout_a_view():
    model = dropout_softmax(read_mask=False)
    rep = lco.prepare(model)
    rep.run(feeds())
    kinds = dict(zip([s.op_type for s in rep.program.steps], rep.program.schedule.kinds))
    assert kinds["Dropout"] == "view"
    assert_matches_ort(model, feeds())


def test_a_read_dropout_mask_is_still_made():
    # (opset 13: for opset 9's float mask onnxruntime returns zeros, leanconv ones)
    model = dropout_softmax(read_mask=True, opset=13)
    y, mask = assert_matches_ort(model, feeds())
    assert mask.shape == SHAPE and np.all(mask == 1)


@pytest.mark.parametrize("opset, axis", [(9, 1), (9, 2), (13, 1), (13, -1)])
def test_softmax_into_the_arena_matches(opset, axis):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=axis)]
    model = make_model(nodes, [("x", SHAPE)], [("y", SHAPE)], opset=opset)
    x = feeds()["x"] * 30   # large logits: the max subtraction matters
    assert_matches_ort(model, {"x": x})

