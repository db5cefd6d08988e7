"""leanconv.onnx beyond ONNX's own suite: Conv geometry against onnxruntime,
fusion, real exported networks, prepare-time errors, input checks, bench_model.

Tolerance: outputs are compared with onnxruntime's as max|ours - theirs| /
max|theirs| < REL_TOL (both float32; leanconv's per-layer error bound is in
test_torch_adapter.py)."""
from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv.onnx.bench import bench_model, max_rel_diff  # noqa: E402

REL_TOL = 1e-5
F32 = TensorProto.FLOAT


def rng(seed=0):
    return np.random.default_rng(seed)


def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    """inputs/outputs: [(name, shape or None)], float32; output shapes left as
    None are filled in by ONNX shape inference (the checker wants them)."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, F32, s) for n, s in outputs],
        [numpy_helper.from_array(np.asarray(v), name=k) for k, v in initializers])
    # IR 10: new enough for opset 17-21, old enough for every onnxruntime in use
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:
        return model   # (tests of unsupported things prepare with check=False)


def ort_run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def rel_err(a, b):
    return max_rel_diff([a], [b])


def assert_matches_ort(model, feeds, tol=REL_TOL, **prepare_kwargs):
    ours = lco.prepare(model, **prepare_kwargs).run(feeds)
    theirs = ort_run(model, feeds)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert rel_err(a, b) < tol
    return ours


# --- Conv geometry -------------------------------------------------------------------------

CONV_CASES = [
    # (x shape, w shape, attributes)
    ((1, 3, 11, 10), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER")),
    ((1, 3, 11, 10), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    ((1, 3, 11, 10), (4, 3, 4, 2), dict(auto_pad="SAME_LOWER", strides=[2, 3])),
    ((2, 3, 9, 9), (5, 3, 3, 3), dict(auto_pad="VALID", strides=[2, 1])),
    ((1, 4, 9, 9), (6, 2, 3, 3), dict(group=2, pads=[0, 1, 2, 1], kernel_shape=[3, 3])),
    ((1, 8, 10, 10), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1], strides=[2, 2])),
    ((1, 4, 10, 10), (12, 1, 5, 5), dict(group=4, pads=[2, 2, 2, 2])),   # multiplier 3
    ((1, 16, 12, 12), (32, 16, 3, 3), dict(pads=[1, 1, 1, 1])),          # Winograd
    ((1, 16, 12, 12), (8, 16, 1, 1), dict()),
    ((2, 3, 20), (4, 3, 5), dict(pads=[2, 1], strides=[2], dilations=[2])),  # 1-D
    ((1, 3, 17), (4, 3, 4), dict(auto_pad="SAME_UPPER")),                   # 1-D
]


@pytest.mark.parametrize("xs, ws, attrs", CONV_CASES)
@pytest.mark.parametrize("weights", ["initializer", "input"])
def test_conv_matches_onnxruntime(xs, ws, attrs, weights):
    x = rng(1).standard_normal(xs).astype(np.float32)
    w = rng(2).standard_normal(ws).astype(np.float32)
    b = rng(3).standard_normal(ws[0]).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    if weights == "initializer":
        model = make_model([node], [("x", xs)], [("y", None)], [("w", w), ("b", b)])
        feeds = {"x": x}
    else:
        model = make_model([node], [("x", xs), ("w", ws), ("b", (ws[0],))], [("y", None)])
        feeds = {"x": x, "w": w, "b": b}
    assert_matches_ort(model, feeds)


def test_same_padding_with_dilation_matches_the_onnx_reference():
    # onnxruntime refuses dilation with auto_pad SAME; the spec's reference evaluator does not
    from onnx.reference import ReferenceEvaluator
    x = rng(1).standard_normal((1, 3, 12, 11)).astype(np.float32)
    w = rng(2).standard_normal((4, 3, 3, 2)).astype(np.float32)
    for auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, dilations=[2, 3])
        model = make_model([node], [("x", x.shape)], [("y", None)], [("w", w)])
        (expect,) = ReferenceEvaluator(model).run(None, {"x": x})
        (y,) = lco.prepare(model).run([x])
        assert y.shape == expect.shape and rel_err(y, expect) < REL_TOL


def test_conv_plan_is_reused_across_runs_and_repacked_per_shape():
    w = rng(2).standard_normal((8, 4, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])
    model = make_model([node], [("x", [1, 4, "H", "W"])], [("y", None)], [("w", w)])
    rep = lco.prepare(model)
    op = rep.program.steps[0].conv
    for hw in [(9, 9), (9, 9), (10, 12), (9, 9)]:
        x = rng(hw[0]).standard_normal((1, 4) + hw).astype(np.float32)
        (y,) = rep.run([x])
        assert rel_err(y, ort_run(model, {"x": x})[0]) < REL_TOL
    assert len(op._plans) == 2   # two padding layouts: 9x9 and 10x12 pad differently


# --- fusion --------------------------------------------------------------------------------

def conv_bn_act(act, bn_eps=1e-3, extra_reader=False):
    g = rng(5)
    C, M = 6, 8
    inits = [("w", g.standard_normal((M, C, 3, 3)).astype(np.float32)),
             ("b", g.standard_normal(M).astype(np.float32)),
             ("scale", (0.5 + g.random(M)).astype(np.float32)),
             ("beta", g.standard_normal(M).astype(np.float32)),
             ("mean", g.standard_normal(M).astype(np.float32)),
             ("var", (0.5 + g.random(M)).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["n"],
                              epsilon=bn_eps)]
    outputs = [("y", None)]
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["n"], ["y"]))
    elif act == "clip":
        nodes += [helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(
                      np.array(0, np.float32))),
                  helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(
                      np.array(6, np.float32))),
                  helper.make_node("Clip", ["n", "lo", "hi"], ["y"])]
    else:
        nodes.append(helper.make_node("Identity", ["n"], ["y"]))
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", ["c"], ["s"]))
        outputs.append(("s", None))
    return make_model(nodes, [("x", (2, C, 9, 9))], outputs, inits)


@pytest.mark.parametrize("act, label", [("relu", "Conv+BatchNormalization+Relu"),
                                        ("clip", "Conv+BatchNormalization+Clip"),
                                        (None, "Conv+BatchNormalization")])
def test_conv_batchnorm_activation_fuse_into_one_step(act, label):
    model = conv_bn_act(act)
    x = (3 * rng(7).standard_normal((2, 6, 9, 9))).astype(np.float32)
    rep = lco.prepare(model)
    conv_steps = [s for s in rep.program.steps if s.conv is not None]
    assert [s.label() for s in conv_steps] == [label]
    assert {s.op_type for s in rep.program.steps} <= {"Conv", "Identity"}
    ours = assert_matches_ort(model, {"x": x})
    unfused = lco.prepare(model, fuse=False)
    assert len(unfused.program.steps) > len(rep.program.steps)
    assert rel_err(unfused.run({"x": x})[0], ours[0].astype(np.float64)) < REL_TOL


def test_no_fusion_when_the_conv_output_has_another_reader():
    model = conv_bn_act("relu", extra_reader=True)
    rep = lco.prepare(model)
    # the BatchNormalization is a step of its own, with its Relu (channel_affine.py)
    assert [s.label() for s in rep.program.steps
            if s.conv is not None or s.op_type == "ChannelAffineRelu"] == \
        ["Conv", "ChannelAffineRelu+Relu"]
    assert_matches_ort(model, {"x": rng(8).standard_normal((2, 6, 9, 9)).astype(np.float32)})


def test_standalone_batchnorm_and_other_ops_match_onnxruntime():
    g = rng(9)
    C = 4
    inits = [("s", (0.5 + g.random(C)).astype(np.float32)), ("b", g.random(C).astype(np.float32)),
             ("m", g.random(C).astype(np.float32)), ("v", (0.5 + g.random(C)).astype(np.float32)),
             ("gw", g.standard_normal((C * 2, 5)).astype(np.float32)),
             ("shape", np.array([0, -1], np.int64))]
    nodes = [helper.make_node("Add", ["x", "x2"], ["a"]),
             helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["n"]),
             helper.make_node("LeakyRelu", ["n"], ["l"], alpha=0.2),
             helper.make_node("MaxPool", ["l"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], ceil_mode=1),
             helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], strides=[2, 2],
                              count_include_pad=0, pads=[0, 0, 1, 1]),
             helper.make_node("LRN", ["q"], ["r"], size=3),
             helper.make_node("Concat", ["r", "r"], ["cat"], axis=1),
             helper.make_node("GlobalAveragePool", ["cat"], ["gap"]),
             helper.make_node("Reshape", ["gap", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "gw"], ["mm"]),
             helper.make_node("Softmax", ["mm"], ["y"])]
    model = make_model(nodes, [("x", (2, C, 13, 11)), ("x2", (1, C, 1, 11))], [("y", None)],
                       inits)
    feeds = {"x": g.standard_normal((2, C, 13, 11)).astype(np.float32),
             "x2": g.standard_normal((1, C, 1, 11)).astype(np.float32)}
    assert_matches_ort(model, feeds)


def test_style_transfer_block_with_instance_norm_and_global_max_pool_matches_onnxruntime():
    """Conv -> InstanceNormalization -> Relu -> Conv + the block's input
    (a fast-neural-style residual block), then GlobalMaxPool; planes of one
    value too (the variance 0: epsilon alone)."""
    g = rng(21)
    C = 5
    inits = [("w1", g.standard_normal((C, C, 3, 3)).astype(np.float32) * 0.3),
             ("w2", g.standard_normal((C, C, 3, 3)).astype(np.float32) * 0.3),
             ("s", (0.5 + g.random(C)).astype(np.float32)), ("b", g.random(C).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("InstanceNormalization", ["c1", "s", "b"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "x"], ["a"]),
             helper.make_node("InstanceNormalization", ["a", "s", "b"], ["n2"]),
             helper.make_node("GlobalMaxPool", ["n2"], ["y"])]
    model = make_model(nodes, [("x", (2, C, 9, 7))], [("y", None)], inits)
    assert_matches_ort(model, {"x": g.standard_normal((2, C, 9, 7)).astype(np.float32)})
    # 1 x 1 planes: each value is its plane's mean, so the normalised plane is
    # 0 and the output the bias, exactly (onnxruntime, its statistics in
    # float32, is off by up to 1e-3 of it there: 5.1880e-4 for 5.1837e-4)
    model = make_model(nodes, [("x", (1, C, 1, 1))], [("y", None)], inits)
    (y,) = lco.prepare(model).run([g.standard_normal((1, C, 1, 1)).astype(np.float32)])
    assert np.array_equal(y.reshape(-1), inits[3][1])


def test_pad_written_in_place_is_numpys_pad():
    """Pad's into() (ops_tensor.pad_in_place: slice copies straight into the
    arena) against np.pad over random ranks, sizes and widths; where it
    declines (a reflect pad as wide as its axis) it writes nothing."""
    from leanconv.onnx.ops_tensor import pad_in_place
    g = rng(31)
    for _ in range(400):
        shape = tuple(int(v) for v in g.integers(1, 7, g.integers(1, 5)))
        width = [tuple(int(v) for v in g.integers(0, 5, 2)) for _ in shape]
        mode = ("constant", "edge", "reflect")[int(g.integers(3))]
        x = g.standard_normal(shape).astype(np.float32)
        y = np.full([n + b + e for n, (b, e) in zip(shape, width)], np.nan, np.float32)
        if not pad_in_place(y, x, width, mode, 1.5):
            assert mode == "reflect" and np.isnan(y).all()
            continue
        kwargs = {"constant_values": 1.5} if mode == "constant" else {}
        assert np.array_equal(y, np.pad(x, width, mode=mode, **kwargs)), (shape, width, mode)


# --- whole networks exported from PyTorch ---------------------------------------------------

def export(name, size=64, **kwargs):
    torch = pytest.importorskip("torch")
    import reference_nets
    model = reference_nets.make(name)
    buf = io.BytesIO()
    try:
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), buf, input_names=["x"],
                          output_names=["y"], **kwargs)
    except ImportError as e:   # e.g. the dynamo exporter without onnxscript
        pytest.skip(f"torch.onnx.export needs a missing package: {e}")
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # the TorchScript exporter's
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("fold_in_exporter", [False, True])
def test_exported_network_matches_onnxruntime(name, fold_in_exporter):
    # do_constant_folding=False keeps the BatchNormalization nodes for leanconv to fold
    model = export(name, dynamo=False, opset_version=17, do_constant_folding=fold_in_exporter)
    x = rng(10).standard_normal((1, 3, 64, 64)).astype(np.float32)
    rep = lco.prepare(model)
    labels = [s.label() for s in rep.program.steps]
    assert "BatchNormalization" not in labels and "Relu" not in labels[:3]
    if name == "mobilenet_v2":
        assert "Conv+BatchNormalization+Clip" in labels or "Conv+Clip" in labels
    assert_matches_ort(model, {"x": x})
    rep.run([x])
    algos = {s.conv.last_plan.algorithm for s in rep.program.steps if s.conv is not None}
    assert ("depthwise" in algos) == (name == "mobilenet_v2")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_network_from_the_default_dynamo_exporter():
    pytest.importorskip("onnxscript")
    model = export("resnet18", size=32, dynamo=True)
    assert_matches_ort(model, {"x": rng(11).standard_normal((1, 3, 32, 32)).astype(np.float32)})


# torchvision exports with the ops beyond ResNet/MobileNetV2's: LR-ASPP (HardSwish,
# HardSigmoid, Sigmoid, Resize, Cast, Shape, Slice), ShuffleNetV2 (Gather, Div, Transpose,
# Reshape).  bench/onnx_models.py runs every model with both exporters.
TORCHVISION_CASES = [("lraspp_mobilenet_v3_large", "torchscript"),
                     ("shufflenet_v2_x1_0", "torchscript")]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("onnx-exports"))


@pytest.mark.parametrize("name, exporter", TORCHVISION_CASES)
def test_torchvision_export_matches_onnxruntime(name, exporter, export_dir):
    import onnx_exports
    try:
        onnx_exports.import_torchvision()
    except ImportError:
        pytest.skip("needs torch and torchvision")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    model = onnx.load(onnx_exports.export(name, 64, exporter, export_dir))
    x = rng(15).standard_normal((1, 3, 64, 64)).astype(np.float32)
    assert_matches_ort(model, {"x": x}, tol=1e-4)
    if name.startswith("lraspp"):   # MobileNetV3's squeeze-and-excitation blocks: one step
        # each (the head's Mul scales another tensor than the one pooled: not one)
        steps = [s.label() for s in lco.prepare(model).program.steps]
        assert steps.count("SqueezeExcite") == 8 and steps.count("Mul") == 1


def test_fast_neural_style_export_matches_onnxruntime(export_dir):
    """An image-to-image network (tests/reference_nets.FastNeuralStyle):
    reflect Pads, InstanceNormalization after every Conv, nearest Resizes,
    and a 32>3 9x9 last layer (the stem kernel's few-outputs case on
    AVX-512); exported by onnx_exports as bench/onnx_models.py does."""
    pytest.importorskip("torch")
    import onnx_exports
    model = onnx.load(onnx_exports.export("fast_neural_style", 64, "torchscript", export_dir))
    ops = {n.op_type for n in model.graph.node}
    assert {"InstanceNormalization", "Pad", "Resize"} <= ops
    x = rng(16).standard_normal((1, 3, 64, 64)).astype(np.float32)
    assert_matches_ort(model, {"x": x}, tol=1e-4)


def convnext_like_block():
    """A small ConvNeXt-style block with a channel split and a bilinear resize:
    LayerNormalization, Gelu or Erf, MatMul, Transpose, Split or Slice, Resize."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
            self.norm = nn.LayerNorm(8, eps=1e-6)
            self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 8)

        def forward(self, x):
            y = self.dw(x).permute(0, 2, 3, 1)
            y = self.fc2(nn.functional.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
            a, b = torch.chunk(x + y, 2, dim=1)
            z = torch.cat([torch.sigmoid(a) * b, torch.tanh(b) / (a.abs() + 1)], 1)
            return nn.functional.interpolate(z, scale_factor=2, mode="bilinear",
                                             align_corners=False)
    torch.manual_seed(0)
    return Block().eval()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", [False, True])
def test_convnext_like_block_from_both_exporters(dynamo):
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    buf = io.BytesIO()
    kwargs = dict(dynamo=True) if dynamo else dict(dynamo=False, opset_version=17)
    torch.onnx.export(convnext_like_block(), (torch.zeros(1, 8, 12, 12),), buf,
                      input_names=["x"], output_names=["y"], **kwargs)
    model = onnx.load_from_string(buf.getvalue())
    ops = {n.op_type for n in model.graph.node}
    assert {"LayerNormalization", "Resize"} <= ops and ops & {"Gelu", "Erf"}
    x = rng(16).standard_normal((1, 8, 12, 12)).astype(np.float32)
    assert_matches_ort(model, {"x": x}, tol=1e-4)


def test_refusal_names_every_unsupported_op_at_once():
    nodes = [helper.make_node("Celu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Hardmax", ["b"], ["c"]), helper.make_node("Celu", ["c"], ["y"])]
    model = make_model(nodes, [("x", (1, 3, 4, 4))], [("y", None)])
    with pytest.raises(NotImplementedError, match=r"ops Celu \(node .*\), Hardmax"):
        lco.prepare(model, check=False)


def test_output_independent_of_threads_and_algorithm_choice():
    model = conv_bn_act("relu")
    x = rng(12).standard_normal((2, 6, 9, 9)).astype(np.float32)
    y1 = lco.prepare(model, threads=1).run([x])[0]
    y2 = lco.prepare(model, threads=2).run([x])[0]
    assert np.array_equal(y1, y2)
    for algo in ("im2col", "patch2vec", "winograd_f4", "direct"):
        rep = lco.prepare(model, algorithm=algo)
        assert rel_err(rep.run([x])[0], y1.astype(np.float64)) < 1e-4
        assert rep.program.steps[0].conv.last_plan.algorithm == algo


@pytest.mark.parametrize("algorithm", ["im2col", "patch2vec", "winograd_f2", "winograd_f4",
                                       "direct"])
def test_a_conv_whose_input_is_also_its_residual(algorithm):
    """Add(Conv(y), y) after a Relu: the fused step reads y twice, so its output
    may not take over y's buffer while the conv still reads it."""
    g = rng(21)
    nodes = [helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Conv", ["y", "w", "b"], ["c"], pads=[1] * 4),
             helper.make_node("Add", ["c", "y"], ["z"]),
             helper.make_node("Relu", ["z"], ["out"])]
    inits = [("w", g.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.2),
             ("b", g.standard_normal(16).astype(np.float32))]
    model = make_model(nodes, [("x", (1, 16, 10, 10))], [("out", None)], inits)
    x = g.standard_normal((1, 16, 10, 10)).astype(np.float32)
    rep = lco.prepare(model, algorithm=algorithm)
    assert rep.program.steps[-1].conv is not None   # the Add and Relu fused into the Conv
    assert rel_err(rep.run([x])[0], ort_run(model, {"x": x})[0].astype(np.float64)) < REL_TOL


# --- errors --------------------------------------------------------------------------------

def one_node_model(node, x_shape=(1, 3, 8, 8), inits=(), opset=17, out_count=1):
    return make_model([node], [("x", x_shape)],
                      [(o, None) for o in node.output[:out_count]], inits, opset)


@pytest.mark.parametrize("node, inits, x_shape, match", [
    (helper.make_node("Celu", ["x"], ["y"]), (), (1, 3, 8, 8), "op Celu"),
    (helper.make_node("Relu", ["x"], ["y"], foo=1), (), (1, 3, 8, 8), "attribute 'foo' of Relu"),
    (helper.make_node("Conv", ["x", "w"], ["y"]), [("w", np.zeros((2, 3, 3, 3, 3), np.float32))],
     (1, 3, 8, 8, 8), "3-D Conv"),
    (helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3, 3]), (), (1, 3, 8, 8, 8),
     "3-D Conv"),
    (helper.make_node("Conv", ["x", "w"], ["y"]), [("w", np.zeros((2, 3, 3, 3), np.float64))],
     (1, 3, 8, 8), "float64 weights"),
    (helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), (), (1, 3, 8, 8),
     "Indices"),
])
def test_unsupported_is_a_not_implemented_error_at_prepare(node, inits, x_shape, match):
    model = one_node_model(node, x_shape, inits, out_count=len(node.output))
    with pytest.raises(NotImplementedError, match=match):
        lco.prepare(model, check=False)
    assert not lco.is_compatible(model)


