"""The `leanconv` command line, run as a user runs it: a subprocess.

Tiny layers and a tiny --min-time keep the file to a few seconds; the
numbers are checked for consistency with each other and with leanconv's own
size queries, never against timings written down here."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

import leanconv as lc

TINY = ["--layer", "C=4,H=9,W=7,M=6,k=3,stride=1,pad=1",
        "--layer", "C=6,H=8,M=6,k=3,stride=2,pad=1,groups=6",
        "--min-time", "0.002", "--threads", "1"]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "leanconv", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One bench of two tiny layers with every algorithm, JSON and CSV written."""
    d = tmp_path_factory.mktemp("bench")
    jpath, cpath = d / "out.json", d / "out.csv"
    proc = run_cli("bench", *TINY, "--algorithms", "all", "--json", str(jpath),
                   "--csv", str(cpath))
    assert proc.returncode == 0, proc.stderr
    with open(jpath) as f:
        data = json.load(f)
    with open(cpath, newline="") as f:
        rows = list(csv.DictReader(f))
    return proc, data, rows


def test_table_is_printed(tiny_run):
    proc, data, _ = tiny_run
    out = proc.stdout
    assert "suite custom" in out
    for word in ("layer", "algorithm", "ms", "GFLOP/s", "workspace", "packed", "TOTAL"):
        assert word in out
    # every algorithm that ran appears in the table
    for r in data["rows"]:
        if r["kind"] == "layer" and r["status"] == "ok":
            assert r["algorithm"] in out
    # depthwise cannot run the first (dense) layer: said once, below the table
    assert "note: depthwise skipped on layer1" in out
    assert "Traceback" not in proc.stderr


def test_json_metadata(tiny_run):
    _, data, _ = tiny_run
    assert data["schema"] == "leanconv-bench/1"
    meta = data["metadata"]
    for key in ("version", "isa", "threads", "cpu", "peers", "fma_peak"):
        assert key in meta
    assert meta["version"] == lc.__version__
    assert meta["isa"] == lc.isa()
    assert meta["threads"] == 1
    assert set(meta["fma_peak"]) >= {"isa", "gflops_per_thread", "gflops"}
    assert meta["peers"] == {}
    assert meta["algorithms"][0] == "auto" and set(lc.algorithms()) <= set(meta["algorithms"])


