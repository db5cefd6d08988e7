"""`leanconv tune`: fills the wisdom file ahead of time."""
import json

import numpy as np
import pytest

from leanconv.cli.main import main


def test_tune_suite_fills_then_reuses(wisdom, capsys):
    assert main(["tune", "--suite", "cifar_resnet20", "--threads", "1"]) == 0
    first = capsys.readouterr().out
    entries = json.loads(wisdom.read_text())["entries"]
    assert len(entries) == first.count("(measured;") >= 5
    assert main(["tune", "--suite", "cifar_resnet20", "--threads", "1"]) == 0
    again = capsys.readouterr().out
    assert "(measured;" not in again and again.count("already known") == len(entries)


def test_tune_model(wisdom, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 12, 12])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8, 12, 12])],
        initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    path = tmp_path / "one.onnx"
    onnx.save(model, str(path))
    assert main(["tune", "--model", str(path), "--threads", "1"]) == 0
    assert len(json.loads(wisdom.read_text())["entries"]) == 1
    assert "x 1x4x12x12" in next(iter(json.loads(wisdom.read_text())["entries"]))


@pytest.mark.parametrize("argv,needle", [
    (["tune"], "one of --suite"),
    (["tune", "--suite", "nope"], "unknown suite"),
    (["tune", "--model", "/no/such.onnx"], "no such file"),
])
def test_tune_mistakes(wisdom, capsys, argv, needle):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_tune_without_wisdom(monkeypatch, capsys):
    monkeypatch.setenv("LEANCONV_WISDOM", "off")
    assert main(["tune", "--suite", "cifar_resnet20"]) == 2
    assert "LEANCONV_WISDOM=off" in capsys.readouterr().err