def test_custom_domain_is_not_implemented():
    node = helper.make_node("Gelu", ["x"], ["y"], domain="com.example")
    model = make_model([node], [("x", (1, 3))], [("y", None)])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(NotImplementedError, match="com.example.Gelu"):
        lco.prepare(model, check=False)


def test_run_input_checks():
    rep = lco.prepare(conv_bn_act("relu"))
    x = np.zeros((2, 6, 9, 9), np.float32)
    with pytest.raises(TypeError, match="float32"):
        rep.run([x.astype(np.float64)])
    with pytest.raises(ValueError, match="rank"):
        rep.run([x[0]])
    with pytest.raises(ValueError, match="missing"):
        rep.run([])
    with pytest.raises(ValueError, match="unknown model input"):
        rep.run({"x": x, "z": x})
    with pytest.raises(ValueError, match="initializers"):
        rep.run({"x": x, "w": x})
    with pytest.raises(ValueError, match="takes 1 input"):
        rep.run([x, x])
    with pytest.raises(ValueError, match=r"Conv node .* shape \(0, 6, 9, 9\)"):
        rep.run([np.zeros((0, 6, 9, 9), np.float32)])   # was SIGFPE in the cost model
    with pytest.raises(TypeError, match="got None"):
        rep.run(None)
    out = rep.run({"x": x})
    assert out["y"] is out[0]


