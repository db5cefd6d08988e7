"""The squeeze-and-excitation block in one C call (kernels/se_block.c, the
ISAs' gemv16 panels) against a float64 reference on every ISA.  The
leanconv.onnx rewrite that uses it: tests/test_onnx_se_block.py."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core, _epilogue, _isa
from reference import activation_ref

ACTS = [None, "relu", "silu", "hardswish", ("hardsigmoid", 0.2, 0.5), "sigmoid"]


def packed(w):
    out = np.empty(_core.se_packed_floats(*w.shape), np.float32)
    _core.se_pack(np.ascontiguousarray(w, np.float32).reshape(-1), out, *w.shape)
    return out


def se_reference(x, w1, b1, act1, w2, b2, gate):
    """float64: x * gate(W2 act1(W1 mean(x) + b1) + b2) per image and channel."""
    x = x.astype(np.float64)
    p = x.mean(axis=(2, 3))                                      # (n, c)
    h = activation_ref(p @ w1.T.astype(np.float64) + (0 if b1 is None else b1), act1)
    g = activation_ref(h @ w2.T.astype(np.float64) + (0 if b2 is None else b2), gate)
    return x * g[:, :, None, None]


def run_se(x, w1, b1, act1, w2, b2, gate, out=None, threads=1):
    n, c, h, w = x.shape
    r = w1.shape[0]
    y = np.empty_like(x) if out is None else out
    _core.se_block(x.reshape(-1), y.reshape(-1), n, c, h * w, packed(w1), b1, r,
                   _epilogue.parse(act1), packed(w2), b2, _epilogue.parse(gate), threads,
                   _isa.isa_id())
    return y


@pytest.mark.parametrize("n, c, r, hw", [(1, 1, 1, (1, 1)), (1, 5, 3, (3, 3)), (2, 16, 4, (4, 4)),
                                         (1, 17, 33, (2, 3)), (1, 72, 24, (16, 16)),
                                         (1, 240, 60, (1, 1)), (2, 37, 19, (7, 5))])
@pytest.mark.parametrize("act1, gate", [("relu", ("hardsigmoid", 0.2, 0.5)), ("silu", "sigmoid"),
                                        (None, None), ("hardswish", "sigmoid")])
def test_se_block_matches_float64(isa, n, c, r, hw, act1, gate):
    g = np.random.default_rng(c * 100 + r)
    x = g.standard_normal((n, c) + hw).astype(np.float32)
    w1 = (g.standard_normal((r, c)) / np.sqrt(c)).astype(np.float32)
    w2 = (g.standard_normal((c, r)) / np.sqrt(r)).astype(np.float32)
    b1 = g.standard_normal(r).astype(np.float32) if c % 2 else None
    b2 = g.standard_normal(c).astype(np.float32)
    want = se_reference(x, w1, b1, act1, w2, b2, gate)
    got = run_se(x, w1, b1, act1, w2, b2, gate)
    assert np.max(np.abs(got - want)) <= 1e-5 * max(np.max(np.abs(want)), 1.0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_se_block_in_place_and_threads_give_the_same_bits(isa, threads):
    g = np.random.default_rng(5)
    c, r = 96, 40
    x = g.standard_normal((2, c, 9, 9)).astype(np.float32)
    w1, w2 = g.standard_normal((r, c)).astype(np.float32), g.standard_normal((c, r)).astype(np.float32)
    b1, b2 = g.standard_normal(r).astype(np.float32), g.standard_normal(c).astype(np.float32)
    one = run_se(x, w1, b1, "relu", w2, b2, "sigmoid")
    xs = x.copy()
    run_se(xs, w1, b1, "relu", w2, b2, "sigmoid", out=xs, threads=threads)
    np.testing.assert_array_equal(xs, one)


@pytest.mark.parametrize("c, hw", [(32, (64, 64)), (144, (32, 32)), (37, (45, 45))])
def test_se_block_split_over_threads_gives_the_same_bits(isa, c, hw):
    """Tensors big enough that the pool and the scaling go out in tasks of
    whole planes over 2-4 threads (EfficientNet-B0's first SE block: 32@64x64
    in tasks of 4 planes; a last task of fewer planes): the bits of 1 thread,
    in place too, and the float64 reference's values."""
    g = np.random.default_rng(c)
    r = max(1, c // 4)
    x = g.standard_normal((1, c) + hw).astype(np.float32)
    w1 = (g.standard_normal((r, c)) / np.sqrt(c)).astype(np.float32)
    w2 = (g.standard_normal((c, r)) / np.sqrt(r)).astype(np.float32)
    b1, b2 = g.standard_normal(r).astype(np.float32), g.standard_normal(c).astype(np.float32)
    one = run_se(x, w1, b1, "silu", w2, b2, "sigmoid")
    want = se_reference(x, w1, b1, "silu", w2, b2, "sigmoid")
    assert np.max(np.abs(one - want)) <= 1e-5 * max(np.max(np.abs(want)), 1.0)
    for threads in (2, 3, 4):
        np.testing.assert_array_equal(run_se(x, w1, b1, "silu", w2, b2, "sigmoid",
                                             threads=threads), one)
        xs = x.copy()
        run_se(xs, w1, b1, "silu", w2, b2, "sigmoid", out=xs, threads=threads)
        np.testing.assert_array_equal(xs, one)


def test_se_block_refuses_mismatched_buffers():
    x = np.zeros(2 * 4 * 9, np.float32)
    w1p, w2p = packed(np.zeros((3, 4), np.float32)), packed(np.zeros((4, 3), np.float32))
    isa = _isa.isa_id()
    with pytest.raises(ValueError, match="n \\* c \\* hw"):
        _core.se_block(x, np.zeros(5, np.float32), 2, 4, 9, w1p, None, 3, None, w2p, None, None,
                       1, isa)
    with pytest.raises(ValueError, match="packed weights"):
        _core.se_block(x, x, 2, 4, 9, w2p[:-16], None, 3, None, w2p, None, None, 1, isa)
    with pytest.raises(ValueError, match="b1"):
        _core.se_block(x, x, 2, 4, 9, w1p, np.zeros(4, np.float32), 3, None, w2p, None, None,
                       1, isa)
    with pytest.raises(ValueError, match="b2 must hold 4 floats"):
        _core.se_block(x, x, 2, 4, 9, w1p, None, 3, None, w2p, np.zeros(3, np.float32), None,
                       1, isa)
    with pytest.raises(ValueError, match="dtype mismatch"):
        _core.se_block(x, x, 2, 4, 9, w1p, np.zeros(3), 3, None, w2p, None, None, 1, isa)
    with pytest.raises(ValueError, match="positive"):
        _core.se_block(x, x, 2, 4, 9, w1p, None, 0, None, w2p, None, None, 1, isa)
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.se_pack(np.zeros(12, np.float32), np.zeros(3, np.float32), 3, 4)
