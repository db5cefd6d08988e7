"""leanconv.onnx.model_file: prepare(path) reads large weights from the file
when it packs them, with the same results as prepare(ModelProto)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import leanconv.onnx as lco  # noqa: E402
from leanconv.onnx import model_file  # noqa: E402

F32 = TensorProto.FLOAT


def small_net(auto_pad="NOTSET", batch=1, size=12):
    """Conv (large weights) -> Relu -> Conv -> global pool -> Gemm (a large
    non-conv constant) with a small bias kept in the message."""
    g = np.random.default_rng(0)
    inits = {"w1": g.standard_normal((32, 8, 3, 3)).astype(np.float32),
             "w2": g.standard_normal((32, 32, 3, 3)).astype(np.float32),
             "b2": g.standard_normal(32).astype(np.float32),
             "fc": g.standard_normal((40, 32)).astype(np.float32),
             "fb": g.standard_normal(40).astype(np.float32)}
    conv1 = (dict(auto_pad="SAME_UPPER") if auto_pad != "NOTSET" else dict(pads=[1] * 4))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], **conv1),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2", "b2"], ["c"], pads=[1] * 4),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", F32, [batch, 8, size, size])],
        [helper.make_tensor_value_info("y", F32, [batch, 40])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def record_cached_constants(monkeypatch):
    """The names prepare reads whole into its constants (Constants.__missing__),
    in a list that grows as it does."""
    from leanconv.onnx import graph
    cached = []
    real = graph.Constants.__missing__

    def missing(self, name):
        cached.append(name)
        return real(self, name)
    monkeypatch.setattr(graph.Constants, "__missing__", missing)
    return cached


def save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_large_weights_are_left_in_the_file(tmp_path):
    model = small_net()
    skeleton, weights = model_file.load_without_weights(save(model, tmp_path))
    full = {t.name: t for t in model.graph.initializer}
    left_out = {t.name for t in skeleton.graph.initializer if not t.raw_data}
    assert left_out == {"w1", "w2", "fc"}   # over WEIGHT_ABOVE bytes; the biases stay
    for name in left_out:
        np.testing.assert_array_equal(weights.read(name), numpy_helper.to_array(full[name]))
    for t in skeleton.graph.initializer:   # the rest of each tensor is as it was
        assert list(t.dims) == list(full[t.name].dims) and t.data_type == full[t.name].data_type
    assert [n.name for n in skeleton.graph.node] == [n.name for n in model.graph.node]
    assert skeleton.opset_import == model.opset_import


@pytest.mark.parametrize("variant", ["static", "same_pad", "dynamic"])
def test_prepare_from_path_equals_prepare_from_model(tmp_path, variant):
    model = small_net(auto_pad="SAME_UPPER" if variant == "same_pad" else "NOTSET")
    if variant == "dynamic":
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
        model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = save(model, tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 8, 12, 12)).astype(np.float32)
    want = lco.prepare(model).run({"x": x})[0]
    rep = lco.prepare(path)
    path.unlink()   # what is packed later (first run, other sizes) was read at prepare
    np.testing.assert_array_equal(rep.run({"x": x})[0], want)
    if variant != "static":   # another input size packs again from the weights held
        x2 = np.random.default_rng(2).standard_normal((2 if variant == "dynamic" else 1, 8,
                                                        12, 12)).astype(np.float32)
        other = lco.prepare(model)
        np.testing.assert_array_equal(rep.run({"x": x2})[0], other.run({"x": x2})[0])


def test_external_data_is_read_by_onnx(tmp_path):
    model = small_net()
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    skeleton, weights = model_file.load_without_weights(path)
    assert weights is None and all(t.raw_data for t in skeleton.graph.initializer)
    x = np.ones((1, 8, 12, 12), np.float32)
    np.testing.assert_array_equal(lco.prepare(path).run({"x": x})[0],
                                  lco.prepare(small_net()).run({"x": x})[0])


def test_a_model_with_only_small_weights_loads_whole(tmp_path):
    x = helper.make_tensor_value_info("x", F32, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x],
                              [helper.make_tensor_value_info("y", F32, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    skeleton, weights = model_file.load_without_weights(save(model, tmp_path))
    assert weights is None and skeleton == model


def test_a_truncated_file_is_refused(tmp_path):
    path = save(small_net(), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="(?i)error|pars|truncat|decode"):
        lco.prepare(path)


def test_raw_data_that_does_not_fit_its_shape_is_refused(tmp_path):
    model = small_net()
    w = next(t for t in model.graph.initializer if t.name == "w2")
    w.dims[0] = 31   # 31x32x3x3 floats, raw_data still holds 32x32x3x3
    with pytest.raises(ValueError, match="'w2'.*raw_data has 36864 bytes"):
        model_file.load_without_weights(save(model, tmp_path))


def test_a_file_changed_after_prepare_is_named(tmp_path):
    path = save(small_net(), tmp_path)
    _, weights = model_file.load_without_weights(path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="changed after prepare"):
        weights.read("w1")


def test_a_few_wide_elements_left_in_the_file_pass_the_checker(tmp_path):
    """A float64 constant of 1000 elements (8000 bytes) is left in the file
    though the checker's view keeps initializers up to 1024 elements: it must
    be declared as an input there, not a tensor without data (ConvNeXt's
    dynamo export has such constants)."""
    g = np.random.default_rng(3)
    scale = g.standard_normal(1000)
    nodes = [helper.make_node("Cast", ["s"], ["s32"], to=F32),
             helper.make_node("Mul", ["x", "s32"], ["y"])]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", F32, [1, 1000])],
        [helper.make_tensor_value_info("y", F32, [1, 1000])],
        [numpy_helper.from_array(scale, "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = save(model, tmp_path)
    assert model_file.load_without_weights(path)[1].names == {"s"}
    x = g.standard_normal((1, 1000)).astype(np.float32)
    np.testing.assert_array_equal(lco.prepare(path).run({"x": x})[0],
                                  x * scale.astype(np.float32))


def test_the_file_reader_and_the_checker_view_take_the_same_weights(tmp_path):
    """One rule (model_file.is_weight) decides both what stays in the file and
    what the checker sees declared rather than with data, in bytes, whatever
    the element type: at 4096 bytes a tensor stays; above, it is a weight;
    a type the reader cannot read (bfloat16) stays in the message."""
    from leanconv.onnx.backend import _without_weights
    inits = [numpy_helper.from_array(np.ones(1024, np.float32), "f32_at"),
             numpy_helper.from_array(np.ones(1025, np.float32), "f32_over"),
             numpy_helper.from_array(np.ones(512, np.int64), "i64_at"),
             numpy_helper.from_array(np.ones(600, np.float64), "f64_over"),
             numpy_helper.from_array(np.ones(5000, np.uint8), "u8_over"),
             helper.make_tensor("bf16_over", TensorProto.BFLOAT16, [5000],
                                np.zeros(5000 * 2, np.uint8).tobytes(), raw=True)]
    nodes = [helper.make_node("Identity", [t.name], [f"y{i}"]) for i, t in enumerate(inits)]
    graph = helper.make_graph(nodes, "sizes", [], [
        helper.make_tensor_value_info(f"y{i}", t.data_type, list(t.dims))
        for i, t in enumerate(inits)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    skeleton, weights = model_file.load_without_weights(save(model, tmp_path))
    in_file = {t.name for t in skeleton.graph.initializer if not t.raw_data}
    assert in_file == weights.names == {"f32_over", "f64_over", "u8_over"}
    for m in (skeleton, model):
        view = _without_weights(m)
        assert {t.name for t in view.graph.initializer} == {t.name for t in inits} - in_file
        assert {v.name for v in view.graph.input} == in_file
        onnx.checker.check_model(view)


def test_file_bytes_index_and_slice_like_bytes(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 3 * model_file._FileBytes.CHUNK + 77,
                                             dtype=np.uint8).tobytes()
    path = tmp_path / "b.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        fb = model_file._FileBytes(f)
        assert len(fb) == len(data)
        for i in (0, 1, 4095, 4096, 4097, 8191, len(data) - 1):
            assert fb[i] == data[i]
        for a, b in ((0, 10), (4090, 4100), (100, 9000), (len(data) - 5, len(data) + 10),
                     (50, 40)):
            assert fb[a:b] == data[a:b]
        with pytest.raises(IndexError):
            fb[len(data)]


def channels_last_mlp(layers=4, c=256, hidden=512):
    """ConvNeXt's pattern: NCHW -> Transpose -> (LayerNorm -> MatMul by a
    Transpose of a weight -> Relu) x layers -> Transpose back; the MatMul
    weights become 1x1 Convs at prepare (rewrite.channels_first)."""
    g = np.random.default_rng(2)
    inits, nodes, prev = {}, [helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 2, 3, 1])], "t0"
    dims = [c] + [hidden if k % 2 == 0 else c for k in range(layers)]
    for k in range(layers):
        inits[f"w{k}"] = (g.standard_normal((dims[k + 1], dims[k])) / 16).astype(np.float32)
        inits[f"s{k}"] = g.standard_normal(dims[k]).astype(np.float32)
        inits[f"o{k}"] = g.standard_normal(dims[k]).astype(np.float32)
        nodes += [helper.make_node("LayerNormalization", [prev, f"s{k}", f"o{k}"], [f"n{k}"],
                                   axis=-1),
                  helper.make_node("Transpose", [f"w{k}"], [f"wt{k}"], perm=[1, 0]),
                  helper.make_node("MatMul", [f"n{k}", f"wt{k}"], [f"m{k}"]),
                  helper.make_node("Relu", [f"m{k}"], [f"r{k}"])]
        prev = f"r{k}"
    nodes.append(helper.make_node("Transpose", [prev], ["y"], perm=[0, 3, 1, 2]))
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", F32, [1, c, 4, 4])],
        [helper.make_tensor_value_info("y", F32, [1, dims[-1], 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), \
        sum(v.nbytes for k, v in inits.items() if k.startswith("w"))


def test_weights_rewritten_at_prepare_are_held_once(tmp_path):
    """A MatMul weight read through a Transpose and folded with the LayerNorm
    before it (ConvNeXt's pattern) is derived from the file when its 1x1
    Conv is packed, one layer at a time: prepare's peak (NumPy's
    allocations, traced; packings are the C side's) stays below one copy of
    all the weights (it was above twice: ConvNeXt-tiny peaked 150 MB above
    its plan)."""
    import tracemalloc
    model, raw = channels_last_mlp()
    path = save(model, tmp_path)
    lco.prepare(path)   # what a first prepare in a process allocates once is not the model's
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        rep = lco.prepare(path)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert [s.op_type for s in rep.program.steps].count("Conv") == 4
    assert peak < 0.6 * raw, (peak, raw)   # one layer at a time, never all of them
    x = np.random.default_rng(3).standard_normal((1, 256, 4, 4)).astype(np.float32)
    ort = pytest.importorskip("onnxruntime")
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = rep.run({"x": x})[0]
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))


def record_row_reads(monkeypatch):
    """A list that gets (name, start, stop) of every read of a weight's rows
    from the model file."""
    reads = []
    real = model_file.FileWeights.read_rows

    def read_rows(self, name, start, stop):
        reads.append((name, start, stop))
        return real(self, name, start, stop)
    monkeypatch.setattr(model_file.FileWeights, "read_rows", read_rows)
    return reads


@pytest.mark.parametrize("n, k", [(1, 1), (15, 7), (16, 3), (33, 100), (300, 50)])
def test_dense_weights_packed_by_rows_equal_packed_whole(n, k):
    from leanconv import _dense
    w = np.random.default_rng(n).standard_normal((n, k)).astype(np.float32)
    whole = _dense.pack(w * np.float32(0.5))
    for chunk in (1, 16 * 4 * k, 1 << 24):
        rows = _dense.pack_rows(lambda a, b: w[a:b], n, k, 0.5, chunk_bytes=chunk)
        assert rows.tobytes() == whole.tobytes()


@pytest.mark.parametrize("n, k", [(1, 1), (15, 7), (16, 3), (33, 100), (300, 50)])
def test_dense_weights_packed_from_their_transpose_equal_packed_whole(n, k):
    """pack_columns: W given as slices of W^T's rows (a MatMul's constant as
    stored), the same bits as packing W whole, last panel's padding 0."""
    from leanconv import _dense
    w = np.random.default_rng(n).standard_normal((n, k)).astype(np.float32)
    wt = np.ascontiguousarray(w.T)
    whole = _dense.pack(w * np.float32(0.5))
    for chunk in (1, 4 * n * 3, 1 << 24):
        cols = _dense.pack_columns(lambda a, b: wt[a:b], n, k, 0.5, chunk_bytes=chunk)
        assert cols.tobytes() == whole.tobytes()


