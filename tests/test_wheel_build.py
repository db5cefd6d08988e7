"""What an installed build must hold, whatever made it (a wheel from
cibuildwheel, `pip install .`, the 32-bit chroot of .ci/wheels-i686.sh):

- the compiled extension is the one imported, not the source tree;
- every ISA whose kernels the source tree has is compiled in, on the
  architecture that can hold it (a wheel whose SIMD silently dropped out would
  pass every other test, only slowly);
- OpenMP is in or out as the build promised (LEANCONV_EXPECT_OPENMP=1/0, set by
  the cibuildwheel config), so a failed OpenMP probe cannot ship a serial wheel;
- every algorithm on every ISA this CPU runs matches a float64 reference, and
  the thread count does not change a single bit.

The deep tests live in the other test files; this one is quick (< 2 s)."""
import os
import pathlib

import leanconv as lc
import numpy as np
import pytest
from leanconv import _core

KERNELS = pathlib.Path(__file__).resolve().parents[1] / "kernels"


def test_imports_the_compiled_extension():
    suffix = pathlib.Path(_core.__file__).suffix
    assert suffix in (".so", ".pyd"), f"leanconv._core is {_core.__file__}"


def _arch():
    f = lc.cpu_features()
    return "x86" if f["x86"] else "arm64" if f["arm64"] else "other"


@pytest.mark.parametrize("isa,arch", [("avx2", "x86"), ("avx512", "x86"), ("neon", "arm64")])
def test_simd_kernels_in_the_tree_are_compiled(isa, arch):
    if not (KERNELS / isa).is_dir():
        pytest.skip(f"the source tree has no kernels/{isa}/ (or tests run without the tree)")
    if _arch() != arch:
        pytest.skip(f"{isa} is not an ISA of this architecture")
    if os.environ.get("LEANCONV_NO_SIMD", "") not in ("", "0"):
        pytest.skip("LEANCONV_NO_SIMD is set")
    compiled = {name: c for name, c, _ in _core.isa_status()}
    assert compiled[isa], f"kernels/{isa}/ exists but this build did not compile it"


def test_openmp_as_promised():
    expected = os.environ.get("LEANCONV_EXPECT_OPENMP", "").strip()
    if expected not in ("0", "1"):
        pytest.skip("LEANCONV_EXPECT_OPENMP is not set (only wheel builds promise)")
    assert _core.openmp_enabled() == (expected == "1"), (
        f"build has OpenMP={_core.openmp_enabled()}, expected {expected == '1'}")


def reference(x, w, b, stride, pad, groups):
    """float64 convolution and sum |x|*|w| + |b| over each receptive field (the
    scale errors are measured against)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    N, _, H, W = x.shape
    M, Cg, kH, kW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH = (H + 2 * pad - kH) // stride + 1
    OW = (W + 2 * pad - kW) // stride + 1
    y = np.zeros((N, M, OH, OW))
    mag = np.zeros_like(y)
    Mg = M // groups
    for g in range(groups):
        xs = xp[:, g * Cg:(g + 1) * Cg]
        ws = w[g * Mg:(g + 1) * Mg]
        for ky in range(kH):
            for kx in range(kW):
                patch = xs[:, :, ky:ky + stride * OH:stride, kx:kx + stride * OW:stride]
                y[:, g * Mg:(g + 1) * Mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, ky, kx])
                mag[:, g * Mg:(g + 1) * Mg] += np.einsum("nchw,mc->nmhw", np.abs(patch),
                                                         np.abs(ws[:, :, ky, kx]))
    bias = b.astype(np.float64)[None, :, None, None]
    return y + bias, mag + np.abs(bias)


# (C, M, k, stride, pad, groups): one shape each algorithm family can run
SHAPES = [(5, 7, 3, 1, 1, 1), (6, 4, 3, 2, 0, 2), (8, 8, 3, 1, 1, 8), (9, 3, 1, 1, 0, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "C{}M{}k{}s{}p{}g{}".format(*s))
def test_every_algorithm_on_every_isa_matches_float64(shape):
    C, M, k, stride, pad, groups = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((2, C, 11, 10)).astype(np.float32)
    w = rng.standard_normal((M, C // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(M).astype(np.float32)
    ref, mag = reference(x, w, b, stride, pad, groups)
    ran = 0
    for isa in lc.available_isas():
        with lc.use_isa(isa):
            for alg in lc.algorithms():
                if not lc.supports(alg, x.shape, w.shape, stride, pad, 1, groups):
                    continue
                y1 = lc.conv2d(x, w, b, stride, pad, groups=groups, algorithm=alg, threads=1)
                y2 = lc.conv2d(x, w, b, stride, pad, groups=groups, algorithm=alg, threads=2)
                err = np.max(np.abs(y1 - ref) / mag)
                assert err < 1e-4, f"{alg} on {isa}: normalised error {err:.2e}"
                assert np.array_equal(y1, y2), f"{alg} on {isa}: threads=2 differs from threads=1"
                ran += 1
    assert ran >= len(lc.available_isas()), "no algorithm ran this shape"
