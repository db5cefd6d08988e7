"""algorithm="measure" and the wisdom file: round trips across processes,
corrupt and foreign files, concurrent measuring and writing."""
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import leanconv as lc
from leanconv import _measure, _wisdom

PYTHONPATH = str(Path(lc.__file__).resolve().parent.parent)
X_SHAPE, W_SHAPE = (1, 8, 10, 10), (8, 8, 3, 3)


@pytest.fixture
def count_measurements(monkeypatch):
    calls = []
    real = _measure.fastest

    def counting(runners, *a, **k):
        calls.append(sorted(runners))
        return real(runners, *a, **k)
    monkeypatch.setattr(_measure, "fastest", counting)
    return calls


def layer(rng, w_shape=W_SHAPE):
    return rng.standard_normal(w_shape).astype(np.float32)


def test_measure_records_and_auto_follows(wisdom, count_measurements, rng):
    w = layer(rng)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    plan = lc.Conv2d(w, padding=1, algorithm="measure")
    y = plan(x, threads=1)
    assert len(count_measurements) == 1
    # every algorithm that runs the shape is a candidate, but the naive reference
    assert count_measurements[0] == sorted(a for a in lc.algorithms()
                                           if a != "direct" and lc.supports(a, X_SHAPE, W_SHAPE, padding=1))
    winner = plan.algorithm
    assert y.tobytes() == lc.Conv2d(w, padding=1, algorithm=winner)(x, threads=1).tobytes()
    data = json.loads(wisdom.read_text())
    assert data["format"] == "leanconv-wisdom" and len(data["entries"]) == 1
    (entry,) = data["entries"].values()
    assert entry["algorithm"] == winner and winner in entry["times_ms"]
    # the fastest sample wins, or a contender within the run-off band that won
    # the paired run-off (its recorded sample may then be a little slower)
    assert entry["times_ms"][winner] <= min(entry["times_ms"].values()) * _measure.CONFIRM_RATIO
    # again: no measuring, in this plan or a new one; "auto" follows the wisdom
    plan(x, threads=1)
    lc.Conv2d(w, padding=1, algorithm="measure")(x, threads=1)
    assert lc.Conv2d(w, padding=1).algorithm_for(X_SHAPE, threads=1) == winner
    assert len(count_measurements) == 1
    # another thread count is another measurement
    plan(x, threads=2)
    assert len(count_measurements) == 2


def _run(code, wisdom_path, **env):
    e = dict(os.environ, PYTHONPATH=PYTHONPATH, LEANCONV_WISDOM=str(wisdom_path), **env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True,
                          timeout=120)


CHILD = """
import sys, numpy as np, leanconv as lc
from leanconv import _measure
if sys.argv[1:] == ["forbid"]:
    def refuse(*a, **k):
        raise SystemExit("measured again")
    _measure.fastest = refuse
w = np.random.default_rng(5).standard_normal((8, 8, 3, 3)).astype(np.float32)
x = np.ones((1, 8, 10, 10), np.float32)
plan = lc.Conv2d(w, padding=1, algorithm="measure")
plan(x, threads=1)
auto = lc.Conv2d(w, padding=1).algorithm_for(x.shape, threads=1)
print(plan.algorithm, auto)
"""


def test_round_trip_across_two_processes(tmp_path):
    p = tmp_path / "w.json"
    first = _run(CHILD, p)
    assert first.returncode == 0, first.stderr
    second = _run(CHILD.replace("sys.argv[1:]", "['forbid']"), p)
    assert second.returncode == 0, second.stderr + second.stdout
    winner, auto = first.stdout.split()
    assert second.stdout.split() == [winner, winner]


def _write_entry(p, algorithm, w_shape=W_SHAPE, x_shape=X_SHAPE, threads=1):
    spec = lc.Conv2d(np.zeros(w_shape, np.float32), padding=1, algorithm="direct").spec
    k = _wisdom.key(lc.isa(), threads, spec, spec.geometry(*x_shape))
    p.write_text(json.dumps({"format": "leanconv-wisdom", "version": 1,
                             "entries": {k: {"algorithm": algorithm, "times_ms": {}}}}))


