"""Wall-clock timing that measures what it names.

Each candidate (a zero-argument callable) gets one untimed warm-up call
(first-touch page faults, lazy thread-pool start-up, caches), then timed calls
with time.perf_counter until its share of --min-time is spent.  Candidates of
one layer are interleaved in rounds -- ours, then the peers, then ours again --
so a burst of noise from the rest of the machine lands on all of them rather
than on whichever happened to run at that moment.  The reported figure is the
median of the per-call times."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

ROUNDS = 3
# Long enough for libgomp's default spin (GOMP_SPINCOUNT, a few ms) to end.
SETTLE_S = 0.01


@dataclass
class Candidate:
    key: str
    fn: object
    warmup_s: float = 0.0
    samples: list = field(default_factory=list)

    @property
    def median_s(self):
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self):
        """Interquartile range / median: 0 for a quiet machine."""
        if len(self.samples) < 4:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / self.median_s


def _timed_calls(cand, budget_s):
    """At least one call, then more until budget_s seconds of calls."""
    fn, clock, samples = cand.fn, time.perf_counter, cand.samples
    spent = 0.0
    while True:
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
        if spent >= budget_s:
            break


def measure(candidates, min_time, rounds=ROUNDS, settle_s=0.0):
    """Time every candidate for about `min_time` seconds of calls in total,
    interleaved over `rounds` rounds; fills each candidate's samples.

    A candidate whose single warm-up call already exceeds min_time gets one
    timed call only (so 'all' on a big layer with the naive algorithm stays
    bounded); every other candidate gets at least one call per round.

    settle_s: a pause before each candidate's block of calls.  Multi-threaded
    runtimes (libgomp in leanconv, PyTorch's own OpenMP) keep their idle
    workers spinning for a few ms after a call; without the pause the next
    library's first calls would share the cores with those spinners."""
    for cand in candidates:
        t0 = time.perf_counter()
        cand.fn()
        cand.warmup_s = time.perf_counter() - t0
    share = min_time / rounds
    for _ in range(rounds):
        for cand in candidates:
            slow = cand.warmup_s >= min_time
            if slow and cand.samples:
                continue
            if settle_s:
                time.sleep(settle_s)
            _timed_calls(cand, share)
    return candidates
