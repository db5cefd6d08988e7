import os

import numpy as np
import pytest

import leanconv as lc

# Every ISA this CPU and build have gets the full suite, except under emulation
# (.ci/test-neon.sh sets LEANCONV_EMULATED): that run is there for the emulated
# CPU's own kernels.  The portable C path is the same source the native runs
# (x86-64, i686) test at full speed; under qemu it would add a third to CI's
# longest step.
# Tests that compare every ISA's bits with the portable path's loop over ALL_ISAS.
ALL_ISAS = lc.available_isas()
ISAS = ALL_ISAS
if os.environ.get("LEANCONV_EMULATED"):
    ISAS = [i for i in ALL_ISAS if i != "scalar"] or ALL_ISAS


@pytest.fixture(params=ISAS)
def isa(request):
    with lc.use_isa(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_report_header(config):
    return (f"leanconv ISAs: {', '.join(ISAS)}; OpenMP threads: {lc.get_num_threads()}; "
            f"LEANCONV_ISA={os.environ.get('LEANCONV_ISA', '')!r}")


# The suite never reads or writes the user's wisdom file: "auto" must mean the
# cost model here (tests that need a wisdom file point LEANCONV_WISDOM at one).
os.environ["LEANCONV_WISDOM"] = "off"


@pytest.fixture
def wisdom(tmp_path, monkeypatch):
    """A wisdom file of the test's own (its path; not created yet)."""
    from leanconv import _wisdom
    p = tmp_path / "wisdom.json"
    monkeypatch.setenv("LEANCONV_WISDOM", str(p))
    _wisdom.forget()
    yield p
    _wisdom.forget()