@pytest.mark.parametrize("attrs, match", [
    (dict(kernel_shape=[0, 0]), "kernel_shape must be >= 1"),   # ran, and returned None
    (dict(kernel_shape=[2, 2], strides=[0, 1]), "strides must be >= 1"),
    (dict(kernel_shape=[2, 2], dilations=[1, 0]), "dilations must be >= 1"),
    (dict(kernel_shape=[2, 2], pads=[0, -1, 0, 0]), "pads must be >= 0"),
])
def test_pooling_attributes_out_of_range_are_value_errors(attrs, match):
    model = one_node_model(helper.make_node("MaxPool", ["x"], ["y"], **attrs))
    with pytest.raises(ValueError, match=match):
        lco.prepare(model, check=False).run(np.zeros((1, 3, 8, 8), np.float32))


def test_gemm_of_rows_the_constant_matrix_does_not_take_is_a_value_error():
    """Flatten gives 192 values a row, B takes 7: named, not a reshape error
    from the packed panels (nor the C GEMV reading past them)."""
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    model = make_model(nodes, [("x", (1, 3, 8, 8))], [("y", None)],
                       [("w", np.ones((10, 7), np.float32))])
    with pytest.raises(ValueError, match="Gemm node .* rows of 7 values"):
        lco.prepare(model, check=False).run(np.zeros((1, 3, 8, 8), np.float32))


