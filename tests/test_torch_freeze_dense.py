"""A frozen model's classifier head (nn.Linear on at most _dense.MAX_ROWS rows)
runs in leanconv's C dense kernel with its weights held once, in panels
(leanconv/torch/frozen/frozen_dense.py); heads over more rows stay torch's."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402
from leanconv import _dense  # noqa: E402
from leanconv.torch.frozen.frozen_dense import FrozenDense  # noqa: E402
from test_torch_freeze import FLOAT_TOL, rel_err  # noqa: E402


class ConvHead(nn.Module):
    def __init__(self, features=37, classes=21, bias=True):
        super().__init__()
        self.conv = nn.Conv2d(3, features, 3, padding=1)
        self.fc = nn.Linear(features, classes, bias=bias)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class TiedHeads(nn.Module):
    """Two heads sharing one weight (tied): the weight must survive."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 20, 1)
        self.a = nn.Linear(20, 20)
        self.b = nn.Linear(20, 20)
        self.b.weight = self.a.weight

    def forward(self, x):
        v = self.conv(x).mean((2, 3))
        return self.a(v) + self.b(torch.tanh(v))


def denses(m):
    return [d for d in m.modules() if isinstance(d, FrozenDense)]


@pytest.mark.parametrize("isa", lc.available_isas())
@pytest.mark.parametrize("rows, features, classes, bias", [
    (1, 37, 21, True), (3, 16, 16, False), (8, 1, 33, True), (2, 129, 5, True)])
def test_head_matches_float64_on_every_isa(isa, rows, features, classes, bias):
    torch.manual_seed(rows + features)
    model = ConvHead(features, classes, bias).eval()
    x = torch.randn(rows, 3, 5, 6)
    with torch.no_grad():
        v = torch.relu(model.conv(x)).mean((2, 3))
        w = model.fc.weight.double()
        ref = v.double() @ w.T + (0 if model.fc.bias is None else model.fc.bias.double())
    with lc.use_isa(isa):
        frozen = lct.freeze(model, x)
        (head,) = denses(frozen)
        with torch.no_grad():
            y1, y2 = frozen(x), frozen(x)           # fx code, then the schedule
            direct = head(v)                        # the module's own C call
    assert model.fc.weight.numel() == 0               # torch's copy released
    for y in (y1, y2, direct):
        assert y.dtype == torch.float32 and y.shape == (rows, classes)
        assert rel_err(y, ref) < FLOAT_TOL


def test_same_bits_at_any_thread_count():
    torch.manual_seed(0)
    head = FrozenDense(nn.Linear(300, 1000))
    x = torch.randn(4, 300)
    outs = []
    for t in (1, 2, 3):
        y = np.empty((4, 1000), np.float32)
        head.run_into(x.numpy(), y, t)
        outs.append(y)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_more_rows_at_run_time_and_other_dtypes_take_torch_ops_on_the_panels():
    torch.manual_seed(1)
    lin = nn.Linear(50, 19)
    ref_w, ref_b = lin.weight.detach().clone(), lin.bias.detach().clone()
    head = FrozenDense(lin)
    for shape in [(12, 50), (3, 4, 50), (50,)]:
        x = torch.randn(shape)
        assert rel_err(head(x), x @ ref_w.T + ref_b) < FLOAT_TOL
    xd = torch.randn(2, 50, dtype=torch.float64)
    y = head(xd)
    assert y.dtype == torch.float64 and rel_err(y, xd @ ref_w.double().T + ref_b.double()) < 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head(torch.randn(2, 50)).dtype == torch.bfloat16     # as F.linear gives
    with pytest.raises(ValueError, match="last axis of 50"):
        head(torch.randn(2, 49))


def test_batch_beyond_the_example_still_matches_stock():
    model = ConvHead().eval()
    x, xb = torch.randn(1, 3, 8, 8), torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        ref, refb = model(x), model(xb)
    frozen = lct.freeze(model, x)
    with torch.no_grad():
        for _ in range(2):          # fx code, then a schedule for the new shape
            assert rel_err(frozen(xb), refb) < FLOAT_TOL
        assert rel_err(frozen(x), ref) < FLOAT_TOL


def test_many_row_example_keeps_torchs_linear():
    model = ConvHead().eval()
    x = torch.randn(_dense.MAX_ROWS + 1, 3, 6, 6)
    frozen = lct.freeze(model, x)
    assert not denses(frozen) and isinstance(frozen.fc, nn.Linear)
    assert frozen.fc.weight.numel() > 0


def test_tied_weights_are_packed_but_not_released():
    torch.manual_seed(2)
    model = TiedHeads().eval()
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        ref = model(x)
    frozen = lct.freeze(copy.deepcopy(model), x)
    assert len(denses(frozen)) == 2
    with torch.no_grad():
        for _ in range(2):
            assert rel_err(frozen(x), ref) < FLOAT_TOL


def test_state_dict_holds_the_panels_not_torchs_weight():
    model = ConvHead(37, 21).eval()
    frozen = lct.freeze(model, torch.randn(1, 3, 6, 6))
    keys = [k for k in frozen.state_dict() if "dense" in k]
    assert sorted(k.rsplit(".", 1)[1] for k in keys) == ["bias", "packed_weight"]
    (packed,) = [v for k, v in frozen.state_dict().items() if k.endswith("packed_weight")]
    assert packed.numel() == 2 * 16 * 37      # 21 rows -> two 16-row panels


