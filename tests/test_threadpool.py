"""leanconv's thread pool (kernels/threadpool.c): many regions in a row, calls
from several Python threads at once, thread counts above the machine's,
fork, one thread never starting a worker, work too small for a second thread
staying on the caller, and the spin bound's environment variable."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core, _threads

POOL = _core.parallel_backend() == "pool"
needs_pool = pytest.mark.skipif(not POOL, reason=f"{_core.parallel_backend()} build: no pool")


def _run_py(code, **env):
    e = dict(os.environ)
    e.update(env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _layer(rng, c=32, hw=20, m=32):
    x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((m, c, 3, 3)).astype(np.float32)
    return x, w


def test_spin_environment_variable():
    assert _threads.spin_us_from({}) is None
    assert _threads.spin_us_from({"LEANCONV_POOL_SPIN_US": " 50 "}) == 50
    assert _threads.spin_us_from({"LEANCONV_POOL_SPIN_US": "0"}) == 0
    for bad in ("-1", "1.5", "fast", str(10**7)):
        with pytest.raises(ValueError, match="LEANCONV_POOL_SPIN_US must be an int in 0..1000000"):
            _threads.spin_us_from({"LEANCONV_POOL_SPIN_US": bad})


def test_spread_environment_variable():
    assert _threads.spread_from({}) is None
    assert _threads.spread_from({"LEANCONV_POOL_SPREAD": " 0 "}) is False
    assert _threads.spread_from({"LEANCONV_POOL_SPREAD": "1"}) is True
    for bad in ("2", "off", "yes", "-1"):
        with pytest.raises(ValueError, match="LEANCONV_POOL_SPREAD must be 0 or 1"):
            _threads.spread_from({"LEANCONV_POOL_SPREAD": bad})


@needs_pool
def test_spin_environment_variable_reaches_the_pool():
    out = _run_py("from leanconv import _core; print(_core.pool_stats()['spin_us'])",
                  LEANCONV_POOL_SPIN_US="40")
    assert out.strip() == "40"


@needs_pool
def test_one_thread_never_starts_a_worker():
    code = """
import numpy as np, leanconv as lc
from leanconv import _core
x = np.ones((2, 32, 40, 40), np.float32); w = np.ones((32, 32, 3, 3), np.float32)
for a in lc.algorithms():
    if lc.supports(a, x.shape, w.shape, padding=1):
        lc.conv2d(x, w, padding=1, algorithm=a, threads=1)
lc.set_num_threads(1)
lc.conv2d(x, w, padding=1)
s = _core.pool_stats()
print(s['workers'], s['regions'])
"""
    assert _run_py(code).split() == ["0", "0"]


@needs_pool
def test_many_regions_in_a_row_stay_exact(rng):
    x, w = _layer(rng)
    for a in ("im2col", "patch2vec", "winograd_f4", "winograd_f2", "direct"):
        ref = lc.conv2d(x, w, padding=1, algorithm=a, threads=1)
        plan = lc.Conv2d(w, padding=1, algorithm=a)
        before = _core.pool_stats()["regions"]
        for _ in range(200):
            assert np.array_equal(plan(x, threads=2), ref), a
        assert _core.pool_stats()["regions"] >= before + 200, a


@pytest.mark.parametrize("threads", [3, 7, 64, 1000])
def test_more_threads_than_the_machine(threads, rng):
    x, w = _layer(rng, c=16, hw=33, m=24)
    for a in lc.algorithms():
        if not lc.supports(a, x.shape, w.shape, padding=1):
            continue
        ref = lc.conv2d(x, w, padding=1, algorithm=a, threads=1)
        plan = lc.Conv2d(w, padding=1, algorithm=a)
        out = plan(x, threads=threads)
        assert np.array_equal(out, ref), (a, threads)
        assert _core.last_workspace_bytes() == plan.workspace_bytes(x.shape, threads=threads)


def _hammer(calls, results, errors):
    try:
        for fn, expect in calls:
            results.append(np.array_equal(fn(), expect))
    except Exception as e:  # surfaced by the test
        errors.append(e)


@pytest.mark.parametrize("same_plan", [True, False])
def test_two_python_threads_at_once(same_plan, rng):
    """Two callers contend for the one pool: the loser runs its region on its
    own thread (same bits); nothing deadlocks, nothing is lost."""
    x, w = _layer(rng, c=32, hw=28, m=48)
    x2, w2 = _layer(rng, c=48, hw=14, m=32)
    p1 = lc.Conv2d(w, padding=1, algorithm="winograd_f4")
    p2 = p1 if same_plan else lc.Conv2d(w2, padding=1, algorithm="im2col")
    xin2 = x if same_plan else x2
    r1, r2 = p1(x, threads=1), p2(xin2, threads=1)
    results, errors = [], []
    workers = [threading.Thread(target=_hammer, args=(
        [(lambda: p1(x, threads=2), r1)] * 60 if k == 0 else [(lambda: p2(xin2, threads=2), r2)] * 60,
        results, errors)) for k in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 120 and all(results)


@needs_pool
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_fork_with_live_workers():
    """A child forked while the pool's workers are alive (they do not exist
    in the child) starts its own and computes the same bits."""
    code = """
