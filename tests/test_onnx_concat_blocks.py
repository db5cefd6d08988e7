"""DenseNet's growing concatenation without copies (schedule._concat_slices):
every layer's output is written into its slot of one block-wide buffer, and
each layer's Concat -- of all earlier outputs (TorchScript and dynamo
exports), or of the previous Concat and the new output (the onnx zoo's) -- is
a slice of it.  Each form matches onnxruntime with no Concat left to run;
the placement is refused where a copy is needed, and a value read after the
block keeps its bytes."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

C0, G, LAYERS, HW = 4, 3, 3, (6, 5)


def block(form="torchscript", batch=1, graph_output_leaf=False, read_after=False):
    """x -> Relu -> x0; LAYERS dense layers (Relu -> 3x3 Conv growing G
    channels) on the concatenation so far; the block's last Concat -> Relu."""
    g = np.random.default_rng(len(form))
    inits, nodes = [], [helper.make_node("Relu", ["x"], ["x0"])]
    outs, cat = ["x0"], "x0"
    for k in range(LAYERS):
        c_in = C0 + G * k
        inits.append((f"w{k}", g.standard_normal((G, c_in, 3, 3)).astype(np.float32)))
        if form == "torchscript" or (form == "dynamo" and k > 0):
            cat = f"cat{k}"
            nodes.append(helper.make_node("Concat", list(outs), [cat], axis=1))
        nodes += [helper.make_node("Relu", [cat], [f"r{k}"]),
                  helper.make_node("Conv", [f"r{k}", f"w{k}"], [f"y{k}"], pads=[1, 1, 1, 1])]
        if form == "chain":
            nodes.append(helper.make_node("Concat", [cat, f"y{k}"], [f"cat{k}"], axis=1))
            cat = f"cat{k}"
        outs.append(f"y{k}")
    if form != "chain":
        nodes.append(helper.make_node("Concat", list(outs), ["cat_all"], axis=1))
        cat = "cat_all"
    nodes.append(helper.make_node("Relu", [cat], ["y"]))
    outputs = [("y", None)]
    if graph_output_leaf:
        outputs.append(("y0", None))
    if read_after:   # the first layer's output read again once the block is done
        inits.append(("wz", g.standard_normal((G, C0 + G * LAYERS, 1, 1)).astype(np.float32)))
        nodes += [helper.make_node("Conv", ["y", "wz"], ["z"]),
                  helper.make_node("Add", ["z", "y0"], ["after"])]
        outputs = [("after", None)]
    return make_model(nodes, [("x", (batch, C0) + HW)], outputs, inits)


def feeds(batch=1):
    return {"x": np.random.default_rng(3).standard_normal((batch, C0) + HW).astype(np.float32)}


def concat_calls(model):
    rep = lco.prepare(model)
    return [s.label() for s, _ in rep.program.schedule.calls].count("Concat")


@pytest.mark.parametrize("form", ["torchscript", "dynamo", "chain"])
def test_a_dense_block_runs_no_concat_and_matches(form):
    model = block(form)
    assert concat_calls(model) == 0
    assert_matches_ort(model, feeds())


@pytest.mark.parametrize("form", ["torchscript", "chain"])
def test_a_leaf_read_after_the_block_keeps_its_bytes(form):
    model = block(form, read_after=True)
    assert concat_calls(model) == 0
    assert_matches_ort(model, feeds())


def test_the_block_buffer_is_smaller_than_the_copies():
    with_copies = lco.prepare(block("torchscript", batch=2)).memory()["arena"]
    one = lco.prepare(block("torchscript")).memory()["arena"]
    assert one * 2 < with_copies   # batch 2 copies every concat; batch 1 holds one block


@pytest.mark.parametrize("form", ["torchscript", "chain"])
def test_batch_two_is_refused_and_still_matches(form):
    model = block(form, batch=2)   # the slices would not be contiguous
    assert concat_calls(model) == LAYERS + (form != "chain")
    assert_matches_ort(model, feeds(2))


def test_a_leaf_that_is_a_graph_output_keeps_its_own_buffer():
    model = block("torchscript", graph_output_leaf=True)
    assert concat_calls(model) > 0
    assert_matches_ort(model, feeds())


def concat_model(concats, shapes):
    """Convs making each named value from x, then the given Concats, each
    Concat output a graph output."""
    g = np.random.default_rng(1)
    nodes, inits = [], []
    for name, ch in shapes.items():
        inits.append((f"w_{name}", g.standard_normal((ch, C0, 1, 1)).astype(np.float32)))
        nodes.append(helper.make_node("Conv", ["x", f"w_{name}"], [name]))
    outputs = []
    for out, ins in concats:
        nodes.append(helper.make_node("Concat", ins, [out + "_c"], axis=1))
        nodes.append(helper.make_node("Relu", [out + "_c"], [out]))
        outputs.append((out, None))
    return make_model(nodes, [("x", (1, C0) + HW)], outputs, inits)


def test_a_concat_of_a_run_inside_a_bigger_one_is_its_slice():
    # q = [a, b]; p = [z, q, c] flattens to [z, a, b, c]: q is p's slice 1..3
    model = concat_model([("q", ["a", "b"]), ("p", ["z", "q_c", "c"])],
                         {"a": 2, "b": 3, "c": 1, "z": 2})
    assert concat_calls(model) == 0
    assert_matches_ort(model, feeds())


def test_two_concats_sharing_a_value_place_it_once():
    # a cannot sit in both buffers: one Concat copies
    model = concat_model([("p", ["a", "b"]), ("q", ["a", "c"])], {"a": 2, "b": 3, "c": 1})
    assert concat_calls(model) == 1
    assert_matches_ort(model, feeds())


def test_a_value_twice_in_one_concat_is_copied():
    model = concat_model([("p", ["a", "b", "a"])], {"a": 2, "b": 3})
    assert concat_calls(model) == 1
    assert_matches_ort(model, feeds())