def test_an_empty_tensor_reaching_a_conv_is_a_value_error():
    """A Slice that leaves no rows, then a Conv: refused by the Conv's own
    checks (the C descriptor refuses a zero dimension in any case:
    tests/test_errors.py)."""
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a"], ["z"]),
             helper.make_node("Conv", ["z", "w"], ["y"])]
    inits = [("s", np.array([2], np.int64)), ("e", np.array([2], np.int64)),
             ("a", np.array([2], np.int64)), ("w", np.ones((4, 3, 1, 1), np.float32))]
    model = make_model(nodes, [("x", (1, 3, 8, 8))], [("y", None)], inits)
    with pytest.raises(ValueError, match="no empty dimension"):
        lco.prepare(model, check=False).run(np.zeros((1, 3, 8, 8), np.float32))


def test_repeated_runs_check_every_input_and_read_its_data():
    """After a checked run, a run with inputs of the same names, shapes and
    dtypes goes straight to the schedule (BackendRep._run_as_last); every
    other input still meets the checks, and each run reads the data it is
    given (nothing of the last run's is reused but the schedule)."""
    rep = lco.prepare(conv_bn_act("relu"))
    g = np.random.default_rng(3)
    x1, x2 = (g.standard_normal((2, 6, 9, 9)).astype(np.float32) for _ in range(2))
    y1 = rep.run({"x": x1})[0].copy()
    assert rep.program.schedule._lean is not None   # one C loop: the lean path runs it
    y2 = rep.run({"x": x2})[0]
    assert not np.array_equal(y1, y2)
    assert np.array_equal(rep.run([x1])[0], y1) and np.array_equal(rep.run(x1)[0], y1)
    x1[0, 0, 0, 0] += 1.0   # the same array, other data
    assert not np.array_equal(rep.run({"x": x1})[0], y1)
    out = rep.run({"x": x2})
    assert out["y"] is out[0] and type(out).__name__ == "Outputs" and out._fields == ("y",)
    with pytest.raises(ValueError, match="unknown model input"):
        rep.run({"x": x2, "z": x2})
    with pytest.raises(TypeError, match="float32"):
        rep.run({"x": x2.astype(np.float64)})
    with pytest.raises(ValueError, match="missing"):
        rep.run({})
    with pytest.raises(ValueError, match="takes 1 input"):
        rep.run([x2, x2])
    with pytest.raises(TypeError, match="unexpected keyword"):
        rep.run({"x": x2}, threads=2)
    # another shape: checked, its own schedule; then back to the first one
    small = g.standard_normal((1, 6, 7, 7)).astype(np.float32)
    assert rep.run({"x": small})[0].shape[0] == 1
    assert np.array_equal(rep.run({"x": x2})[0], y2)


