"""Micro-kernels of every ISA this build and CPU have, called directly, against
plain float64 NumPy loops; then the full API per ISA against a float64
convolution.

Edge cases follow the contract in include/leanconv/ukernels.h: k = 1, k below
the unroll, k above kc, partial m and n tiles, strides wider than the tile,
accumulate vs. bias, the clamp epilogue with NaN in the input (NaN must pass
through, as in torch).  B, the depthwise input and the Winograd buffers sit
right before an unreadable page where the OS lets us make one, so a kernel that
reads past what the contract allows crashes the test instead of passing."""
from __future__ import annotations

import ctypes
import importlib.util
import mmap
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

ISAS = lc.available_isas()
ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- helpers --

_keep_alive = []


def guarded(nfloats: int) -> np.ndarray:
    """float32 array of nfloats whose last element is the last readable float
    before a PROT_NONE page (Linux); a plain array elsewhere."""
    if not sys.platform.startswith("linux"):
        return np.zeros(nfloats, np.float32)
    page = mmap.PAGESIZE
    nbytes = nfloats * 4
    span = (nbytes + page - 1) // page * page + page
    buf = mmap.mmap(-1, span, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    if libc.mprotect(ctypes.c_void_p(base + span - page), page, 0) != 0:
        return np.zeros(nfloats, np.float32)
    _keep_alive.append(buf)
    start = span - page - nbytes
    arr = np.frombuffer(buf, dtype=np.float32, count=nfloats, offset=start)
    arr[:] = 0
    return arr


def clamp_ref(v, clamp):
    """The epilogue in float64: NaN passes, like torch.clamp/relu."""
    if clamp is None:
        return v
    lo, hi = clamp
    return np.where(np.isnan(v), v, np.minimum(np.maximum(v, lo), hi))


def assert_close(got, want, scale, rtol, what):
    got = np.asarray(got, np.float64)
    nan_want = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan_want), f"{what}: NaN pattern differs"
    ok = ~nan_want
    err = np.abs(got[ok] - want[ok])
    bound = rtol * (np.asarray(scale, np.float64)[ok] + 1e-30)
    assert np.all(err <= bound), f"{what}: max err {err.max():.3g}, bound {bound[err.argmax()]:.3g}"


def rng(seed):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------- GEMM ----

def gemm_case(isa, m, n, k, ldb, ldc, flags, with_bias, clamp, seed, nan=False):
    mr, nr, kc = _core._ukernel_tile(isa)
    r = rng(seed)
    A = r.standard_normal((m, k)).astype(np.float32)
    packed = np.zeros((k, mr), np.float32)
    packed[:, :m] = A.T
    b = guarded((k - 1) * ldb + n)
    b[:] = r.standard_normal(b.size).astype(np.float32)
    B = np.lib.stride_tricks.as_strided(b, (k, n), (ldb * 4, 4)).astype(np.float64)
    if nan:
        b[r.integers(0, b.size)] = np.nan
        B = np.lib.stride_tricks.as_strided(b, (k, n), (ldb * 4, 4)).astype(np.float64)
    sentinel = np.float32(12345.0)
    c = np.full(m * ldc + 7, sentinel, np.float32)  # room past the tile to catch stray writes
    C0 = r.standard_normal((m, n)).astype(np.float32)
    for i in range(m):
        c[i * ldc:i * ldc + n] = C0[i]
    bias = r.standard_normal(m).astype(np.float32) if with_bias else None

    _core._ukernel_gemm(isa, m, n, k, packed.reshape(-1), b, ldb, c, ldc, bias, flags, clamp)

    prod = A.astype(np.float64) @ B
    scale = np.abs(A).astype(np.float64) @ np.abs(B)
    if flags & _core.GEMM_ACCUMULATE:
        want = C0 + prod
        scale = scale + np.abs(C0)
    else:
        base = bias.astype(np.float64)[:, None] if bias is not None else 0.0
        want = prod + base
        scale = scale + np.abs(base)
    if flags & _core.GEMM_FINAL:
        want = clamp_ref(want, clamp)
    got = np.stack([c[i * ldc:i * ldc + n] for i in range(m)])
    assert_close(got, want, scale, 1e-5, f"{isa} gemm m={m} n={n} k={k} flags={flags}")
    # nothing outside the m x n tile was written
    mask = np.ones(c.size, bool)
    for i in range(m):
        mask[i * ldc:i * ldc + n] = False
    assert np.all(c[mask] == sentinel), f"{isa} gemm wrote outside the tile"


