"""leanconv.onnx's Gemm / MatMul by a constant matrix: the C step
(kernels/dense.c, tests/test_dense.py) and NumPy where it does not apply,
against onnxruntime; only the packed weights are kept."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

K, N = 40, 37


def gemm_model(M, c_shape=(N,), trans_b=1, **attrs):
    g = np.random.default_rng(M)
    w = g.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    inits = [("w", w)]
    inputs = ["a", "w"]
    if c_shape is not None:
        inits.append(("c", g.standard_normal(c_shape).astype(np.float32)))
        inputs.append("c")
    node = helper.make_node("Gemm", inputs, ["y"], transB=trans_b, **attrs)
    return make_model([node], [("a", (M, K))], [("y", (M, N))], inits)


def is_dense(model):
    """Whether the product is leanconv's C step (it packed the matrix)."""
    steps = lco.prepare(model).program.steps
    return any(n.endswith("leanconv_packed_weights") for n in steps[0].inputs)


def feeds(M):
    return {"a": np.random.default_rng(7).standard_normal((M, K)).astype(np.float32)}


def assert_the_steps_into_gives_the_same_bits(rep, x):
    """The compiled schedule's bound calls and the same schedule run through
    the steps' into() (no step bound) give the same bits."""
    from test_bound_pool import bound_types
    got = rep.run(x)[0]
    for s in rep.program.steps:
        s.bind = None
    sched = rep.program.schedule
    sched._bind(sched.threads)
    assert "BoundDense" not in bound_types(sched)
    assert got.tobytes() == rep.run(x)[0].tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("M, c_shape, trans_b, attrs", [
    (1, (N,), 1, {}),                           # torchvision's classifier
    (1, (1, N), 0, dict(alpha=0.5, beta=2.0)),  # alpha folded into the packing, beta into b
    (3, (1,), 1, {}),                           # a scalar C
    (2, None, 1, dict(alpha=-1.5)),             # no C
    (1, (N,), 1, dict(beta=0.0)),               # C ignored
])
def test_gemm_by_a_constant_runs_in_c_and_matches(threads, M, c_shape, trans_b, attrs):
    model = gemm_model(M, c_shape, trans_b, **attrs)
    assert is_dense(model)
    assert_matches_ort(model, feeds(M), threads=threads)


def test_gemm_keeps_only_the_packed_weights():
    rep = lco.prepare(gemm_model(1))
    names = set(rep.program.constants)
    assert "w" not in names and "c" not in names
    assert sum(v.nbytes for v in rep.program.constants.values()) == \
        4 * (_core.se_packed_floats(N, K) + N)


@pytest.mark.parametrize("M, c_shape, attrs", [
    (2, (2, N), {}),              # C per row: NumPy
    (1, (N,), dict(transA=1)),    # A transposed: NumPy
])
def test_gemm_c_step_refused_where_it_does_not_apply(M, c_shape, attrs):
    if attrs.get("transA"):
        g = np.random.default_rng(0)
        node = helper.make_node("Gemm", ["a", "w", "c"], ["y"], transA=1, transB=1)
        model = make_model([node], [("a", (K, M))], [("y", (M, N))],
                           [("w", g.standard_normal((N, K)).astype(np.float32)),
                            ("c", g.standard_normal(c_shape).astype(np.float32))])
        x = {"a": g.standard_normal((K, M)).astype(np.float32)}
    else:
        model, x = gemm_model(M, c_shape), feeds(M)
    assert not is_dense(model)
    assert_matches_ort(model, x)


def test_gemm_with_many_rows_falls_back_to_numpy_on_the_packed_weights():
    model = gemm_model(12)   # more rows than DENSE_MAX_ROWS
    assert is_dense(model)
    assert_matches_ort(model, feeds(12))


@pytest.mark.parametrize("sizes", [(1, 3, 50, 1, 8, 9, 200), (50, 1, 8, 9, 200, 1)],
                         ids=["panels", "tokens"])
