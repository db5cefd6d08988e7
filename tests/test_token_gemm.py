"""kernels/token_gemm.c (leanconv._core.token_gemm: a dense layer over many
rows, a transformer's tokens by a constant matrix) against a float64
reference on every ISA: row counts around the GEMM tile's MR, column counts
around its panel width (NR, or the wide tile's), k across kc blocks; bias,
residual (also in place) and activations; the same bits at 1, 2 and 3
threads; and its argument checks.  The ONNX side (MatMul + Add + Add + Gelu
as one step): tests/test_onnx_token_dense.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import ISAS
from leanconv import _core, _epilogue, _isa, _scratch


def packed(w, isa):
    out = np.empty(_core.token_packed_floats(*w.shape, isa), np.float32)
    _core.token_pack(w, out, isa)
    return out


def reference(x, w, b, res, activation):
    y = x.astype(np.float64) @ w.T.astype(np.float64)
    if b is not None:
        y += b
    if res is not None:
        y += res
    if activation == "relu":
        y = np.maximum(y, 0)
    elif activation == "gelu":
        y = 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))
    return y


def run(x, wp, n, b, res, activation, threads, isa, out=None):
    m, k = x.shape
    y = np.full((m, n), np.nan, np.float32) if out is None else out
    ws = _scratch.aligned_empty(max(64, _core.token_gemm_workspace(m, k, isa)))
    _core.token_gemm(x.reshape(-1), y.reshape(-1), m, k, n, wp, b,
                     None if res is None else res.reshape(-1), _epilogue.parse(activation),
                     threads, isa, ws)
    return y


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, k, n", [
    (1, 1, 1),
    (7, 3, 31),        # fewer rows than MR, a partial panel
    (9, 40, 48),       # one wide panel, a second row panel of one row
    (13, 300, 49),     # k over two kc blocks, one column past a wide panel
    (25, 257, 97),     # remainder panels of 1 and more columns
    (197, 64, 288),    # ViT's rows, Swin's qkv width
    (50, 520, 130),
])
@pytest.mark.parametrize("b_on, res_on, activation", [
    (True, False, None), (False, False, None), (True, True, None), (True, False, "gelu"),
    (False, True, "relu"),
])
def test_token_gemm_matches_float64_with_the_same_bits_at_every_thread_count(
        isa, m, k, n, b_on, res_on, activation):
    g = np.random.default_rng(m * 1000 + k + n)
    x = g.standard_normal((m, k)).astype(np.float32)
    w = g.standard_normal((n, k)).astype(np.float32)
    b = g.standard_normal(n).astype(np.float32) if b_on else None
    res = g.standard_normal((m, n)).astype(np.float32) if res_on else None
    iid = _isa.isa_id(isa)
    wp = packed(w, iid)
    outs = [run(x, wp, n, b, res, activation, t, iid) for t in (1, 2, 3)]
    want = reference(x, w, b, res, activation)
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


@pytest.mark.parametrize("isa", ISAS)
def test_residual_in_place_and_weights_from_a_transposed_view(isa):
    """out may be the residual itself (a fused residual Add whose output took
    the residual's buffer); W packed from MatMul's (k x n) as its transpose
    view packs the same as from a contiguous copy."""
    g = np.random.default_rng(1)
    m, k, n = 33, 70, 100
    x = g.standard_normal((m, k)).astype(np.float32)
    wt = g.standard_normal((k, n)).astype(np.float32)
    b = g.standard_normal(n).astype(np.float32)
    res = g.standard_normal((m, n)).astype(np.float32)
    iid = _isa.isa_id(isa)
    wp = packed(wt.T, iid)
    np.testing.assert_array_equal(wp, packed(np.ascontiguousarray(wt.T), iid))
    apart = run(x, wp, n, b, res, None, 2, iid)
    inplace = res.copy()
    run(x, wp, n, b, inplace, None, 2, iid, out=inplace)
    np.testing.assert_array_equal(inplace, apart)
    np.testing.assert_allclose(apart, reference(x, wt.T, b, res, None), rtol=1e-4, atol=1e-3)


def test_token_gemm_refuses_bad_arguments_by_name():
    m, k, n = 4, 8, 5
    x = np.ones(m * k, np.float32)
    y = np.empty(m * n, np.float32)
    wp = packed(np.ones((n, k), np.float32), 0)
    with pytest.raises(ValueError, match="m, k and n"):
        _core.token_gemm(x, y, 0, k, n, wp, None, None, None, 1)
    with pytest.raises(ValueError, match="x must hold"):
        _core.token_gemm(x[:-1], y, m, k, n, wp, None, None, None, 1)
    with pytest.raises(ValueError, match="packed weights"):
        _core.token_gemm(x, y, m, k, n, wp[:-1], None, None, None, 1)
    with pytest.raises(ValueError, match="threads"):
        _core.token_gemm(x, y, m, k, n, wp, None, None, None, 0)
    with pytest.raises(ValueError, match="b must hold"):
        _core.token_gemm(x, y, m, k, n, wp, np.ones(n + 1, np.float32), None, None, 1)
    with pytest.raises(ValueError, match="res must hold"):
        _core.token_gemm(x, y, m, k, n, wp, None, np.ones(3, np.float32), None, 1)
    with pytest.raises(ValueError, match="workspace of 64 bytes"):
        _core.token_gemm(x, y, m, k, n, wp, None, None, None, 1,
                         workspace=_scratch.aligned_empty(64))
    with pytest.raises(ValueError, match="out must not be x"):
        sq = np.ones(m * m, np.float32)
        _core.token_gemm(sq, sq, m, m, m, packed(np.ones((m, m), np.float32), 0), None, None,
                         None, 1)
    with pytest.raises(ValueError, match="n and k must be positive"):
        _core.token_packed_floats(0, 3)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 47, 48, 49, 100, 1000])
def test_gemv_panels_rewritten_in_place_as_the_token_panels(isa, n):
    """_dense.to_tokens turns the gemv's 16-row panels into the token GEMM's
    one run of rows at a time inside the same array (no copy of W): the
    same floats as packing W afresh."""
    from leanconv import _dense
    k = 37
    w = np.random.default_rng(n).standard_normal((n, k)).astype(np.float32)
    iid = _isa.isa_id(isa)
    wp = _dense.pack(w, capacity=_core.token_packed_floats(n, k, iid))
    got = _dense.to_tokens(wp, n, k, iid)
    np.testing.assert_array_equal(got, packed(w, iid))