def gemm_shapes(isa):
    mr, nr, kc = _core._ukernel_tile(isa)
    ms = sorted({1, max(1, mr - 1), mr})
    # includes 16q + r for small r: the AVX-512 kernel's column-tail path
    ns = sorted({1, 2, 3, 4, nr // 2 - 1, nr // 2, nr // 2 + 1, nr // 2 + 2, nr // 2 + 3, nr - 1, nr})
    ks = [1, 2, 3, 5, kc + 3]
    return mr, nr, kc, ms, ns, ks


@pytest.mark.parametrize("isa", ISAS)
def test_gemm_edges_plain(isa):
    mr, nr, kc, ms, ns, ks = gemm_shapes(isa)
    seed = 0
    for m in ms:
        for n in ns:
            for k in ks:
                seed += 1
                gemm_case(isa, m, n, k, n, n, 0, False, None, seed)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_gemm_flags_strides_bias(isa, flags):
    mr, nr, kc, ms, ns, ks = gemm_shapes(isa)
    seed = 1000 * flags
    for m in (1, mr):
        for n in (1, 2, nr // 2 + 1, nr // 2 + 3, nr):
            for k in (1, 7, 2 * kc + 1):
                for with_bias in (False, True):
                    seed += 1
                    gemm_case(isa, m, n, k, n + 5, n + 11, flags, with_bias, (-0.5, 0.75), seed)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("clamp", [(0.0, float("inf")), (0.0, 6.0), (-1.0, 1.0)])
def test_gemm_clamp_passes_nan(isa, clamp):
    mr, nr, kc = _core._ukernel_tile(isa)
    for i, (m, n) in enumerate([(mr, nr), (mr - 1 or 1, nr - 3), (1, 1)]):
        gemm_case(isa, m, n, 9, n + 2, n, _core.GEMM_FINAL, True, clamp, 77 + i, nan=True)


@pytest.mark.parametrize("isa", ISAS)
def test_gemm_checks_its_arguments(isa):
    mr, nr, kc = _core._ukernel_tile(isa)
    a = np.zeros(mr, np.float32)
    with pytest.raises(ValueError):
        _core._ukernel_gemm(isa, mr + 1, 1, 1, a, a, 1, a, 1, None, 0)
    with pytest.raises(ValueError):
        _core._ukernel_gemm("no-such-isa", 1, 1, 1, a, a, 1, a, 1, None, 0)


# ------------------------------------------------------------- Winograd ----

def winograd_matrices(m):
    """(A^T, G, B^T) as float64 from kernels/gen_winograd.py's exact rationals."""
    spec = importlib.util.spec_from_file_location("gen_winograd", ROOT / "kernels" / "gen_winograd.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    at, g, bt = gen.matrices(m)
    gen.check(m, at, g, bt)  # the identity the transforms rely on, exactly
    f = lambda M: np.array([[float(Fraction(v)) for v in row] for row in M])
    return f(at), f(g), f(bt)


have_gen = (ROOT / "kernels" / "gen_winograd.py").exists()


def wino_out_lanes(o, m, nr):
    """The output transform's result, stored in m image-like rows of m * NR
    floats (output (i, j) of lane l at i*m*NR + l*m + j), as (m*m, NR)."""
    return o.reshape(m, nr, m).transpose(0, 2, 1).reshape(m * m, nr)


@pytest.mark.skipif(not have_gen, reason="needs the source tree (kernels/gen_winograd.py)")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_winograd_input_transform(isa, variant):
    m = (2, 4, 6)[variant]
    alpha = m + 2
    _, nr, _ = _core._ukernel_tile(isa)
    AT, G, BT = winograd_matrices(m)
    r = rng(10 + variant)
    tiles = r.standard_normal((nr, alpha, alpha)).astype(np.float32)
    d = guarded(alpha * alpha * nr)
    d[:] = tiles.transpose(1, 2, 0).reshape(-1)  # lanes innermost
    xs = nr + 5
    v = guarded((alpha * alpha - 1) * xs + nr)
    _core._ukernel_wino_input(isa, variant, d, v, xs)
    got = np.stack([v[x * xs:x * xs + nr] for x in range(alpha * alpha)])  # (xi, lane)
    t64 = tiles.astype(np.float64)
    want = np.einsum("ik,lkq,jq->ijl", BT, t64, BT).reshape(alpha * alpha, nr)
    scale = np.einsum("ik,lkq,jq->ijl", np.abs(BT), np.abs(t64), np.abs(BT)).reshape(alpha * alpha, nr)
    assert_close(got, want, scale, 1e-6, f"{isa} F{m} input")


@pytest.mark.skipif(not have_gen, reason="needs the source tree (kernels/gen_winograd.py)")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("variant", [0, 1, 2])
@pytest.mark.parametrize("clamp", [None, (0.0, float("inf")), (-0.5, 0.5)])
def test_winograd_output_transform(isa, variant, clamp):
    m = (2, 4, 6)[variant]
    alpha = m + 2
    _, nr, _ = _core._ukernel_tile(isa)
    AT, G, BT = winograd_matrices(m)
    r = rng(20 + variant)
    M = r.standard_normal((nr, alpha, alpha)).astype(np.float32)
    M[3, 1, 2] = np.nan  # lane 3's outputs that use this entry must be NaN
    xs = nr + 3
    mo = guarded((alpha * alpha - 1) * xs + nr)
    for x in range(alpha * alpha):
        mo[x * xs:x * xs + nr] = M[:, x // alpha, x % alpha]
    o = guarded(m * m * nr)
    bias = 0.25
    nonfinite = _core._ukernel_wino_output(isa, variant, mo, xs, o, bias, clamp)
    assert nonfinite == 1 << 3, bin(nonfinite)   # the NaN lane, whatever the clamp
    got = wino_out_lanes(o, m, nr)
    M64 = M.astype(np.float64)
    want = clamp_ref(np.einsum("ik,lkq,jq->ijl", AT, M64, AT).reshape(m * m, nr) + bias, clamp)
    scale = np.einsum("ik,lkq,jq->ijl", np.abs(AT), np.abs(np.nan_to_num(M64)), np.abs(AT)).reshape(m * m, nr) + bias
    assert_close(got, want, scale, 1e-6, f"{isa} F{m} output")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_winograd_output_transform_reports_overflowed_lanes(isa, variant):
    """Lanes whose A^T Mo A overflows (from finite Mo) or meets an Inf are
    reported even when a clamp turns the stored value finite; others are not."""
    m = (2, 4, 6)[variant]
    alpha = m + 2
    _, nr, _ = _core._ukernel_tile(isa)
    mo = np.ones((alpha * alpha, nr), np.float32)
    mo[:, 1] = 3e38                                  # finite, but sums past float32's max
    mo[alpha * alpha - 1, nr - 1] = -np.inf          # the last lane: an Inf
    mo[:, 0] = 1e30                                  # big, but its results stay finite
    o = np.zeros(m * m * nr, np.float32)
    nonfinite = _core._ukernel_wino_output(isa, variant, mo.reshape(-1), nr, o, 0.0, (-1.0, 1.0))
    assert nonfinite == (1 << 1) | (1 << (nr - 1)), bin(nonfinite)
    # the single -Inf gives only +-Inf results, which the clamp makes finite:
    # the stored tile cannot show the problem, hence the report
    assert np.isfinite(wino_out_lanes(o, m, nr)[:, nr - 1]).all()


# vector width of each ISA's transforms: a partial panel runs whole vectors
WINO_VLANES = {"scalar": 1, "avx2": 8, "avx512": 16, "neon": 4}


def wino_lane_counts(nr):
    """Partial lane counts around every vector boundary of an NR-lane panel."""
    return sorted({1, 2, nr - 1, nr} | {k for v in (4, 8, 16) for k in (v - 1, v, v + 1) if k < nr})


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [1, 3, 17, 256])
def test_winograd_channel_lanes_gemm(isa, k):
    """mo[o, r] = sum_c ut[c, o] v[c, r]: full and partial rows and columns,
    v and mo strides wider than the tile; v's last row ends at a guard page
    (the kernel reads R floats of each row, never more), mo's last element
    too, and nothing outside rows x cols of mo is written."""
    R, CW = _core._ukernel_wino_cl_shape(isa)
    if R == 0:
        pytest.skip(f"{isa} has no channel-lanes Winograd GEMM")
    r = rng(40 + k)
    ldv, ldo = R + 3, R + 5
    ut = r.standard_normal((k, CW)).astype(np.float32)
    for rows in sorted({1, R // 2 or 1, R - 1 or 1, R}):
        for cols in sorted({1, CW // 2 or 1, CW - 1 or 1, CW}):
            v = guarded((k - 1) * ldv + R)
            v[:] = r.standard_normal(v.size)
            mo = guarded((cols - 1) * ldo + rows)
            mo[:] = np.float32(7.5)  # sentinel
            _core._ukernel_wino_cl_gemm(isa, k, ut.reshape(-1), v, ldv, mo, ldo, rows, cols)
            vm = np.stack([v[c * ldv:c * ldv + R] for c in range(k)]).astype(np.float64)
            want = ut.astype(np.float64).T @ vm[:, :rows]  # (CW, rows)
            scale = np.abs(ut.astype(np.float64)).T @ np.abs(vm[:, :rows])
            got = np.stack([mo[o * ldo:o * ldo + rows] for o in range(cols)])
            assert_close(got, want[:cols], scale[:cols], 1e-6, f"{isa} k={k} {rows}x{cols}")
            gaps = [mo[o * ldo + rows:(o + 1) * ldo] for o in range(cols - 1)]
            assert all((g == np.float32(7.5)).all() for g in gaps), "wrote outside rows x cols"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_winograd_transforms_of_partial_panels(isa, variant):
    """With lanes < NR the transforms give the full call's bits in lanes
    [0, lanes), write nothing past the vectors holding them, and read the
    output transform's input past `lanes` as zero (NaN there changes
    nothing and is not reported)."""
    m = (2, 4, 6)[variant]
    alpha = m + 2
    _, nr, _ = _core._ukernel_tile(isa)
    vl = WINO_VLANES[isa]
    r = rng(40 + variant)
    d = r.standard_normal(alpha * alpha * nr).astype(np.float32)
    v_full = np.zeros(alpha * alpha * nr, np.float32)
    _core._ukernel_wino_input(isa, variant, d, v_full, nr)
    mo = r.standard_normal(alpha * alpha * nr).astype(np.float32)
    o_full = np.zeros(m * m * nr, np.float32)
    _core._ukernel_wino_output(isa, variant, mo, nr, o_full, 0.5, (-1.0, 1.0))
    for lanes in wino_lane_counts(nr):
        written = -(-lanes // vl) * vl
        v = np.full(alpha * alpha * nr, 7.0, np.float32)
        _core._ukernel_wino_input(isa, variant, d, v, nr, lanes)
        v2, vf2 = v.reshape(-1, nr), v_full.reshape(-1, nr)
        np.testing.assert_array_equal(v2[:, :lanes], vf2[:, :lanes], err_msg=f"{isa} F{m} lanes={lanes}")
        assert (v2[:, written:] == 7.0).all(), f"{isa} F{m} lanes={lanes}: wrote past its vectors"
        dead = mo.reshape(-1, nr).copy()
        dead[:, lanes:] = np.nan
        o = np.full(m * m * nr, 7.0, np.float32)
        nonfinite = _core._ukernel_wino_output(isa, variant, dead.reshape(-1), nr, o, 0.5, (-1.0, 1.0),
                                               lanes)
        assert nonfinite == 0, f"{isa} F{m} lanes={lanes}: {bin(nonfinite)}"
        o2, of2 = wino_out_lanes(o, m, nr), wino_out_lanes(o_full, m, nr)
        np.testing.assert_array_equal(o2[:, :lanes], of2[:, :lanes], err_msg=f"{isa} F{m} lanes={lanes}")
        # the rest of the last vector: the transform of zeros, i.e. the bias
        np.testing.assert_array_equal(o2[:, lanes:written], 0.5)
        assert (o2[:, written:] == 7.0).all(), f"{isa} F{m} lanes={lanes}: wrote past its vectors"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("lanes", [0, -1, 10 ** 6])
def test_winograd_transform_lanes_out_of_range_refused(isa, lanes):
    _, nr, _ = _core._ukernel_tile(isa)
    lanes = nr + 1 if lanes == 10 ** 6 else lanes
    buf = np.zeros(64 * nr, np.float32)
    with pytest.raises((ValueError, OverflowError), match="lanes|negative|convert"):
        _core._ukernel_wino_input(isa, 2, buf, buf.copy(), nr, lanes)
    with pytest.raises((ValueError, OverflowError), match="lanes|negative|convert"):
        _core._ukernel_wino_output(isa, 2, buf, nr, buf.copy(), 0.0, None, lanes)


@pytest.mark.skipif(not have_gen, reason="needs the source tree (kernels/gen_winograd.py)")
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_winograd_transforms_compute_correlation(isa, variant):
    """Output(U * Input(d)) with U = G g G^T is the 2-D correlation of d and g:
    the two ISA transforms together are a correct Winograd algorithm."""
    m = (2, 4, 6)[variant]
    alpha = m + 2
    _, nr, _ = _core._ukernel_tile(isa)
    AT, G, BT = winograd_matrices(m)
    r = rng(30 + variant)
    tiles = r.standard_normal((nr, alpha, alpha)).astype(np.float32)
    g = r.standard_normal((3, 3))
    d = np.ascontiguousarray(tiles.transpose(1, 2, 0).reshape(-1))
    v = np.zeros(alpha * alpha * nr, np.float32)
    _core._ukernel_wino_input(isa, variant, d, v, nr)
    U = (G @ g @ G.T).reshape(-1)
    mo = (v.reshape(alpha * alpha, nr) * U[:, None]).astype(np.float32).reshape(-1)
    o = np.zeros(m * m * nr, np.float32)
    _core._ukernel_wino_output(isa, variant, mo, nr, o, 0.0, None)
    got = wino_out_lanes(o, m, nr).reshape(m, m, nr)
    t64 = tiles.astype(np.float64)
    want = np.zeros((m, m, nr))
    scale = np.zeros((m, m, nr))
    for i in range(m):
        for j in range(m):
            want[i, j] = np.einsum("lab,ab->l", t64[:, i:i + 3, j:j + 3], g)
            scale[i, j] = np.einsum("lab,ab->l", np.abs(t64[:, i:i + 3, j:j + 3]), np.abs(g))
    rtol = {2: 1e-5, 4: 1e-4, 6: 2e-3}[m]
    assert_close(got, want, scale, rtol, f"{isa} F{m} round trip")


# ------------------------------------------------------------- depthwise ---

def dw_case(isa, n, rows, kW, stride, dil, seed, clamp=None, nan=False):
    r = rng(seed)
    rs = (n - 1) * stride + (kW - 1) * dil + 1 + 3  # row stride wider than the taps
    need = (rows - 1) * rs + (n - 1) * stride + (kW - 1) * dil + 1
    inp = guarded(need)  # the last tap is the last readable float
    inp[:] = r.standard_normal(need).astype(np.float32)
    if nan:
        inp[need // 2] = np.nan
    w = r.standard_normal(rows * kW).astype(np.float32)
    out = np.full(n + 4, 7.0, np.float32)
    bias = 0.5
    _core._ukernel_dw_row(isa, out, n, inp, 0, rs, rows, w, kW, stride, dil, bias, clamp)
    x64 = inp.astype(np.float64)
    want = np.full(n, bias)
    scale = np.full(n, bias)
    for rr in range(rows):
        for j in range(kW):
            idx = rr * rs + np.arange(n) * stride + j * dil
            want = want + w[rr * kW + j] * x64[idx]
            scale = scale + abs(w[rr * kW + j]) * np.abs(np.nan_to_num(x64[idx]))
    want = clamp_ref(want, clamp)
    assert_close(out[:n], want, scale, 1e-6, f"{isa} dw n={n} rows={rows} kW={kW} s={stride} d={dil}")
    assert np.all(out[n:] == 7.0), f"{isa} dw wrote past n"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_depthwise_rows(isa, stride):
    seed = 0
    for n in (1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 130):
        for rows, kW in ((3, 3), (1, 3), (2, 3), (5, 5), (1, 1), (7, 7)):
            seed += 1
            dw_case(isa, n, rows, kW, stride, 1, seed)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_rows_dilation_clamp_nan(isa, stride):
    for i, n in enumerate((5, 16, 40, 77)):
        dw_case(isa, n, 3, 3, stride, 2, 500 + i, clamp=(0.0, 6.0), nan=True)
        dw_case(isa, n, 3, 3, stride, 3, 600 + i, clamp=(0.0, float("inf")))


# ----------------------------------------------------------- FMA peak ------

@pytest.mark.parametrize("isa", ISAS)
def test_fma_peak_is_positive(isa):
    assert _core.fma_peak_gflops(isa, 0.0) > 0


def test_fma_peak_rejects_unknown_isa():
    with pytest.raises(ValueError):
        _core.fma_peak_gflops("no-such-isa")
    missing = [n for n in _core.ISA_NAMES if n not in ISAS]
    for name in missing:
        with pytest.raises(ValueError):
            _core.fma_peak_gflops(name)


# ------------------------------------------------- full API per ISA --------

def conv_ref(x, w, b, stride, pads, dil, groups):
    """float64 convolution and its Σ|x||w| scale, NCHW / OIHW."""
    N, C, H, W = x.shape
    M, Cg, kH, kW = w.shape
    pt, pb, pl, pr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = (H + pt + pb - dil * (kH - 1) - 1) // stride + 1
    OW = (W + pl + pr - dil * (kW - 1) - 1) // stride + 1
    y = np.zeros((N, M, OH, OW))
    s = np.zeros((N, M, OH, OW))
    Mg = M // groups
    w64 = w.astype(np.float64)
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        for ky in range(kH):
            for kx in range(kW):
                patch = xg[:, :, ky * dil:ky * dil + stride * (OH - 1) + 1:stride,
                           kx * dil:kx * dil + stride * (OW - 1) + 1:stride]
                wk = w64[g * Mg:(g + 1) * Mg, :, ky, kx]
                y[:, g * Mg:(g + 1) * Mg] += np.einsum("nchw,mc->nmhw", patch, wk)
                s[:, g * Mg:(g + 1) * Mg] += np.einsum("nchw,mc->nmhw", np.abs(patch), np.abs(wk))
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
        s += np.abs(b.astype(np.float64))[None, :, None, None]
    return y, s


RTOL = {"direct": 1e-6, "im2col": 1e-5, "patch2vec": 1e-5, "direct_lanes": 1e-5,
        "winograd_f2": 1e-5, "winograd_f4": 1e-4, "winograd_f6": 2e-3, "depthwise": 1e-5,
        "winograd_f2_lean": 1e-5, "winograd_f4_lean": 1e-4}

API_SHAPES = [
    # (N, C, H, W, M, k, stride, pad, dil, groups)
    (1, 3, 17, 19, 8, 3, 1, 1, 1, 1),
    (2, 16, 13, 11, 20, 3, 1, 1, 1, 1),
    (1, 24, 9, 30, 33, 3, 1, 0, 1, 1),
    (1, 8, 12, 12, 16, 1, 1, 0, 1, 1),
    (1, 5, 15, 15, 7, 5, 2, 2, 1, 1),
    (1, 6, 14, 14, 10, 3, 1, 2, 2, 2),
    (1, 12, 23, 21, 12, 3, 1, 1, 1, 12),
    (1, 8, 20, 20, 16, 3, 2, 1, 1, 8),
    (1, 4, 40, 37, 4, 3, 1, 1, 2, 4),
    # K = 576 and Cg = 300: several kc blocks in the packed weights
    (1, 64, 9, 9, 20, 3, 1, 1, 1, 1),
    (1, 300, 6, 6, 10, 3, 1, 1, 1, 1),
    (1, 600, 4, 5, 9, 1, 1, 0, 1, 1),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", API_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_conv2d_every_algorithm(isa, shape):
    N, C, H, W, M, k, stride, pad, dil, groups = shape
    r = rng(hash(shape) % 2**32)
    x = r.standard_normal((N, C, H, W)).astype(np.float32)
    w = r.standard_normal((M, C // groups, k, k)).astype(np.float32)
    b = r.standard_normal(M).astype(np.float32)
    want, scale = conv_ref(x, w, b, stride, (pad,) * 4, dil, groups)
    ran = []
    with lc.use_isa(isa):
        for algo in lc.algorithms():
            if not lc.supports(algo, x.shape, w.shape, stride, pad, dil, groups):
                continue
            for act, clamp in ((None, None), ("relu6", (0.0, 6.0))):
                y = lc.conv2d(x, w, b, stride, pad, dil, groups, algorithm=algo, activation=act)
                assert_close(y, clamp_ref(want, clamp), scale, RTOL[algo], f"{isa} {algo} {shape}")
            ran.append(algo)
    assert "direct" in ran and len(ran) >= 2