def test_auto_uses_an_entry_written_by_another_process(wisdom):
    cost_model = lc.Conv2d(np.zeros(W_SHAPE, np.float32), padding=1).algorithm_for(X_SHAPE, 1)
    other = "patch2vec" if cost_model != "patch2vec" else "im2col"
    _write_entry(wisdom, other)
    r = _run("import numpy as np, leanconv as lc\n"
             f"print(lc.Conv2d(np.zeros({W_SHAPE}, np.float32), padding=1)"
             f".algorithm_for({X_SHAPE}, threads=1))", wisdom)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == other


@pytest.mark.parametrize("content", [
    "{not json", "", "\x00\xff\xfe", json.dumps({"hello": "world"}), json.dumps([1, 2, 3]),
    json.dumps({"format": "leanconv-wisdom", "version": 99, "entries": {}}),
    json.dumps({"format": "leanconv-wisdom", "version": 1, "entries": []}),
])
def test_corrupt_or_foreign_file_is_ignored_with_one_warning(wisdom, rng, content):
    wisdom.write_bytes(content.encode("utf-8", "surrogateescape") if content != "\x00\xff\xfe"
                       else b"\x00\xff\xfe")
    before = wisdom.read_bytes()
    w = layer(rng)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = lc.Conv2d(w, padding=1, algorithm="measure")
        for shape in ((1, 8, 10, 10), (1, 8, 12, 12), (2, 8, 10, 10)):
            y = plan(np.ones(shape, np.float32), threads=1)
            assert np.isfinite(y).all()
        lc.Conv2d(w, padding=1).algorithm_for(X_SHAPE)
    ours = [c for c in caught if "wisdom" in str(c.message)]
    assert len(ours) == 1, [str(c.message) for c in caught]
    assert str(wisdom) in str(ours[0].message)
    assert wisdom.read_bytes() == before  # never overwritten
    # what this process measured is still used (no second measurement)
    assert len(_wisdom._state["ours"]) == 3


def test_bad_entries_are_skipped(wisdom, rng):
    spec = lc.Conv2d(np.zeros(W_SHAPE, np.float32), padding=1, algorithm="direct").spec
    k = _wisdom.key(lc.isa(), 1, spec, spec.geometry(*X_SHAPE))
    wisdom.write_text(json.dumps({"format": "leanconv-wisdom", "version": 1, "entries": {
        k: {"algorithm": "no_such_algorithm"}, "x": 3}}))
    assert _wisdom.lookup(lc.isa(), 1, spec, spec.geometry(*X_SHAPE)) is None


def test_concurrent_measuring_from_two_threads(wisdom, count_measurements, rng):
    w = layer(rng)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    plans = [lc.Conv2d(w, padding=1, algorithm="measure") for _ in range(2)]
    start = threading.Barrier(2)
    out = [None, None]

    def work(i):
        start.wait()
        out[i] = plans[i](x, threads=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(count_measurements) == 1  # the second thread waited for the first's entry
    assert plans[0].algorithm == plans[1].algorithm
    assert out[0].tobytes() == out[1].tobytes()
    assert len(json.loads(wisdom.read_text())["entries"]) == 1


WRITER = """
import sys, numpy as np, leanconv as lc
i = int(sys.argv[1])
w = np.ones((8, 8, 3, 3), np.float32)
for H in range(6 + i * 10, 6 + i * 10 + 6):
    lc.Conv2d(w, padding=1, algorithm="measure")(np.ones((1, 8, H, H), np.float32), threads=1)
"""


def test_two_processes_writing_the_same_file(wisdom):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, LEANCONV_WISDOM=str(wisdom))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(i)], env=env,
                              stderr=subprocess.PIPE) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    entries = json.loads(wisdom.read_text())["entries"]
    assert len(entries) == 12  # nobody lost anybody's entries
    assert not [f for f in os.listdir(wisdom.parent) if f.endswith(".tmp")]


