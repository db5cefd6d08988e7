"""The optional depthwise 3x3 whole-plane micro-kernel (lc_dw3x3_plane_fn),
called directly through ctypes on every ISA that has one, against a float64
numpy reference.  Input and output sit between PROT_NONE pages (Linux), so a
read before in[0] or past in[H*W-1], or a write outside out[0 .. OH*OW), faults
the test run instead of passing silently."""
from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

_lib = ctypes.CDLL(_core.__file__)
PLANE_ISAS = [isa for isa in lc.available_isas()
              if hasattr(_lib, f"lc_f32_dw3x3_plane__{isa}")]


class Epilogue(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_float), ("hi", ctypes.c_float), ("clamp", ctypes.c_int)]


_fp = ctypes.POINTER(ctypes.c_float)
_sz = ctypes.c_size_t


def plane_fn(isa):
    f = getattr(_lib, f"lc_f32_dw3x3_plane__{isa}")
    f.restype = None
    f.argtypes = [_fp, _sz, _sz, _fp, _sz, _sz, _sz, _sz, _sz, _sz, _fp, ctypes.c_float,
                  ctypes.POINTER(Epilogue)]
    return f


_keep_alive = []


def fenced(nfloats: int, keep: bool = True) -> np.ndarray:
    """float32 array of nfloats with a PROT_NONE page right before its first
    and right after its last float (Linux); a plain array elsewhere.  With
    keep=False the mapping lives only as long as the array (tests that make
    thousands of them stay under the kernel's limit on mappings)."""
    if not sys.platform.startswith("linux") or nfloats == 0:
        return np.zeros(max(nfloats, 1), np.float32)[:nfloats]
    page = mmap.PAGESIZE
    nbytes = nfloats * 4
    data_pages = (nbytes + page - 1) // page
    span = (data_pages + 2) * page
    buf = mmap.mmap(-1, span, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if keep:
        _keep_alive.append(buf)
    assert libc.mprotect(ctypes.c_void_p(base), page, 0) == 0
    assert libc.mprotect(ctypes.c_void_p(base + span - page), page, 0) == 0
    # the end flush against the back guard; the front guard is < 1 page away,
    # so reads far before in[0] (a whole-vector over-read) also fault
    start = span - page - nbytes
    arr = np.frombuffer(buf, dtype=np.float32, count=nfloats, offset=start)
    arr[:] = 0
    return arr


def fenced_front(nfloats: int) -> np.ndarray:
    """float32 array starting right after a PROT_NONE page (Linux)."""
    if not sys.platform.startswith("linux"):
        return np.zeros(nfloats, np.float32)
    page = mmap.PAGESIZE
    span = ((nfloats * 4 + page - 1) // page + 1) * page
    buf = mmap.mmap(-1, span, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(ctypes.c_void_p(base), page, 0) == 0
    _keep_alive.append(buf)
    arr = np.frombuffer(buf, dtype=np.float32, count=nfloats, offset=page)
    arr[:] = 0
    return arr


def ref_plane(x, w, bias, sh, sw, pt, pl, OH, OW, clamp):
    """float64 reference and its sum |w||x| scale."""
    H, W = x.shape
    x64 = x.astype(np.float64)
    pad = np.zeros((H + pt + 3 * sh + OH * sh, W + pl + 3 * sw + OW * sw))
    pad[pt:pt + H, pl:pl + W] = x64
    want = np.full((OH, OW), float(bias))
    scale = np.full((OH, OW), abs(float(bias)))
    for ky in range(3):
        for kx in range(3):
            tap = pad[ky:ky + (OH - 1) * sh + 1:sh, kx:kx + (OW - 1) * sw + 1:sw]
            want = want + float(w[ky * 3 + kx]) * tap
            scale = scale + abs(float(w[ky * 3 + kx])) * np.abs(np.nan_to_num(tap))
    if clamp is not None:
        lo, hi = clamp
        nan = np.isnan(want)
        want = np.clip(want, lo, hi)
        want[nan] = np.nan
    return want, scale


def run_case(isa, H, W, sh, sw, pt, pl, pb, pr, seed, clamp=None, nan=False, front=False):
    r = np.random.default_rng(seed)
    OH = (H + pt + pb - 3) // sh + 1
    OW = (W + pl + pr - 3) // sw + 1
    assert OH >= 1 and OW >= 1
    x = (fenced_front if front else fenced)(H * W)
    x[:] = r.standard_normal(H * W).astype(np.float32)
    if nan:
        x[r.integers(H * W)] = np.nan
    w = r.standard_normal(9).astype(np.float32)
    bias = float(r.standard_normal())
    out = fenced(OH * OW)
    out[:] = 12345.0
    ep = Epilogue(*(clamp if clamp else (0.0, 0.0)), 1 if clamp else 0)
    plane_fn(isa)(out.ctypes.data_as(_fp), OH, OW, x.ctypes.data_as(_fp), H, W, sh, sw, pt, pl,
                  w.ctypes.data_as(_fp), bias, ctypes.byref(ep))
    want, scale = ref_plane(x.reshape(H, W), w, bias, sh, sw, pt, pl, OH, OW, clamp)
    got = out.reshape(OH, OW).astype(np.float64)
    what = f"{isa} H={H} W={W} s=({sh},{sw}) pads=({pt},{pl},{pb},{pr})"
    assert np.array_equal(np.isnan(got), np.isnan(want)), what + ": NaN pattern"
    ok = ~np.isnan(want)
    err = np.abs(got - want)[ok]
    assert np.all(err <= 1e-6 * (scale[ok] + 1e-30) + 1e-30), f"{what}: max err {err.max()}"


pytestmark = pytest.mark.skipif(not PLANE_ISAS, reason="no ISA here has a dw 3x3 plane kernel")

WIDTHS = (1, 2, 3, 5, 7, 8, 9, 14, 15, 16, 17, 18, 19, 31, 32, 33, 34, 35, 47, 56, 64, 65, 112)


@pytest.mark.parametrize("isa", PLANE_ISAS)
@pytest.mark.parametrize("stride", [1, 2])
def test_plane_edge_widths_same_padding(isa, stride):
    for i, W in enumerate(WIDTHS):
        for H in (1, 2, 3, 4, 5, 7):
            run_case(isa, H, W, stride, stride, 1, 1, 1, 1, 1000 * stride + 10 * i + H)


@pytest.mark.parametrize("isa", PLANE_ISAS)
@pytest.mark.parametrize("stride", [1, 2])
def test_plane_no_padding_reads_nothing_outside(isa, stride):
    # valid convolution: the last tap of the plane is in[H*W-1], flush
    # against the guard page; the first is in[0], right after one
    for i, W in enumerate(w for w in WIDTHS if w >= 3):
        for H in (3, 4, 6, 9):
            run_case(isa, H, W, stride, stride, 0, 0, 0, 0, 2000 + 10 * i + H)
            run_case(isa, H, W, stride, stride, 0, 0, 0, 0, 3000 + 10 * i + H, front=True)
            run_case(isa, H, W, stride, stride, 1, 1, 1, 1, 4000 + 10 * i + H, front=True)


@pytest.mark.parametrize("isa", PLANE_ISAS)
def test_plane_asymmetric_and_large_padding_mixed_strides(isa):
    seed = 5000
    for H, W in ((5, 5), (8, 17), (13, 40), (2, 33)):
        for sh, sw in ((1, 1), (2, 2), (1, 2), (2, 1), (3, 1), (3, 2)):
            for pt, pl, pb, pr in ((0, 1, 2, 0), (2, 0, 0, 2), (3, 3, 3, 3), (1, 2, 1, 0)):
                seed += 1
                if (H + pt + pb - 3) < 0 or (W + pl + pr - 3) < 0:
                    continue
                run_case(isa, H, W, sh, sw, pt, pl, pb, pr, seed)


@pytest.mark.parametrize("isa", PLANE_ISAS)
@pytest.mark.parametrize("stride", [1, 2])
def test_plane_clamp_and_nan(isa, stride):
    for i, (H, W) in enumerate(((7, 7), (14, 14), (28, 28), (9, 40), (56, 56))):
        run_case(isa, H, W, stride, stride, 1, 1, 1, 1, 6000 + i, clamp=(0.0, 6.0), nan=True)
        run_case(isa, H, W, stride, stride, 1, 1, 1, 1, 6100 + i, clamp=(0.0, float("inf")))
        run_case(isa, H, W, stride, stride, 1, 1, 1, 1, 6200 + i, nan=True)


@pytest.mark.parametrize("isa", PLANE_ISAS)
@pytest.mark.parametrize("mult", [1, 2, 3])
@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_depthwise_layer_through_the_api(isa, mult, k, stride):
    """The driver's choice of kernel (plane for 3x3, rows for 5x5), channel
    multipliers > 1, batch 2, against a float64 grouped convolution."""
    r = np.random.default_rng(7000 + 10 * mult + k + stride)
    C, H, W = 3, 19, 23
    x = r.standard_normal((2, C, H, W)).astype(np.float32)
    w = r.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = r.standard_normal(C * mult).astype(np.float32)
    p = k // 2
    with lc.use_isa(isa):
        y = lc.conv2d(x, w, b, stride=stride, padding=p, groups=C, algorithm="depthwise",
                      activation="relu6")
    OH = (H + 2 * p - k) // stride + 1
    OW = (W + 2 * p - k) // stride + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    want = np.zeros((2, C * mult, OH, OW)) + b[None, :, None, None]
    for o in range(C * mult):
        for ky in range(k):
            for kx in range(k):
                want[:, o] += w[o, 0, ky, kx] * xp[:, o // mult, ky:ky + (OH - 1) * stride + 1:stride,
                                                   kx:kx + (OW - 1) * stride + 1:stride]
    want = np.clip(want, 0.0, 6.0)
    assert y.shape == want.shape
    assert np.max(np.abs(y - want)) <= 1e-5 * max(1.0, np.abs(want).max())


def call_plane(isa, x, sh, sw, pt, pl, OH, OW, w, bias, clamp=None):
    """The plane kernel on 2-D x (copied between guard pages), OH x OW out."""
    H, W = x.shape
    xf = fenced(H * W, keep=False)
    xf[:] = x.reshape(-1)
    out = fenced(OH * OW, keep=False)
    out[:] = 12345.0
    ep = Epilogue(*(clamp if clamp else (0.0, 0.0)), 1 if clamp else 0)
    plane_fn(isa)(out.ctypes.data_as(_fp), OH, OW, xf.ctypes.data_as(_fp), H, W, sh, sw, pt, pl,
                  w.ctypes.data_as(_fp), bias, ctypes.byref(ep))
    return out.reshape(OH, OW).copy()


@pytest.mark.parametrize("isa", PLANE_ISAS)
def test_plane_padding_wider_than_a_vector(isa):
    """Left and top padding past one vector's lanes (16 floats): whole
    column blocks and rows of padding before the image."""
    seed = 8000
    for H, W in ((5, 9), (20, 40), (3, 3)):
        for sh, sw in ((1, 1), (2, 2), (1, 2), (2, 1)):
            for pt, pl, pb, pr in ((17, 18, 19, 20), (0, 33, 2, 1), (33, 0, 0, 17)):
                seed += 1
                run_case(isa, H, W, sh, sw, pt, pl, pb, pr, seed, clamp=(-1.0, 1.0))


@pytest.mark.parametrize("isa", PLANE_ISAS)
@pytest.mark.parametrize("sh,sw", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_plane_rows_in_bands_give_the_plane_bits(isa, sh, sw):
    """Output rows computed in bands -- each call given only the input rows
    its band reads, the padding above it as pad_t, as kernels/ir_block.c
    calls the kernel -- are bitwise the rows of the whole plane."""
    r = np.random.default_rng(8100 + 10 * sh + sw)
    for H, W in ((30, 7), (29, 14), (23, 56), (17, 112), (12, 33)):
        x = r.standard_normal((H, W)).astype(np.float32)
        w = r.standard_normal(9).astype(np.float32)
        OH, OW = (H - 1) // sh + 1, (W - 1) // sw + 1
        whole = call_plane(isa, x, sh, sw, 1, 1, OH, OW, w, 0.25, clamp=(0.0, 6.0))
        for band in (1, 2, 5):
            for oy0 in range(0, OH, band):
                rows = min(band, OH - oy0)
                top = oy0 * sh - 1
                iy0, iy1 = max(0, top), min(H, top + (rows - 1) * sh + 3)
                part = call_plane(isa, x[iy0:iy1], sh, sw, iy0 - top, 1, rows, OW, w, 0.25,
                                  clamp=(0.0, 6.0))
                assert np.array_equal(part, whole[oy0:oy0 + rows]), (H, W, band, oy0)


@pytest.mark.parametrize("isa", PLANE_ISAS)
def test_every_3x3_path_gives_the_same_bits(isa):
    """The kernel's paths for one plane (by width and stride: narrow rows
    packed two to a vector, column strips walked down the plane, paired
    rows at taller strides) sum each output's taps in one order: the same
    outputs computed by two paths are the same bits."""
    r = np.random.default_rng(8200)
    w = r.standard_normal(9).astype(np.float32)
    for H, W in ((14, 14), (15, 13), (28, 28)):
        x = r.standard_normal((H, W)).astype(np.float32)
        # stride 2 down to <= 8 columns (narrow) against the same image with
        # zero columns on the right (a strip): the first columns match
        OH, OW = (H - 1) // 2 + 1, (W - 1) // 2 + 1
        wide = np.concatenate([x, np.zeros((H, 32), np.float32)], axis=1)
        a = call_plane(isa, x, 2, 2, 1, 1, OH, OW, w, 0.5)
        b = call_plane(isa, wide, 2, 2, 1, 1, OH, OW + 16, w, 0.5)
        assert np.array_equal(a, b[:, :OW])
        # stride_h 3 (paired rows) against every third row of stride_h 1
        for sw in (1, 2):
            OW = (W - 1) // sw + 1
            one = call_plane(isa, x, 1, sw, 1, 1, H, OW, w, 0.5)
            three = call_plane(isa, x, 3, sw, 1, 1, (H - 1) // 3 + 1, OW, w, 0.5)
            assert np.array_equal(three, one[::3])