import os, numpy as np, leanconv as lc
from leanconv import _core
rng = np.random.default_rng(1)
x = rng.standard_normal((1, 32, 30, 30)).astype(np.float32)
w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
ref = lc.conv2d(x, w, padding=1, threads=1)
assert np.array_equal(lc.conv2d(x, w, padding=1, threads=2), ref)
assert _core.pool_stats()['workers'] >= 1
pid = os.fork()
if pid == 0:
    ok = all(np.array_equal(lc.conv2d(x, w, padding=1, threads=2), ref) for _ in range(20))
    os._exit(0 if ok and _core.pool_stats()['workers'] >= 1 else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
assert np.array_equal(lc.conv2d(x, w, padding=1, threads=2), ref)
"""
    assert _run_py(code).strip() == "0"


@needs_pool
def test_small_work_stays_on_the_calling_thread(rng):
    """A layer too small to repay a region runs inline at any thread count,
    and its workspace is the one-thread workspace (what the call uses)."""
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    for a in ("im2col", "patch2vec", "winograd_f2"):
        plan = lc.Conv2d(w, padding=1, algorithm=a)
        before = _core.pool_stats()["regions"]
        y = plan(x, threads=2)
        assert _core.pool_stats()["regions"] == before, a
        assert np.array_equal(y, plan(x, threads=1))
        assert plan.workspace_bytes(x.shape, threads=2) == plan.workspace_bytes(x.shape, threads=1)
    small = np.ones(1000, np.float32)
    before = _core.pool_stats()["regions"]
    _core.activate(small, np.empty_like(small), 1, 0.0, 0.0, threads=2)
    assert _core.pool_stats()["regions"] == before


@needs_pool
def test_large_work_uses_the_pool(rng):
    x, w = _layer(rng, c=64, hw=56, m=64)
    before = _core.pool_stats()["regions"]
    lc.conv2d(x, w, padding=1, algorithm="winograd_f4", threads=2)
    assert _core.pool_stats()["regions"] > before


@needs_pool
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU")
def test_region_probe_runs_both_threads():
    for backend in ("pool", "openmp"):
        t = _core.region_probe(backend, 0.0, 5)
        if t is None:
            assert backend == "openmp"
            continue
        assert len(t) == 5 and all(v > 0 for v in t)
    with pytest.raises(ValueError, match="backend must be"):
        _core.region_probe("tbb", 0.0, 1)


@needs_pool
def test_stealing_on_and_off_keep_the_bits_oversubscribed(rng):
    """7 threads on this machine's CPUs, many regions, with work stealing
    (which thread runs an item then varies) and without: every call gives
    the 1-thread bits (the NEON flake that once turned stealing off)."""
    x, w = _layer(rng, c=16, hw=33, m=24)
    try:
        for a in lc.algorithms():
            if not lc.supports(a, x.shape, w.shape, padding=1):
                continue
            plan = lc.Conv2d(w, padding=1, algorithm=a)
            ref = plan(x, threads=1)
            for steal in (True, False):
                _core.set_pool_stealing(steal)
                for _ in range(15):
                    assert np.array_equal(plan(x, threads=7), ref), (a, steal)
    finally:
        _core.set_pool_stealing(True)


@needs_pool
def test_trace_records_every_loop(rng):
    """The debug trace: one record per parallel loop, serial ones as team 1;
    a region's slots ran all its items between them; each slot's thread CPU
    time (cpu_ns) is there for every slot that ran items (Linux has the
    clock), and a slot that ran none has 0; off again after."""
    x, w = _layer(rng, c=64, hw=56, m=64)
    small = np.ones(1000, np.float32)
    _core.pool_trace(1000)
    try:
        lc.conv2d(x, w, padding=1, algorithm="winograd_f4", threads=2)
        _core.activate(small, np.empty_like(small), 1, 0.0, 0.0, threads=2)
        recs = _core.pool_trace()
    finally:
        _core.pool_trace(0)
    assert recs and recs[-1]["team"] == 1 and recs[-1]["items"][0] == recs[-1]["count"]
    regions = [r for r in recs if r["team"] == 2]
    assert regions
    for r in regions:
        assert sum(r["items"]) == r["count"] and r["end_ns"] >= r["start_ns"]
        assert all(b >= 0 for b in r["busy_ns"])
        assert all(c == 0 for c, n in zip(r["cpu_ns"], r["items"]) if n == 0)
        if sys.platform.startswith("linux"):
            assert all(c > 0 for c, n in zip(r["cpu_ns"], r["items"]) if n > 0)
    assert _core.pool_trace() == []
    with pytest.raises(ValueError, match="capacity"):
        _core.pool_trace(-1)


@needs_pool
def test_resize_bounds_its_threads_by_work():
    """Resize takes its thread count from its work like every loop
    (lc_threads_used): a small one stays on the calling thread."""
    planes, H, W, OH, OW = 64, 4, 4, 8, 8
    x = np.ones(planes * H * W, np.float32)
    out = np.empty(planes * OH * OW, np.float32)
    rows = np.arange(OH, dtype=np.int64) // 2
    cols = np.arange(OW, dtype=np.int64) // 2
    before = _core.pool_stats()["regions"]
    _core.resize2d(x, out, planes, H, W, rows, rows, np.zeros(OH, np.float32), cols, cols,
                   np.zeros(OW, np.float32), True, 2)
    assert _core.pool_stats()["regions"] == before
    assert (out == 1).all()
