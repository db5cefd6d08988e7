"""leanconv.onnx runs a dilated Conv whose off-centre taps read only padding
at the input size (deeplabv3's ASPP: 3x3, dilation 12-36, on an 8x8 or 14x14
map) as the convolution of its live taps (leanconv/_dead_taps.py), and one
whose live taps read the input at only part of the outputs in direct_lanes'
tap mode (kernels/tap_lanes.c: only the (tap, output) pairs that read the
input): the same output as every tap summed, checked here against a float64
reference at 1 and 2 threads (the same bits), with only the live taps'
weights packed and the memory plan counting that packing."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv import _dead_taps as dead_taps  # noqa: E402
from leanconv._params import ConvSpec  # noqa: E402
from leanconv import _core, _isa  # noqa: E402
from reference import conv2d_ref  # noqa: E402

F32 = TensorProto.FLOAT
TOL = 1e-5   # max |ours - ref| / max |scale|: float32 sums of ~C*taps terms

SUM = "taps"
# (C, M, H, W, (kH, kW), (dh, dw), (top, bottom, left, right), stride, groups, what runs: the
# kernel shape of the (trimmed) convolution, or SUM: direct_lanes' tap mode, where live taps
# read the input at only part of the outputs and the live (tap, output) pairs are at most half)
CASES = [
    (24, 16, 8, 8, (3, 3), (12, 12), (12, 12, 12, 12), 1, 1, (1, 1)),   # ASPP at 128 px
    (24, 16, 14, 14, (3, 3), (24, 24), (24, 24, 24, 24), 1, 1, (1, 1)),  # ASPP at 224 px, d24
    (24, 16, 14, 14, (3, 3), (12, 12), (12, 12, 12, 12), 1, 1, SUM),    # d12: 18% of the pairs
    (16, 12, 5, 7, (3, 3), (4, 4), (4, 0, 1, 5), 1, 1, (2, 2)),         # padding on one side:
                                                                         # trimmed, then most pairs live
    (8, 12, 5, 7, (3, 3), (4, 4), (4, 0, 1, 5), 1, 1, (2, 2)),          # 8 channels: trimmed only
    (16, 8, 6, 6, (5, 5), (3, 3), (6, 6, 6, 6), 2, 1, (3, 3)),          # strided: trimmed
    (8, 8, 6, 9, (3, 5), (6, 2), (6, 6, 4, 4), 1, 8, (1, 5)),           # depthwise: trimmed only
    (12, 6, 4, 4, (3, 3), (5, 5), (5, 5, 5, 5), 1, 3, (1, 1)),          # grouped
    (48, 6, 14, 14, (3, 3), (12, 12), (13, 13, 13, 13), 1, 3, (3, 3)),  # no tap reads everywhere:
                                                                         # auto prices the grouped
                                                                         # kernel lower at 2 channels
                                                                         # a group
    (64, 40, 14, 14, (3, 3), (12, 12), (13, 13, 13, 13), 1, 2, SUM),    # ... and tap mode at 20
    (12, 6, 14, 14, (3, 3), (12, 12), (13, 13, 13, 13), 1, 3, (3, 3)),  # 4 channels a group: GEMMs
                                                                         # too small to pay
    (16, 8, 16, 16, (3, 3), (2, 2), (2, 2, 2, 2), 1, 1, (3, 3)),        # d2: every tap, most outputs
]


def _model(C, M, H, W, k, dil, pads, stride, groups, w, b, dims=None, activation=None):
    t, bt, l, r = pads
    x_shape = dims if dims is not None else [1, C, H, W]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if activation else "y"],
                              kernel_shape=list(k), dilations=list(dil), pads=[t, l, bt, r],
                              strides=[stride, stride], group=groups)]
    if activation:
        nodes.append(helper.make_node(activation, ["c"], ["y"]))
    graph = helper.make_graph(
        nodes, "dead_taps", [helper.make_tensor_value_info("x", F32, x_shape)],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return _with_shapes(graph)


def _with_shapes(graph):
    """The model, its output shape filled in (the checker wants one)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _data(C, M, k, groups, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((M, C // groups) + tuple(k)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    return w, b


def _check(rep, x, w, b, stride, pads, dil, groups):
    y = rep.run([x])[0]
    ref, scale = conv2d_ref(x, w, b, (stride, stride), pads, dil, groups)
    assert y.shape == ref.shape
    assert np.max(np.abs(y - ref)) / np.max(scale) < TOL


def _conv(rep):
    (conv,) = [s.conv for s in rep.program.steps if getattr(s, "conv", None) is not None]
    return conv


def _runs(plan, x_shape):
    """SUM where the plan runs in direct_lanes' tap mode, else its kernel shape."""
    if plan.algorithm == "direct_lanes" and _core._direct_lanes_mode(
            _isa.isa_id(), plan.spec.geometry(*x_shape)) == SUM:
        return SUM
    return (plan.spec.kH, plan.spec.kW)


@pytest.mark.parametrize("activation", [None, "Relu"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}>{c[1]}@{c[2]}x{c[3]}k{c[4]}d{c[5]}")
def test_dead_taps_are_skipped_and_the_output_is_the_full_convolution(case, activation):
    C, M, H, W, k, dil, pads, stride, groups, runs = case
    w, b = _data(C, M, k, groups)
    model = _model(C, M, H, W, k, dil, pads, stride, groups, w, b, activation=activation)
    x = np.random.default_rng(1).standard_normal((1, C, H, W)).astype(np.float32)
    ref, scale = conv2d_ref(x, w, b, (stride, stride), pads, dil, groups)
    if activation:
        ref = np.maximum(ref, 0)
    outs = []
    for threads in (1, 2):
        rep = lco.prepare(model, threads=threads)
        outs.append(rep.run([x])[0])
        plan = _conv(rep).last_plan
        assert _runs(plan, x.shape) == runs
        # the memory plan counts the packing it runs: the live taps' weights, not all
        assert rep.memory()["packed_weights"] == plan.packed_bytes
        assert rep.memory()["workspace"] >= plan.workspace_bytes((1, C, H, W), threads=threads)
    assert np.max(np.abs(outs[0] - ref)) / np.max(scale) < TOL
    assert np.array_equal(outs[0], outs[1])
    full = ConvSpec.build(w.shape, (stride, stride), pads, dil, groups)
    if runs != SUM and runs != k:
        assert rep.memory()["packed_weights"] < w.nbytes
        assert dead_taps.trimmed_spec(full, (1, C, H, W)) is not None


def test_a_fused_residual_add_reaches_every_output_in_tap_mode():
    """Conv + Add + Relu with the Conv in tap mode: the residual is added
    once at every output, where one tap reads the input and where several
    do."""
    C, M, H, W, k, dil, pads, stride, groups, _ = CASES[2]
    w, b = _data(C, M, k, groups, seed=2)
    t, bt, l, r = pads
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], dilations=list(dil),
                              pads=[t, l, bt, r]),
             helper.make_node("Add", ["c", "res"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", F32, [1, C, H, W]),
                            helper.make_tensor_value_info("res", F32, [1, M, H, W])],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    rep = lco.prepare(_with_shapes(graph))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, C, H, W)).astype(np.float32)
    res = rng.standard_normal((1, M, H, W)).astype(np.float32)
    y = rep.run([x, res])[0]
    assert _runs(_conv(rep).last_plan, x.shape) == SUM
    ref, scale = conv2d_ref(x, w, b, (1, 1), pads, dil, groups)
    assert np.max(np.abs(y - np.maximum(ref + res, 0))) / np.max(scale) < TOL


def test_weights_fed_at_run_time_are_trimmed_too():
    C, M, H, W, k, dil, pads, stride, groups, _ = CASES[0]
    w, b = _data(C, M, k, groups, seed=3)
    t, bt, l, r = pads
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], dilations=list(dil),
                            pads=[t, l, bt, r], group=groups)
    graph = helper.make_graph(
        [node], "fed", [helper.make_tensor_value_info("x", F32, [1, C, H, W]),
                        helper.make_tensor_value_info("w", F32, list(w.shape)),
                        helper.make_tensor_value_info("b", F32, [M])],
        [helper.make_tensor_value_info("y", F32, None)])
    rep = lco.prepare(_with_shapes(graph))
    x = np.random.default_rng(4).standard_normal((1, C, H, W)).astype(np.float32)
    y = rep.run([x, w, b])[0]
    ref, scale = conv2d_ref(x, w, b, (1, 1), pads, dil, groups)
    assert np.max(np.abs(y - ref)) / np.max(scale) < TOL


