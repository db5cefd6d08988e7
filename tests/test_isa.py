"""Run-time dispatch: detection, forcing a path, switching it for a block."""
import os
import subprocess
import sys

import numpy as np
import pytest

import leanconv as lc


def _run_py(code, **env):
    e = dict(os.environ)
    e.pop("LEANCONV_ISA", None)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          timeout=120)


def test_scalar_always_available():
    assert "scalar" in lc.available_isas()
    assert lc.isa() in lc.available_isas()


def test_cpu_features_report():
    f = lc.cpu_features()
    for key in ("avx2", "fma", "avx512f", "os_saves_ymm", "os_saves_zmm", "neon"):
        assert key in f and isinstance(f[key], bool)
    if f["avx512f"]:
        assert f["os_saves_zmm"]
    if f["avx2"]:
        assert f["os_saves_ymm"]


def test_default_is_the_best_available():
    r = _run_py("import leanconv as lc; print(lc.isa(), lc.available_isas()[-1])")
    assert r.returncode == 0, r.stderr
    active, best = r.stdout.split()
    assert active == best


@pytest.mark.parametrize("name", lc.available_isas())
def test_env_forces_a_path(name):
    r = _run_py("import leanconv as lc; print(lc.isa())", LEANCONV_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_env_with_an_unavailable_isa_fails_at_import():
    missing = next(n for n in ("neon", "avx512", "avx2", "bogus") if n not in lc.available_isas())
    r = _run_py("import leanconv", LEANCONV_ISA=missing)
    assert r.returncode != 0
    assert "available" in r.stderr and "scalar" in r.stderr


def test_use_isa_switches_and_restores():
    before = lc.isa()
    with lc.use_isa("scalar") as name:
        assert name == "scalar" and lc.isa() == "scalar"
        plan = lc.Conv2d(np.ones((4, 2, 3, 3), np.float32))
    assert lc.isa() == before
    assert plan.isa == "scalar"
    # the plan keeps its ISA outside the block
    x = np.ones((1, 2, 5, 5), np.float32)
    np.testing.assert_allclose(plan(x), lc.conv2d(x, np.ones((4, 2, 3, 3), np.float32)), rtol=1e-6)


def test_isas_agree(rng):
    """Every ISA gives the same answer within float tolerance."""
    x = rng.standard_normal((1, 16, 19, 17)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    results = {}
    for name in lc.available_isas():
        with lc.use_isa(name):
            results[name] = {a: lc.conv2d(x, w, padding=1, algorithm=a)
                             for a in ("im2col", "patch2vec", "winograd_f4")}
    base = results["scalar"]
    for name, res in results.items():
        for a, y in res.items():
            np.testing.assert_allclose(y, base[a], rtol=1e-3, atol=1e-3, err_msg=f"{name} {a}")


def test_use_isa_is_per_thread_and_restores_exactly():
    """Issue 14.3: A enters use_isa('scalar'), B enters another ISA, A exits,
    B exits: each thread sees only its own block, plans made meanwhile in a
    third thread take the process default, and afterwards nothing is left."""
    import threading

    default = lc.isa()
    other = lc.available_isas()[-1]  # avx512/avx2 here; scalar on a scalar-only build
    steps = [threading.Event() for _ in range(4)]
    seen = {}

    def thread_a():
        with lc.use_isa("scalar"):
            steps[0].set()                  # A is inside its block
            steps[1].wait(10)               # B is inside its block
            seen["a_inside"] = lc.isa()
            seen["a_plan"] = lc.Conv2d(np.ones((2, 2, 3, 3), np.float32)).isa
        steps[2].set()                      # A has left
        seen["a_after"] = lc.isa()

    def thread_b():
        steps[0].wait(10)
        with lc.use_isa(other):
            steps[1].set()
            steps[2].wait(10)               # A left while B is still inside
            seen["b_inside"] = lc.isa()
        seen["b_after"] = lc.isa()
        steps[3].set()

    def thread_c():
        steps[1].wait(10)                   # both blocks open
        seen["c"] = lc.isa()
        seen["c_plan"] = lc.Conv2d(np.ones((2, 2, 3, 3), np.float32)).isa

    threads = [threading.Thread(target=f) for f in (thread_a, thread_b, thread_c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert steps[3].is_set()
    assert seen == {"a_inside": "scalar", "a_plan": "scalar", "a_after": default,
                    "b_inside": other, "b_after": default, "c": default, "c_plan": default}
    assert lc.isa() == default


def test_use_isa_nested_blocks_restore_in_order():
    names = lc.available_isas()
    with lc.use_isa(names[-1]):
        with lc.use_isa("scalar"):
            assert lc.isa() == "scalar"
        assert lc.isa() == names[-1]
