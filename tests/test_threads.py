"""Threads: results are bitwise identical for any thread count, the count is
controllable four ways, and calls release the GIL and are thread-safe."""
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import leanconv as lc
from reference import conv2d_ref, normalised_error

LAYERS = [
    ((1, 16, 21, 19), (24, 16, 3, 3), dict(padding=1)),
    ((3, 8, 13, 13), (8, 4, 3, 3), dict(padding=1, groups=2)),
    ((1, 16, 15, 15), (32, 1, 3, 3), dict(padding=1, groups=16, stride=2)),
    ((2, 32, 9, 9), (40, 32, 1, 1), {}),
]


@pytest.mark.parametrize("xs,ws,kw", LAYERS)
def test_bitwise_identical_for_any_thread_count(isa, xs, ws, kw, rng):
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    for a in lc.algorithms():
        if not lc.supports(a, xs, ws, **kw):
            continue
        plan = lc.Conv2d(w, algorithm=a, **kw)
        one = plan(x, threads=1)
        for t in (2, 3, 5):
            np.testing.assert_array_equal(plan(x, threads=t), one, err_msg=f"{a} threads={t}")


def test_set_and_get_num_threads():
    before = lc.get_num_threads()
    try:
        lc.set_num_threads(1)
        assert lc.get_num_threads() == 1
    finally:
        lc._threads._explicit = None
    assert lc.get_num_threads() == before


def test_cgroup_quota_is_read_once_and_settings_every_call(monkeypatch):
    import builtins
    opened = []
    real_open = builtins.open

    def counting_open(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(builtins, "open", counting_open)
    lc._threads._cgroup_quota.cache_clear()
    first = lc.get_num_threads()
    reads = len(opened)
    for _ in range(3):
        assert lc.get_num_threads() == first
    assert len(opened) == reads   # the cgroup files: once per process
    monkeypatch.setenv("LEANCONV_NUM_THREADS", "1")
    assert lc.get_num_threads() == 1   # the environment: every call
    monkeypatch.delenv("LEANCONV_NUM_THREADS")
    assert lc.get_num_threads() == first
    try:
        lc.set_num_threads(3)
        assert lc.get_num_threads() == 3
    finally:
        lc._threads._explicit = None


def test_default_respects_affinity():
    assert 1 <= lc.get_num_threads() <= len(os.sched_getaffinity(0))


def _run_py(code, **env):
    e = dict(os.environ)
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          timeout=120)


def test_environment_variable():
    r = _run_py("import leanconv as lc; print(lc.get_num_threads())", LEANCONV_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


@pytest.mark.skipif(not lc._core.openmp_enabled(), reason="serial build")
def test_threadpoolctl_limits():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if os.cpu_count() < 2:
        pytest.skip("one CPU")
    before = lc.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1):
        assert lc.get_num_threads() == 1
    assert lc.get_num_threads() == before
    info = threadpoolctl.threadpool_info()
    assert any(i["user_api"] == "openmp" for i in info)


def test_plan_used_from_many_python_threads(isa, rng):
    x = rng.standard_normal((8, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    ref, scale = conv2d_ref(x, w, None, (1, 1), (1, 1, 1, 1))
    for a in ("im2col", "patch2vec", "winograd_f4", "direct"):
        plan = lc.Conv2d(w, padding=1, algorithm=a)
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda i, p=plan: p(x[i:i + 1]), list(range(8)) * 3))
        for k, y in enumerate(outs):
            i = k % 8
            assert normalised_error(y, ref[i:i + 1], scale[i:i + 1]) < 1e-4, a


def test_calls_release_the_gil(rng):
    """While one thread is inside a long convolution, another keeps running
    Python code.  Counted, not timed: if the call held the GIL, the main loop
    could not run a single iteration between the call's start and end."""
    x = rng.standard_normal((1, 32, 64, 64)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    plan = lc.Conv2d(w, padding=1, algorithm="direct")
    span = {}

    def worker():
        span["start"] = time.perf_counter()
        plan(x, threads=1)
        span["end"] = time.perf_counter()

    t = threading.Thread(target=worker)
    stamps = []
    t.start()
    while t.is_alive():
        stamps.append(time.perf_counter())
    t.join()
    during = sum(span["start"] < s < span["end"] for s in stamps)
    assert during >= 100, (during, span["end"] - span["start"])
