"""The peers `leanconv bench --compare` times against compute the same
convolution as the float64 reference (so a comparison is like for like),
a missing peer is skipped, and the `kinds` suite holds the layers it names."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import leanconv as lc
from leanconv.cli import args as cli_args
from leanconv.cli.peers import load_peers
from leanconv.cli.suites import SUITES, Layer
from reference import conv2d_ref

LAYERS = [Layer("dense", 5, 9, 8, 6, 3, 3, pad=1),
          Layer("strided", 4, 11, 11, 8, 3, 3, stride=2, pad=1),
          Layer("dw7", 8, 14, 14, 8, 7, 7, pad=3, groups=8),
          Layer("dw multiplier", 4, 10, 10, 8, 5, 5, pad=2, groups=4),
          Layer("grouped", 8, 7, 7, 8, 3, 3, pad=1, groups=4, N=2),
          Layer("dilated", 3, 12, 12, 4, 3, 3, pad=2, dilation=2)]


@pytest.mark.parametrize("name", ["openvino", "ncnn"])
def test_peer_computes_the_layer(name):
    pytest.importorskip(name)
    peers, status = load_peers([name], 1)
    assert status[name]["status"] == "ok", status
    peer = peers[0]
    rng = np.random.default_rng(1)
    for L in LAYERS:
        x = rng.standard_normal(L.x_shape, dtype=np.float32)
        w = rng.standard_normal(L.w_shape, dtype=np.float32)
        b = rng.standard_normal(L.M, dtype=np.float32)
        y = np.asarray(peer.to_numpy(peer.prepare(L, x, w, b)()))
        ref, scale = conv2d_ref(x, w, b, (L.stride,) * 2, (L.pad,) * 4, (L.dilation,) * 2,
                                L.groups)
        assert y.shape == ref.shape, L.name
        assert np.max(np.abs(y - ref) / scale) < 1e-5, L.name


@pytest.mark.parametrize("name", ["openvino", "ncnn"])
def test_missing_peer_is_skipped(name, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    peers, status = load_peers([name], 1)
    assert peers == []
    assert status[name]["status"] == "skipped"
    assert "not installed" in status[name]["reason"]


def test_peer_names_and_aliases():
    assert cli_args.parse_peers("torch,ov,ncnn,ort") == ["torch", "openvino", "ncnn",
                                                          "onnxruntime"]


def test_kinds_suite_holds_the_named_layers():
    kinds = {L.name: L for L in SUITES["kinds"]}
    assert len(kinds) == 11
    dw = kinds["dw 7x7 384@14"]
    assert (dw.C, dw.H, dw.kH, dw.groups, dw.out_hw) == (384, 14, 7, 384, (14, 14))
    assert kinds["grouped 3x3 128@56 g32"].w_shape == (128, 4, 3, 3)
    assert kinds["stem 7x7/2 3>64@224"].out_hw == (112, 112)
    assert kinds["3x3/2 128>256@28"].out_hw == (14, 14)
    for L in kinds.values():  # every one is a layer leanconv accepts
        assert lc.workspace_bytes(L.x_shape, L.w_shape, stride=L.stride, padding=L.pad,
                                  groups=L.groups, threads=1) >= 0