def test_the_first_call_picks_the_layout_and_every_size_stays_right(sizes):
    """A first input of more rows than the gemv takes (a transformer's
    tokens) rewrites the packed panels in place as the token GEMM's
    (_dense.to_tokens), and every call runs on them; a first input of few
    rows keeps the gemv's panels (a compiled schedule binds its C calls to
    them).  Every size matches either way, in the same bytes."""
    w = np.random.default_rng(5).standard_normal((K, N)).astype(np.float32)
    b = np.random.default_rng(6).standard_normal(N).astype(np.float32)
    node = helper.make_node("Gemm", ["a", "w", "b"], ["y"])
    model = make_model([node], [("a", ("rows", K))], [("y", ("rows", N))], [("w", w), ("b", b)])
    rep = lco.prepare(model)
    before = sum(v.nbytes for v in rep.program.constants.values())
    for rows in sizes + sizes:
        a = np.random.default_rng(rows).standard_normal((rows, K)).astype(np.float32)
        y = rep.run({"a": a})[0]
        ref = a.astype(np.float64) @ w.astype(np.float64) + b
        assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-5, rows
    assert sum(v.nbytes for v in rep.program.constants.values()) == before


@pytest.mark.parametrize("a_shape", [(1, K), (K,), (2, 3, K), (1, 7, 9, K)])
def test_matmul_by_a_constant_matrix_matches(a_shape):
    w = np.random.default_rng(3).standard_normal((K, N)).astype(np.float32)
    node = helper.make_node("MatMul", ["a", "w"], ["y"])
    model = make_model([node], [("a", a_shape)], [("y", None)], [("w", w)])
    assert is_dense(model)
    x = {"a": np.random.default_rng(4).standard_normal(a_shape).astype(np.float32)}
    assert_matches_ort(model, x)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_classifier_gemm_runs_bound_after_the_global_pool(threads):
    """Conv -> GlobalAveragePool -> Flatten -> Gemm: the Gemm is a BoundDense
    in the schedule's one C group (no Python step between the pool and it),
    with the bits of the same schedule run through the steps' into()."""
    from test_bound_pool import bound_types
    g = np.random.default_rng(5)
    nodes = [helper.make_node("Conv", ["x", "cw"], ["a"], pads=[1] * 4),
             helper.make_node("GlobalAveragePool", ["a"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "c"], ["y"], transB=1)]
    inits = [("cw", g.standard_normal((K, 3, 3, 3)).astype(np.float32)),
             ("w", g.standard_normal((N, K)).astype(np.float32)),
             ("c", g.standard_normal(N).astype(np.float32))]
    model = make_model(nodes, [("x", (1, 3, 9, 9))], [("y", (1, N))], inits)
    x = {"x": g.standard_normal((1, 3, 9, 9)).astype(np.float32)}
    rep = lco.prepare(model, threads=threads)
    sched = rep.program.schedule
    assert bound_types(sched) == ["BoundConv", "BoundPool", "BoundDense"]
    assert len(sched._fns) == 1
    assert_the_steps_into_gives_the_same_bits(rep, x)
    assert_matches_ort(model, x, threads=threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_classifier_gemm_with_an_activation_runs_bound(threads):
    """Gemm -> HardSwish (MobileNetV3's hidden classifier layer, fused into
    the Gemm step): a BoundDense that applies the activation itself, so the
    head stays in the schedule's one C group (it ran as a Python step with a
    separate pass), with the bits of the unbound path and onnxruntime's
    result."""
    from test_bound_pool import bound_types
    g = np.random.default_rng(6)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["h"], transB=1),
             helper.make_node("HardSwish", ["h"], ["y"])]
    inits = [("w", g.standard_normal((N, K)).astype(np.float32)),
             ("c", g.standard_normal(N).astype(np.float32))]
    model = make_model(nodes, [("a", (1, K))], [("y", (1, N))], inits)
    x = feeds(1)
    rep = lco.prepare(model, threads=threads)
    sched = rep.program.schedule
    assert bound_types(sched) == ["BoundDense"] and sched._lean is not None
    assert_the_steps_into_gives_the_same_bits(rep, x)
    assert_matches_ort(model, x, threads=threads)
