"""The onnx package's light zoo, with random weights, against onnxruntime.

As shipped, every weight of a light zoo model is 0.02 (a ConstantOfShape), so
all output channels of a layer are equal, the logits are one number repeated
and the closing Softmax is exactly 0.001 everywhere: any engine "matches" on
it, even one that scrambles channels.  Here the weights are seeded random
(onnx_exports.with_random_weights) and both the model's output and the
logits before its Softmax are compared.  The three models with big fully
connected layers (AlexNet, VGG-19, ZFNet-512: 60-140 M weights) are left to
bench/onnx_models.py, which compares every zoo model the same way."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx_exports import with_logits_output, with_random_weights, zoo_models  # noqa: E402
from test_onnx_adapter import ort_run, rel_err  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv.onnx.bench import random_inputs  # noqa: E402

SMALL_ZOO = ["squeezenet", "shufflenet", "inception_v1", "inception_v2", "resnet50",
             "densenet121"]
REL_TOL = 1e-4   # issue 13's bar for whole models


@pytest.fixture(scope="module")
def zoo():
    paths = zoo_models()
    if not paths:
        pytest.skip("the onnx package ships no light zoo")
    return paths


def test_random_weights_replace_every_constant_weight(zoo):
    model = with_random_weights(onnx.load(zoo["squeezenet"]))
    assert not [n for n in model.graph.node if n.op_type == "ConstantOfShape"]
    conv_w = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    weights = [onnx.numpy_helper.to_array(i) for i in model.graph.initializer
               if i.name in conv_w]
    assert len(weights) == len(conv_w)
    assert all(np.unique(w).size > w.size // 2 for w in weights)


@pytest.mark.parametrize("name", SMALL_ZOO)
def test_zoo_model_with_random_weights_matches_onnxruntime(zoo, name):
    if name not in zoo:
        pytest.skip(f"no light_{name}.onnx in this onnx package")
    model = with_logits_output(with_random_weights(onnx.load(zoo[name])))
    feeds = random_inputs(model)
    rep = lco.prepare(model, threads=2)
    ours = rep.run(feeds)
    theirs = ort_run(model, feeds)
    if name == "densenet121":   # its BN -> Mul -> Add -> Relu on each Concat: one affine
        # pass each (channel_affine.py), not a depthwise 1x1 Conv
        assert not [s for s in rep.program.steps
                    if s.conv is not None and s.conv.last_plan.spec.groups > 1]
        assert sum(s.op_type == "ChannelAffineRelu" for s in rep.program.steps) == 62
    assert len(ours) == len(theirs) >= 1
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert rel_err(a, b) < REL_TOL
    logits = theirs[-1].ravel()
    # the check has teeth only where the classes differ
    assert np.ptp(logits) > 1e-2 * np.max(np.abs(logits))
