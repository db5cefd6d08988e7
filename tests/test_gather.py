"""kernels/gather.c (leanconv._core.gather_runs): runs of floats copied from
offsets on 1 and 2 threads, in any order, many runs and one; bad offsets and
output sizes refused.  (leanconv.onnx's use of it, the channel shuffle, is
tested against onnxruntime in test_onnx_adapter.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from leanconv import _core


@pytest.mark.parametrize("runs, run", [(6, 160), (3000, 17), (1, 5000)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gather_runs_copies_each_run_from_its_offset(runs, run, threads):
    rng = np.random.default_rng(runs)
    x = rng.standard_normal(runs * run).astype(np.float32)
    offsets = rng.permutation(runs).astype(np.int64) * run
    out = np.full(runs * run, np.nan, np.float32)
    _core.gather_runs(x, out, offsets, run, threads)
    np.testing.assert_array_equal(out, x.reshape(runs, run)[offsets // run].reshape(-1))


def test_gather_runs_refuses_runs_past_the_end_and_a_wrong_output():
    x = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="offsets"):
        _core.gather_runs(x, np.empty(20, np.float32), np.array([0, 91], np.int64), 10, 1)
    with pytest.raises(ValueError, match="offsets"):
        _core.gather_runs(x, np.empty(10, np.float32), np.array([-1], np.int64), 10, 1)
    with pytest.raises(ValueError, match="runs of"):
        _core.gather_runs(x, np.empty(19, np.float32), np.array([0, 10], np.int64), 10, 1)