def test_dynamic_sizes_pack_each_size_its_live_taps():
    """Dims left dynamic: the raw weights stay, and each input size gets the
    packing of its own live taps -- tap mode where they read part of a map,
    the full kernel on a map they reach at most outputs."""
    C, M, H, W, k, dil, pads, stride, groups, _ = CASES[0]
    w, b = _data(C, M, k, groups, seed=5)
    model = _model(C, M, H, W, k, dil, pads, stride, groups, w, b, dims=["n", C, "h", "w"])
    rep = lco.prepare(model)
    for size, runs in ((8, (1, 1)), (20, SUM), (6, (1, 1)), (8, (1, 1)), (40, (3, 3))):
        x = np.random.default_rng(size).standard_normal((1, C, size, size)).astype(np.float32)
        _check(rep, x, w, b, stride, pads, dil, groups)
        assert _runs(_conv(rep).last_plan, x.shape) == runs


def test_a_static_model_fed_a_size_its_packing_cannot_serve_says_so():
    """Static dims: prepare packs the declared size's live taps and drops the
    raw weights.  A smaller map (fewer live taps) still runs on that packing;
    a larger one, whose outputs reach the dropped taps, is refused by name."""
    C, M, H, W, k, dil, pads, stride, groups, _ = CASES[0]
    w, b = _data(C, M, k, groups, seed=6)
    rep = lco.prepare(_model(C, M, H, W, k, dil, pads, stride, groups, w, b))
    x = np.random.default_rng(7).standard_normal((1, C, 5, 5)).astype(np.float32)
    _check(rep, x, w, b, stride, pads, dil, groups)
    big = np.zeros((1, C, 20, 20), np.float32)
    with pytest.raises(ValueError, match=r"Conv node .*inputs of size 20x20 need the other taps"):
        rep.run([big])


def test_deeplabv3_runs_its_aspp_on_the_live_taps_and_matches_onnxruntime(tmp_path):
    """The whole segmentation model at 64 px (a 4x4 map under the ASPP):
    its 3x3 convolutions of dilation 12, 24 and 36 run as 1x1 ones, and the
    output matches onnxruntime's."""
    ort = pytest.importorskip("onnxruntime")
    try:
        import onnx_exports
        path = onnx_exports.export("deeplabv3_mobilenet_v3_large", 64, "torchscript",
                                   str(tmp_path))
    except ImportError as e:
        pytest.skip(f"torchvision: {e}")
    x = np.random.default_rng(8).standard_normal((1, 3, 64, 64)).astype(np.float32)
    rep = lco.prepare(onnx.load(path), threads=2)
    ours = rep.run([x])[0]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) < 1e-4
    convs = [s.conv for s in rep.program.steps if getattr(s, "conv", None) is not None]
    aspp = [c.last_plan.spec for c in convs if c.dilations in ([12, 12], [24, 24], [36, 36])]
    assert len(aspp) == 3
    assert all((spec.kH, spec.kW) == (1, 1) for spec in aspp)
