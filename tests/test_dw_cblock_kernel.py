"""The channel-blocked depthwise kernels (lc_dw_cblock_kernels: L channels
interleaved, a vector per pixel) called directly through ctypes on every ISA
that has them, against a float64 evaluation of their contracts, with every
buffer flush against PROT_NONE pages (Linux): a read or write past what the
contract allows faults the run.  Then whole layers through the API with at
least L channels, where the driver takes this path: kernel sizes, strides,
dilations, paddings, multipliers, channel counts that leave a partial block,
the fused epilogue with a residual, batches and thread counts."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from test_depthwise_kernels import Epilogue
from test_depthwise_kernels import fenced as _fenced

import leanconv as lc
from leanconv import _core
from reference import activation_ref, conv2d_ref

_lib = ctypes.CDLL(_core.__file__)
LANES = {"avx512": 16, "avx2": 8, "neon": 4}  # the vector width of each ISA
CB_ISAS = [isa for isa in lc.available_isas() if hasattr(_lib, f"lc_f32_dw_cblock__{isa}")]
_fp = ctypes.POINTER(ctypes.c_float)
_sz = ctypes.c_size_t


def _fns(isa):
    row = getattr(_lib, f"lc_f32_dw_cblock__{isa}")
    row.restype = None
    row.argtypes = [_fp, _sz, ctypes.POINTER(_fp), _sz, _sz, _fp, _sz, _sz, _fp,
                    ctypes.POINTER(Epilogue)]
    inter = getattr(_lib, f"lc_f32_dw_cblock__{isa}_interleave")
    inter.restype = None
    inter.argtypes = [_fp, ctypes.POINTER(_fp), _sz, _sz]
    deinter = getattr(_lib, f"lc_f32_dw_cblock__{isa}_deinterleave")
    deinter.restype = None
    deinter.argtypes = [ctypes.POINTER(_fp), _sz, _fp, _sz]
    return row, inter, deinter


def fenced(nfloats):
    """A guarded array released with it (these tests make thousands)."""
    return _fenced(nfloats, keep=False)


def _ptr(a):
    return a.ctypes.data_as(_fp)


def run_row(isa, n, kH, kW, stride, dil, seed, clamp=None, nan=False):
    L = LANES[isa]
    row_fn = _fns(isa)[0]
    r = np.random.default_rng(seed)
    width = (n - 1) * stride + (kW - 1) * dil + 1  # pixels the taps reach
    rows = [fenced(width * L) for _ in range(kH)]
    for a in rows:
        a[:] = r.standard_normal(a.size).astype(np.float32)
    if nan:
        rows[kH // 2][r.integers(width * L)] = np.nan
    w = fenced(kH * kW * L)
    w[:] = r.standard_normal(w.size).astype(np.float32)
    bias = fenced(L)
    bias[:] = r.standard_normal(L).astype(np.float32)
    out = fenced(n * L)
    ep = Epilogue(*(clamp if clamp else (0.0, 0.0)), 1 if clamp else 0)
    ptrs = (_fp * kH)(*[_ptr(a) for a in rows])
    row_fn(_ptr(out), n, ptrs, stride, dil, _ptr(w), kH, kW, _ptr(bias), ctypes.byref(ep))
    X = np.stack([a.reshape(width, L) for a in rows]).astype(np.float64)  # (kH, width, L)
    W = w.reshape(kH, kW, L).astype(np.float64)
    cols = np.arange(n)[:, None] * stride + np.arange(kW)[None, :] * dil  # (n, kW)
    taps = X[:, cols, :]                                                   # (kH, n, kW, L)
    want = bias.astype(np.float64) + np.einsum("ynxc,yxc->nc", taps, W)
    scale = np.abs(bias) + np.einsum("ynxc,yxc->nc", np.abs(np.nan_to_num(taps)), np.abs(W))
    if clamp is not None:
        isnan = np.isnan(want)
        want = np.clip(want, *clamp)
        want[isnan] = np.nan
    got = out.reshape(n, L).astype(np.float64)
    what = f"{isa} n={n} k={kH}x{kW} s={stride} d={dil}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), what + ": NaN pattern"
    ok = ~np.isnan(want)
    err = np.abs(got - want)[ok]
    assert np.all(err <= 2e-6 * scale[ok] + 1e-30), f"{what}: max err {err.max()}"


pytestmark = pytest.mark.skipif(not CB_ISAS, reason="no channel-blocked kernels in this build")


@pytest.mark.parametrize("isa", CB_ISAS)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_row_every_block_size(isa, stride):
    """Widths 1-33 and 56 (every register block size and their splits),
    kernels 3, 5, 7 (5 and 7 wide at stride 1: the sliding window where the
    ISA has it), and non-square ones."""
    seed = 10 * stride
    for n in list(range(1, 34)) + [56]:
        for kH, kW in ((3, 3), (5, 5), (7, 7), (1, 4), (4, 1), (2, 7), (7, 5)):
            seed += 1
            run_row(isa, n, kH, kW, stride, 1, seed)


@pytest.mark.parametrize("isa", CB_ISAS)
def test_row_dilation_clamp_nan(isa):
    for i, (n, k, s, d) in enumerate(((14, 7, 1, 2), (7, 3, 2, 3), (28, 5, 1, 1), (9, 5, 2, 2))):
        run_row(isa, n, k, k, s, d, 700 + i)
        run_row(isa, n, k, k, s, d, 800 + i, clamp=(0.0, 6.0), nan=True)
        run_row(isa, n, k, k, s, d, 900 + i, clamp=(-1.0, float("inf")))


@pytest.mark.parametrize("isa", CB_ISAS)
def test_interleave_and_back_exact_extents(isa):
    """interleave reads src[c][off .. off+n) only and writes dst[0 .. n*L);
    deinterleave the converse: every n around the vector width, offsets."""
    L = LANES[isa]
    _, inter, deinter = _fns(isa)
    r = np.random.default_rng(5)
    for n in list(range(1, 3 * L + 2)):
        for off in (0, 1, 5):
            planes = [fenced(off + n) for _ in range(L)]
            for p in planes:
                p[:] = r.standard_normal(p.size).astype(np.float32)
            dst = fenced(n * L)
            inter(_ptr(dst), (_fp * L)(*[_ptr(p) for p in planes]), off, n)
            want = np.stack([p[off:] for p in planes], axis=1)  # (n, L)
            assert np.array_equal(dst.reshape(n, L), want), (isa, n, off)
            back = [fenced(off + n) for _ in range(L)]
            for b in back:
                b[:] = -7.0
            deinter((_fp * L)(*[_ptr(b) for b in back]), off, _ptr(dst), n)
            for c in range(L):
                assert np.array_equal(back[c][off:], planes[c][off:]), (isa, n, off, c)
                assert np.all(back[c][:off] == -7.0), (isa, n, off, c)


CASES = [  # C, H, W, k, stride, dilation, padding, multiplier
    (16, 14, 14, 7, 1, 1, 3, 1), (40, 14, 14, 7, 1, 1, 3, 1), (24, 28, 28, 5, 2, 1, 2, 1),
    (20, 17, 23, 5, 1, 1, 2, 2), (12, 15, 13, 7, 2, 1, 3, 3), (18, 12, 12, 3, 1, 2, 2, 1),
    (17, 9, 9, 5, 1, 1, 0, 1), (33, 7, 7, 7, 1, 1, (3, 1, 0, 4), 1), (16, 11, 11, 4, 3, 1, 1, 1),
    (16, 10, 10, 1, 2, 1, 0, 1), (16, 6, 6, 7, 1, 1, 5, 1),  # padding > reach of the image
    (16, 40, 56, 7, 1, 1, 3, 1),
    # rows 70 wide: the ring fits its buffer, a zero row beside it does not (AVX-512): the
    # slots above and below the image are zeroed instead
    (16, 9, 64, 7, 1, 1, 3, 1), (16, 10, 46, 5, 1, 2, 4, 1),
]


def _case_id(c):
    return "C{}_{}x{}_k{}_s{}_d{}_p{}_m{}".format(*c).replace(" ", "")


@pytest.mark.parametrize("isa", lc.available_isas())
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_channel_blocked_layers_through_the_api(isa, case):
    """Float64 reference with bias, activation and a residual; 1 and 2
    threads give the same bits."""
    C, H, W, k, s, d, p, mult = case
    pads = p if isinstance(p, tuple) else (p,) * 4
    r = np.random.default_rng(abs(hash(case)) % 2**32)
    x = r.standard_normal((2, C, H, W)).astype(np.float32)
    w = r.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = r.standard_normal(C * mult).astype(np.float32)
    want, scale = conv2d_ref(x, w, b, (s, s), pads, (d, d), C)
    res = r.standard_normal(want.shape).astype(np.float32)
    with lc.use_isa(isa):
        kw = dict(stride=s, padding=p, dilation=d, groups=C, algorithm="depthwise")
        y = lc.conv2d(x, w, b, activation="relu6", **kw)
        plan = lc.Conv2d(w, b, activation="silu", **kw)
        yr1 = plan(x, residual=res, threads=1)
        yr2 = plan(x, residual=res, threads=2)
        inplace = res.copy()  # out=residual: the band path's staging, same answer
        plan(x, out=inplace, residual=inplace)
    assert y.shape == want.shape
    assert np.max(np.abs(y - np.clip(want, 0, 6)) / scale) < 2e-6
    # the residual is added before the activation (the fused epilogue's order)
    want_r = activation_ref(want + res, "silu")
    assert np.max(np.abs(yr1 - want_r) / (scale + np.abs(res))) < 4e-6
    assert np.array_equal(yr1, yr2)
    assert np.max(np.abs(inplace - want_r) / (scale + np.abs(res))) < 4e-6


@pytest.mark.parametrize("isa", lc.available_isas())
@pytest.mark.parametrize("threads", [2, 3, 5])
def test_few_blocks_split_into_row_bands(isa, threads):
    """One image with one or two channel blocks: the rows are split between
    the threads (bands with their own halo rows); same bits as 1 thread."""
    r = np.random.default_rng(threads)
    for C, H, k, s in ((16, 30, 5, 1), (20, 23, 7, 2), (8, 9, 3, 1)):
        x = r.standard_normal((1, C, H, H + 3)).astype(np.float32)
        w = r.standard_normal((C, 1, k, k)).astype(np.float32)
        res = None
        with lc.use_isa(isa):
            plan = lc.Conv2d(w, None, stride=s, padding=k // 2, groups=C, algorithm="depthwise",
                             activation="relu")
            y1 = plan(x, threads=1)
            res = r.standard_normal(y1.shape).astype(np.float32)
            y1 = plan(x, residual=res, threads=1)
            yt = plan(x, residual=res, threads=threads)
        want, scale = conv2d_ref(x, w, None, (s, s), (k // 2,) * 4, (1, 1), C)
        assert np.max(np.abs(y1 - np.maximum(want + res, 0)) / (scale + np.abs(res))) < 4e-6
        assert np.array_equal(y1, yt), (C, H, k, s)
