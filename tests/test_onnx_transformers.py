"""Transformer-style torchvision classifiers through leanconv.onnx, against
onnxruntime: the ops their exports use beyond CNNs (Mod, ScatterND,
LayerNormalization over tokens, MatMul of N-D tokens by constant matrices)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import leanconv.onnx as lco  # noqa: E402


def test_swin_transformer_runs_and_matches_onnxruntime(tmp_path):
    """Swin-T (torchvision, random weights) at 64 px: its exports use Mod and
    ScatterND for the shifted windows' padding and mask, LayerNormalization
    over tokens, MatMuls of 3-D tokens by constant matrices."""
    ort = pytest.importorskip("onnxruntime")
    try:
        import onnx_exports
        path = onnx_exports.export("swin_t", 64, "torchscript", str(tmp_path))
    except ImportError as e:
        pytest.skip(f"torchvision: {e}")
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    ours = lco.prepare(onnx.load(path), threads=2).run([x])[0]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)) < 1e-4
