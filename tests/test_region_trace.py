"""bench/region_trace.py's split of the time inside parallel loops (what it
counts, on made-up trace records; no timing)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import region_trace  # noqa: E402


def rec(run, wall_us, busy_us, team, cpu_us=None):
    busy = [int(b * 1000) for b in busy_us] + [0] * (4 - len(busy_us))
    r = {"run": run, "start_ns": 0, "end_ns": int(wall_us * 1000), "team": team, "busy_ns": busy}
    if cpu_us is not None:
        r["cpu_ns"] = [int(c * 1000) for c in cpu_us] + [0] * (4 - len(cpu_us))
    return r


def test_split_counts_hand_over_imbalance_and_busy_per_run():
    # run 0: a 2-thread loop of 10 us whose slots worked 8 and 6 us, then a serial one of 3 us
    # run 1: the same loops, the 2-thread one with a worker that took no item
    records = [rec(0, 10, [8, 6], 2), rec(0, 3, [3], 1),
               rec(1, 12, [11, 0], 2), rec(1, 3, [3], 1)]
    split = region_trace.loss_split(records)
    # medians over the two runs
    assert split["wall"] == pytest.approx((13 + 15) / 2)
    assert split["handover"] == pytest.approx((2 + 1) / 2)          # wall past the busiest slot
    assert split["imbalance"] == pytest.approx((1 + 5.5) / 2)       # busiest past the slots' mean
    assert split["busy"] == pytest.approx((17 + 14) / 2)            # every slot's items
    assert split["cpu"] == 0                                        # records without cpu_ns


def test_split_sums_thread_cpu_time():
    # the worker was preempted 3 us of its 8 us in items: busy counts it, cpu does not
    records = [rec(0, 10, [7, 8], 2, cpu_us=[7, 5]), rec(0, 3, [3], 1, cpu_us=[3])]
    split = region_trace.loss_split(records)
    assert split["busy"] == pytest.approx(18)
    assert split["cpu"] == pytest.approx(15)


def test_split_of_no_records_is_none():
    assert region_trace.loss_split([]) is None
