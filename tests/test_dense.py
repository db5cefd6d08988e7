"""kernels/dense.c (leanconv._core.dense: a fully connected layer on a few
vectors, the classifier of a CNN) against a float64 reference on every ISA,
the same bits at 1, 2 and 3 threads, and its argument checks (leanconv.onnx's
Gemm / MatMul on it: tests/test_onnx_dense.py)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ISAS
from leanconv import _core, _isa


def packed(w):
    out = np.empty(_core.se_packed_floats(*w.shape), np.float32)
    _core.se_pack(np.ascontiguousarray(w).reshape(-1), out, *w.shape)
    return out


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n, rows, k, bias", [(1, 1000, 1024, True),   # DenseNet's classifier
                                              (3, 17, 5, False),       # a partial panel, k < 4
                                              (2, 16, 33, True),       # one full panel
                                              (1, 1, 1, True)])
def test_dense_matches_float64_with_the_same_bits_at_every_thread_count(isa, n, rows, k, bias):
    g = np.random.default_rng(rows + k)
    x = g.standard_normal((n, k)).astype(np.float32)
    w = g.standard_normal((rows, k)).astype(np.float32)
    b = g.standard_normal(rows).astype(np.float32) if bias else None
    want = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    wp = packed(w)
    outs = []
    for threads in (1, 2, 3):
        y = np.full(n * rows, np.nan, np.float32)
        _core.dense(x.reshape(-1), y, n, rows, k, wp, b, threads, _isa.isa_id(isa))
        outs.append(y.reshape(n, rows))
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


def test_dense_refuses_buffers_that_do_not_match():
    x, y = np.zeros(8, np.float32), np.zeros(6, np.float32)
    wp = packed(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="x must hold"):
        _core.dense(x, y, 2, 3, 5, wp, None, 1, 0)
    with pytest.raises(ValueError, match="packed weights"):
        _core.dense(x, y, 2, 3, 4, wp[:-1], None, 1, 0)
    with pytest.raises(ValueError, match="b must hold"):
        _core.dense(x, y, 2, 3, 4, wp, np.zeros(2, np.float32), 1, 0)
    with pytest.raises(ValueError, match="positive"):
        _core.dense(x, y, 0, 3, 4, wp, None, 1, 0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bound_dense_gives_the_bits_of_dense(isa, threads):
    g = np.random.default_rng(threads)
    n, rows, k = 2, 45, 70
    x = g.standard_normal(n * k).astype(np.float32)
    wp = packed(g.standard_normal((rows, k)).astype(np.float32))
    b = g.standard_normal(rows).astype(np.float32)
    want = np.empty(n * rows, np.float32)
    _core.dense(x, want, n, rows, k, wp, b, threads, _isa.isa_id(isa))
    y = np.full(n * rows, np.nan, np.float32)
    call = _core.BoundDense(x, y, n, rows, k, wp, b, threads, _isa.isa_id(isa))
    _core.run_bound((call,), np.zeros(0, np.uint8))
    assert y.tobytes() == want.tobytes()
    x[:] = g.standard_normal(n * k)     # bound to the buffers: a new input is read in place
    _core.dense(x, want, n, rows, k, wp, b, threads, _isa.isa_id(isa))
    _core.run_bound((call,), np.zeros(0, np.uint8))
    assert y.tobytes() == want.tobytes()


def test_bound_dense_checks_its_buffers_and_threads():
    x, y = np.zeros(8, np.float32), np.zeros(6, np.float32)
    wp = packed(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="x must hold"):
        _core.BoundDense(x, y, 2, 3, 5, wp, None, 1)
    with pytest.raises(ValueError, match="packed weights"):
        _core.BoundDense(x, y, 2, 3, 4, wp[:-1], None, 1)
    with pytest.raises(ValueError, match="b must hold"):
        _core.BoundDense(x, y, 2, 3, 4, wp, np.zeros(4, np.float32), 1)
    with pytest.raises(ValueError, match="threads"):
        _core.BoundDense(x, y, 2, 3, 4, wp, None, 0)


def test_dense_bind_refuses_what_the_kernel_does_not_take():
    from leanconv import _dense
    wp = packed(np.zeros((3, 4), np.float32))
    y = np.zeros((2, 3), np.float32)
    assert _dense.bind(np.zeros((2, 4), np.float32), y, wp, None, 3, 1) is not None
    assert _dense.bind(np.zeros((2, 8), np.float32)[:, ::2], y, wp, None, 3, 1) is None
    assert _dense.bind(np.zeros((2, 4), np.float64), y, wp, None, 3, 1) is None
    assert _dense.bind(np.zeros((9, 4), np.float32), np.zeros((9, 3), np.float32), wp, None, 3,
                       1) is None     # more rows than _dense.MAX_ROWS: BLAS's job


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("activation", ["hardswish", "relu", "relu6", "gelu"])
def test_dense_applies_an_activation_as_the_separate_pass_would(isa, activation):
    """act(W x + b) in the kernel (each panel's outputs as they are written:
    MobileNetV3's 960>1280 HardSwish head) gives the bits of dense() then
    leanconv's elementwise activation pass, at every thread count."""
    from leanconv import _epilogue
    g = np.random.default_rng(11)
    n, rows, k = 2, 53, 70   # a partial last panel
    x = g.standard_normal((n, k)).astype(np.float32)
    w = g.standard_normal((rows, k)).astype(np.float32)
    b = g.standard_normal(rows).astype(np.float32)
    wp = packed(w)
    plain = np.empty(n * rows, np.float32)
    _core.dense(x.reshape(-1), plain, n, rows, k, wp, b, 1, _isa.isa_id(isa))
    with _isa.use_isa(isa):
        want = _epilogue.activate(plain, activation, threads=1)
    assert not np.array_equal(want, plain)   # the activation changed something
    for threads in (1, 2, 3):
        y = np.full(n * rows, np.nan, np.float32)
        _core.dense(x.reshape(-1), y, n, rows, k, wp, b, threads, _isa.isa_id(isa),
                    _epilogue.parse(activation))
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("n, k", [(1000, 1280), (48, 7), (3, 1)])
def test_packed_panels_start_on_a_cache_line(n, k):
    """Every packing of W (pack, pack_rows, pack_columns, and the token GEMM's
    panels rewritten over it) starts 64-byte aligned, whatever NumPy's own
    alignment: the kernels' vector loads of a panel row then never straddle
    two cache lines (a token GEMM read ~8% slower from panels 16 bytes off)."""
    from leanconv import _dense
    w = np.random.default_rng(0).standard_normal((n, k)).astype(np.float32)
    room = _core.token_packed_floats(n, k, _isa.isa_id())
    packs = [_dense.pack(w, capacity=room),
             _dense.pack_rows(lambda a, b: w[a:b], n, k, capacity=room),
             _dense.pack_columns(lambda a, b: w.T[a:b], n, k, capacity=room)]
    floats = _core.se_packed_floats(n, k)
    for p in packs:
        assert p.ctypes.data % 64 == 0
        np.testing.assert_array_equal(p[:floats], packs[0][:floats])
    tokens = _dense.to_tokens(packs[1], n, k, _isa.isa_id())
    assert tokens is not None and tokens.ctypes.data % 64 == 0
