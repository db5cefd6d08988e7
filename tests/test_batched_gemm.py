"""kernels/batched_gemm.c (leanconv._batched_matmul: MatMul of two run-time
operands, attention's Q K^T and A V) against float64 on every ISA: operands
read through their strides (transposed and gathered views, a sliced batch),
w's rows in place or copied row-major, row counts around MR and column
counts around the panel width and its tail; the same bits at 1, 2 and 3
threads; what it refuses; and leanconv.onnx's MatMul step bound on it."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ISAS
from leanconv import _batched_matmul, _core, _isa, _scratch


def run(a, b, threads, isa):
    y = np.full(a.shape[:-1] + b.shape[-1:], np.nan, np.float32)
    call = _batched_matmul.bind(a, b, y, threads, isa)
    assert call is not None
    assert call.workspace_bytes == _batched_matmul.workspace_bytes(a, b, threads, isa)
    _core.run_bound((call,), _scratch.aligned_empty(max(64, call.workspace_bytes)))
    return y


def operands(case, g):
    f = lambda *s: g.standard_normal(s).astype(np.float32)   # noqa: E731
    if case == "qk":          # ViT: K^T a transposed view (w copied row-major)
        return f(1, 3, 21, 16), f(1, 3, 21, 16).transpose(0, 1, 3, 2)
    if case == "av":          # w's rows in place
        return f(2, 3, 17, 17), f(2, 3, 17, 50)
    if case == "swin":        # q, k, v gathered out of one qkv tensor
        qkv = f(4, 49, 3, 2, 32).transpose(2, 0, 3, 1, 4)
        return qkv[0], qkv[1].transpose(0, 1, 3, 2)
    if case == "swin_av":
        qkv = f(4, 49, 3, 2, 32).transpose(2, 0, 3, 1, 4)
        return f(4, 2, 49, 49), qkv[2]
    if case == "sliced":      # a strided batch and rows
        return f(6, 9, 5)[::2, ::2], f(3, 5, 51)
    if case == "2d":
        return f(9, 300), f(300, 97)
    if case == "tiny":
        return f(1, 1, 1), f(1, 1, 1)
    raise AssertionError(case)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", ["qk", "av", "swin", "swin_av", "sliced", "2d", "tiny"])
def test_batched_gemm_matches_float64_with_the_same_bits_at_every_thread_count(isa, case):
    a, b = operands(case, np.random.default_rng(len(case)))
    iid = _isa.isa_id(isa)
    outs = [run(a, b, t, iid) for t in (1, 2, 3)]
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4 * np.sqrt(a.shape[-1]))
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


def test_batched_gemm_refuses_what_numpy_should_do():
    g = np.random.default_rng(0)
    a = g.standard_normal((2, 3, 4)).astype(np.float32)
    b = g.standard_normal((2, 4, 5)).astype(np.float32)
    y = np.empty((2, 3, 5), np.float32)
    assert _batched_matmul.bind(a, b, y, 1, 0) is not None
    assert _batched_matmul.bind(a[:1].repeat(2, 0)[:, :, :3], b[:, :3], y, 1, 0) is not None
    assert _batched_matmul.bind(a[:1], b, y, 1, 0) is None            # broadcast batch
    assert _batched_matmul.bind(a.astype(np.float64), b, y, 1, 0) is None
    assert _batched_matmul.bind(a[:, ::-1], b, y, 1, 0) is None       # negative stride
    assert _batched_matmul.bind(a, b, y[:, :, :4], 1, 0) is None      # wrong output shape
    assert _batched_matmul.bind(a, b, np.empty((2, 5, 3), np.float32).transpose(0, 2, 1),
                                1, 0) is None                         # output not contiguous
    with pytest.raises(ValueError, match="threads"):
        _core.BoundBatchedGemm(a, np.zeros(2, np.int64), 4, 1, b, np.zeros(2, np.int64), 5, 1,
                               y.reshape(-1), 3, 4, 5, 0)
    with pytest.raises(ValueError, match="one offset"):
        _core.BoundBatchedGemm(a, np.zeros(2, np.int64), 4, 1, b, np.zeros(1, np.int64), 5, 1,
                               y.reshape(-1), 3, 4, 5, 1)
    with pytest.raises(ValueError, match="out must hold"):
        _core.BoundBatchedGemm(a, np.zeros(2, np.int64), 4, 1, b, np.zeros(2, np.int64), 5, 1,
                               y.reshape(-1)[:-1], 3, 4, 5, 1)
    with pytest.raises(ValueError, match="workspace"):
        call = _batched_matmul.bind(a, b, y, 1, 0)
        _core.run_bound((call,), np.empty(0, np.uint8))


def test_attention_matmuls_run_bound_in_the_schedule_and_match_onnxruntime():
    """Transpose(k) -> MatMul(q, k^T) -> Softmax -> MatMul(., v): both
    MatMuls are BoundBatchedGemm calls in the schedule's C loop (no Python
    step, no BLAS), and the model matches onnxruntime at 1 and 2 threads."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper
    from test_bound_pool import bound_types
    from test_onnx_adapter import assert_matches_ort, make_model
    import leanconv.onnx as lco
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    shape = (1, 3, 50, 16)
    model = make_model(nodes, [("q", shape), ("k", shape), ("v", shape)], [("y", shape)])
    g = np.random.default_rng(2)
    feeds = {n: g.standard_normal(shape).astype(np.float32) for n in "qkv"}
    for threads in (1, 2):
        rep = lco.prepare(model, threads=threads)
        assert bound_types(rep.program.schedule).count("BoundBatchedGemm") == 2
        assert not rep.program.schedule.blas
        assert_matches_ort(model, feeds, threads=threads)


