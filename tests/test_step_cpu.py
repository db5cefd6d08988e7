"""bench/step_cpu.py's assignment of trace records to steps (made-up records; no timing)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import step_cpu  # noqa: E402


def rec(start, team, count, items, cpu_us):
    pad = [0] * (4 - len(items))
    return {"start_ns": start, "team": team, "count": count, "items": list(items) + pad,
            "cpu_ns": [int(c * 1000) for c in cpu_us] + pad}


def test_records_go_to_the_step_they_started_in():
    # step 0 (0-100 ns): a 2-slot loop in its static shares (3 + 4 of 7 items) and a
    # serial one; step 2 (200-300): a loop whose caller took an item of the worker's
    # range (4 + 3 of 7: not clean); step 1 ran no loop
    records = [rec(250, 2, 7, [4, 3], [9, 5]), rec(10, 2, 7, [3, 4], [6, 8]),
               rec(60, 1, 5, [5], [2])]
    got = step_cpu.step_costs([(0, 0, 100), (1, 120, 180), (2, 200, 300)], records)
    assert got == [(0, 8000 + 2000, 14000 + 2000, True), (1, 0, 0, True),
                   (2, 9000, 14000, False)]


def test_summary_keeps_each_steps_wall_p10_and_diff_rows_pair_steps_by_label():
    # step 3: 20 samples, CPU 10..29 us (all clean), wall 100..290 us: p10 is the 2nd
    samples = [(1000 * (10 + i), 0, True, 1000 * (100 + 10 * i)) for i in range(20)]
    s = step_cpu.summary({"A": {3: ["conv", samples]},
                          "B": {3: ["conv", samples[:10]], 4: ["pool", samples]}})
    assert s["A"][3][4] == 110.0 and s["B"][3][4] == 100.0
    # only steps both hold under the same label; B - A of the busiest thread's CPU
    assert step_cpu.diff_rows(s["A"], s["B"]) == [(14.5 - 19.5, "conv", 19.5, 14.5, 3)]
