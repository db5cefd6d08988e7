"""bench/onnx_profile.py --scaling: leanconv at 1 against 2 threads, step by
step (what it measures, not how fast it is)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import onnx_profile  # noqa: E402


def two_conv_model():
    g = np.random.default_rng(0)
    w0 = numpy_helper.from_array(g.standard_normal((8, 4, 3, 3)).astype(np.float32), "w0")
    w1 = numpy_helper.from_array(g.standard_normal((8, 8, 1, 1)).astype(np.float32), "w1")
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1], name="c0"),
             helper.make_node("Relu", ["a"], ["b"], name="r0"),
             helper.make_node("Flatten", ["b"], ["f"], name="flat"),
             helper.make_node("Reshape", ["f", "shape"], ["g"], name="back"),
             helper.make_node("Conv", ["g", "w1"], ["y"], name="c1")]
    shape = numpy_helper.from_array(np.array([1, 8, 12, 12], np.int64), "shape")
    graph = helper.make_graph(
        nodes, "two_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 12, 12])], [w0, w1, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_scaling_rows_time_every_step_with_work_at_both_thread_counts():
    model = two_conv_model()
    x = np.random.default_rng(1).standard_normal((1, 4, 12, 12)).astype(np.float32)
    rows, whole = onnx_profile.scaling_rows(model, {"x": x}, runs=2, threads=2)
    # the Relu fuses into c0; the Flatten / Reshape pair are views: no run-time work
    assert [s.name for s, _ in rows] == ["c0", "c1"]
    for _, t in rows:
        assert set(t) == {1, 2}
        assert all(0 < best <= run for run, best, _ in t.values())
        assert all(hot > 0 for *_, hot in t.values())
    assert set(whole) == {1, 2} and all(v > 0 for v in whole.values())
    assert onnx_profile.conv_shape(rows[0][0]).startswith("4>8 k3x3 s1 @12x12 ")


def test_scaling_report_lists_the_steps_and_refuses_one_thread(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(two_conv_model(), str(path))
    onnx_profile.main([str(path), "--threads", "2", "--scaling", "--runs", "2"])
    out = capsys.readouterr().out
    assert "1 against 2 threads" in out and "whole run median" in out
    assert out.count("Conv+Relu") == 1 and " c1 " in out
    with pytest.raises(SystemExit):
        onnx_profile.main([str(path), "--scaling"])
