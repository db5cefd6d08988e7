"""kernels/softmax.c (leanconv._core.softmax, over contiguous rows) against a
float64 reference: a classifier's row, many short rows over threads, large
logits, -inf entries, a NaN, in place; the same bits at every thread count;
and the argument checks."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core


def reference(x):
    z = x.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("rows, n, scale", [(1, 1000, 1.0), (37, 9, 5.0), (4, 1, 1.0),
                                            (3, 300, 80.0)])
def test_softmax_matches_float64_with_the_same_bits_at_every_thread_count(rows, n, scale):
    x = (np.random.default_rng(n).standard_normal((rows, n)) * scale).astype(np.float32)
    if n > 2:
        x[0, 1] = -np.inf
    outs = []
    for threads in (1, 2, 3):
        y = np.full(x.size, np.nan, np.float32)
        _core.softmax(x.reshape(-1), y, rows, n, threads)
        outs.append(y.reshape(rows, n))
    np.testing.assert_allclose(outs[0], reference(x), rtol=2e-6, atol=1e-7)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])


def test_softmax_in_place_and_a_nan_row():
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    x[1, 4] = np.nan
    want = reference(np.nan_to_num(x))
    y = x.copy().reshape(-1)
    _core.softmax(y, y, 3, 8, 2)
    y = y.reshape(3, 8)
    assert np.isnan(y[1]).all()   # as NumPy: the row's max is a NaN
    np.testing.assert_allclose(y[[0, 2]], want[[0, 2]], rtol=2e-6, atol=1e-7)


def test_softmax_refuses_sizes_that_do_not_match():
    x = np.zeros(12, np.float32)
    with pytest.raises(ValueError, match="rows \\* n"):
        _core.softmax(x, np.zeros(11, np.float32), 3, 4, 1)
    with pytest.raises(ValueError, match="rows \\* n"):
        _core.softmax(x, x, 3, 5, 1)
    with pytest.raises(ValueError, match="n >= 1"):
        _core.softmax(x[:0], x[:0], 0, 0, 1)
