import os

import numpy as np
import pytest

import leanconv as lc

# Every ISA this CPU and build have gets the full suite.
ISAS = lc.available_isas()


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
