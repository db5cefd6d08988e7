"""A Mul by a gate made at run time, one value per (image, channel) plane
(LR-ASPP's attention: sigmoid of a pooled branch), runs in C in either
operand order and matches onnxruntime: in a compiled schedule as a bound
broadcast Mul (kernels/binary.c), through into() as the per-channel affine of
kernels/channel_affine.c."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_bound_pool import bound_types  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model  # noqa: E402

SHAPE = (1, 6, 9, 10)


@pytest.mark.parametrize("gate_first", [False, True])
@pytest.mark.parametrize("batch", [1, 2])
def test_mul_by_a_run_time_channel_gate_runs_in_c_and_matches(gate_first, batch, monkeypatch):
    from leanconv import _core
    calls = []
    real = _core.channel_affine
    monkeypatch.setattr(_core, "channel_affine", lambda *a: calls.append(1) or real(*a))
    shape = (batch,) + SHAPE[1:]
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Sigmoid", ["p"], ["g"]),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Mul", ["g", "r"] if gate_first else ["r", "g"], ["y"])]
    model = make_model(nodes, [("x", shape)], [("y", shape)])
    x = {"x": np.random.default_rng(batch).standard_normal(shape).astype(np.float32)}
    assert_matches_ort(model, x)
    import leanconv.onnx as lco
    rep = lco.prepare(model)
    rep.run(x)
    assert "BoundBinary" in bound_types(rep.program.schedule)
    gate = next(s for s in rep.program.steps if "Mul" in s.name)
    g = np.full(shape[:2] + (1, 1), 0.5, np.float32)
    r = np.abs(x["x"])
    out = np.empty(shape, np.float32)
    gate.into([out], *((g, r) if gate_first else (r, g)))
    assert calls and np.array_equal(out, r * g)