def test_off_and_paths(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("LEANCONV_WISDOM", "off")
    assert lc.wisdom_path() is None
    lc.Conv2d(layer(rng), padding=1, algorithm="measure")(np.ones(X_SHAPE, np.float32))
    monkeypatch.setenv("LEANCONV_WISDOM", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert lc.wisdom_path() == tmp_path / "xdg" / "leanconv" / "wisdom.json"
    monkeypatch.setenv("LEANCONV_WISDOM", str(tmp_path / "here.json"))
    assert lc.wisdom_path() == tmp_path / "here.json"


def test_forget_wisdom(wisdom, rng):
    lc.Conv2d(layer(rng), padding=1, algorithm="measure")(np.ones(X_SHAPE, np.float32))
    assert wisdom.exists()
    lc.forget_wisdom()
    assert not wisdom.exists()
    assert _wisdom._state["ours"] == {}


class FakeClock:
    """time.perf_counter for _measure, advanced by the fake runners."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    thread_time = perf_counter

    def runner(self, seconds, calls):
        def run():
            calls.append(seconds)
            self.now += seconds
        return run


def test_measurement_rounds_and_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_measure, "time", clock)
    calls = {"fast": [], "close": [], "slow": []}
    runners = {"fast": clock.runner(0.010, calls["fast"]),
               "close": clock.runner(0.011, calls["close"]),
               "slow": clock.runner(0.030, calls["slow"])}
    winner, medians = _measure.fastest(runners, budget_s=0.3)
    assert winner == "fast"
    assert medians["fast"] == pytest.approx(0.010) and medians["close"] == pytest.approx(0.011)
    assert len(calls["slow"]) == 2  # warm-up and the first round, then dropped
    rounds = len(calls["fast"]) - 1
    assert _measure.MIN_ROUNDS <= rounds <= _measure.MAX_ROUNDS
    # the budget stops the rounds: 0.3 s of ~21 ms rounds after the first
    assert clock.now <= 0.3 + 0.03 + 0.021


def test_a_slow_layer_still_gets_min_rounds(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_measure, "time", clock)
    calls = {"a": [], "b": []}
    runners = {"a": clock.runner(0.5, calls["a"]), "b": clock.runner(0.6, calls["b"])}
    winner, _ = _measure.fastest(runners, budget_s=0.3)
    assert winner == "a" and len(calls["a"]) == 1 + _measure.MIN_ROUNDS


def test_tiny_layers_loop_inside_a_sample(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_measure, "time", clock)
    calls = {"a": [], "b": []}
    _measure.fastest({"a": clock.runner(1e-5, calls["a"]), "b": clock.runner(3e-5, calls["b"])},
                     single_thread=True)
    # b is dropped after the first round, a alone is left: one round of
    # SAMPLE_S / 10 us calls after the warm-up
    assert len(calls["a"]) == 1 + int(_measure.SAMPLE_S / 1e-5)


def test_a_single_candidate_is_not_measured(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(_measure, "time", clock)
    calls = []
    winner, times = _measure.fastest({"only": clock.runner(0.02, calls)})
    assert winner == "only" and times == {"only": pytest.approx(0.02)} and len(calls) == 2


def test_close_contenders_get_a_run_off(monkeypatch):
    """One lucky sample does not win: the two best within CONFIRM_RATIO are
    timed in pairs and the median ratio decides."""
    clock = FakeClock()
    monkeypatch.setattr(_measure, "time", clock)
    calls = {"a": [], "b": []}

    def runner(times, log):
        def run():
            t = times[min(len(log), len(times) - 1)]
            log.append(t)
            clock.now += t
        return run

    runners = {"a": runner([0.0100], calls["a"]),
               "b": runner([0.0102, 0.0095, 0.0102], calls["b"])}  # lucky first round
    winner, best = _measure.fastest(runners, budget_s=0.1)
    assert winner == "a" and best["b"] == pytest.approx(0.0095)
    rounds = len(calls["a"]) - 1 - _measure.CONFIRM_PAIRS
    assert len(calls["b"]) == 1 + rounds + _measure.CONFIRM_PAIRS
