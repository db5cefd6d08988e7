"""The rotation harness every multi-process benchmark shares
(bench/onnx_models.py, bench/model_threads.py, bench/thread_scaling.py, the
timing loop of bench/torch_models.py), and its in-process form for engines
that share one process (bench/perf_layers.py: `InProcess`).

Each engine lives in its own process (its own thread pools, nothing shared)
and the parent gives the engines turns in rotation.  What makes a turn fair:

- **Quiet wait.**  Before a turn, the parent waits until every *other* engine
  process has gone quiet: the CPU time of all its threads (the first field of
  /proc/PID/task/*/schedstat, in ns; utime+stime of /proc/PID/task/*/stat
  where schedstat is missing) has not grown for QUIET_S and none of its
  threads is runnable (a preempted spinner uses no CPU for a while).  A fixed pause
  guessed it: onnxruntime's pool keeps spinning tens of ms after a run (its
  processes burned ~36 ms of CPU in each 20-50 ms pause), and on a 2-vCPU
  machine that spinning thread took the second core from the next engine's
  turn.  How long each engine spun is measured (`Rotation.spin`) and shown.
- **The same warm-up for every engine.**  Each turn is `warmup` untimed runs
  and then `per_turn` timed ones, in the engine's process (`timed_runs`): the
  first run after a quiet wait wakes sleeping pools and refills caches for
  every engine alike, and is not what a steady caller sees.
- **Turns other work disturbed are redone.**  Over each turn the parent
  sums the CPU time every other thread on the machine used (all processes
  but the engine's and the parent's; a thread born during the turn counts
  whole); a turn during which something else (another helper's compiler, a
  test run) used more than FOREIGN_MAX of a core is run again, up to REDO
  times, and counted
  (`Rotation.redone`; kept after that, so a loaded machine still finishes).
- **Enough runs.**  Turns go on until every engine has `min_rounds` turns and
  `min_time` seconds of timed runs; figures are the median and the
  interquartile range as % of the median (`spread`).
"""
from __future__ import annotations

import os
import statistics
import time

QUIET_S = 0.005        # a peer is quiet when its CPU time has not grown for this long
POLL_S = 0.0005        # how often the quiet wait samples the peers' CPU time
MAX_WAIT_S = 0.5       # a peer busy longer than this (a stuck pool) is reported, not waited for
FOREIGN_MAX = 0.25     # cores' worth of other work during a turn above which it is redone
REDO = 2               # times a disturbed turn is run again before it is kept
_TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def _tids(pid, skip):
    try:
        return [t for t in os.listdir(f"/proc/{pid}/task") if int(t) not in skip]
    except OSError:
        return None