@pytest.mark.parametrize("equation, b_shape", [
    ("bghid,bghjd->bghij", (2, 3, 2, 7, 8)),    # MaxViT: q k^T
    ("bghij,bghjd->bghid", (2, 3, 2, 9, 8)),    # MaxViT: attention v
    ("ik,kj->ij", (9, 8)),
])
def test_einsum_of_a_batched_matrix_product_runs_bound_on_the_batched_gemm(equation, b_shape):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper
    from test_bound_pool import bound_types
    from test_onnx_adapter import assert_matches_ort, make_model
    import leanconv.onnx as lco
    a_shape = (2, 3, 2, 7, 9) if equation.startswith("bghij") else \
        (2, 3, 2, 7, 8) if equation.startswith("bghid") else (7, 9)
    if equation == "ik,kj->ij":
        b_shape = (9, 8)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    model = make_model([node], [("a", a_shape), ("b", b_shape)], [("y", None)], opset=17)
    g = np.random.default_rng(4)
    feeds = {"a": g.standard_normal(a_shape).astype(np.float32),
             "b": g.standard_normal(b_shape).astype(np.float32)}
    rep = lco.prepare(model, threads=2)
    assert bound_types(rep.program.schedule) == ["BoundBatchedGemm"]
    assert_matches_ort(model, feeds, threads=2)


def test_einsum_equations_that_are_no_matrix_product_stay_numpy():
    from leanconv.onnx.ops_linalg import _einsum_as_matmul
    assert _einsum_as_matmul("bij,bjk->bkj") is None      # output not (i, j)
    assert _einsum_as_matmul("ii,ij->ij") is None         # a repeated (diagonal) subscript
    assert _einsum_as_matmul("bik,bkj") is None           # implicit output
    assert _einsum_as_matmul("...ik,...kj->...ij") is None
    assert _einsum_as_matmul("bik,bjk->bij") == ("bij", True)


@pytest.mark.parametrize("form", ["both", "q_only", "shared", "not_scalar", "rank2_scalar"])
def test_scalar_muls_fold_into_the_attention_matmul(form):
    """ViT's export scales q and k by d^-1/4 each before Q K^T: the Muls
    fold into one ScaledMatMul (alpha applied once to each output) when they
    multiply by a scalar constant of rank <= 1 and only the MatMul reads
    them; otherwise they stay, and every form matches onnxruntime."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import helper
    from test_onnx_adapter import assert_matches_ort, make_model
    import leanconv.onnx as lco
    shape = (1, 2, 20, 8)
    g = np.random.default_rng(6)
    scalar = np.array(0.5946, np.float32)
    inits = [("sq", scalar), ("sk", scalar)]
    if form == "not_scalar":
        inits = [("sq", g.standard_normal(8).astype(np.float32)),
                 ("sk", g.standard_normal(20).astype(np.float32))]
    elif form == "rank2_scalar":
        inits = [("sq", scalar.reshape(1, 1)), ("sk", scalar.reshape(1, 1))]
    nodes = [helper.make_node("Mul", ["q", "sq"], ["qs"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("Mul", ["kt", "sk"], ["ks"]) if form != "q_only" else
             helper.make_node("Identity", ["kt"], ["ks"]),
             helper.make_node("MatMul", ["qs", "ks"], ["y"])]
    outputs = [("y", None)]
    if form == "shared":   # qs read by another node too: its Mul stays, k's folds
        nodes.append(helper.make_node("Relu", ["qs"], ["r"]))
        outputs.append(("r", None))
    model = make_model(nodes, [("q", shape), ("k", shape)], outputs, inits)
    feeds = {n: g.standard_normal(shape).astype(np.float32) for n in "qk"}
    rep = lco.prepare(model, threads=2)
    kinds = [st.op_type for st in rep.program.steps]
    folded = {"both": 2, "q_only": 1, "shared": 1, "not_scalar": 0, "rank2_scalar": 0}[form]
    assert ("ScaledMatMul" in kinds) == (folded > 0), kinds
    assert kinds.count("Mul") == 2 - folded - (form == "q_only"), kinds
    assert_matches_ort(model, feeds, threads=2)
