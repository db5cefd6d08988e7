"""The depthwise band micro-kernel (lc_dw_band_fn: any kernel size, stride
and dilation over a zero-padded, phase-split band), called directly through
ctypes on every ISA, against a float64 evaluation of its contract.  The band
ends exactly where the contract lets the kernel read and the output exactly
at its last float, both flush against PROT_NONE pages (Linux): a read or
write past them faults the run.  Then whole layers through the API: every
kernel size 1-7, strides 1-3, dilation, channel multipliers, planes split
into several bands and rows too wide for the band buffer."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from test_depthwise_kernels import Epilogue, fenced

import leanconv as lc
from leanconv import _core
from reference import conv2d_ref

_lib = ctypes.CDLL(_core.__file__)
BAND_ISAS = [isa for isa in lc.available_isas() if hasattr(_lib, f"lc_f32_dw_band__{isa}")]
LANES = 16  # LC_DW_BAND_LANES
_fp = ctypes.POINTER(ctypes.c_float)
_sz = ctypes.c_size_t


def band_fn(isa):
    f = getattr(_lib, f"lc_f32_dw_band__{isa}")
    f.restype = None
    f.argtypes = [_fp, _sz, _sz, _sz, _fp, _sz, _sz, ctypes.POINTER(_sz), _fp, _sz, _sz,
                  ctypes.c_float, ctypes.POINTER(Epilogue)]
    return f


def up(a, m=LANES):
    return -(-a // m) * m


def run_band(isa, rows, n, kH, kW, sh, sw, dh, dw, seed, clamp=None, nan=False, ldo_extra=0):
    r = np.random.default_rng(seed)
    reach = (kW - 1) * dw
    wq = up(n) + up(reach // sw + 1)        # as the driver lays a phase out
    rs = sw * wq
    coff = [((kx * dw) % sw) * wq + (kx * dw) // sw for kx in range(kW)]
    row_step, tap_step = sh * rs, dh * rs
    # the furthest float the contract allows the kernel to read, plus one
    extent = (rows - 1) * row_step + (kH - 1) * tap_step + up(max(coff) + 1) + up(n)
    p = fenced(extent)
    p[:] = r.standard_normal(extent).astype(np.float32)
    if nan:
        p[r.integers(extent)] = np.nan
    w = r.standard_normal(kH * kW).astype(np.float32)
    bias = float(r.standard_normal())
    ldo = n + ldo_extra
    out = fenced((rows - 1) * ldo + n)
    out[:] = 12345.0
    ep = Epilogue(*(clamp if clamp else (0.0, 0.0)), 1 if clamp else 0)
    coff_arr = (_sz * kW)(*coff)
    band_fn(isa)(out.ctypes.data_as(_fp), ldo, rows, n, p.ctypes.data_as(_fp), row_step,
                 tap_step, coff_arr, w.ctypes.data_as(_fp), kH, kW, bias, ctypes.byref(ep))
    p64 = p.astype(np.float64)
    wt = w.astype(np.float64)
    taps = [(ky * tap_step + coff[kx], ky * kW + kx) for ky in range(kH) for kx in range(kW)]
    idx = (np.arange(rows)[:, None, None] * row_step + np.array([t for t, _ in taps])[None, :, None]
           + np.arange(n)[None, None, :])             # (rows, taps, n)
    tap = p64[idx]
    wv = wt[[i for _, i in taps]]
    want = bias + np.einsum("rtn,t->rn", tap, wv)
    scale = abs(bias) + np.einsum("rtn,t->rn", np.abs(np.nan_to_num(tap)), np.abs(wv))
    if clamp is not None:
        isnan = np.isnan(want)
        want = np.clip(want, *clamp)
        want[isnan] = np.nan
    got = np.stack([out[rr * ldo:rr * ldo + n] for rr in range(rows)]).astype(np.float64)
    what = f"{isa} rows={rows} n={n} k={kH}x{kW} s=({sh},{sw}) d=({dh},{dw})"
    assert np.array_equal(np.isnan(got), np.isnan(want)), what + ": NaN pattern"
    ok = ~np.isnan(want)
    err = np.abs(got - want)[ok]
    assert np.all(err <= 2e-6 * scale[ok] + 1e-30), f"{what}: max err {err.max()}"
    if ldo_extra:  # the gaps between output rows are not written
        for rr in range(rows - 1):
            assert np.all(out[rr * ldo + n:(rr + 1) * ldo] == 12345.0), what


pytestmark = pytest.mark.skipif(not BAND_ISAS, reason="no band kernel in this build")

WIDTHS = (1, 3, 8, 14, 15, 16, 17, 31, 32, 33, 56)


@pytest.mark.parametrize("isa", BAND_ISAS)
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_band_unrolled_kernels_edge_widths_and_rows(isa, k, stride):
    """The unrolled copies (k 3/5/7, stride 1/2, dilation 1): every row
    blocking (8, 4, 2, 1 rows; one and two vectors) and partial vectors."""
    seed = 100 * k + 10 * stride
    for n in WIDTHS:
        for rows in (1, 2, 3, 7, 8, 9, 14, 15):
            seed += 1
            run_band(isa, rows, n, k, k, stride, stride, 1, 1, seed)


@pytest.mark.parametrize("isa", BAND_ISAS)
def test_band_general_kernels(isa):
    """Kernel shapes, strides and dilations that take the general loop."""
    seed = 5000
    for kH, kW in ((1, 1), (2, 4), (4, 2), (1, 7), (7, 1), (6, 6), (9, 9), (3, 11)):
        for sh, sw in ((1, 1), (2, 2), (3, 3), (1, 3), (2, 1)):
            for dh, dw in ((1, 1), (2, 2), (1, 3)):
                for n, rows in ((1, 1), (15, 3), (17, 9), (33, 5)):
                    seed += 1
                    run_band(isa, rows, n, kH, kW, sh, sw, dh, dw, seed)


@pytest.mark.parametrize("isa", BAND_ISAS)
def test_band_clamp_nan_and_output_stride(isa):
    for i, (k, s, n, rows) in enumerate(((7, 1, 14, 14), (5, 2, 28, 9), (3, 1, 56, 4),
                                         (7, 2, 17, 3), (4, 3, 10, 6))):
        run_band(isa, rows, n, k, k, s, s, 1, 1, 9000 + i, clamp=(0.0, 6.0), nan=True)
        run_band(isa, rows, n, k, k, s, s, 1, 1, 9100 + i, clamp=(-1.0, float("inf")))
        run_band(isa, rows, n, k, k, s, s, 1, 1, 9200 + i, nan=True, ldo_extra=5)


CASES = [  # C, H, W, k, stride, dilation, padding, multiplier
    (3, 14, 14, 7, 1, 1, 3, 1), (4, 19, 23, 5, 2, 1, 2, 2), (2, 9, 30, 7, 2, 1, 3, 3),
    (3, 11, 12, 4, 1, 1, 1, 1), (2, 13, 17, 3, 3, 1, 1, 2), (2, 16, 15, 3, 1, 2, 2, 1),
    (2, 12, 12, 5, 1, 2, 0, 1), (1, 7, 7, 7, 1, 1, 0, 2), (2, 6, 5, 1, 2, 1, 0, 1),
    (2, 40, 300, 7, 1, 1, 3, 1),   # several bands per plane
    (1, 70, 200, 5, 2, 1, 2, 1),   # several bands, stride 2
    (1, 3, 7000, 5, 1, 1, 2, 1),   # rows wider than the band buffer: per-row path
]


@pytest.mark.parametrize("isa", lc.available_isas())
@pytest.mark.parametrize("case", CASES, ids=lambda c: "C{}_{}x{}_k{}_s{}_d{}_p{}_m{}".format(*c))
def test_depthwise_any_kernel_through_the_api(isa, case):
    C, H, W, k, s, d, p, mult = case
    r = np.random.default_rng(abs(hash(case)) % 2**32)
    x = r.standard_normal((2, C, H, W)).astype(np.float32)
    w = r.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = r.standard_normal(C * mult).astype(np.float32)
    with lc.use_isa(isa):
        y = lc.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=C,
                      algorithm="depthwise", activation="relu6")
        y2 = lc.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=C,
                       algorithm="depthwise", activation="relu6", threads=2)
    want, scale = conv2d_ref(x, w, b, (s, s), (p,) * 4, (d, d), C, clamp=(0.0, 6.0))
    assert y.shape == want.shape
    assert np.max(np.abs(y - want) / scale) < 2e-6
    assert np.array_equal(y, y2)  # any thread count, the same bits