def test_a_matmul_weight_in_the_file_is_packed_a_slice_at_a_time(tmp_path, monkeypatch):
    """A MatMul's constant (K x N as stored) is read a slice of its rows at
    a time while it is packed, never whole, and the model prepare opened
    itself is not kept (its protobuf arena held while the weights were
    packed was Swin-T's peak above the plan); the result is the same bits
    as a ModelProto's."""
    from leanconv import _dense
    reads = record_row_reads(monkeypatch)
    real_pack = _dense.pack_columns
    monkeypatch.setattr(_dense, "pack_columns",
                        lambda *a, **kw: real_pack(*a, **{**kw, "chunk_bytes": 4 * 40 * 16}))
    w = np.random.default_rng(8).standard_normal((70, 40)).astype(np.float32)
    b = np.random.default_rng(9).standard_normal(40).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          [1, 50, 70])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 50, 40])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = save(model, tmp_path)
    x = np.random.default_rng(4).standard_normal((1, 50, 70)).astype(np.float32)
    got = lco.prepare(path).run({"x": x})[0]
    want = lco.prepare(model).run({"x": x})[0]
    assert got.tobytes() == want.tobytes()
    assert np.max(np.abs(got - (x @ w + b))) < 1e-4 * np.max(np.abs(got))
    ws = [r for r in reads if r[0] == "w"]
    assert len(ws) == 5 and ws[0][1:] == (0, 16) and ws[-1][2] == 70
    # the caller's ModelProto is left as it was
    assert len(model.graph.node) == 2


