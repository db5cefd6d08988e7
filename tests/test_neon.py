"""NEON dispatch on AArch64: the NEON table is compiled in, runs, is the
default, and has the 12 x 8 GEMM tile its Winograd/packing layout expects.
Runs for real under qemu-aarch64 (.ci/test-neon.sh); skipped elsewhere.  The
kernels themselves are checked against float64 in test_ukernels.py, which
parametrises over every available ISA, neon included."""
import os
import subprocess
import sys

import pytest

import leanconv as lc
from leanconv import _core

arm64 = lc.cpu_features()["arm64"]
no_simd = os.environ.get("LEANCONV_NO_SIMD", "") not in ("", "0")
pytestmark = [pytest.mark.skipif(not arm64, reason="AArch64 only"),
              pytest.mark.skipif(no_simd, reason="LEANCONV_NO_SIMD is set (scalar-only build)")]


def test_neon_is_compiled_and_runs():
    status = {name: (compiled, runs) for name, compiled, runs in _core.isa_status()}
    assert status["neon"] == (True, True)
    assert lc.cpu_features()["neon"]
    assert lc.available_isas() == ("scalar", "neon")


def test_neon_is_the_default():
    env = dict(os.environ)
    env.pop("LEANCONV_ISA", None)
    r = subprocess.run([sys.executable, "-c", "import leanconv as lc; print(lc.isa())"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "neon"


def test_neon_tile():
    mr, nr, kc = _core._ukernel_tile("neon")
    assert (mr, nr) == (12, 8) and kc >= 1


def test_built_by_setup_py_with_its_flags():
    """Issue 14.8: the arm64 extension under test is built by setup.py (its -O3
    and OpenMP probe), as a wheel is, not by a second hand-written build."""
    assert _core.build_optimisation() == "3"
