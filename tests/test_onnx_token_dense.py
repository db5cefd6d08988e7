"""leanconv.onnx's MatMul / Gemm by a constant matrix over many rows (a
transformer's tokens): one token-GEMM step (kernels/token_gemm.c,
tests/test_token_gemm.py) with what reads its output alone fused in -- a
constant bias Add, a residual Add, an activation -- checked against float64
and onnxruntime, bound in the schedule's C loop in the lent workspace, and
right on inputs the C call does not take (a transposed view) with the
residual's buffer taken over."""
from __future__ import annotations

import math

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402
from test_bound_pool import bound_types  # noqa: E402
from test_onnx_adapter import assert_matches_ort, make_model  # noqa: E402

import leanconv.onnx as lco  # noqa: E402


def linear_model(shape, n, bias=True, residual=True, act="Gelu", transpose_in=False,
                 residual_first=False):
    """x (shape) [-> Transpose of its last two axes] -> MatMul(W) [-> Add(b)]
    [-> Add(r)] [-> act]; returns (model, feeds, float64 reference)."""
    g = np.random.default_rng(len(shape) * 100 + n)
    k = shape[-2] if transpose_in else shape[-1]
    rows_shape = shape[:-2] + (shape[-1], shape[-2]) if transpose_in else shape
    out_shape = rows_shape[:-1] + (n,)
    w = (g.standard_normal((k, n)) / math.sqrt(k)).astype(np.float32)
    b = g.standard_normal(n).astype(np.float32)
    nodes, inputs, cur = [], [("x", shape)], "x"
    if transpose_in:
        perm = list(range(len(shape) - 2)) + [len(shape) - 1, len(shape) - 2]
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=perm))
        cur = "xt"
    nodes.append(helper.make_node("MatMul", [cur, "w"], ["m"]))
    cur = "m"
    inits = [("w", w)]
    if bias:
        nodes.append(helper.make_node("Add", [cur, "b"], ["a"]))
        inits.append(("b", b))
        cur = "a"
    if residual:
        inputs.append(("r", out_shape))
        nodes.append(helper.make_node("Add", ["r", cur] if residual_first else [cur, "r"], ["s"]))
        cur = "s"
    if act:
        nodes.append(helper.make_node(act, [cur], ["y"]))
        cur = "y"
    model = make_model(nodes, inputs, [(cur, out_shape)], inits, opset=20)   # Gelu: 20
    feeds = {"x": g.standard_normal(shape).astype(np.float32)}
    if residual:
        feeds["r"] = g.standard_normal(out_shape).astype(np.float32)
    xs = feeds["x"].astype(np.float64)
    if transpose_in:
        xs = np.swapaxes(xs, -1, -2)
    want = xs @ w + (b if bias else 0) + (feeds["r"] if residual else 0)
    if act == "Relu":
        want = np.maximum(want, 0)
    elif act == "Gelu":
        want = 0.5 * want * (1 + np.vectorize(math.erf)(want / math.sqrt(2)))
    return model, feeds, want


FORMS = [dict(), dict(bias=False), dict(residual=False), dict(act=None),
         dict(act="Relu", residual=False), dict(residual_first=True)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape, n", [((1, 49, 96), 288), ((4, 49, 96), 100), ((1, 7, 7, 96), 48),
                                      ((197, 768), 64)])
@pytest.mark.parametrize("form", FORMS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items())
                         or "all")
def test_linear_layer_is_one_token_gemm_step_bound_in_the_schedule(threads, shape, n, form):
    model, feeds, want = linear_model(shape, n, **form)
    rep = lco.prepare(model, threads=threads)
    steps = [s for s in rep.program.steps if s.op_type == "MatMul"]
    expect = (("Add",) if form.get("bias", True) else ()) + \
        (("Add",) if form.get("residual", True) else ()) + \
        ((form.get("act", "Gelu"),) if form.get("act", "Gelu") else ())
    assert len(rep.program.steps) == 1 and steps[0].fused == expect
    assert "BoundTokenGemm" in bound_types(rep.program.schedule)
    got = rep.run(feeds)[0]
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5
    assert_matches_ort(model, feeds, threads=threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_transposed_view_input_runs_through_blas_and_the_residual_survives(threads):
    """A Transpose is a view, so the MatMul's rows are not contiguous and the
    C call refuses them: BLAS on the token panels, then bias, residual and
    activation; the output may have taken the residual's buffer (in place),
    which must not be read after the product overwrote it."""
    model, feeds, want = linear_model((2, 96, 49), 96, transpose_in=True)
    rep = lco.prepare(model, threads=threads)
    got = rep.run(feeds)[0]
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5
    assert_matches_ort(model, feeds, threads=threads)


def test_the_token_gemm_workspace_is_in_the_memory_plan():
    """The packed rows (m x k, m rounded up to the tile's MR) are lent by the
    schedule: its workspace is at least that."""
    from leanconv import _core, _isa
    model, feeds, _ = linear_model((197, 768), 64)
    rep = lco.prepare(model)
    rep.run(feeds)
    assert rep.program.schedule.workspace >= _core.token_gemm_workspace(197, 768, _isa.isa_id())


@pytest.mark.parametrize("threads", [1, 2])
def test_a_strided_residual_is_copied_into_the_output_then_added_in_place(threads):
    """MaxViT's grid attention adds its input back through the partition's
    Transpose: the residual is a strided view, which the token GEMM cannot
    read, so the step binds as a sequence -- the residual's copy into y, then
    the GEMM adding y in place -- instead of NumPy's BLAS and epilogue."""
    g = np.random.default_rng(21)
    w = (g.standard_normal((16, 24)) / 4).astype(np.float32)
    b = g.standard_normal(24).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["mb"]),
             helper.make_node("Transpose", ["r"], ["rt"], perm=[0, 2, 1]),
             helper.make_node("Add", ["mb", "rt"], ["y"])]
    model = make_model(nodes, [("x", (1, 40, 16)), ("r", (1, 24, 40))], [("y", (1, 40, 24))],
                       [("w", w), ("b", b)])
    feeds = {"x": g.standard_normal((1, 40, 16)).astype(np.float32),
             "r": g.standard_normal((1, 24, 40)).astype(np.float32)}
    assert_matches_ort(model, feeds, threads=threads)
    rep = lco.prepare(model, threads=threads)
    for _ in range(2):
        y = rep.run(feeds)[0]
        want = feeds["x"].astype(np.float64) @ w + b + feeds["r"].transpose(0, 2, 1)
        assert np.max(np.abs(y - want)) < 1e-5 * np.max(np.abs(want))
    assert "BoundSequence" in bound_types(rep.program.schedule)