def test_a_gemm_weight_in_the_file_is_packed_a_slice_at_a_time(tmp_path, monkeypatch):
    """A classifier's W (transB) is read by rows while it is packed, never
    whole (VGG-11's 411 MB matrix held twice was its peak 24% above plan);
    the result is the same bits as packing it whole."""
    from leanconv import _dense
    reads = record_row_reads(monkeypatch)
    real_pack_rows = _dense.pack_rows
    monkeypatch.setattr(_dense, "pack_rows",
                        lambda *a, **kw: real_pack_rows(*a, **{**kw, "chunk_bytes": 2048}))
    model = small_net()
    path = save(model, tmp_path)
    x = np.random.default_rng(4).standard_normal((1, 8, 12, 12)).astype(np.float32)
    got = lco.prepare(path).run({"x": x})[0]
    want = lco.prepare(model).run({"x": x})[0]
    assert got.tobytes() == want.tobytes()
    fc = [r for r in reads if r[0] == "fc"]
    assert len(fc) == 3 and fc[0][1:] == (0, 16) and fc[-1][2] == 40


def test_an_identity_of_a_weight_reads_the_file_like_the_weight(tmp_path, monkeypatch):
    """The TorchScript exporter shares equal initializers through Identity
    nodes (ConvNeXt, MobileNetV3): folding one must not read the weight
    whole and cache it -- the Conv behind it packs from the file as if it
    read the initializer itself."""
    cached = record_cached_constants(monkeypatch)
    model = small_net()
    g = model.graph
    g.node.insert(0, helper.make_node("Identity", ["w2"], ["w2_shared"]))
    for n in g.node:
        if n.op_type == "Conv" and n.input[1] == "w2":
            n.input[1] = "w2_shared"
    path = save(model, tmp_path)
    x = np.random.default_rng(6).standard_normal((1, 8, 12, 12)).astype(np.float32)
    got = lco.prepare(path).run({"x": x})[0]
    assert not {"w2", "w2_shared"} & set(cached)
    monkeypatch.undo()
    want = lco.prepare(model).run({"x": x})[0]
    assert got.tobytes() == want.tobytes()
