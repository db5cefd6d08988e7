"""Transformer-style torchvision classifiers through leanconv.onnx, against
onnxruntime: the ops their exports use beyond CNNs (Mod, ScatterND, Einsum,
LayerNormalization over tokens, MatMul of N-D tokens by constant matrices),
and in-place steps over views whose size-1 dimensions have other strides."""
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
