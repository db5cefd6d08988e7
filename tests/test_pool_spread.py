"""The pool keeps its worker off the caller's CPU (kernels/threadpool.c,
lc_pool_spread and lc_pool_wake_away): a worker the scheduler left on the
caller's CPU is moved after a region, a worker woken from sleep gets its own
affinity back, nothing stays pinned afterwards, and with a single allowed
CPU nothing moves and the bits stay those of one thread.

Each case runs in a fresh process: it changes thread affinities, which the
rest of the test session must not inherit."""
import os
import subprocess
import sys
import textwrap

import pytest

from leanconv import _core

pytestmark = [
    pytest.mark.skipif(_core.parallel_backend() != "pool", reason="no pthread pool in this build"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="affinity moves are Linux-only"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                       reason="needs two allowed CPUs"),
    pytest.mark.skipif(not os.path.isdir("/proc/self/task"),
                       reason="no /proc here (the i686 wheel's chroot): the pool's threads are found there"),
    pytest.mark.skipif(bool(os.environ.get("LEANCONV_EMULATED")),
                       reason="user-mode emulation: CPU placement is the host's"),
]

PRELUDE = textwrap.dedent("""
    import os, time
    import numpy as np
    import leanconv as lc
    from leanconv import _core

    def pool_tids():
        out = []
        for t in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{t}/comm") as f:
                if f.read().strip() == "leanconv-pool":
                    out.append(int(t))
        return out

    def settled_affinity(tid, want, timeout=2.0):
        # A worker the caller narrowed before waking it gives itself its set
        # back once it runs; on a loaded machine that can take a while.
        t0 = time.monotonic()
        while os.sched_getaffinity(tid) != want and time.monotonic() - t0 < timeout:
            time.sleep(0.005)
        return os.sched_getaffinity(tid)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 64, 56, 56), dtype=np.float32)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    conv = lc.Conv2d(w, padding=1, algorithm="im2col")
    lc.set_num_threads(1)
    want = conv(x)
    lc.set_num_threads(2)
    conv(x)                        # starts the worker
    allowed = os.sched_getaffinity(0)
    (worker,) = pool_tids()
""")


def _run(body, **env):
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


# The caller kept on one CPU and the worker put on the same one, free to go
# anywhere, as a wake-up leaves it; then 20 two-thread calls.
STACKED = """
        here = sorted(allowed)[0]
        os.sched_setaffinity(0, {here})          # the caller stays on one CPU
        os.sched_setaffinity(worker, {here})     # the worker is put beside it ...
        os.sched_setaffinity(worker, allowed)    # ... and may go anywhere, as after a wake-up
        _core.pool_stats(reset=True)
        for _ in range(20):
            assert np.array_equal(conv(x), want)
        st = _core.pool_stats()
"""


def test_spread_off_moves_nothing():
    out = _run(STACKED + """
        assert st["moves"] == 0, st
        assert os.sched_getaffinity(worker) == allowed
        print("ok")
    """, LEANCONV_POOL_SPREAD="0")
    assert out.startswith("ok")


def test_worker_on_the_callers_cpu_is_moved_and_not_left_pinned():
    # The worker spins (200 ms) instead of sleeping between the calls: a
    # sleeping worker is woken off the caller's CPU before it can stack
    # (lc_pool_wake_away; under a sanitizer the gaps between regions pass
    # the default 300 us spin), and this test is about the move after a
    # region (lc_pool_spread).  On a loaded machine the scheduler may move
    # the worker itself, or back: so the claims are that a region the worker
    # ran on the caller's CPU is followed by a move, that the worker is never
    # left pinned, and that after the move it ran off the caller's CPU.
    out = _run(STACKED.replace("_core.pool_stats(reset=True)",
                               "_core.pool_stats(reset=True); _core.pool_trace(50)") + """
        recs = [r for r in _core.pool_trace() if r["team"] == 2 and r["items"][1] > 0]
        stacked = any(r["cpu"][1] == here for r in recs)
        assert st["moves"] >= 1 or not stacked, (st, recs)
        assert settled_affinity(worker, allowed) == allowed   # given back, not pinned
        _core.pool_trace(50)
        for _ in range(5):
            conv(x)
        recs = [r for r in _core.pool_trace() if r["team"] == 2 and r["items"][1] > 0]
        assert recs and any(r["cpu"][1] != here for r in recs), recs
        print("ok", st["moves"])
    """, LEANCONV_POOL_SPIN_US="200000")
    assert out.startswith("ok")


def test_worker_woken_from_sleep_gets_its_affinity_back():
    # Waking a sleeping worker, the caller keeps its own CPU out of the
    # worker's affinity (lc_pool_wake_away); the worker gives itself the full
    # set back once it runs.  After calls separated by sleeps (each one wakes
    # it) and a pause, nothing is left narrowed, and the bits are those of
    # one thread.
    out = _run("""
        _core.pool_stats(reset=True)
        for _ in range(10):
            time.sleep(0.003)                    # past the 300 us spin: the worker sleeps
            assert np.array_equal(conv(x), want)
        st = _core.pool_stats()
        assert st["sleeps"] >= 2, st           # (a loaded machine may not run the worker between some calls)
        assert settled_affinity(worker, allowed) == allowed
        print("ok")
    """)
    assert out.startswith("ok")


def test_one_allowed_cpu_moves_nothing_and_keeps_the_bits():
    out = _run("""
        here = sorted(allowed)[0]
        for tid in [int(t) for t in os.listdir("/proc/self/task")]:
            os.sched_setaffinity(tid, {here})
        _core.pool_stats(reset=True)
        for _ in range(10):
            time.sleep(0.002)                    # past the spin: the worker sleeps between calls
            assert np.array_equal(conv(x), want)
        st = _core.pool_stats()
        assert st["moves"] == 0, st
        assert os.sched_getaffinity(worker) == {here}
        print("ok")
    """)
    assert out.startswith("ok")
