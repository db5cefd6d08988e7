"""Kernel taps that only read padding (leanconv/_dead_taps.py):
the trimmed convolution freeze packs for the example size gives torch's
output there, and any size where it would not runs the full plan."""
from __future__ import annotations

import copy
import itertools
import random

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import leanconv.torch as lct  # noqa: E402
from leanconv._params import ConvSpec  # noqa: E402
from leanconv import _dead_taps as dead_taps  # noqa: E402
from test_torch_freeze import FLOAT_TOL, NET_TOL, frozen_convs, rel_err  # noqa: E402


def brute_live(k, s, d, pad, size, out):
    return [any(0 <= o * s - pad + i * d < size for o in range(out)) for i in range(k)]


CASES = list(itertools.product((1, 2, 3, 5), (1, 2, 3), (1, 2, 5, 12), (0, 1, 2, 7, 12),
                               (1, 2, 3, 6, 14)))


def test_live_taps_and_the_trimmed_convolution_match_brute_force():
    rng = random.Random(0)
    checked = 0
    for k, s, d, pad, size in CASES:
        if size + 2 * pad < d * (k - 1) + 1:
            continue
        spec = ConvSpec.build((2, 2, k, k), s, pad, d, 1)
        OH, _ = spec.output_hw(size, size)
        live = brute_live(k, s, d, pad, size, OH)
        window = dead_taps.live_window(spec, size, size)
        runs = [i for i, v in enumerate(live) if v]
        one_run = runs and runs == list(range(runs[0], runs[-1] + 1))
        assert (window is not None) == bool(one_run)
        if window is not None:
            assert window[0] == window[1] == (runs[0], runs[-1])
        found = dead_taps.trimmed_spec(spec, (1, 2, size, size))
        if found is None:
            continue
        # the trimmed convolution gives the full one's output, to the bit of float64
        tspec, ((a, b), (c, e)) = found
        w = torch.randn(2, 2, k, k, dtype=torch.float64)
        x = torch.randn(1, 2, size, size, dtype=torch.float64)
        full = F.conv2d(x, w, stride=s, padding=pad, dilation=d)
        t, bt, l, r = tspec.pads
        trim = F.conv2d(F.pad(x, (l, r, t, bt)), w[:, :, a:b + 1, c:e + 1], stride=s,
                        dilation=d)
        assert torch.allclose(trim, full, rtol=1e-12, atol=1e-12)
        # and any other size it claims to apply to
        other = rng.choice((1, 2, 3, 4, 6, 9, 15, 20))
        if dead_taps.applies(spec, found[1], (1, 2, other, other)):
            x2 = torch.randn(1, 2, other, other, dtype=torch.float64)
            assert torch.allclose(
                F.conv2d(F.pad(x2, (l, r, t, bt)), w[:, :, a:b + 1, c:e + 1], stride=s,
                         dilation=d),
                F.conv2d(x2, w, stride=s, padding=pad, dilation=d), rtol=1e-12, atol=1e-12)
        checked += 1
    assert checked > 50


class Aspp(nn.Module):
    """deeplabv3's ASPP branches: dilated 3x3 convolutions whose outer taps
    read only padding on a small map, with BN, ReLU and a residual add."""

    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=d, dilation=d, bias=False),
                          nn.BatchNorm2d(8), nn.ReLU()) for d in (1, 4, 9))
        self.res = nn.Conv2d(8, 8, 3, padding=6, dilation=6)

    def forward(self, x):
        y = sum(b(x) for b in self.branches)
        return F.relu(self.res(y) + x)


def test_dilated_convolutions_run_their_live_taps_on_small_maps(monkeypatch):
    model = Aspp().eval()
    stock = copy.deepcopy(model)
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        ref64 = copy.deepcopy(model).double()(x.double())
    frozen = lct.freeze(model, x, memory_budget=2 ** 40)   # (the budget: the test below)
    trimmed = {c.spec.dilation[0]: c.trimmed for c in frozen_convs(frozen)}
    assert trimmed[1] is None                                   # every tap reads the map
    assert (trimmed[9].spec.kH, trimmed[9].spec.kW, trimmed[9].spec.pads) == (1, 1, (0,) * 4)
    assert (trimmed[6].spec.kH, trimmed[6].spec.pads) == (1, (0,) * 4)    # its residual fused
    assert trimmed[6].has_residual and trimmed[6].activation is not None
    assert trimmed[4] is None        # on 5x5, dilation 4's outer taps read the map's edges
    calls = []
    real = trimmed[9].run
    monkeypatch.setattr(trimmed[9], "run", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        assert rel_err(frozen(x), ref64) < NET_TOL
        fx = frozen._lc_scheduled.eager(x)          # the per-layer code takes it too
        assert calls and rel_err(fx, ref64) < NET_TOL
        # larger maps, where those taps read the input: the full plans, also scheduled
        for size in (11, 23, 23, 3):
            x2 = torch.randn(1, 8, size, size)
            assert rel_err(frozen(x2), stock(x2)) < FLOAT_TOL
    assert len(frozen._lc_scheduled.schedules) == 2


def test_live_tap_packings_stay_within_the_memory_budget():
    from test_torch_freeze import held
    x = torch.randn(1, 8, 5, 5)
    unbounded = lct.freeze(Aspp().eval(), x, memory_budget=2 ** 40)
    assert sum(c.trimmed is not None for c in frozen_convs(unbounded)) == 2

    def trimmed_bytes(frozen):
        return sum(c.trimmed.packed_bytes for c in frozen_convs(frozen) if c.trimmed is not None)
    # the leanest full layers within what the unbounded ones hold (a tighter
    # budget may pick other algorithms than the unbounded choice, whose
    # packings and workspace are larger: direct_lanes on the 3x3 one), and
    # then what those full layers hold: no room left for the live-tap ones
    lean = lct.freeze(Aspp().eval(), x, memory_budget=held(unbounded) - trimmed_bytes(unbounded))
    budget = held(lean) - trimmed_bytes(lean)
    frozen = lct.freeze(Aspp().eval(), x, memory_budget=budget)
    assert held(frozen) <= budget
    assert all(c.trimmed is None for c in frozen_convs(frozen))
