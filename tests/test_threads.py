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
    ((2, 32, 9, 9), (40, 8, 1, 1), dict(groups=4)),   # a 1x1 layer's groups share one loop
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


# One layer per depthwise path (kernels/depthwise.c), each with enough work
# that 2-4 threads really split it (lc_threads_used): tiny planes (4x4),
# the multi-plane kernel (7x7, 14x14 at stride 1), the 3x3 plane kernel
# (28x28, 56x56 at stride 2, a channel multiplier), channel blocks (5x5,
# 3x3 dilated), bands (5x5 on fewer channels than an AVX-512 vector), rows
# too wide for a band (5x5 on 3000 columns); activations and residuals, in
# place too.
DEPTHWISE = [
    ((1, 1024, 4, 4), 1, 3, dict(padding=1)),
    ((1, 960, 7, 7), 1, 3, dict(padding=1)),
    ((2, 384, 14, 14), 1, 3, dict(padding=1)),
    ((1, 96, 28, 28), 1, 3, dict(padding=1)),
    ((1, 48, 56, 56), 1, 3, dict(padding=1, stride=2)),
    ((1, 24, 28, 28), 2, 3, dict(padding=1)),
    ((1, 96, 16, 16), 1, 5, dict(padding=2)),
    ((1, 8, 40, 40), 1, 5, dict(padding=2)),
    ((1, 64, 24, 24), 1, 3, dict(padding=2, dilation=2)),
    ((1, 4, 5, 3000), 1, 5, dict(padding=2)),
]


@pytest.mark.parametrize("xs,mult,k,kw", DEPTHWISE)
def test_depthwise_paths_same_bits_at_1_to_4_threads(isa, xs, mult, k, kw, rng):
    C = xs[1]
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal((C * mult, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(C * mult).astype(np.float32)
    plan = lc.Conv2d(w, b, groups=C, algorithm="depthwise", activation="relu6", **kw)
    one = plan(x, threads=1)
    res = rng.standard_normal(one.shape).astype(np.float32)
    with_res = plan(x, residual=res, threads=1)
    want, scale = conv2d_ref(x, w, b, stride=(kw.get("stride", 1),) * 2,
                             pads=(kw["padding"],) * 4, dilation=(kw.get("dilation", 1),) * 2,
                             groups=C)
    assert normalised_error(with_res, np.clip(want + res, 0, 6), scale + 1) < 1e-5
    # in place, a path that refuses it (tiny planes) leaves it to another,
    # whose sums may round differently: its bits are its own 1-thread ones
    in_place = res.copy()
    plan(x, out=in_place, residual=in_place, threads=1)
    assert normalised_error(in_place, np.clip(want + res, 0, 6), scale + 1) < 1e-5
    for t in (2, 3, 4):
        np.testing.assert_array_equal(plan(x, threads=t), one, err_msg=f"threads={t}")
        np.testing.assert_array_equal(plan(x, residual=res, threads=t), with_res,
                                      err_msg=f"residual, threads={t}")
        acc = res.copy()
        plan(x, out=acc, residual=acc, threads=t)
        np.testing.assert_array_equal(acc, in_place, err_msg=f"in place, threads={t}")
