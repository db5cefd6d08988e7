"""leanconv.onnx's inverted-residual rewrite (onnx/ir_block.py): an expanding
1x1 Conv step and the depthwise Conv step after it become one
InvertedResidual step where the C rule says that pays, matching onnxruntime
and the unfused run; the memory plan drops the expanded tensor and counts the
band buffers; near misses stay two steps."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, export, make_model, rel_err  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv import _core  # noqa: E402

C, E, H = 8, 24, 14


@pytest.fixture
def always_pays():
    _core.ir_block_debug(3, 1)   # bands of 3 rows, and the rule says yes
    yield
    _core.ir_block_debug(0, -1)


def block_graph(dw_pads=(1, 1, 1, 1), stride=2, extra=(), outputs=("y",), dw_attrs=None,
                residual=False):
    """inp -> Relu -> [1x1 Conv + BN + Clip(0, 6) -> depthwise Conv + BN + Clip] ->
    1x1 project Conv -> y."""
    g = np.random.default_rng(5)

    def bn(name, n):
        return [(f"{name}_s", (1 + g.random(n)).astype(np.float32)),
                (f"{name}_b", g.standard_normal(n).astype(np.float32)),
                (f"{name}_m", g.standard_normal(n).astype(np.float32)),
                (f"{name}_v", (0.5 + g.random(n)).astype(np.float32))]
    inits = [("we", (g.standard_normal((E, C, 1, 1)) / 3).astype(np.float32)),
             ("wd", (g.standard_normal((E, 1, 3, 3)) / 3).astype(np.float32)),
             ("wp", (g.standard_normal((C, E, 1, 1)) / 5).astype(np.float32)),
             ("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))]
    inits += bn("bn1", E) + bn("bn2", E)
    nodes = [helper.make_node("Relu", ["inp"], ["x"]),
             helper.make_node("Conv", ["x", "we"], ["e0"], kernel_shape=[1, 1]),
             helper.make_node("BatchNormalization", ["e0", "bn1_s", "bn1_b", "bn1_m", "bn1_v"],
                              ["e1"]),
             helper.make_node("Clip", ["e1", "lo", "hi"], ["t"]),
             helper.make_node("Conv", ["t", "wd"], ["d0"], group=E, kernel_shape=[3, 3],
                              strides=[stride, stride], **(dw_attrs or {"pads": list(dw_pads)})),
             helper.make_node("BatchNormalization", ["d0", "bn2_s", "bn2_b", "bn2_m", "bn2_v"],
                              ["d1"])]
    if residual:
        nodes += [helper.make_node("Add", ["d1", "t"], ["d2"]),
                  helper.make_node("Clip", ["d2", "lo", "hi"], ["d"])]
    else:
        nodes.append(helper.make_node("Clip", ["d1", "lo", "hi"], ["d"]))
    nodes.append(helper.make_node("Conv", ["d", "wp"], ["y"]))
    nodes += list(extra)
    return make_model(nodes, [("inp", (1, C, H, H))], [(o, None) for o in outputs], inits)


def feeds():
    return {"inp": np.random.default_rng(6).standard_normal((1, C, H, H)).astype(np.float32)}


def labels(rep):
    return [s.op_type for s in rep.program.steps]


def bound_types(rep):
    """The BoundCall types the schedule runs in its C loops (no Python between them)."""
    return [type(c).__name__ for call, lent in rep.program.schedule._fns if lent
            for c in call.args[0]]


@pytest.mark.parametrize("stride, pads", [(1, (1, 1, 1, 1)), (2, (1, 1, 1, 1)),
                                          (2, (0, 0, 1, 1))])
def test_block_becomes_one_step(always_pays, isa, stride, pads):
    """The projecting 1x1 joins the block (the rule forced to say yes)."""
    model = block_graph(pads, stride)
    rep = lco.prepare(model)
    assert labels(rep) == ["Relu", "InvertedResidual"]
    step = rep.program.steps[1]
    assert step.label() == ("InvertedResidual+Conv+BatchNormalization+Clip+"
                            "Conv+BatchNormalization+Clip+Conv")
    assert "BoundIRBlock" in bound_types(rep)   # run in the C loop, not as a Python step
    assert_matches_ort(model, feeds(), tol=1e-5)
    plain = lco.prepare(model, fuse=False).run(feeds())[0]
    assert rel_err(rep.run(feeds())[0], plain.astype(np.float64)) < 2e-6


def test_block_without_its_projection(always_pays):
    """A depthwise output read by another step too keeps the projection a
    step of its own; the pair still fuses."""
    model = block_graph(extra=(helper.make_node("Relu", ["d"], ["d2"]),), outputs=("y", "d2"))
    rep = lco.prepare(model)
    assert labels(rep) == ["Relu", "InvertedResidual", "Conv", "Relu"]
    assert rep.program.steps[1].label() == ("InvertedResidual+Conv+BatchNormalization+Clip+"
                                            "Conv+BatchNormalization+Clip")
    assert_matches_ort(model, feeds(), tol=1e-5)


@pytest.mark.parametrize("in_place_ok", [False, True])
def test_projection_with_its_residual(always_pays, isa, in_place_ok):
    """MobileNetV2's stride-1 block: the projection's Add of the block input
    joins the step (read as its second input); with the block input read
    after it as well (in_place_ok: the Add's buffer cannot be taken over)."""
    extra = [helper.make_node("Add", ["y", "x"], ["z"])]
    outputs = ("z",)
    if in_place_ok:
        extra.append(helper.make_node("Relu", ["x"], ["x2"]))
        outputs = ("z", "x2")
    model = block_graph(stride=1, extra=extra, outputs=outputs)
    rep = lco.prepare(model)
    assert labels(rep)[:2] == ["Relu", "InvertedResidual"]
    step = rep.program.steps[1]
    assert step.label().endswith("Clip+Conv+Add") and len(step.inputs) == 2
    assert "BoundIRBlock" in bound_types(rep)   # run in the C loop, not as a Python step
    assert_matches_ort(model, feeds(), tol=1e-5)
    plain = lco.prepare(model, fuse=False).run(feeds())[0]
    assert rel_err(rep.run(feeds())[0], plain.astype(np.float64)) < 2e-6


def test_memory_plan_drops_the_expanded_tensor(always_pays):
    model = block_graph()
    fused = lco.prepare(model)
    _core.ir_block_debug(3, 0)
    split = lco.prepare(model)
    assert labels(split) == ["Relu", "Conv", "Conv", "Conv"]
    mf, ms = fused.program.schedule.memory(), split.program.schedule.memory()
    # the split run holds the expanded tensor (E x H x H floats) at its peak
    assert ms["arena"] - mf["arena"] >= 4 * E * H * H - 4 * C * H * H
    band = fused.program.steps[1].workspace_bytes
    assert 0 < band <= mf["workspace"]
    # every expanded row of a band (3 output rows need 3 or more) and the
    # band's depthwise rows (3 rows of H/2) for the projection
    assert band >= 4 * E * 3 * H + 4 * E * 3 * (H // 2)


@pytest.mark.parametrize("change", ["expanded_read_twice", "expanded_is_output", "residual",
                                    "same_pads", "rule_says_no"])
def test_near_blocks_are_left_alone(always_pays, change):
    kwargs = {}
    if change == "expanded_read_twice":
        kwargs["extra"] = (helper.make_node("Relu", ["t"], ["t2"]),)
        kwargs["outputs"] = ("y", "t2")
    elif change == "expanded_is_output":
        kwargs["outputs"] = ("y", "t")
    elif change == "residual":
        kwargs["stride"], kwargs["residual"] = 1, True
    elif change == "same_pads":
        kwargs["dw_attrs"] = {"auto_pad": "SAME_UPPER"}
    elif change == "rule_says_no":
        _core.ir_block_debug(3, 0)
    model = block_graph(**kwargs)
    rep = lco.prepare(model)
    # the expanding 1x1 stays a step of its own (where the expanded tensor is
    # read elsewhere the depthwise and its projection may still fuse, as a
    # block without the expansion)
    assert not [s for s in rep.program.steps if s.op_type == "InvertedResidual" and
                s.inputs[0] == "x"]
    assert labels(rep)[:2] == ["Relu", "Conv"]
    assert_matches_ort(model, feeds(), tol=1e-5)


def depthwise_first_graph(stride=1, residual=False, extra=(), outputs=("y",)):
    """inp -> Relu -> depthwise Conv + BN + Clip(0, 6) -> 1x1 project Conv
    [+ Add of the Relu's output] -> y: MobileNetV2's first block."""
    g = np.random.default_rng(7)
    inits = [("wd", (g.standard_normal((E, 1, 3, 3)) / 3).astype(np.float32)),
             ("wp", (g.standard_normal((E if residual else C, E, 1, 1)) / 5).astype(np.float32)),
             ("bn_s", (1 + g.random(E)).astype(np.float32)),
             ("bn_b", g.standard_normal(E).astype(np.float32)),
             ("bn_m", g.standard_normal(E).astype(np.float32)),
             ("bn_v", (0.5 + g.random(E)).astype(np.float32)),
             ("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))]
    nodes = [helper.make_node("Relu", ["inp"], ["x"]),
             helper.make_node("Conv", ["x", "wd"], ["d0"], group=E, kernel_shape=[3, 3],
                              strides=[stride, stride], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["d0", "bn_s", "bn_b", "bn_m", "bn_v"],
                              ["d1"]),
             helper.make_node("Clip", ["d1", "lo", "hi"], ["d"]),
             helper.make_node("Conv", ["d", "wp"], ["p" if residual else "y"])]
    if residual:
        nodes.append(helper.make_node("Add", ["p", "x"], ["y"]))
    nodes += list(extra)
    return make_model(nodes, [("inp", (1, E, H, H))], [(o, None) for o in outputs], inits)


@pytest.mark.parametrize("stride, residual", [(1, False), (2, False), (1, True)])
def test_depthwise_and_its_projection_become_one_step(always_pays, isa, stride, residual):
    """No expanding 1x1 before the depthwise (MobileNetV2's features.1): the
    depthwise and the projection after it fuse, reading x in place."""
    model = depthwise_first_graph(stride, residual)
    f = {"inp": np.random.default_rng(8).standard_normal((1, E, H, H)).astype(np.float32)}
    rep = lco.prepare(model)
    assert labels(rep) == ["Relu", "InvertedResidual"]
    step = rep.program.steps[1]
    assert step.label() == ("InvertedResidual+Conv+BatchNormalization+Clip+Conv" +
                            ("+Add" if residual else ""))
    assert "BoundIRBlock" in bound_types(rep)
    assert_matches_ort(model, f, tol=1e-5)
    plain = lco.prepare(model, fuse=False)
    assert rel_err(rep.run(f)[0], plain.run(f)[0].astype(np.float64)) < 2e-6
    # its workspace: a band's depthwise rows (3 rows of every channel), no
    # expanded rows
    assert rep.program.steps[1].workspace_bytes == -(-4 * E * 3 * (H // stride) // 64) * 64


def test_depthwise_output_read_twice_stays_apart(always_pays):
    model = depthwise_first_graph(extra=(helper.make_node("Relu", ["d"], ["d2"]),),
                                  outputs=("y", "d2"))
    rep = lco.prepare(model)
    assert "InvertedResidual" not in labels(rep)
    f = {"inp": np.random.default_rng(9).standard_normal((1, E, H, H)).astype(np.float32)}
    assert_matches_ort(model, f, tol=1e-5)


def test_rule_decides_by_default():
    """Without the test hook a block this small stays two steps (it fits L2)."""
    assert "InvertedResidual" not in labels(lco.prepare(block_graph()))
    assert "InvertedResidual" not in labels(lco.prepare(depthwise_first_graph()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # the TorchScript exporter's
def test_mobilenet_v2_fused_matches_onnxruntime(always_pays):
    model = export("mobilenet_v2", dynamo=False, opset_version=17, do_constant_folding=False)
    x = np.random.default_rng(12).standard_normal((1, 3, 64, 64)).astype(np.float32)
    rep = lco.prepare(model)
    assert labels(rep).count("InvertedResidual") >= 10
    ours = assert_matches_ort(model, {"x": x}, tol=1e-4)
    _core.ir_block_debug(0, 0)
    plain = lco.prepare(model).run({"x": x})[0]
    assert rel_err(ours[0], plain.astype(np.float64)) < 1e-5


def test_another_isa_after_prepare_keeps_running_the_packed_block(always_pays):
    """Like a Conv whose raw weights are released, the fused step keeps the
    packing it made: an ISA chosen after prepare does not make it fail."""
    import leanconv as lc
    model = block_graph()
    rep = lco.prepare(model)
    assert "InvertedResidual" in labels(rep)
    ref = rep.run(feeds())[0]
    for isa in lc.available_isas():
        with lc.use_isa(isa):
            assert np.array_equal(rep.run(feeds())[0], ref)


def test_fused_block_weights_count_as_packed(always_pays):
    fused = lco.prepare(block_graph())
    block_step = fused.program.steps[1]
    held = sum(a.nbytes for a in block_step.held())
    assert held >= 4 * (E * C + E * 9)   # the 1x1's packed copy and the depthwise's weights
    m = fused.memory()
    assert m["packed_weights"] >= held and m["bookkeeping"] < 2**20
