"""_blas_split: a large float32 matrix product cut into blocks fixed by the
shapes alone, spread over Python threads each calling BLAS on one thread --
the same bits at any thread count, every block written once."""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _blas_split


@pytest.mark.parametrize("m,k,n", [(197, 768, 1000), (1100, 96, 384), (300, 64, 2000),
                                   (3, 40, 37), (40, 4096, 30)])
def test_split_products_match_float64_and_do_not_depend_on_threads(m, k, n):
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    ref = a.astype(np.float64) @ w.T.astype(np.float64)
    outs = []
    for threads in (1, 2, 3):
        y = np.full((m, n), np.nan, np.float32)
        assert _blas_split.matmul_into(a, w.T, y, threads) is y
        outs.append(y)
    assert np.max(np.abs(outs[0] - ref)) / np.max(np.abs(ref)) < 1e-5
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("m,k,n", [(197, 768, 3072), (3136, 96, 384), (784, 192, 576),
                                   (5, 3, 7), (64, 4096, 17)])
def test_blocks_tile_the_output_once_and_depend_on_the_shapes_alone(m, k, n):
    parts = _blas_split.blocks(m, k, n)
    seen = np.zeros((m, n), np.int32)
    for r, c in parts:
        seen[r, c] += 1
    assert (seen == 1).all()
    if m * k * n >= _blas_split.MIN_SPLIT_MACS and max(m, n) >= 2 * _blas_split.ROW_ALIGN:
        assert 2 <= len(parts) <= _blas_split.BLOCKS
    else:
        assert len(parts) == 1


@pytest.mark.parametrize("a_shape,b_shape", [((1, 12, 197, 64), (1, 12, 64, 197)),
                                             ((4, 3, 50, 40), (4, 3, 40, 300)),
                                             ((6, 5, 7), (6, 7, 2)),
                                             ((2, 1, 30, 8), (2, 1, 8, 30))])
def test_batched_products_match_float64_and_do_not_depend_on_threads(a_shape, b_shape):
    rng = np.random.default_rng(len(a_shape))
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    outs = []
    for threads in (1, 2, 3):
        y = np.full(ref.shape, np.nan, np.float32)
        assert _blas_split.batched_matmul_into(a, b, y, threads) is y
        outs.append(y)
    assert np.max(np.abs(outs[0] - ref)) / np.max(np.abs(ref)) < 1e-5
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_batch_blocks_split_the_first_batch_axis_of_more_than_one_matrix():
    parts = _blas_split.batch_blocks((1, 12, 197, 64), (1, 12, 64, 197))
    assert len(parts) == 6 and all(p[0] == slice(None) for p in parts)   # 2 heads a block
    assert _blas_split.batch_blocks((1, 12, 197, 64), (64, 197)) == [()]     # b broadcast
    assert _blas_split.batch_blocks((2, 3, 4), (2, 4, 5)) == [()]            # small
