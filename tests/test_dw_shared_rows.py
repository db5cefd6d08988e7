"""Depthwise 5x5 / 7x7 at stride 1 on planes whose rows fill the vectors
(14-, 28-wide): the band path, whose kernel shares each input row's taps
between the output rows it feeds (dw_band_template.h), taken there before
channel blocks (lc_dw_prefer_band).  The micro-kernel's blocks of rows past
the ISA's accumulators (several equal blocks per column), then layers of
every plane width 1-17 with a channel count no lane width divides,
asymmetric padding, a channel multiplier, the fused residual and activation,
and 1 vs 2 threads (the same bits)."""
from __future__ import annotations

import numpy as np
import pytest
from test_dw_band_kernel import BAND_ISAS, run_band

import leanconv as lc
from reference import activation_ref, conv2d_ref


@pytest.mark.parametrize("isa", BAND_ISAS)
@pytest.mark.parametrize("k", [5, 7])
def test_shared_row_blocks_taller_than_the_accumulators(isa, k):
    seed = 700 + k
    for n in (1, 14, 17, 33):
        for rows in (16, 29, 30, 43):
            seed += 1
            run_band(isa, rows, n, k, k, 1, 1, 1, 1, seed)
    run_band(isa, 29, 14, k, k, 1, 1, 1, 1, seed + 1, clamp=(0.0, 6.0), nan=True, ldo_extra=3)


def _check(isa, C, H, W, k, pads, mult, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((1, C, H, W)).astype(np.float32)
    w = r.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = r.standard_normal(C * mult).astype(np.float32)
    want, scale = conv2d_ref(x, w, b, (1, 1), pads, (1, 1), C)
    res = r.standard_normal(want.shape).astype(np.float32)
    with lc.use_isa(isa):
        plan = lc.Conv2d(w, b, padding=pads, groups=C, algorithm="depthwise", activation="silu")
        y1 = plan(x, residual=res, threads=1)
        y2 = plan(x, residual=res, threads=2)
        y = lc.conv2d(x, w, b, padding=pads, groups=C, algorithm="depthwise",
                      activation="relu6")
    what = f"{isa} C={C} {H}x{W} k={k} pads={pads} m={mult}"
    assert y.shape == want.shape, what
    assert np.max(np.abs(y - np.clip(want, 0, 6)) / scale) < 2e-6, what
    want_r = activation_ref(want + res, "silu")
    assert np.max(np.abs(y1 - want_r) / (scale + np.abs(res))) < 4e-6, what
    assert np.array_equal(y1, y2), what


@pytest.mark.parametrize("isa", lc.available_isas())
@pytest.mark.parametrize("k", [5, 7])
def test_layers_every_plane_width(isa, k):
    """Square planes 1..17 (19 channels, 'same' padding): lane fills on
    either side of the band/channel-block rule on every lane width."""
    for n in range(1, 18):
        _check(isa, 19, n, n, k, (k // 2,) * 4, 1, 31 * k + n)


@pytest.mark.parametrize("isa", lc.available_isas())
def test_layers_padding_multiplier_and_tall_planes(isa):
    for i, (C, H, W, k, pads, mult) in enumerate((
            (17, 14, 14, 7, (3, 1, 0, 4), 1),   # asymmetric padding
            (16, 14, 14, 5, (0, 2, 2, 0), 1),
            (9, 14, 14, 7, (3, 3, 3, 3), 2),    # channel multiplier 2
            (20, 28, 28, 5, (2, 2, 2, 2), 1),   # 28 rows: two blocks a column
            (18, 30, 13, 7, (3, 3, 3, 3), 1),   # taller than wide
            (16, 15, 15, 7, (1, 1, 1, 1), 1))):  # less than 'same' padding
        _check(isa, C, H, W, k, pads, mult, 900 + i)
