"""Transformer-style torchvision classifiers through leanconv.onnx, against
onnxruntime: the ops their exports use beyond CNNs (Mod, ScatterND, Einsum,
LayerNormalization over tokens, MatMul of N-D tokens by constant matrices),
in-place steps over views whose size-1 dimensions have other strides, and
Gather of one constant index as a view."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import leanconv.onnx as lco  # noqa: E402


@pytest.mark.parametrize("name,size", [("swin_t", 64), ("maxvit_t", 224)])
def test_transformer_runs_and_matches_onnxruntime(name, size, tmp_path):
    """Swin-T at 64 px: Mod and ScatterND for the shifted windows' padding
    and mask.  MaxViT-T at 224 (its grid needs 7x7 windows of 7x7): Einsum in
    its relative-position attention, Adds in place over (1, 1, 49, 512)
    views."""
    ort = pytest.importorskip("onnxruntime")
    try:
        import onnx_exports
        path = onnx_exports.export(name, size, "torchscript", str(tmp_path))
    except ImportError as e:
        pytest.skip(f"torchvision: {e}")
    x = np.random.default_rng(3).standard_normal((1, 3, size, size)).astype(np.float32)
    ours = lco.prepare(onnx.load(path), threads=2).run([x])[0]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) < 1e-4


@pytest.mark.parametrize("axis,index", [(0, 0), (0, 2), (1, -1), (-1, 3)])
def test_gather_of_one_constant_index_is_a_view_and_its_readers_stay_right(axis, index):
    """q, k and v selected from one projection: a Gather of one constant
    index is a view of its slice (no copy); an in-place Mul of one selection
    must not reach the others or the base."""
    pytest.importorskip("onnxruntime")
    from onnx import helper
    from test_onnx_adapter import assert_matches_ort, make_model

    nodes = [helper.make_node("Gather", ["x", "i"], ["q"], axis=axis),
             helper.make_node("Gather", ["x", "j"], ["k"], axis=axis),
             helper.make_node("Mul", ["q", "two"], ["q2"]),
             helper.make_node("Add", ["q2", "k"], ["s"]),
             helper.make_node("Relu", ["x"], ["r"])]
    model = make_model(nodes, [("x", (3, 4, 5))], [("s", None), ("r", None)],
                       [("i", np.array(index, np.int64)), ("j", np.array(1, np.int64)),
                        ("two", np.array(2.0, np.float32))])
    rep = lco.prepare(model)
    gathers = [s for s in rep.program.steps if s.op_type == "Gather"]
    assert len(gathers) == 2 and all(s.view for s in gathers)
    x = np.random.default_rng(9).standard_normal((3, 4, 5)).astype(np.float32)
    assert_matches_ort(model, {"x": x})


def test_gather_of_a_constant_index_out_of_range_is_refused_by_name():
    from onnx import helper
    from test_onnx_adapter import make_model

    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=0)
    model = make_model([node], [("x", (3, 4))], [("y", None)], [("i", np.array(5, np.int64))])
    with pytest.raises(IndexError, match="Gather node .*index out of range for axis size 3"):
        lco.prepare(model).run([np.zeros((3, 4), np.float32)])
