"""kernels/lrn.c (leanconv._core.lrn, ONNX LRN across channels) against a
float64 reference: window sizes odd and even (more channels before than
after), wider than the channels, the beta fast paths (0.75, 0.5, 1) and powf,
pixel counts across the kernel's 256-pixel blocks, several images, 1 and 2
threads; and leanconv.onnx's LRN step against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ALL_ISAS
from leanconv import _core, _isa


def reference(x, size, alpha, beta, bias):
    n, C = x.shape[:2]
    sq = np.square(x.astype(np.float64))
    before = (size - 1) // 2
    out = np.empty(x.shape)
    for c in range(C):
        s = sq[:, max(0, c - before):min(C, c + size - before)].sum(axis=1)
        out[:, c] = x[:, c] / (bias + alpha / size * s) ** beta
    return out


CASES = [  # (n, C, spatial, size, alpha, beta, bias)
    (1, 96, (27, 27), 5, 1e-4, 0.75, 1.0),    # AlexNet's (a smaller plane)
    (2, 7, (5, 3), 4, 0.3, 0.6, 2.0),         # even size, powf
    (1, 3, (300,), 1, 0.1, 0.5, 1.5),         # 1-D spatial, two blocks of pixels
    (3, 9, (2, 3, 4), 8, 2.0, 1.0, 0.5),      # 3-D spatial, window wider than half
    (1, 2, (513,), 7, 1.0, 0.75, 1.0),        # window past both ends
]


@pytest.mark.parametrize("n, C, spatial, size, alpha, beta, bias", CASES)
def test_lrn_matches_the_float64_reference_with_the_same_bits_on_every_isa(
        n, C, spatial, size, alpha, beta, bias):
    x = (np.random.default_rng(size).standard_normal((n, C) + spatial) * 3).astype(np.float32)
    x.reshape(-1)[::97] = 0.0
    hw = int(np.prod(spatial))
    outs = {}
    for isa in ALL_ISAS:
        for threads in (1, 2):
            y = np.full_like(x, 7.0)
            _core.lrn(x.reshape(-1), y.reshape(-1), n, C, hw, size, alpha, beta, bias, threads,
                      _isa.isa_id(isa))
            outs[isa, threads] = y
    for key, y in outs.items():
        assert y.tobytes() == outs["scalar", 1].tobytes(), key
    want = reference(x, size, alpha, beta, bias)
    assert np.abs(outs["scalar", 1] - want).max() <= 1e-6 * np.abs(want).max()


def test_lrn_refuses_a_bad_geometry():
    x = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.lrn(x, np.zeros(11, np.float32), 1, 3, 4, 3, 1e-4, 0.75, 1.0, 1)
    with pytest.raises(ValueError, match="size must be at least 1"):
        _core.lrn(x, np.zeros(12, np.float32), 1, 3, 4, 0, 1e-4, 0.75, 1.0, 1)


@pytest.mark.parametrize("size, beta", [(5, 0.75), (3, 0.6)])   # ORT: odd sizes only
def test_onnx_lrn_matches_onnxruntime(size, beta):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper
    from test_onnx_adapter import assert_matches_ort, make_model
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("LRN", ["r"], ["y"], size=size, alpha=1e-3, beta=beta, bias=2.0)]
    model = make_model(nodes, [("x", (1, 12, 9, 7))], [("y", None)])
    x = (np.random.default_rng(0).standard_normal((1, 12, 9, 7)) * 4).astype(np.float32)
    assert_matches_ort(model, {"x": x})


# One image's blocks of pixels come in a multiple of the threads: AlexNet's
# second LRN (27x27) made blocks of 256, 256 and 217 pixels (2 against 1);
# blocks stay at least 32 pixels (a 40-pixel plane keeps its one block).
@pytest.mark.skipif(_core.parallel_backend() != "pool", reason="no pthread pool in this build")
@pytest.mark.parametrize("hw, items", [(27 * 27, 4), (55 * 55, 12), (40, 1)])
def test_lrn_blocks_are_balanced_over_the_team(hw, items):
    C = 256
    x = np.random.default_rng(7).standard_normal(C * hw).astype(np.float32)
    outs = []
    for threads in (1, 2):
        y = np.empty_like(x)
        _core.pool_trace(10)
        try:
            _core.lrn(x, y, 1, C, hw, 5, 1e-4, 0.75, 1.0, threads, _isa.isa_id())
            recs = _core.pool_trace()
        finally:
            _core.pool_trace(0)
        assert len(recs) == 1
        if threads == 2:
            assert recs[0]["count"] == items
        outs.append(y)
    assert outs[0].tobytes() == outs[1].tobytes()
