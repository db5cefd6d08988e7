"""Timing candidate algorithms for algorithm="measure".

Interleaved rounds (each round calls every candidate once, so a load change
on the machine hits all of them alike), the fastest of each candidate's
samples (on a shared machine noise only ever adds time: steal time of a
virtual CPU, other tenants' cache and memory traffic; the median of a few
samples let it pick a 25% slower Winograd size at load 14), and a time
budget: candidates far behind after the first round are dropped, and
rounds stop once the budget is spent (with at least MIN_ROUNDS samples of
the survivors, so a slow layer may take longer than the budget but never
measures on one sample).  Close contenders then get a run-off: the best
two, if within CONFIRM_RATIO of each other, are timed in pairs (alternating
which goes first, so a drift of the machine's speed hits both alike) and
the median of the pairs' ratios decides -- at 2 threads, wall-time minima
of a few samples left 3-8% between algorithms to chance."""
from __future__ import annotations

import statistics
import time

BUDGET_S = 0.3     # per geometry, by default
MIN_ROUNDS = 5
MAX_ROUNDS = 11
DROP_RATIO = 1.5   # after the first round, candidates slower than this x the best go
SAMPLE_S = 1e-3    # a sample loops calls of a tiny layer for about this long
SAMPLE_S_THREADS = 2e-3  # ... with several threads (wake-up jitter per call)
CONFIRM_RATIO = 1.06     # contenders this close get a run-off
CONFIRM_PAIRS = 6


def fastest(runners: dict, budget_s: float = BUDGET_S, single_thread: bool = False):
    """(name of the fastest runner, {name: its fastest sample, seconds}) for runners, a
    dict name -> zero-argument callable (each already warmed up or not: the
    first call of each is a warm-up and is not counted).  single_thread:
    the calls run on this thread only, so its CPU time is what is measured
    (time the OS gives other processes does not count); else wall time."""
    clock = time.thread_time if single_thread else time.perf_counter
    if not runners:
        raise ValueError("no candidates to measure")
    if len(runners) == 1:  # nothing to choose between: one timed call for the record
        (name, run), = runners.items()
        run()
        t0 = clock()
        run()
        return name, {name: clock() - t0}
    start = time.perf_counter()
    inner = {}
    sample_s = SAMPLE_S if single_thread else SAMPLE_S_THREADS
    for name, run in runners.items():
        t0 = time.perf_counter()
        run()  # warm: first-touch of buffers, instruction caches
        # tiny layers: loop so one sample lasts ~sample_s, above timer noise
        inner[name] = max(1, min(200, int(sample_s / max(time.perf_counter() - t0, 1e-7))))
    samples = {name: [] for name in runners}
    alive = list(runners)
    rounds = 0
    while alive:
        for name in alive:
            run, n = runners[name], inner[name]
            t0 = clock()
            for _ in range(n):
                run()
            samples[name].append((clock() - t0) / n)
        rounds += 1
        if rounds == 1 and len(alive) > 1:
            best = min(samples[n][0] for n in alive)
            alive = [n for n in alive if samples[n][0] <= DROP_RATIO * best]
        spent = time.perf_counter() - start
        if rounds >= MAX_ROUNDS or (rounds >= MIN_ROUNDS and spent >= budget_s) or len(alive) == 1:
            break
    best = {name: min(s) for name, s in samples.items() if s}
    ranked = sorted(alive, key=lambda n: best[n])
    if len(ranked) > 1 and best[ranked[1]] <= CONFIRM_RATIO * best[ranked[0]]:
        ranked[:2] = _run_off(ranked[0], ranked[1], runners, inner, clock, best)
    return ranked[0], best


def _run_off(a, b, runners, inner, clock, best):
    """(faster, slower) of two close contenders by the median ratio of
    CONFIRM_PAIRS paired samples; their fastest samples are updated too."""
    def sample(name):
        run, n = runners[name], inner[name]
        t0 = clock()
        for _ in range(n):
            run()
        t = (clock() - t0) / n
        best[name] = min(best[name], t)
        return t

    ratios = []
    for i in range(CONFIRM_PAIRS):
        if i % 2:
            tb = sample(b)
            ta = sample(a)
        else:
            ta = sample(a)
            tb = sample(b)
        ratios.append(ta / tb)
    return (a, b) if statistics.median(ratios) <= 1.0 else (b, a)