def test_script_is_refused_with_a_clear_error():
    frozen = lct.freeze(ConvHead().eval(), torch.randn(1, 3, 6, 6))
    with pytest.raises(TypeError, match="torch.compile or torch.export"):
        torch.jit.script(frozen)


def test_the_head_runs_bound_in_the_schedules_c_group():
    """The frozen schedule binds the head (a _core.BoundDense after the pool's
    BoundPool): same bits as the steps' into(), and equal to stock torch."""
    from test_bound_pool import bound_types
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 24, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(24, 10)).eval()
    x = torch.randn(1, 3, 10, 10)
    with torch.no_grad():
        want = model(x)
    frozen = lct.freeze(copy.deepcopy(model), x)
    with torch.no_grad():
        got = frozen(x)
    sched = next(iter(frozen._lc_scheduled.schedules.values()))
    assert bound_types(sched)[-2:] == ["BoundPool", "BoundDense"]
    for s in sched.program.steps:
        s.bind = None
    sched._bind(sched.threads)
    assert "BoundDense" not in bound_types(sched)
    with torch.no_grad():
        assert frozen(x).numpy().tobytes() == got.numpy().tobytes()
    assert rel_err(got, want) <= FLOAT_TOL


def test_bind_refuses_a_buffer_a_reshape_would_copy():
    d = FrozenDense(nn.Linear(8, 3))
    y = np.zeros((2, 3), np.float32)
    assert d.bind(y, np.zeros((2, 8), np.float32), 1) is not None
    assert d.bind(y, np.zeros((2, 16), np.float32)[:, ::2], 1) is None
    assert d.bind(None, np.zeros((2, 8), np.float32), 1) is None


def test_pack_in_place_gives_packs_bits_or_declines():
    g = np.random.default_rng(5)
    w = g.standard_normal((48, 37)).astype(np.float32)
    want = _dense.pack(w)
    got = _dense.pack_in_place(w.copy())
    assert got is not None and got.tobytes() == want.tobytes()
    assert _dense.pack_in_place(g.standard_normal((20, 37)).astype(np.float32)) is None  # 20 rows
    assert _dense.pack_in_place(np.ones((32, 37))) is None                                # float64
    assert _dense.pack_in_place(np.ones((32, 74), np.float32)[:, ::2]) is None            # strided


def test_a_head_of_whole_panels_takes_the_panels_in_its_own_memory():
    """A 32-class head: its weight's memory holds the panels (no second copy
    while freezing), the outputs still match stock torch."""
    torch.manual_seed(6)
    model = ConvHead(37, 32).eval()
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        ref = copy.deepcopy(model)(x)
    before = model.fc.weight.data_ptr()
    frozen = lct.freeze(model, x)
    (d,) = denses(frozen)
    assert d.packed_weight.data_ptr() == before
    with torch.no_grad():
        assert rel_err(frozen(x), ref) < FLOAT_TOL


@pytest.mark.parametrize("holder", ["state_dict", "view"])
def test_a_weight_held_elsewhere_is_copied_not_overwritten(holder):
    torch.manual_seed(7)
    model = ConvHead(37, 32).eval()
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        ref = copy.deepcopy(model)(x)
    kept = model.state_dict()["fc.weight"] if holder == "state_dict" else model.fc.weight[:16]
    values = kept.detach().clone()
    frozen = lct.freeze(model, x)
    assert torch.equal(kept, values)
    with torch.no_grad():
        assert rel_err(frozen(x), ref) < FLOAT_TOL


def test_tied_whole_panel_weights_survive_freezing():
    torch.manual_seed(8)
    model = TiedHeads().eval()
    model.a = nn.Linear(20, 32)
    model.b = nn.Linear(20, 32)
    model.b.weight = model.a.weight
    model.forward = lambda x: (lambda v: model.a(v) + model.b(torch.tanh(v)))(
        model.conv(x).mean((2, 3)))
    values = model.a.weight.detach().clone()
    x = torch.randn(2, 3, 4, 4)
    frozen = lct.freeze(model, x)
    assert len(denses(frozen)) == 2
    assert torch.equal(model.a.weight.detach(), values)


_PEAK_SCRIPT = """
import resource, torch, leanconv.torch as lct
from torch import nn
torch.manual_seed(0)
def head(n):
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, n), nn.ReLU(), nn.Linear(n, n)).eval()
x = torch.randn(1, 3, 4, 4)
with torch.no_grad():   # freezing's own code and imports first, on a small head
    lct.freeze(head(64), x)(x)
model = head(4096)
with torch.no_grad():
    model(x)
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
before = peak()
frozen = lct.freeze(model, x)
with torch.no_grad():
    frozen(x)
print(peak() - before)
"""


def test_freezing_a_large_head_does_not_hold_it_twice():
    """The 4096 x 4096 head (64 MiB): freezing it raises the process's peak by
    far less than a copy of it (it did by a whole copy before packing in place)."""
    import os
    import subprocess
    import sys
    here = os.path.dirname(os.path.dirname(lc.__file__))   # the leanconv this suite imported
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here] + sys.path))
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    growth = int(out.stdout.split()[-1])
    assert growth < 16 << 20, f"freezing raised the peak by {growth / 2**20:.1f} MiB"
