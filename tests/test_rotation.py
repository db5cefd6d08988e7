"""bench/_rotation.py, the benchmarks' rotation harness: its quiet wait sees a
process's threads spinning and waits them out, and it notices other work
during a turn.  Synthetic child processes that spin on command; fast."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import _rotation  # noqa: E402

# The harness times native benchmark processes; under user-mode emulation
# (.ci/test-neon.sh sets LEANCONV_EMULATED) its children run 10-50x slower
# and their CPU accounting is the emulator's, so the timing checks say nothing.
pytestmark = [pytest.mark.skipif(not os.path.exists("/proc/self/task"),
                                 reason="needs Linux's /proc"),
              pytest.mark.skipif(bool(os.environ.get("LEANCONV_EMULATED")),
                                 reason="times native processes; not under emulation")]

# A child that, for each line "SECONDS" on stdin, answers "ok" at once and
# then spins (in a second thread, as an idle pool worker would) that long.
SPINNER = r"""
import sys, threading, time
def spin(s):
    end = time.perf_counter() + s
    while time.perf_counter() < end:
        pass
print("ready", flush=True)
for line in sys.stdin:
    t = threading.Thread(target=spin, args=(float(line),))
    print("ok", flush=True)
    t.start()
    t.join()
"""


def _spinner():
    p = subprocess.Popen([sys.executable, "-c", SPINNER], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _spinner_process():
    p = _spinner()
    yield p
    p.stdin.close()
    p.wait(timeout=10)


spinner = pytest.fixture(_spinner_process, name="spinner")
other = pytest.fixture(_spinner_process, name="other")   # a second, unrelated process


def _spin(p, seconds):
    p.stdin.write(f"{seconds}\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "ok"


def test_cpu_ns_counts_every_thread_of_a_process(spinner):
    before = _rotation.cpu_ns(spinner.pid)
    _spin(spinner, 0.5)                 # the main thread then blocks in join: ~0 CPU
    deadline, used = time.perf_counter() + 0.4, 0
    while used < 0.005e9 and time.perf_counter() < deadline:
        time.sleep(0.01)
        used = _rotation.cpu_ns(spinner.pid) - before
    assert used >= 0.005e9, used        # the spinning thread's time, not only the main thread's


def test_cpu_ns_of_an_ended_process_is_none():
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)
    assert _rotation.cpu_ns(int(p.stdout)) is None


def test_wait_quiet_waits_out_a_spinning_process(spinner):
    _spin(spinner, 0.08)
    t0 = time.perf_counter()
    seen = _rotation.wait_quiet([spinner.pid], quiet_s=0.005)
    waited = time.perf_counter() - t0
    busy_s, ns = seen[spinner.pid]
    assert waited >= 0.07 and busy_s >= 0.05, (waited, busy_s)
    assert ns >= 0.001e9, ns          # (a loaded machine gives the spinner a small share)
    assert waited < 1.0                 # and returns soon after it stopped


def test_wait_quiet_returns_at_once_for_an_idle_process(spinner):
    t0 = time.perf_counter()
    seen = _rotation.wait_quiet([spinner.pid], quiet_s=0.005)
    assert time.perf_counter() - t0 < 0.2
    assert seen[spinner.pid][1] < 0.005e9


def test_wait_quiet_gives_up_on_a_process_that_never_stops(spinner):
    _spin(spinner, 0.6)
    t0 = time.perf_counter()
    _rotation.wait_quiet([spinner.pid], quiet_s=0.005, max_wait_s=0.1)
    assert time.perf_counter() - t0 < 0.4


def test_rotation_starts_a_turn_only_after_the_others_are_quiet(spinner, other):
    rot = _rotation.Rotation({"peer": spinner.pid, "me": other.pid})
    rot.turn("peer", lambda: _spin(spinner, 0.08))   # the peer's turn leaves a spinning thread
    started = []
    rot.turn("me", lambda: started.append(_rotation.cpu_ns(spinner.pid)))
    time.sleep(0.05)
    assert _rotation.cpu_ns(spinner.pid) - started[0] < 0.003e9   # it had stopped already
    busy_s, cpu_ms = rot.spin_summary("peer")
    assert busy_s >= 0.05 and cpu_ms >= 1, (busy_s, cpu_ms)
    me = rot.spin_summary("me")          # idle all along (bar the end of its start-up)
    assert me is None or me[1] < 1, me


def test_a_turn_disturbed_by_other_work_is_redone(spinner, other):
    rot = _rotation.Rotation({"me": spinner.pid}, redo=2)
    calls = []

    def call():                 # an unrelated process spins through the first attempt only
        if not calls:
            _spin(other, 0.05)
        calls.append(1)
        time.sleep(0.04)
        return len(calls)
    assert rot.turn("me", call) >= 2
    assert rot.redone["me"] >= 1 and rot.redone_share("me") >= 1


def test_spread_and_timed_runs():
    med, iqr = _rotation.spread([1.0, 1.0, 1.0, 1.0])
    assert (med, iqr) == (1.0, 0.0)
    med, iqr = _rotation.spread([1.0, 2.0, 3.0, 4.0, 5.0])
    assert med == 3.0 and iqr > 0
    calls = []
    ts = _rotation.timed_runs(lambda: calls.append(1), 3, 2)
    assert len(ts) == 3 and len(calls) == 5 and all(t >= 0 for t in ts)
    ts = _rotation.timed_runs(lambda: time.sleep(0.01), 1000, 0, max_s=0.03)
    assert sum(ts) >= 0.03 > sum(ts[:-1])        # stops once the calls took max_s


def test_in_process_sample_waits_for_the_process_own_other_threads():
    import threading
    done = []

    def spin():                     # another engine's pool thread, still spinning
        end = time.perf_counter() + 0.08
        while time.perf_counter() < end:
            pass
        done.append(time.perf_counter())
    t = threading.Thread(target=spin)
    turns = _rotation.InProcess()
    t.start()
    warmed = []
    started = turns.sample(lambda: warmed.append(1), time.perf_counter)
    t.join()
    assert done and started >= done[0], (started, done)
    assert warmed == [1] * (1 + turns.redone)      # one untimed call before each attempt
    assert turns.samples == 1


def test_rotate_collects_times_and_the_first_over_last_run(spinner, other):
    runs = {"a": [0.002, 0.001, 0.001], "b": [0.001, 0.001]}
    asks = {n: (lambda n=n: list(runs[n])) for n in runs}   # (a redone turn asks again)
    times, rot = _rotation.rotate(asks, {"a": spinner.pid, "b": other.pid}, 0.0, 3)
    assert times == {"a": [0.002, 0.001, 0.001] * 3, "b": [0.001, 0.001] * 3}
    assert rot.settled("a") == 2.0 and rot.settled("b") == 1.0
