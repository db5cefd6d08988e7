"""Wall-clock timing that measures what it names.

Each candidate (a zero-argument callable) gets one untimed warm-up call
(first-touch page faults, lazy thread-pool start-up, caches), then timed calls
with time.perf_counter.  Candidates are interleaved in rounds -- ours, then the
peers, then ours again -- so a burst of noise from the rest of the machine
lands on all of them rather than on whichever happened to run at that moment.
Rounds continue until every candidate has at least `min_runs` timed calls AND
at least `min_time` seconds of them: a slow layer is never judged on a single
call, a fast one gets many.  The reported figure is the median; the spread
(interquartile range, min and max) goes with it, and a candidate whose
interquartile range is a large share of its median is flagged noisy."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

ROUNDS = 3
MIN_RUNS = 7
MIN_TIME_S = 0.2
# Interquartile range over median above which a measurement is called noisy:
# the median is still reported, but another process probably shared the cores.
NOISY_SPREAD = 0.2
# Long enough for an idle pool's spin (libgomp's default, a few ms; leanconv's 0.3 ms) to end.
SETTLE_S = 0.01


@dataclass
class Candidate:
    key: object
    fn: object
    warmup_s: float = 0.0
    samples: list = field(default_factory=list)

    @property
    def median_s(self):
        return statistics.median(self.samples) if self.samples else None

    @property
    def min_s(self):
        return min(self.samples) if self.samples else None

    @property
    def max_s(self):
        return max(self.samples) if self.samples else None

    @property
    def quartiles_s(self):
        """(first, third) quartile; (min, max) with fewer than 4 samples."""
        if len(self.samples) < 4:
            return self.min_s, self.max_s
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return q1, q3

    @property
    def spread(self):
        """Interquartile range / median: 0 for a quiet machine."""
        if not self.samples:
            return 0.0
        q1, q3 = self.quartiles_s
        return (q3 - q1) / self.median_s if self.median_s else 0.0

    @property
    def noisy(self):
        return self.spread > NOISY_SPREAD

    def summary_ms(self):
        """The statistics of this candidate as a dict of milliseconds (for reports)."""
        q1, q3 = self.quartiles_s
        return {"ms": self.median_s * 1e3, "min_ms": self.min_s * 1e3,
                "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3, "max_ms": self.max_s * 1e3,
                "spread": self.spread, "noisy": self.noisy, "runs": len(self.samples)}


def _timed_calls(cand, calls, budget_s):
    """At least `calls` calls, then more until budget_s seconds of calls."""
    fn, clock, samples = cand.fn, time.perf_counter, cand.samples
    spent, n = 0.0, 0
    while n < calls or spent < budget_s:
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt)
        spent += dt
        n += 1


def _satisfied(cand, min_runs, min_time):
    return len(cand.samples) >= min_runs and sum(cand.samples) >= min_time


def measure(candidates, min_time=MIN_TIME_S, min_runs=MIN_RUNS, rounds=ROUNDS, settle_s=0.0):
    """Time every candidate to at least `min_runs` calls and `min_time` seconds
    of calls, interleaved over at least `rounds` rounds; fills each
    candidate's samples.

    settle_s: a pause before each candidate's block of calls.  Multi-threaded
    runtimes (leanconv's pool, PyTorch's OpenMP) keep their idle
    workers spinning for a few ms after a call; without the pause the next
    library's first calls would share the cores with those spinners."""
    if min_runs < 1 or not min_time >= 0:
        raise ValueError(f"min_runs must be >= 1 and min_time >= 0, got {min_runs}, {min_time}")
    for cand in candidates:
        t0 = time.perf_counter()
        cand.fn()
        cand.warmup_s = time.perf_counter() - t0
    calls = math.ceil(min_runs / rounds)
    share = min_time / rounds
    done_rounds = 0
    while done_rounds < rounds or not all(_satisfied(c, min_runs, min_time) for c in candidates):
        for cand in candidates:
            if done_rounds >= rounds and _satisfied(cand, min_runs, min_time):
                continue
            if settle_s:
                time.sleep(settle_s)
            _timed_calls(cand, calls, share)
        done_rounds += 1
    return candidates


def geomean(values, weights=None):
    """Weighted geometric mean of positive numbers: a ratio summary that one
    outlier cannot dominate (a 100x row moves it by 100**(w/sum w))."""
    values = list(values)
    weights = [1.0] * len(values) if weights is None else list(weights)
    total = sum(weights)
    return math.exp(sum(w * math.log(v) for v, w in zip(values, weights)) / total)
