"""leanconv._fold.fold_linear_affine, the one fold of a per-input-channel
affine (a channels-last LayerNorm's scale and shift) and a per-output scale
(ConvNeXt's layer scale) into a linear map, which leanconv.onnx's
channels-first rewrite and frozen torch models both use: against a float64
reference for every combination, in place on a writeable float32 weight."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from leanconv._fold import fold_linear_affine

M, C = 7, 5


@pytest.mark.parametrize("bias, scale, shift, out", list(itertools.product([False, True], repeat=4)))
@pytest.mark.parametrize("shape", [(M, C), (M, C, 1, 1)])
def test_fold_matches_the_unfolded_map(bias, scale, shift, out, shape):
    g = np.random.default_rng(sum((bias, scale, shift, out)))
    w = g.standard_normal(shape).astype(np.float32)
    b = g.standard_normal(M).astype(np.float32) if bias else None
    s = (0.5 + g.random(C)).astype(np.float32) if scale else None
    t = g.standard_normal(C).astype(np.float32) if shift else None
    o = (0.5 + g.random(M)).astype(np.float32) if out else None
    x = g.standard_normal((C, 3))
    w64 = w.reshape(M, C).astype(np.float64)
    xin = x * (1 if s is None else s[:, None]) + (0 if t is None else t[:, None])
    want = (w64 @ xin + (0 if b is None else b[:, None])) * (1 if o is None else o[:, None])
    wf, bf = fold_linear_affine(w, b, in_scale=s, in_shift=t, out_scale=o)
    assert wf is w and wf.shape == shape and bf.dtype == np.float32 and bf.shape == (M,)
    got = wf.reshape(M, C).astype(np.float64) @ x + bf[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_read_only_or_float64_weight_is_copied():
    w = np.ones((M, C), np.float32)
    w.flags.writeable = False
    wf, _ = fold_linear_affine(w, None, in_scale=np.full(C, 2.0, np.float32))
    assert wf is not w and np.all(w == 1) and np.all(wf == 2)
    w64 = np.ones((M, C))
    wf, _ = fold_linear_affine(w64, None, out_scale=np.full(M, 3.0))
    assert wf.dtype == np.float32 and np.all(w64 == 1) and np.all(wf == 3)
