"""`leanconv profile` and `leanconv split` on torchvision networks (64x64 inputs,
random weights): the parts reproduce the model, the figures are consistent
with the tensors that really flow, the limits are honoured, and every user
mistake is one line and exit code 2.

Most commands run in-process through leanconv.cli.main.main (the same code as
the `leanconv` executable, without a Python start-up per case)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
torchvision_onnx = pytest.importorskip("torchvision_onnx")
try:
    torchvision_onnx.load_torchvision()
except ImportError as e:   # not installed
    pytest.skip(f"needs torchvision: {e}", allow_module_level=True)

from leanconv.cli.main import main  # noqa: E402
from leanconv.tools import executor, split  # noqa: E402
from leanconv.tools.profile import live_bytes, profile_model  # noqa: E402

SIZE = 64
INPUT_BYTES = 3 * SIZE * SIZE * 4
FAST = ["--threads", "1", "--min-runs", "2", "--min-time", "0.001"]
NETS = ("resnet18", "mobilenet_v2", "googlenet")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    return {n: str(torchvision_onnx.export(n, d / f"{n}.onnx", SIZE)) for n in NETS}


@pytest.fixture(scope="module")
def profiles(models):
    out = {}
    for name, path in models.items():
        model = executor.load_model(path)
        prepared = executor.prepare(model, threads=1)
        out[name] = (model, profile_model(model, prepared, executor.make_feeds(model), 2, 0.0))
    return out


def x_input(seed=0):
    return np.random.default_rng(seed).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)


def run_parts(folder, x):
    """device.onnx then server.onnx in `folder` with onnxruntime -> every value."""
    files = {p: os.path.join(folder, f"{p}.onnx") for p in ("device", "server")}
    return run_parts_into({p: f for p, f in files.items() if os.path.exists(f)}, x)


def run_parts_into(files, x):
    """files: {"device": path, "server": path} (either may be missing)."""
    values = {"x": x}
    for part in ("device", "server"):
        if part in files:
            sess = ort.InferenceSession(files[part], providers=["CPUExecutionProvider"])
            outs = sess.run(None, {i.name: values[i.name] for i in sess.get_inputs()})
            values.update({o.name: v for o, v in zip(sess.get_outputs(), outs)})
    return values


def reference(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def cli(capsys, *args):
    """(exit code, stdout, stderr) of `leanconv ARGS` run in this process."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the parts reproduce the model -----------------------------------------------------------