def thread_times(pid, skip=()):
    """{thread id: CPU ns used so far} of the living threads of process `pid`
    but those in `skip` (None once it has exited): each thread's scheduler
    run time."""
    tids = _tids(pid, skip)
    if tids is None:
        return None
    got = {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                got[int(tid)] = int(f.read().split()[0])
        except FileNotFoundError:   # no schedstat in this kernel: clock ticks from stat
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                got[int(tid)] = int((int(fields[11]) + int(fields[12])) * _TICK_NS)
            except (OSError, IndexError, ValueError):
                continue            # a thread that ended meanwhile
        except (OSError, IndexError, ValueError):
            continue
    return got


def runnable(pid, skip=()):
    """Whether a thread of process `pid` (but those in `skip`) is running or
    waiting for a CPU (state R): a spinning thread the scheduler has
    preempted uses no CPU for a while, yet is not quiet."""
    for tid in _tids(pid, skip) or ():
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "R":
                    return True
        except (OSError, IndexError):
            continue
    return False


def cpu_ns(pid):
    """CPU ns the living threads of process `pid` have used so far (None once
    it has exited)."""
    t = thread_times(pid)
    return None if t is None else sum(t.values())


def _growth(before, after):
    """CPU ns threads used between two thread_times() (a thread that ended
    meanwhile counts up to when it was last seen)."""
    if before is None or after is None:
        return 0
    return sum(ns - before.get(tid, 0) for tid, ns in after.items())


def threads_cpu_ns(exclude):
    """{thread id: CPU ns used so far} of every thread on the machine outside
    the processes in `exclude` (per-thread scheduler times, ns-exact; /proc/stat's
    10 ms clock ticks are too coarse for a turn of a few ms)."""
    got = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in exclude:
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    got[int(tid)] = int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return got


def wait_quiet(pids, quiet_s=QUIET_S, poll_s=POLL_S, max_wait_s=MAX_WAIT_S, skip=()):
    """Waits until no process in `pids` has used CPU for `quiet_s` seconds
    and none has a thread that is runnable (threads in `skip` not counted:
    the calling thread, when `pids` holds this process).
    Returns {pid: (seconds until it was last seen running, CPU ns it used
    meanwhile)}; a process still busy after `max_wait_s` ends the wait."""
    t0 = time.perf_counter()
    last = {p: thread_times(p, skip) for p in pids}
    used = {p: 0 for p in pids}
    last_busy = {p: t0 for p in pids}
    while True:
        time.sleep(poll_s)
        now = time.perf_counter()
        for p in pids:
            c = thread_times(p, skip)
            grew = _growth(last[p], c)
            if grew or runnable(p, skip):
                last_busy[p] = now
                used[p] += grew
            if c is not None:
                last[p] = {**last[p], **c} if last[p] else c
        if all(now - b >= quiet_s for b in last_busy.values()) or now - t0 >= max_wait_s:
            break
    return {p: (last_busy[p] - t0, used[p]) for p in pids}


def foreign_cores(exclude, call):
    """(call()'s value, the cores' worth of CPU that processes other than
    those in `exclude` used while it ran)."""
    before, t0 = threads_cpu_ns(exclude), time.perf_counter()
    value = call()
    t1, after = time.perf_counter(), threads_cpu_ns(exclude)
    used = sum(ns - before.get(tid, 0) for tid, ns in after.items())
    return value, used / 1e9 / max(t1 - t0, 1e-9)


class InProcess:
    """The same rules for engines that share one process (bench/perf_layers.py):
    `sample(call)` waits until every other thread of this process (the
    engines' pools) is quiet, makes one untimed call of `warm`, then returns
    call()'s value; redone while other processes disturb it, as Rotation.turn.
    `redone` / `samples` count."""

    def __init__(self, quiet_s=QUIET_S, foreign_max=FOREIGN_MAX, redo=REDO):
        self.quiet_s, self.foreign_max, self.redo = quiet_s, foreign_max, redo
        self.samples = self.redone = 0

    def sample(self, warm, call):
        import threading
        me = os.getpid()
        skip = {threading.get_native_id()}
        self.samples += 1
        for attempt in range(self.redo + 1):
            wait_quiet([me], self.quiet_s, skip=skip)
            warm()
            value, foreign = foreign_cores({me}, call)
            if foreign <= self.foreign_max or attempt == self.redo:
                return value
            self.redone += 1


def timed_runs(fn, n, warmup, max_s=None):
    """In the engine's process: `warmup` untimed calls, then `n` timed ones
    (fewer once they have taken max_s seconds, at least one); the seconds of
    each timed call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if max_s is not None and sum(times) >= max_s:
            break
    return times


def spread(ts):
    """(median, interquartile range as % of the median) of a list of times."""
    med = statistics.median(ts)
    if len(ts) < 2:
        return med, 0.0
    q = statistics.quantiles(ts, n=4)
    return med, 100 * (q[2] - q[0]) / med


class Rotation:
    """Turns over engine processes, each after the others have gone quiet.

    `pids` maps an engine's name to its process id.  `turn(name, call)` waits
    for the other engines' processes to go quiet, then returns call()'s value
    (call asks the engine for its runs).  `spin[name]` collects, for each
    quiet wait after that engine's turn, how long it stayed busy (s) and the
    CPU it used (ns): how long its pools spin once idle."""

    def __init__(self, pids, quiet_s=QUIET_S, foreign_max=FOREIGN_MAX, redo=REDO):
        self.pids = dict(pids)
        self.quiet_s = quiet_s
        self.foreign_max = foreign_max
        self.redo = redo
        self.spin = {name: [] for name in self.pids}
        self.turns = {name: 0 for name in self.pids}
        self.redone = {name: 0 for name in self.pids}
        self.first_last = {name: [] for name in self.pids}   # per turn: 1st / last timed run
        self.waited_s = 0.0

    def _wait_for_others(self, name):
        others = {n: p for n, p in self.pids.items() if n != name}
        t0 = time.perf_counter()
        seen = wait_quiet(list(others.values()), self.quiet_s)
        self.waited_s += time.perf_counter() - t0
        for n, p in others.items():
            busy_s, ns = seen[p]
            if ns:
                self.spin[n].append((busy_s, ns))

    def turn(self, name, call):
        """Waits for the other engines to go quiet, then returns call()'s
        value; redone (up to self.redo times) while other work disturbs it."""
        self.turns[name] += 1
        for attempt in range(self.redo + 1):
            self._wait_for_others(name)
            value, foreign = foreign_cores({os.getpid(), self.pids[name]}, call)
            if foreign <= self.foreign_max or attempt == self.redo:
                return value
            self.redone[name] += 1

    def redone_share(self, name):
        """Redone turns per kept turn of this engine (0: the machine was quiet)."""
        return self.redone[name] / max(1, self.turns[name])

    def settled(self, name):
        """Median over turns of the first timed run / the last one: near 1
        when the warm-up before the timed runs is enough (None: one run a turn)."""
        r = self.first_last.get(name)
        return statistics.median(r) if r else None

    def spin_summary(self, name):
        """(median s busy, median CPU ms used) after this engine's turns, or None."""
        s = self.spin.get(name)
        if not s:
            return None
        return statistics.median(b for b, _ in s), statistics.median(c for _, c in s) / 1e6


def rotate(asks, pids, min_time, min_rounds, quiet_s=QUIET_S):
    """Turns in rotation over `asks` ({name: ask()} where ask() runs one turn in
    that engine's process and returns its timed seconds) until every engine
    has min_rounds turns and min_time seconds.  Returns ({name: [seconds]},
    the Rotation, for its spin figures)."""
    rot = Rotation(pids, quiet_s)
    times = {name: [] for name in asks}
    turns = 0
    while asks:
        for name, ask in asks.items():
            got = rot.turn(name, ask)
            if len(got) > 1 and got[-1] > 0:
                rot.first_last[name].append(got[0] / got[-1])
            times[name] += got
        turns += 1
        if turns >= min_rounds and all(sum(t) >= min_time for t in times.values()):
            break
    return times, rot


METHOD = ("each engine in its own process (its own thread pools, nothing shared), turns in "
          "rotation; before each turn the parent waits until every other engine's process has "
          f"used no CPU for {QUIET_S * 1e3:.0f} ms (the CPU time of all its threads, from "
          "/proc/PID/task/*/schedstat, polled every 0.5 ms), so no pool still spinning after its "
          "turn shares the cores with the next engine; each turn is the same untimed warm-up "
          "runs and then timed runs for every engine; a turn during which other processes on "
          f"the machine used more than {FOREIGN_MAX:.2f} of a core (the CPU time of every "
          f"other thread, from /proc) is run again, up to {REDO} times (bench/_rotation.py)")