def test_devices_and_bad_prepare_arguments():
    assert lco.supports_device("CPU") and not lco.supports_device("CUDA")
    model = conv_bn_act("relu")
    with pytest.raises(ValueError, match="CPU only"):
        lco.prepare(model, "CUDA")
    with pytest.raises(TypeError, match="unexpected keyword"):
        lco.prepare(model, thread=2)
    with pytest.raises(ValueError, match="unknown algorithm"):
        lco.prepare(model, algorithm="fft")
    with pytest.raises(TypeError, match="ModelProto"):
        lco.prepare(model.graph, check=False)


def test_run_node_and_run_model():
    x = rng(13).standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng(14).standard_normal((3, 2, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    (y,) = lco.run_node(node, [x, w])
    model = make_model([node], [("x", x.shape), ("w", w.shape)], [("y", None)])
    assert rel_err(y, ort_run(model, {"x": x, "w": w})[0]) < REL_TOL
    assert np.array_equal(lco.run_model(model, [x, w])[0], y)
    assert np.array_equal(lco.prepare(model.SerializeToString()).run([x, w])[0], y)


def test_intermediates_are_freed_after_their_last_reader():
    model = conv_bn_act("relu", extra_reader=True)
    program = lco.prepare(model).program
    freed = {n for s in program.steps for n in s.free}
    assert "c" in freed and not freed & {"y", "s"}


@pytest.mark.parametrize("kind", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=1),
    dict(kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[5, 5], strides=[3, 3], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 2], pads=[1, 1, 0, 0]),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_c_pooling_matches_onnxruntime(kind, attrs, threads):
    if kind == "MaxPool":
        attrs = {k: v for k, v in attrs.items() if k != "count_include_pad"}
    elif "dilations" in attrs:
        pytest.skip("onnxruntime's AveragePool has no dilations")
    node = helper.make_node(kind, ["x"], ["y"], **attrs)
    model = make_model([node], [("x", (2, 3, 13, 11))], [("y", None)])
    rep = lco.prepare(model, threads=threads)
    assert [s.label() for s, _ in rep.program.schedule.calls] == [kind]
    assert rep.program.schedule.calls[0][0].into is not None
    assert_matches_ort(model, {"x": rng(21).standard_normal((2, 3, 13, 11)).astype(np.float32)},
                       threads=threads)


@pytest.mark.parametrize("attrs", [dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                                   dict(kernel_shape=[3, 3], strides=[1, 1], pads=[0, 0, 0, 0])])
def test_max_pool_nan_in_the_interior_and_at_the_edges(attrs):
    x = rng(22).standard_normal((1, 2, 9, 12)).astype(np.float32)
    x[0, 0, 4, 5] = x[0, 1, 0, 0] = x[0, 1, 8, 11] = x[0, 0, 2, 1] = np.nan
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], **attrs)],
                       [("x", x.shape)], [("y", None)])
    ours = lco.prepare(model).run([x])[0]
    # a NaN anywhere in a window gives NaN, as np.max (and torch) do; onnxruntime's SIMD max
    # keeps or drops a NaN depending on where in the window it sits, so it is no reference here
    p = attrs["pads"][0]
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    s = attrs["strides"][0]
    want = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[
        :, :, ::s, ::s].max(axis=(-2, -1))
    assert np.isnan(ours).any()
    np.testing.assert_array_equal(ours, want)   # (NaNs compare equal here)


# --- memory plan ----------------------------------------------------------------------------

@pytest.mark.parametrize("flatten", [False, True])
@pytest.mark.parametrize("shuffle", [True, False])
def test_reshape_of_a_permuted_view_copies_once_into_its_buffer(flatten, shuffle):
    """Reshape -> Transpose -> Reshape (ShuffleNet's channel shuffle: whole
    planes move, copied in C on leanconv's threads, ops_reshape_copy), or a
    transpose to channels-last (runs of one float: NumPy): the last reshape
    reads a view that is not contiguous and is the one copy, written straight
    into its arena buffer -- no step of the plan holds a scratch temporary;
    onnxruntime's values, the same bits at 1 and 2 threads.  Flatten
    reshapes the permuted view the same way."""
    g = rng(23)
    x = g.standard_normal((1, 12, 5, 7)).astype(np.float32)
    w = g.standard_normal((12, 12, 1, 1)).astype(np.float32)
    if shuffle:
        split, perm = [1, 3, 4, 5, 7], [0, 2, 1, 3, 4]
    else:
        split, perm = [1, 12, 5, 7], [0, 2, 3, 1]
    last = (helper.make_node("Flatten", ["t"], ["s"], axis=1) if flatten else
            helper.make_node("Reshape", ["t", "back"], ["s"]))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Reshape", ["c", "split"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=perm),
             last,
             helper.make_node("Relu", ["s"], ["y"])]
    inits = [("w", w), ("split", np.array(split, np.int64)),
             ("back", np.array([1, 12, 5, 7], np.int64))]
    model = make_model(nodes, [("x", x.shape)], [("y", None)], inits)
    ours = assert_matches_ort(model, {"x": x}, threads=1)
    rep = lco.prepare(model, threads=2)
    assert rep.run({"x": x})[0].tobytes() == ours[0].tobytes()
    sched = rep.program.schedule
    copy = [st for st in rep.program.steps if st.outputs[0] == "s"][0]
    assert copy.workspace_bytes == 0
    assert sched.memory()["workspace"] == max(st.workspace_bytes for st in rep.program.steps
                                              if st.op_type == "Conv")


@pytest.mark.parametrize("threads", [1, 2])
def test_reshape_into_copies_a_permuted_view_through_the_bound_copy(threads, monkeypatch):
    """ReshapeInto's into() (a step run from Python) copies a channel
    shuffle's view with the bound C copy, bit for bit NumPy's, binding once
    per input view; a view the C loop does not take (float64, or one that
    overlaps the output) goes through NumPy."""
    from types import SimpleNamespace

    from leanconv.onnx import ops_reshape_copy
    into = ops_reshape_copy.ReshapeInto(SimpleNamespace(threads=threads))
    base = np.arange(6 * 4 * 40, dtype=np.float32)
    shuffled = base.reshape(1, 2, 3, 4, 40).transpose(0, 2, 1, 3, 4)
    y = np.full(base.size, np.nan, np.float32)
    binds = []
    bind = into.bind
    monkeypatch.setattr(into, "bind", lambda *a: binds.append(1) or bind(*a))
    for _ in range(2):
        into([y], shuffled)
        assert y.tobytes() == np.ascontiguousarray(shuffled).reshape(-1).tobytes()
    assert len(binds) == 1 and into._call is not None
    doubles = shuffled.astype(np.float64)
    y64 = np.empty(base.size, np.float64)
    into([y64], doubles)
    assert into._call is None and y64.tobytes() == np.ascontiguousarray(doubles).reshape(-1).tobytes()
    own = np.arange(24, dtype=np.float32)
    view = own.reshape(4, 6).T                  # overlaps its own output
    expect = np.ascontiguousarray(view).reshape(-1)
    into([own], view)
    assert into._call is None and own.tobytes() == expect.tobytes()