def _sample_cuts(profile, per_model=2):
    """All-device, all-server, and evenly spaced cuts in between, preferring
    multi-tensor cuts where the graph has them (GoogLeNet's branches)."""
    masks, how = split.enumerate_cuts(profile["nodes"])
    assert how == split.ALL_SETS
    cuts = [split.evaluate(profile, m, [n["ms"] for n in profile["nodes"]], 1e6, 0.0)
            for m in masks]
    multi = [c for c in cuts if len(c["cut"]) > 1]
    middle = cuts[1:-1]
    step = max(1, len(middle) // per_model)
    chosen = [cuts[0], cuts[-1]] + middle[::step][:per_model] + multi[::max(1, len(multi) // 2)][:2]
    return chosen


@pytest.mark.parametrize("name", NETS)
def test_device_then_server_reproduces_the_model(name, models, profiles, tmp_path):
    model, profile = profiles[name]
    x = x_input()
    want = reference(models[name], x)
    extract = split.extractor(model)
    cuts = _sample_cuts(profile)
    if name == "googlenet":
        assert any(len(c["cut"]) > 1 for c in cuts)   # a cut across parallel branches
    for k, c in enumerate(cuts):
        folder = tmp_path / f"cut{k}"
        files = split.write_parts(model, c, folder, extract)
        assert ("device" in files) == bool(c["device_nodes"])
        assert ("server" in files) == bool(c["server_nodes"])
        values = run_parts(folder, x)
        np.testing.assert_allclose(values["y"], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        # what is sent is exactly the cut, and its bytes are its float32 size
        sent = [values[v] for v in c["cut"]]
        assert all(a.dtype == np.float32 for a in sent)
        assert c["transfer_bytes"] == sum(4 * a.size for a in sent)


def test_cut_enumeration_is_every_downward_closed_set(profiles):
    nodes = profiles["googlenet"][1]["nodes"]
    masks, how = split.enumerate_cuts(nodes)
    assert how == split.ALL_SETS and len(set(masks)) == len(masks)
    assert len(masks) > len(nodes) + 1          # branches give more than the prefixes
    producer = {v: i for i, n in enumerate(nodes) for v in n["outputs"]}
    for m in masks:
        for i, n in enumerate(nodes):
            if m >> i & 1:
                assert all(m >> producer[v] & 1 for v in n["inputs"] if v in producer)
    # too many: the prefixes of the execution order, and it says so
    masks, how = split.enumerate_cuts(nodes, limit=10)
    assert how == split.PREFIXES and masks == [(1 << k) - 1 for k in range(len(nodes) + 1)]


# --- the profile -------------------------------------------------------------------------------

def test_profile_figures(models, capsys, tmp_path):
    jpath, png = tmp_path / "p.json", tmp_path / "p.png"
    code, out, err = cli(capsys, "profile", models["resnet18"], *FAST, "--json", jpath,
                         "--plot", png)
    assert code == 0, err
    data = json.loads(jpath.read_text())
    nodes = data["nodes"]
    for key in ("name", "op", "ms", "output_bytes", "packed_bytes", "workspace_bytes",
                "live_bytes"):
        assert all(key in n for n in nodes), key
    assert data["peak_bytes"] == max(n["live_bytes"] for n in nodes)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "peak" in out and nodes[0]["name"] in out
    # output sizes are the float32 sizes ONNX shape inference gives the same tensors
    inferred = onnx.shape_inference.infer_shapes(onnx.load(models["resnet18"]))
    dims = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
            for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for n in nodes:
        assert n["output_bytes"] == sum(4 * int(np.prod(dims[v])) for v in n["outputs"])
    # Conv nodes carry their plan's packed weights and workspace; fused ops are named
    convs = [n for n in nodes if n["op"].startswith("Conv")]
    assert convs and all(n["packed_bytes"] > 0 for n in convs)
    assert "Conv+Relu" in {n["op"] for n in convs}
    # every live figure holds at least all weights, the node's output and workspace,
    # and the first node exactly those plus the input
    weights = sum(n["weight_bytes"] + n["packed_bytes"] for n in nodes)
    for n in nodes:
        assert n["live_bytes"] >= weights + n["output_bytes"] + n["workspace_bytes"]
    first = nodes[0]
    assert first["inputs"] == ["x"]
    if not data["memory_traits"]["arena"]:
        # the interpreter: the input, the first output and its workspace, exactly
        assert first["live_bytes"] == weights + INPUT_BYTES + first["output_bytes"] + \
            first["workspace_bytes"]
    else:
        # a static arena: the peak is leanconv.onnx's own memory plan plus the
        # caller's input (and, at the end, the outputs returned as copies; the
        # arena here places no value in place of another: it may be a little
        # larger, never smaller)
        import leanconv.onnx as lco
        rep = lco.prepare(onnx.load(models["resnet18"]), threads=1)
        rep.run({"x": x_input()})
        plan = rep.memory()["total"] + INPUT_BYTES
        # (0.999: the plan's bookkeeping term counts the executor's Python
        # objects, which differ by a few KB between two preparations of the
        # same model -- 1.5 KB of 51 MB once in .ci/run)
        assert 0.999 * plan <= data["peak_bytes"] <= 1.05 * (plan + data["tensors"]["y"])
        # the scratch buffer lent to every Conv is held throughout: every node but
        # the last (which copies the outputs out) holds the same, plus its own
        # scratch when it is not a Conv
        assert data["memory_traits"]["workspace_lent"]
        held = {n["live_bytes"] - (0 if n["op"].startswith("Conv") else n["workspace_bytes"])
                for n in nodes[:-1]}
        assert len(held) == 1, held


def test_live_bytes_frees_values_after_their_last_reader():
    def node(name, ins, outs, ws=0):
        return dict(name=name, inputs=ins, outputs=outs, weight_bytes=0, packed_bytes=0,
                    workspace_bytes=ws)
    # x -> a -> b ; x, b -> c (a dies after b; x lives throughout: the caller owns it)
    nodes = [node("A", ["x"], ["a"], ws=7), node("B", ["a"], ["b"]), node("C", ["x", "b"], ["c"])]
    tensors = {"x": 1, "a": 10, "b": 100, "c": 1000}
    assert live_bytes(nodes, tensors, ["x"], ["c"]) == [1 + 10 + 7, 1 + 10 + 100, 1 + 100 + 1000]
    # a value kept to the end (a tensor to send) is not freed
    assert live_bytes(nodes, tensors, ["x"], ["a", "c"])[2] == 1 + 10 + 100 + 1000


# --- split: limits, link speeds, the choice ------------------------------------------------

def _split(capsys, path, tmp_path, *args):
    jpath = tmp_path / "split.json"
    code, out, err = cli(capsys, "split", path, *FAST, "--out", tmp_path / "parts",
                         "--json", jpath, *args)
    return code, (json.loads(jpath.read_text()) if code == 0 else None), out, err


def _check_report(r, uplink_bytes_s, rtt_ms):
    for key in ("cut", "device_nodes", "server_nodes", "device_ms", "transfer_bytes",
                "transfer_ms", "server_ms", "total_ms", "device_peak_bytes", "candidates"):
        assert key in r, key
    best = min(c["total_ms"] for c in r["candidates"])
    assert r["total_ms"] == best                       # the chosen cut is the best candidate
    assert {k: r[k] for k in r["candidates"][0]} in r["candidates"]
    for c in r["candidates"]:
        assert c["total_ms"] == pytest.approx(c["device_ms"] + c["transfer_ms"] + c["server_ms"])
        if c["server_nodes"]:
            assert c["transfer_ms"] == pytest.approx(rtt_ms + c["transfer_bytes"] /
                                                     uplink_bytes_s * 1e3)
        assert c["device_peak_bytes"] <= r["limits"]["device_memory_bytes"]


def test_slow_link_keeps_everything_on_the_device(models, capsys, tmp_path):
    code, r, out, err = _split(capsys, models["resnet18"], tmp_path, "--device-memory", "1GiB",
                               "--uplink", "1Mbit/s", "--rtt", "40ms", "--server-speedup", "100")
    assert code == 0, err
    assert r["cut"] == [] and r["server_nodes"] == [] and r["transfer_bytes"] == 0
    assert set(r["files"]) == {"device"} and not (tmp_path / "parts" / "server.onnx").exists()
    _check_report(r, 1e6 / 8, 40)
    assert "everything on the device" in out


def test_fast_link_to_a_fast_server_sends_everything(models, capsys, tmp_path):
    code, r, out, err = _split(capsys, models["resnet18"], tmp_path, "--device-memory", "1GiB",
                               "--uplink", "10Gbit/s", "--rtt", "1ms", "--server-speedup", "100")
    assert code == 0, err
    assert r["cut"] == ["x"] and r["device_nodes"] == []
    assert r["transfer_bytes"] == INPUT_BYTES and r["device_peak_bytes"] == INPUT_BYTES
    assert set(r["files"]) == {"server"} and not (tmp_path / "parts" / "device.onnx").exists()
    _check_report(r, 10e9 / 8, 1)


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_memory_budget_moves_the_cut(name, models, profiles, capsys, tmp_path):
    """An equal server and a slow link: the fewest bytes sent that fit half the
    memory of running everything on the device -- a cut inside the network."""
    budget = profiles[name][1]["peak_bytes"] // 2
    code, r, _, err = _split(capsys, models[name], tmp_path / "b", "--device-memory", budget,
                             "--uplink", "1Mbit/s", "--rtt", "0ms", "--server-speedup", "1")
    assert code == 0, err
    assert r["device_nodes"] and r["server_nodes"] and r["device_peak_bytes"] <= budget
    _check_report(r, 1e6 / 8, 0)
    x = x_input(1)
    values = run_parts(tmp_path / "b" / "parts", x)
    np.testing.assert_allclose(values["y"], reference(models[name], x), rtol=1e-4,
                               atol=1e-4 * np.abs(values["y"]).max())
    assert r["transfer_bytes"] == sum(4 * values[v].size for v in r["cut"])


def test_server_profile(models, capsys, tmp_path):
    prof = tmp_path / "server.json"
    code, _, err = cli(capsys, "profile", models["mobilenet_v2"], *FAST, "--json", prof,
                       "--quiet")
    assert code == 0, err
    server = {n["name"]: n["ms"] for n in json.loads(prof.read_text())["nodes"]}
    code, r, _, err = _split(capsys, models["mobilenet_v2"], tmp_path, "--device-memory",
                             "1GiB", "--uplink", "50Mbit/s", "--rtt", "20ms",
                             "--server-profile", prof)
    assert code == 0, err
    for c in r["candidates"]:
        assert c["server_ms"] == pytest.approx(sum(server[n] for n in c["server_nodes"]))
    # a profile taken on the device is used instead of measuring here
    code, r, _, err = _split(capsys, models["mobilenet_v2"], tmp_path, "--device-memory",
                             "1GiB", "--uplink", "50Mbit/s", "--rtt", "20ms",
                             "--server-speedup", "4", "--device-profile", prof)
    assert code == 0, err
    for c in r["candidates"]:
        assert c["device_ms"] == pytest.approx(sum(server[n] for n in c["device_nodes"]))
        assert c["server_ms"] == pytest.approx(sum(server[n] for n in c["server_nodes"]) / 4)


def test_no_feasible_cut_names_the_smallest_budget(models, capsys, tmp_path):
    code, _, out, err = _split(capsys, models["resnet18"], tmp_path, "--device-memory", "1KiB",
                               "--uplink", "10Mbit/s", "--rtt", "40ms", "--server-speedup", "10")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "smallest budget" in lines[0]
    # the input itself lives on the device: nothing smaller can fit
    assert f"{INPUT_BYTES} bytes" in lines[0] and "everything on the server" in lines[0]


# --- every bad input: one line, exit 2 ---------------------------------------------------------

def _tiny(path, op="Conv"):
    from onnx import TensorProto, helper, numpy_helper
    w = np.ones((2, 3, 1, 1), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node(op, ["c"], ["y"])] \
        if op != "Conv" else [helper.make_node("Conv", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return str(path)


LIMITS = ["--device-memory", "64MiB", "--uplink", "10Mbit/s", "--rtt", "40ms",
          "--server-speedup", "10"]


def _replace(args, option, value):
    """args with option's value replaced; '=VALUE' joins them (a value starting
    with '-' must be written --option=-5MiB, as a user would)."""
    out = list(args)
    i = out.index(option)
    if value.startswith("="):
        out[i:i + 2] = [option + value]
    else:
        out[i + 1] = value
    return out


@pytest.mark.parametrize("case,change,why", [
    ("memory unit", ("--device-memory", "64XB"), "unknown unit"),
    ("negative memory", ("--device-memory", "=-5MiB"), ">= 0"),
    ("rate unit", ("--uplink", "10Mbit"), "unknown unit"),
    ("rate without unit", ("--uplink", "10"), "no unit"),
    ("zero rate", ("--uplink", "0Mbit/s"), "> 0"),
    ("time unit", ("--rtt", "40 parsecs"), "unknown unit"),
    ("negative time", ("--rtt", "=-4ms"), ">= 0"),
    ("zero speedup", ("--server-speedup", "0"), "> 0"),
    ("speedup text", ("--server-speedup", "fast"), "not a number"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_limits_are_one_line(case, change, why, capsys, tmp_path):
    args = _replace(LIMITS, *change)
    code, _, err = cli(capsys, "split", _tiny(tmp_path / "t.onnx"), *args, "--out", tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and change[0] in lines[0], err


def test_bad_models_are_one_line(capsys, tmp_path):
    text = tmp_path / "text.onnx"
    text.write_text("not a model\n")
    other = tmp_path / "other.json"   # the profile of another model
    code, _, err = cli(capsys, "profile", _tiny(tmp_path / "relu.onnx", "Relu"), *FAST,
                       "--json", other, "--quiet")
    assert code == 0, err
    not_json = tmp_path / "bad.json"
    not_json.write_text("{nope")
    cases = [
        (["split", text, *LIMITS], "not an ONNX model"),
        (["profile", text], "not an ONNX model"),
        (["profile", tmp_path / "missing.onnx"], "no such file"),
        (["split", _tiny(tmp_path / "det.onnx", "Det"), *LIMITS], "Det"),
        (["profile", _tiny(tmp_path / "det.onnx", "Det")], "Det"),
        (["split", _tiny(tmp_path / "t.onnx"), *LIMITS[:-2], "--server-profile", not_json],
         "not JSON"),
        (["split", _tiny(tmp_path / "t.onnx"), *LIMITS[:-2], "--server-profile", other],
         "does not match the model"),
        (["split", _tiny(tmp_path / "t.onnx"), *LIMITS, "--device-profile", other],
         "not a profile of this model"),
        (["profile", _tiny(tmp_path / "t.onnx"), "--input-shape", "1x3xfour"], "--input-shape"),
        (["profile", _tiny(tmp_path / "t.onnx"), "--input-shape", "1x3x4"], "rank"),
    ]
    for args, why in cases:
        extra = ["--out", tmp_path / "o"] if args[0] == "split" else []
        code, _, err = cli(capsys, *args, *extra)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and why in lines[0] and "Traceback" not in err, (args, err)


def test_split_as_a_user_runs_it(models, tmp_path):
    """One real `leanconv split` process: exit 0, the parts written, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "leanconv", "split", models["mobilenet_v2"],
                           *FAST, *LIMITS, "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "best:" in proc.stdout and any(Path(tmp_path).glob("*.onnx"))


# --- the device peak is what device.onnx really takes ----------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_device_peak_matches_the_rss_of_device_onnx(name, models, profiles, tmp_path):
    """device_peak_bytes within 10% of the resident-memory growth of a fresh
    process running device.onnx, at glibc's default allocator settings (see
    bench/split_memory.py for how the growth is isolated).  A third of the
    whole model's memory: a cut inside the network (across GoogLeNet's branches)."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux procfs with a writable clear_refs (VmHWM reset)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import split_memory
    model, profile = profiles[name]
    budget = profile["peak_bytes"] // 3
    r = split.choose(profile, budget, 1e6 / 8, 0.0, [n["ms"] for n in profile["nodes"]])
    assert r["device_nodes"] and r["server_nodes"] and r["device_peak_bytes"] <= budget
    files = split.write_parts(model, r, tmp_path)
    growth = split_memory.child_growth(files["device"], 1, [1, 3, SIZE, SIZE])
    assert abs(r["device_peak_bytes"] - growth) <= 0.1 * growth, (r["device_peak_bytes"], growth)


def _two_outputs(path):
    """x -> Conv -> a (an output) -> Relu -> Conv -> b (another output), plus a skip
    connection from x: Add(b2, x) -> c (a third output)."""
    from onnx import TensorProto, helper, numpy_helper
    g = np.random.default_rng(3)
    w1 = g.standard_normal((3, 3, 3, 3)).astype(np.float32)
    w2 = g.standard_normal((3, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="c1"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["b"], name="c2"),
             helper.make_node("Add", ["b", "x"], ["c"], name="add")]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8])
          for n in ("x", "a", "b", "c")]
    graph = helper.make_graph(nodes, "two", vi[:1], vi[1:],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return str(path)


def test_several_outputs_and_a_skip_from_the_input(tmp_path):
    """Model outputs made on the device stay there; the server makes the others;
    a server node reading the model input gets it sent."""
    path = _two_outputs(tmp_path / "two.onnx")
    model = executor.load_model(path)
    prepared = executor.prepare(model, threads=1)
    profile = profile_model(model, prepared, executor.make_feeds(model), 2, 0.0)
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = dict(zip(["a", "b", "c"], sess.run(None, {"x": x})))
    masks, _ = split.enumerate_cuts(profile["nodes"])
    extract = split.extractor(model)
    for k, m in enumerate(masks):
        c = split.evaluate(profile, m, [1.0] * len(profile["nodes"]), 1e6, 0.0)
        values = run_parts_into(split.write_parts(model, c, tmp_path / f"c{k}", extract), x)
        for name in ("a", "b", "c"):
            np.testing.assert_allclose(values[name], want[name], rtol=1e-5, atol=1e-5)
        if c["server_nodes"] and "add" in c["server_nodes"]:
            assert "x" in c["cut"]      # the skip connection's input is sent
        assert set(c["device_outputs"]).isdisjoint(c["server_outputs"])


def test_device_time_cap(models, capsys, tmp_path):
    """--max-device-ms 0: only the cut that runs nothing on the device is allowed."""
    code, r, _, err = _split(capsys, models["mobilenet_v2"], tmp_path, "--device-memory", "1GiB",
                             "--uplink", "1Mbit/s", "--rtt", "40ms", "--server-speedup", "2",
                             "--max-device-ms", "0")
    assert code == 0, err
    assert r["device_nodes"] == [] and r["cut"] == ["x"] and len(r["candidates"]) == 1