def _expected_geometry(r):
    eh = r["dilation"] * (r["kH"] - 1) + 1
    ew = r["dilation"] * (r["kW"] - 1) + 1
    OH = (r["H"] + 2 * r["pad"] - eh) // r["stride"] + 1
    OW = (r["W"] + 2 * r["pad"] - ew) // r["stride"] + 1
    flops = 2 * r["N"] * r["M"] * OH * OW * (r["C"] // r["groups"]) * r["kH"] * r["kW"]
    return OH, OW, flops


def test_layer_rows_are_consistent(tiny_run):
    _, data, _ = tiny_run
    layer_rows = [r for r in data["rows"] if r["kind"] == "layer"]
    assert {(r["layer"], r["C"], r["H"], r["W"]) for r in layer_rows} == \
        {("layer1", 4, 9, 7), ("layer2", 6, 8, 8)}
    ran = [r for r in layer_rows if r["status"] == "ok"]
    assert ran
    for r in ran:
        OH, OW, flops = _expected_geometry(r)
        assert (r["OH"], r["OW"]) == (OH, OW)
        assert r["gflop"] == pytest.approx(flops / 1e9, rel=1e-12)
        assert r["plan_ms"] > 0 and r["func_ms"] > 0
        assert r["repeats"] >= data["metadata"]["min_runs"] == 7
        assert 0 < r["plan_min_ms"] <= r["plan_q1_ms"] <= r["plan_ms"] <= r["plan_q3_ms"] \
            <= r["plan_max_ms"]
        assert r["plan_spread"] == pytest.approx((r["plan_q3_ms"] - r["plan_q1_ms"])
                                                 / r["plan_ms"])
        if r["plan_spread"] > data["metadata"]["noisy_spread"]:
            assert r["noisy"]
        assert r["plan_gflops"] == pytest.approx(flops / (r["plan_ms"] / 1e3) / 1e9, rel=1e-9)
        assert r["func_gflops"] == pytest.approx(flops / (r["func_ms"] / 1e3) / 1e9, rel=1e-9)
        w_shape = (r["M"], r["C"] // r["groups"], r["kH"], r["kW"])
        assert r["weight_bytes"] == 4 * r["M"] * (r["C"] // r["groups"]) * r["kH"] * r["kW"]
        assert r["packed_ratio"] == pytest.approx(r["packed_bytes"] / r["weight_bytes"])
        with lc.use_isa(data["metadata"]["isa"]):
            ws = lc.workspace_bytes((r["N"], r["C"], r["H"], r["W"]), w_shape, r["stride"],
                                    r["pad"], r["dilation"], r["groups"],
                                    algorithm=r["algorithm"], threads=1)
        assert r["workspace_bytes"] == ws
    # auto's row is the algorithm leanconv's auto picks, marked as such
    autos = [r for r in ran if r["requested"] == "auto"]
    assert len(autos) == 2 and all(r["auto_choice"] for r in autos)
    assert next(r for r in autos if r["layer"] == "layer2")["algorithm"] == "depthwise"
    # skipped exactly where leanconv says the algorithm cannot run the layer
    for r in layer_rows:
        if r["requested"] in lc.algorithms():
            w_shape = (r["M"], r["C"] // r["groups"], r["kH"], r["kW"])
            ok = lc.supports(r["requested"], (r["N"], r["C"], r["H"], r["W"]), w_shape,
                             r["stride"], r["pad"], r["dilation"], r["groups"])
            assert (r["status"] == "ok") == ok, r
        if r["status"] == "skipped":
            assert r["plan_ms"] is None and r["workspace_bytes"] is None and r["note"]
    assert any(r["status"] == "skipped" for r in layer_rows)


def test_totals_weight_layers_by_count(tiny_run):
    _, data, _ = tiny_run
    layers = [r for r in data["rows"] if r["kind"] == "layer" and r["status"] == "ok"]
    totals = [r for r in data["rows"] if r["kind"] == "total"]
    assert {t["requested"] for t in totals} == set(data["metadata"]["algorithms"])
    for t in totals:
        mine = [r for r in layers if r["requested"] == t["requested"]]
        if not mine:   # an algorithm neither tiny layer suits (the lean Winograd ones: M=6)
            assert t["status"] == "skipped" and t["note"] == "no layer ran"
            continue
        assert t["plan_ms"] == pytest.approx(sum(r["count"] * r["plan_ms"] for r in mine))
        assert t["gflop"] == pytest.approx(sum(r["count"] * r["gflop"] for r in mine))
        assert t["workspace_bytes"] == max(r["workspace_bytes"] for r in mine)
        every = len(mine) == len({r["layer"] for r in layers})
        assert t["status"] == ("ok" if every else "partial")


def test_csv_rows_match_json(tiny_run):
    _, data, rows = tiny_run
    assert len(rows) == len(data["rows"])
    for c, j in zip(rows, data["rows"]):
        assert set(c) == set(j)
        for key, value in j.items():
            if value is None:
                assert c[key] == ""
            elif isinstance(value, bool):
                assert c[key] == str(value)
            elif isinstance(value, (int, float)):
                assert float(c[key]) == value, key
            else:
                assert c[key] == value


def test_suite_totals_use_counts(tmp_path):
    """A built-in suite: the table rows carry the network's layer counts."""
    jpath = tmp_path / "s.json"
    proc = run_cli("bench", "--suite", "cifar_resnet20", "--min-time", "0.001",
                   "--threads", "1", "--json", str(jpath))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(jpath.read_text())
    total = next(r for r in data["rows"] if r["kind"] == "total")
    assert total["count"] == 19  # ResNet-20 has 19 conv layers
    layers = [r for r in data["rows"] if r["kind"] == "layer"]
    assert total["gflop"] == pytest.approx(sum(r["count"] * _expected_geometry(r)[2] / 1e9
                                               for r in layers))


def _fake_missing(tmp_path, name):
    """An env in which `import name` fails, as on a machine without it."""
    fake = tmp_path / "fake" / name
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('no {name} here', name='{name}')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path / "fake") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_missing_peer_is_skipped_not_an_error(tmp_path):
    jpath = tmp_path / "p.json"
    proc = run_cli("bench", "--layer", "C=2,H=6,M=3,k=3", "--min-time", "0.001",
                   "--compare", "onnxruntime", "--json", str(jpath),
                   env=_fake_missing(tmp_path, "onnxruntime"))
    assert proc.returncode == 0, proc.stderr
    peers = json.loads(jpath.read_text())["metadata"]["peers"]
    assert peers["onnxruntime"]["status"] == "skipped"
    assert "not installed" in peers["onnxruntime"]["reason"]
    assert "onnxruntime skipped" in proc.stdout


def test_peers_when_installed(tmp_path):
    pytest.importorskip("torch")
    jpath = tmp_path / "t.json"
    proc = run_cli("bench", "--layer", "C=3,H=10,M=4,k=3,pad=1", "--min-time", "0.002",
                   "--threads", "1", "--compare", "torch", "--json", str(jpath))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(jpath.read_text())
    assert data["metadata"]["peers"]["torch"]["status"] == "ok"
    for r in data["rows"]:
        assert r["torch_ms"] > 0
        if r["kind"] == "layer":
            assert 0 < r["torch_min_ms"] <= r["torch_ms"]
        assert r["vs_torch"] == pytest.approx(r["torch_ms"] / r["plan_ms"])
    assert "torch ms (vs)" in proc.stdout
    assert "differs from torch" not in proc.stdout  # both computed the same convolution


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    proc = run_cli("bench", "--layer", "C=3,H=10,M=4,k=3,pad=1", "--min-time", "0.001",
                   "--algorithms", "im2col,patch2vec", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [
    ["bench", "--suite", "no_such_net"],
    ["bench", "--layer", "C=3,H=eight,M=4,k=3"],
    ["bench", "--layer", "C=3,H=8,M=4"],
    ["bench", "--layer", "C=3,H=8,M=4,k=3,color=red"],
    ["bench", "--layer", "C=3,H=4,W=4,M=4,k=7"],
    ["bench", "--layer", "C=6,H=8,M=8,k=3,groups=4"],
    ["bench", "--layer", "C=8,H=8,M=6,k=3,groups=4"],
    ["bench", "--layer", "C=3,H=8,M=4,k=3,stride=0"],
    ["bench", "--isa", "no_such_isa"],
    ["bench", "--algorithms", "fastest"],
    ["bench", "--compare", "tensorflow"],
    ["bench", "--threads", "0"],
    ["bench", "--min-time", "-1"],
    ["bench", "--json", "/no/such/folder/out.json"],
    ["bench", "--no-such-option"],
    ["frobnicate"],
], ids=lambda a: " ".join(a))
def test_user_errors_are_one_line_and_exit_2(args):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0] and "Traceback" not in proc.stderr


def test_unavailable_isa_is_one_line():
    missing = [name for name, compiled, runs in lc._core.isa_status() if not (compiled and runs)]
    if not missing:
        pytest.skip("every ISA runs here")
    proc = run_cli("bench", "--isa", missing[0], "--layer", "C=2,H=6,M=3,k=3")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert missing[0] in proc.stderr and "available" in proc.stderr


def test_model_without_onnx_support_is_one_line(tmp_path):
    env = _fake_missing(tmp_path, "onnx")
    proc = run_cli("bench", "--model", str(tmp_path / "m.onnx"), env=env)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


def test_info_json_keys():
    proc = run_cli("info", "--json", "--peak-time", "0.01")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in ("version", "build", "cpu", "isa", "threads", "fma_peak_gflops"):
        assert key in info
    assert info["version"] == lc.__version__
    assert info["build"]["openmp"] == lc._core.openmp_enabled()
    assert info["isa"]["available"] == list(lc.available_isas())
    assert info["isa"]["active"] == lc.isa()
    assert info["threads"] == lc.get_num_threads()
    assert info["cpu"]["features"] == lc.cpu_features()
    assert set(info["fma_peak_gflops"]) == set(lc.available_isas())
    for value in info["fma_peak_gflops"].values():
        assert value is None or value > 0


def test_info_text():
    proc = run_cli("info", "--peak-time", "0.01")
    assert proc.returncode == 0, proc.stderr
    for word in ("leanconv", "OpenMP", "isa", "threads", "FMA peak", lc.isa()):
        assert word in proc.stdout


# --- honest statistics -----------------------------------------------------------------------

def test_timing_takes_min_runs_and_min_time():
    import time

    from leanconv.cli.timing import Candidate, measure
    slow = Candidate("slow", lambda: time.sleep(0.01))
    fast = Candidate("fast", lambda: None)
    measure([slow, fast], min_time=0.02, min_runs=7)
    assert len(slow.samples) >= 7          # a slow candidate is never judged on one call
    assert len(fast.samples) >= 7 and sum(fast.samples) >= 0.02
    stats = slow.summary_ms()
    assert stats["min_ms"] <= stats["q1_ms"] <= stats["ms"] <= stats["q3_ms"] <= stats["max_ms"]
    with pytest.raises(ValueError, match="min_runs"):
        measure([fast], min_time=0.01, min_runs=0)


def test_geomean_is_not_dominated_by_one_outlier():
    from leanconv.cli.timing import geomean
    ratios = [1.0] * 9 + [152.0]
    assert geomean(ratios) == pytest.approx(152 ** 0.1)
    assert geomean([2.0, 8.0], [3, 1]) == pytest.approx(2 ** 0.75 * 8 ** 0.25)


def test_totals_carry_the_geometric_mean_of_ratios(tmp_path):
    pytest.importorskip("torch")
    jpath = tmp_path / "g.json"
    proc = run_cli("bench", *TINY, "--compare", "torch", "--json", str(jpath))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(jpath.read_text())
    from leanconv.cli.timing import geomean
    layers = [r for r in data["rows"] if r["kind"] == "layer" and r["status"] == "ok"]
    total = next(r for r in data["rows"] if r["kind"] == "total")
    ratios = [r["vs_torch"] for r in layers]
    assert total["vs_torch_geomean"] == pytest.approx(
        geomean(ratios, [r["count"] for r in layers]))
    assert (total["vs_torch_min"], total["vs_torch_max"]) == (min(ratios), max(ratios))
    assert total["noisy"] == any(r["noisy"] for r in layers)
    assert "x geo" in proc.stdout and "geometric mean" in proc.stdout
    assert "IQR" in proc.stdout


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"leanconv {lc.__version__}"


def _tiny_conv_model(path, op="Conv"):
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]) if op == "Conv" \
        else helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       [1, 4 if op == "Conv" else 3, 8, 8])],
        initializer=[numpy_helper.from_array(w, "w")] if op == "Conv" else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def test_model_bench_statistics_and_peers(tmp_path):
    pytest.importorskip("onnxruntime")
    path = _tiny_conv_model(tmp_path / "tiny.onnx")
    jpath = tmp_path / "m.json"
    proc = run_cli("bench", "--model", str(path), "--threads", "1", "--min-time", "0.01",
                   "--compare", "onnxruntime,openvino", "--json", str(jpath),
                   env=_fake_missing(tmp_path, "openvino"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(jpath.read_text())
    assert data["schema"] == "leanconv-bench-model/1"
    assert data["metadata"]["peers"]["openvino"]["status"] == "skipped"
    assert data["metadata"]["peers"]["onnxruntime"]["max_rel_diff"] < 1e-5
    assert set(data["contenders"]) == {"leanconv", "onnxruntime"}
    for c in data["contenders"].values():
        assert c["runs"] >= 7
        assert c["min_ms"] <= c["q1_ms"] <= c["ms"] <= c["q3_ms"] <= c["max_ms"]
    ort = data["contenders"]["onnxruntime"]
    assert ort["vs_leanconv"] == pytest.approx(ort["ms"] / data["contenders"]["leanconv"]["ms"])
    assert "openvino skipped" in proc.stdout


def test_model_bench_openvino_forced_f32(tmp_path):
    pytest.importorskip("openvino")
    path = _tiny_conv_model(tmp_path / "tiny.onnx")
    jpath = tmp_path / "m.json"
    proc = run_cli("bench", "--model", str(path), "--threads", "1", "--min-time", "0.01",
                   "--compare", "openvino", "--json", str(jpath))
    assert proc.returncode == 0, proc.stderr
    peer = json.loads(jpath.read_text())["metadata"]["peers"]["openvino"]
    assert peer["status"] == "ok" and "INFERENCE_PRECISION_HINT=f32" in peer["config"]
    assert peer["max_rel_diff"] < 1e-5


@pytest.mark.parametrize("case", ["unsupported op", "not onnx", "missing", "torch peer"])
def test_model_bench_mistakes_are_one_line(tmp_path, case):
    pytest.importorskip("onnx")
    extra = []
    if case == "unsupported op":
        path = _tiny_conv_model(tmp_path / "det.onnx", op="Det")
        why = "Det"  # a determinant: no CNN needs it, leanconv.onnx refuses it
    elif case == "not onnx":
        path = tmp_path / "text.onnx"
        path.write_text("this is not a model\n")
        why = "not an ONNX model"
    elif case == "missing":
        path, why = tmp_path / "none.onnx", "no such file"
    else:
        path = _tiny_conv_model(tmp_path / "tiny.onnx")
        extra, why = ["--compare", "torch"], "unknown peer 'torch'"
    proc = run_cli("bench", "--model", str(path), *extra)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and "Traceback" not in proc.stderr