def residual_model(x_shape=(2, 8, 12, 12)):
    """conv -> relu -> conv, + x, relu, global pool, flatten, gemm: in-place Add/Relu, views."""
    g = rng(17)
    C = 8
    inits = [("w1", g.standard_normal((C, C, 3, 3)).astype(np.float32)),
             ("w2", g.standard_normal((C, C, 3, 3)).astype(np.float32)),
             ("fc", g.standard_normal((5, C)).astype(np.float32)),
             ("fb", g.standard_normal(5).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["b", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["t"]),
             helper.make_node("GlobalAveragePool", ["t"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    return make_model(nodes, [("x", x_shape)], [("y", None)], inits)


def test_memory_is_planned_at_prepare_and_buffers_are_reused():
    model = residual_model()
    rep = lco.prepare(model)
    m = rep.memory()
    assert m is not None and m["total"] == rep.memory_bytes() == sum(
        v for k, v in m.items() if k != "total")
    act = 2 * 8 * 12 * 12 * 4
    sched = rep.program.schedule
    # x (copied in), a, b live at once; r, s, t reuse a's or b's bytes in place
    assert 3 * act <= m["arena"] < 4 * act
    assert m["packed_weights"] == sum(s.packed_bytes for s in rep.program.steps)
    # the classifier's 5 x 8 weights packed in one 16-row panel (ops_linalg) in an array
    # with room for the token GEMM's panels (48 rows on AVX-512), its bias
    from leanconv import _core, _isa
    room = max(16 * 8, _core.token_packed_floats(5, 8, _isa.isa_id()))
    assert m["constants"] == (room + 5) * 4
    labels = [s.label() for s, _ in sched.calls]
    assert "Flatten" not in labels   # a view of the pooled buffer, taken once
    for s, _ in sched.calls:
        assert s.output_bytes > 0 and s.workspace_bytes >= 0
    assert_matches_ort(model, {"x": rng(18).standard_normal((2, 8, 12, 12)).astype(np.float32)})


def test_bookkeeping_counts_the_executors_objects_not_the_planned_arrays():
    from leanconv.onnx.footprint import object_bytes
    held, counted = np.zeros(1000, np.float32), np.zeros(5000, np.float32)
    root = {"held": held, "view": counted[10:], "names": ["a", "b"]}
    n = object_bytes([root], [counted])
    assert held.nbytes < n < held.nbytes + 2000   # counted's data only through its view's header
    m = lco.prepare(residual_model()).memory()
    assert 0 < m["bookkeeping"] < 2**20


def test_memory_plan_counts_the_outputs_run_returns():
    rep = lco.prepare(residual_model())
    m = rep.memory()
    x = rng(3).standard_normal((2, 8, 12, 12)).astype(np.float32)
    outs = rep.run({"x": x})
    assert m["outputs"] == sum(o.nbytes for o in outs) > 0
    assert m["total"] == sum(v for k, v in m.items() if k != "total")


def test_convs_run_as_bound_c_calls_rebound_when_threads_change():
    from leanconv import _core
    model = residual_model()
    rep = lco.prepare(model, threads=1)
    sched = rep.program.schedule
    convs = [c for s, c in sched.calls if s.conv is not None]
    assert len(convs) == 2 and all(c.func is _core.run_bound for c in convs)
    assert len(sched._fns) < len(sched.calls)   # consecutive bound convs: one C loop
    x = rng(26).standard_normal((2, 8, 12, 12)).astype(np.float32)
    want = ort_run(model, {"x": x})[0]
    assert rel_err(rep.run([x])[0], want) < REL_TOL
    rep.threads = 2
    assert rel_err(rep.run([x])[0], want) < REL_TOL
    assert rep.program.schedule.threads == 2


def test_blas_runs_on_one_thread_during_a_run_and_is_restored():
    # one thread whatever threads= is: OpenBLAS's workers spin ~0.1 s after a
    # multi-threaded call, taking the CPU leanconv's pool needs (schedule.py)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from leanconv.onnx.schedule import blas_limit

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]
    before = blas_threads()
    if not before:
        pytest.skip("NumPy has no BLAS threadpoolctl knows")
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with blas_limit():
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == [min(2, n) for n in before]
    assert blas_threads() == before


def test_raw_weights_are_dropped_once_packed():
    rep = lco.prepare(residual_model())
    for s in rep.program.steps:
        if s.conv is not None:
            assert s.conv.weight is None and s.conv._source is None and s.conv.last_plan
    # a new input size reuses the packed weights
    x = rng(19).standard_normal((1, 8, 20, 16)).astype(np.float32)
    model = residual_model(("N", 8, "H", "W"))
    assert rel_err(rep.run([x])[0], ort_run(model, {"x": x})[0]) < REL_TOL


def test_a_new_input_shape_gets_its_own_cached_plan():
    model = conv_bn_act("relu")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    rep = lco.prepare(model)
    assert rep.memory() is None
    with pytest.raises(ValueError, match="not static"):
        rep.memory_bytes()
    for h in (9, 13, 9):
        x = rng(h).standard_normal((2, 6, h, 9)).astype(np.float32)
        rep.run([x])
        assert rep.memory()["arena"] >= 2 * 8 * h * 9 * 4
    assert len(rep.program._schedules) == 2


def test_outputs_are_not_overwritten_by_the_next_run():
    rep = lco.prepare(conv_bn_act("relu"))
    x = rng(20).standard_normal((2, 6, 9, 9)).astype(np.float32)
    y1 = rep.run([x])[0]
    keep = y1.copy()
    rep.run([2 * x])
    assert np.array_equal(y1, keep)


def test_shapes_from_run_time_values_fall_back_to_the_interpreter():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "t", [
        helper.make_tensor_value_info("x", F32, (2, 6)),
        helper.make_tensor_value_info("s", TensorProto.INT64, (2,))],
        [helper.make_tensor_value_info("y", F32, ["a", "b"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    rep = lco.prepare(model)
    for shape in ([3, 4], [12, 1]):
        (y,) = rep.run([np.arange(12, dtype=np.float32).reshape(2, 6), np.array(shape)])
        assert y.shape == tuple(shape)
    assert not rep.program.plannable


def wide_conv_model():
    g = rng(22)
    w = g.standard_normal((64, 64, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w"], ["y"], pads=[1, 1, 1, 1])]
    return make_model(nodes, [("x", (1, 64, 24, 24))], [("y", None)], [("w", w)])


def test_memory_budget_chooses_leaner_algorithms_or_refuses_with_the_bytes_needed():
    model = wide_conv_model()
    x = rng(23).standard_normal((1, 64, 24, 24)).astype(np.float32)
    free = lco.prepare(model, algorithm="winograd_f4")
    raw = 2 * 64 * 64 * 9 * 4
    assert free.memory()["packed_weights"] > 2 * raw   # F4 packs 36/9 = 4x the raw weights
    budget = free.memory_bytes() - raw
    rep = lco.prepare(model, algorithm="winograd_f4", memory_budget=budget)
    assert rep.memory_bytes() <= budget
    assert "direct" not in algorithms(rep)   # the slow reference: only when nothing else fits
    assert rel_err(rep.run([x])[0], free.run([x])[0].astype(np.float64)) < 1e-4
    with pytest.raises(MemoryError, match=r"needs at least \d+ bytes"):
        lco.prepare(model, memory_budget=raw // 2)
    with pytest.raises(ValueError, match="memory_budget"):
        lco.prepare(model, memory_budget=-1)


def algorithms(rep):
    return [s.conv.last_plan.algorithm for s in rep.program.steps
            if s.conv is not None and s.conv.last_plan is not None]


def test_default_budget_bounds_the_packings_and_maxsize_lifts_it():
    """With no memory_budget, the convolutions' packings and workspace are
    bounded (budget.default_budget): here F4's packings (4x the raw weights)
    give way to leaner ones (F2's, or direct_lanes' raw-size packing and small
    workspace); sys.maxsize keeps auto's choice."""
    g = rng(25)
    w = [g.standard_normal((64, 64, 3, 3)).astype(np.float32) for _ in range(3)]
    nodes = [helper.make_node("Conv", [a, f"w{i}"], [b], pads=[1, 1, 1, 1])
             for i, (a, b) in enumerate([("x", "a"), ("a", "b"), ("b", "y")])]
    model = make_model(nodes, [("x", (1, 64, 28, 28))], [("y", None)],
                       [(f"w{i}", v) for i, v in enumerate(w)])
    x = g.standard_normal((1, 64, 28, 28)).astype(np.float32)
    free = lco.prepare(model, memory_budget=sys.maxsize, threads=1)
    assert algorithms(free) == ["winograd_f4"] * 3
    rep = lco.prepare(model, threads=1)
    assert set(algorithms(rep)) <= {"winograd_f2", "direct_lanes"}
    held = [r.memory()["packed_weights"] + r.memory()["workspace"] for r in (rep, free)]
    assert held[0] < held[1]
    assert rel_err(rep.run([x])[0], free.run([x])[0].astype(np.float64)) < 1e-4


def test_default_budget_chooses_the_same_algorithms_at_any_thread_count():
    """The default budget prices every layer at one thread, whatever the run's
    count: Winograd's workspace grows at 2 threads (its input transformed
    whole first), which made this model's second layer leave direct_lanes for
    patch2vec at 2 threads only, so 1 and 2 threads computed different bits."""
    g = rng(26)
    w = [g.standard_normal((192, 64, 3, 3)).astype(np.float32),
         g.standard_normal((64, 192, 3, 3)).astype(np.float32)]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w1"], ["y"], pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", (1, 64, 56, 56))], [("y", None)],
                       [(f"w{i}", v) for i, v in enumerate(w)])
    x = g.standard_normal((1, 64, 56, 56)).astype(np.float32)
    reps = [lco.prepare(model, threads=t) for t in (1, 2)]
    assert algorithms(reps[0]) == algorithms(reps[1])
    ys = [r.run([x])[0] for r in reps]
    np.testing.assert_array_equal(ys[0], ys[1])
    ref = lco.prepare(model, algorithm="direct", threads=1).run([x])[0]
    assert rel_err(ys[1], ref.astype(np.float64)) < 1e-4


def test_default_budget_choices_do_not_follow_the_process_thread_count():
    """Every option of the default budget, auto's pick included, is priced at
    one thread, whatever leanconv.set_num_threads says: the pick was once
    auto's at the process default (2 here) while the other options were
    priced at one thread, so SqueezeNet's stem (3>64 3x3/2) ran Patch2Vec on
    a 2-CPU machine and Im2Col on a 1-CPU one (and 1.5x slower in the model
    at 2 threads)."""
    g = rng(27)
    w = [g.standard_normal((64, 3, 3, 3)).astype(np.float32),
         g.standard_normal((128, 64, 3, 3)).astype(np.float32),
         g.standard_normal((256, 128, 3, 3)).astype(np.float32)]
    nodes = [helper.make_node("Conv", [a, f"w{i}"], [b], strides=[2, 2], pads=[1, 1, 1, 1])
             for i, (a, b) in enumerate([("x", "a"), ("a", "b"), ("b", "y")])]
    model = make_model(nodes, [("x", (1, 3, 128, 128))], [("y", None)],
                       [(f"w{i}", v) for i, v in enumerate(w)])
    x = g.standard_normal((1, 3, 128, 128)).astype(np.float32)
    import leanconv as lc
    # the setting itself, not its value: set_num_threads(get_num_threads())
    # would leave an explicit count behind, which stops leanconv.torch's
    # frozen models following torch.set_num_threads in later tests
    before = lc._threads._explicit
    picks = []
    try:
        for default in (1, 2, 4):
            lc.set_num_threads(default)
            rep = lco.prepare(model, threads=2)
            rep.run([x])
            picks.append(algorithms(rep))
    finally:
        lc._threads._explicit = before
    assert picks[0] == picks[1] == picks[2]


def test_default_budget_trades_the_least_time_per_byte_within_the_bound():
    from leanconv.onnx import budget
    # (algorithm, packed, workspace, cost): a trades 5 bytes for 1 unit of time, b 2 for 3
    a = [("winograd_f4", 40, 1, 10.0), ("winograd_f2", 35, 1, 11.0), ("im2col", 10, 1, 30.0)]
    b = [("winograd_f4", 20, 1, 10.0), ("winograd_f2", 18, 1, 13.0), ("direct", 10, 0, 99.0),
         ("patch2vec", 10, 1, 31.0), ("im2col", 10, 1, 30.0)]
    raw = [10, 10]                      # the bound: 10 + 10 + 10 = 30 held bytes
    # a to F2 (1 per 5 bytes), a to im2col (19 per 25), b to F2 (3 per 2): 10 + 18 + 1
    assert budget.default_budget([a, b], raw, 10) == ["im2col", "winograd_f2"]
    assert budget.default_budget([a, b], [30, 30], 30) == ["winograd_f4", "winograd_f4"]
    # a weight elsewhere (a classifier) larger than the packings: nothing to trade
    assert budget.default_budget([a, b], raw, 50) == ["winograd_f4", "winograd_f4"]
    # cannot fit: the leanest found, never refused, never the direct reference
    assert budget.default_budget([a, b], [1, 1], 1) == ["im2col", "im2col"]


def test_residual_add_and_silu_fuse_into_the_conv():
    g = rng(24)
    w1 = g.standard_normal((8, 8, 3, 3)).astype(np.float32)
    w2 = g.standard_normal((8, 8, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["a"], ["sa"]),
             helper.make_node("Mul", ["a", "sa"], ["silu"]),
             helper.make_node("Conv", ["x", "w2"], ["skip"]),    # computed after the first
             helper.make_node("Conv", ["silu", "w1"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["skip", "b"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", (1, 8, 10, 10))], [("y", None)], [("w1", w1), ("w2", w2)])
    rep = lco.prepare(model)
    labels = [s.label() for s in rep.program.steps]
    # the first Conv reading the Add's inputs absorbs it (here the 1x1 skip), and runs
    # where the Add was, after the Conv making its other input
    assert labels == ["Conv+Sigmoid+Mul", "Conv", "Conv+Add+Relu"]
    assert rep.program.steps[2].inputs == ["x", "b"]
    assert_matches_ort(model, {"x": g.standard_normal((1, 8, 10, 10)).astype(np.float32)},
                       tol=1e-5)


@pytest.mark.parametrize("batch, copies", [(1, 0), (2, 1)])
def test_concat_inputs_are_written_into_their_slices(batch, copies):
    g = rng(25)
    inits = [("w1", g.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             ("w2", g.standard_normal((5, 3, 1, 1)).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["b"]),
             helper.make_node("Concat", ["a", "b", "x"], ["c"], axis=1),
             helper.make_node("Sigmoid", ["c"], ["y"])]
    model = make_model(nodes, [("x", (batch, 3, 7, 6))], [("y", None)], inits)
    rep = lco.prepare(model)
    # batch 1: a and b land in their slices; x (a graph input) blocks the elision
    labels = [s.label() for s, _ in rep.program.schedule.calls]
    assert labels.count("Concat") == 1
    nodes[3] = helper.make_node("Concat", ["a", "b"], ["c"], axis=1)
    model = make_model(nodes, [("x", (batch, 3, 7, 6))], [("y", None)], inits)
    rep = lco.prepare(model)
    labels = [s.label() for s, _ in rep.program.schedule.calls]
    assert labels.count("Concat") == copies   # batch 2: the slices are not contiguous
    assert_matches_ort(model, {"x": g.standard_normal((batch, 3, 7, 6)).astype(np.float32)})


def test_measured_peak_rss_matches_the_plan(tmp_path):
    """bench/onnx_memory.py in its own process: peak RSS growth from before
    prepare to after the first run within 5% of rep.memory_bytes()."""
    import json
    import subprocess
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs")
    torch = pytest.importorskip("torch")
    import reference_nets
    path = tmp_path / "resnet18.onnx"
    torch.onnx.export(reference_nets.make("resnet18"), (torch.zeros(1, 3, 64, 64),), str(path),
                      input_names=["x"], output_names=["y"], dynamo=False, opset_version=17)
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "onnx_memory.py")
    out = subprocess.run([sys.executable, script, str(path)], capture_output=True, text=True,
                         check=True).stdout
    r = json.loads(out)
    assert abs(r["growth_bytes"] - r["plan"]["total"]) <= 0.05 * r["plan"]["total"], r


# --- bench_model -----------------------------------------------------------------------------

def test_bench_model_report(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_bn_act("relu"), str(path))
    r = bench_model(str(path), threads=1, min_time=0.05)
    assert r["leanconv_ms"] > 0 and r["rounds"] >= 3
    c = r["compare"]["onnxruntime"]
    assert c["ms"] > 0 and c["max_rel_diff"] < REL_TOL
    assert c["speedup"] == pytest.approx(c["ms"] / r["leanconv_ms"])
    (layer,) = r["layers"]
    assert layer["op"] == "Conv+BatchNormalization+Relu"
    assert layer["input_shape"] == (2, 6, 9, 9) and layer["weight_shape"] == (8, 6, 3, 3)
    assert layer["output_bytes"] == 2 * 8 * 9 * 9 * 4
    import leanconv as lc
    assert layer["workspace_bytes"] == lc.workspace_bytes(
        (2, 6, 9, 9), (8, 6, 3, 3), padding=1, algorithm=layer["algorithm"], threads=1)
    assert "onnxruntime" in r["text"] and layer["algorithm"] in r["text"]


def test_bench_model_without_comparison_and_bad_arguments():
    model = conv_bn_act(None)
    r = bench_model(model, min_time=0.0, compare=())
    assert r["compare"] == {} and r["layers"]
    with pytest.raises(ValueError, match="cannot compare"):
        bench_model(model, compare=("tvm",))
    with pytest.raises(ValueError, match="min_time"):
        bench_model(model, min_time=-1)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_scalar_axes_input_is_one_axis():
    """onnxruntime takes a scalar axes for Unsqueeze (the spec asks for 1-D);
    leanconv takes it for Unsqueeze and Squeeze alike rather than failing on
    iterating a 0-d array."""
    x = rng(31).standard_normal((3, 4)).astype(np.float32)
    model = make_model([helper.make_node("Unsqueeze", ["x", "ax"], ["y"])], [("x", (3, 4))],
                       [("y", (1, 3, 4))], [("ax", np.array(0, np.int64))])
    (y,) = lco.prepare(model).run({"x": x})
    ref = ort_run(model, {"x": x})[0]
    assert y.shape == ref.shape and y.tobytes() == ref.tobytes()
    model = make_model([helper.make_node("Squeeze", ["x", "ax"], ["y"])], [("x", (1, 3, 4))],
                       [("y", (3, 4))], [("ax", np.array(0, np.int64))])
    (y,) = lco.prepare(model).run({"x": x[None]})
    assert y.shape == (3, 4) and y.tobytes() == x.tobytes()
