"""A frozen model runs as one precompiled schedule over a static activation
arena (leanconv/torch/frozen/program.py, runner.py): outputs never alias the
arena, calls with other inputs, other models and other threads give stock
torch's answers, and what a static plan cannot honour runs the fx code."""
from __future__ import annotations

import copy
import threading

import numpy as np

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")     # the schedule is leanconv.onnx's
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402
import torchvision_models  # noqa: E402
from leanconv.torch.frozen import runner  # noqa: E402
from test_torch_freeze import FLOAT_TOL, TinyNet, randomise_bn, rel_err  # noqa: E402


def stock_and_frozen(model, x, **kw):
    """(a stock copy, the frozen model), the model in eval mode."""
    model = model.eval()
    return copy.deepcopy(model), lct.freeze(model, x, **kw)


def scheduled(frozen):
    return frozen._lc_scheduled


def check(frozen, stock, x):
    with torch.no_grad():
        y, ref = frozen(x), stock(x)
    assert rel_err(y, ref) < FLOAT_TOL
    return y


def fx_code_must_not_run(monkeypatch, frozen):
    def refuse(self, *a, **k):
        raise AssertionError("the fx code ran")
    monkeypatch.setattr(type(frozen), "forward", refuse)


# --- the schedule is what runs ---------------------------------------------------------------

def test_outputs_never_alias_the_arena_or_each_other():
    x = torch.randn(1, 4, 16, 16)
    stock, frozen = stock_and_frozen(randomise_bn(TinyNet()), x)
    sched = next(iter(scheduled(frozen).schedules.values()))
    arena = sched._arena
    x1, x2 = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        y1 = frozen(x1)
        kept = y1.clone()
        y2 = frozen(x2)
    assert not np.shares_memory(y1.numpy(), arena) and not np.shares_memory(y2.numpy(), arena)
    assert not np.shares_memory(y1.numpy(), y2.numpy())
    assert torch.equal(y1, kept)             # the second call left the first's output alone
    with torch.no_grad():
        assert rel_err(y1, stock(x1)) < FLOAT_TOL and rel_err(y2, stock(x2)) < FLOAT_TOL
    y1.add_(1.0)                             # the caller may write into what it got
    check(frozen, stock, x1)


def test_repeated_calls_with_different_inputs_match_stock(monkeypatch):
    x = torch.randn(2, 4, 16, 12)
    stock, frozen = stock_and_frozen(randomise_bn(TinyNet()), x)
    fx_code_must_not_run(monkeypatch, frozen)
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        check(frozen, stock, torch.randn(2, 4, 16, 12, generator=g) * (seed + 1))
    check(frozen, stock, torch.zeros(2, 4, 16, 12))


def test_an_input_not_contiguous_is_copied_in():
    x = torch.randn(1, 3, 20, 20)
    stock, frozen = stock_and_frozen(torchvision_models.make("mobilenet_v2"), x)
    xt = torch.randn(1, 3, 20, 20).transpose(2, 3)
    assert not xt.is_contiguous()
    check(frozen, stock, xt)


def test_two_frozen_models_in_one_process():
    xa, xb = torch.randn(1, 4, 16, 16), torch.randn(1, 3, 20, 20)
    stock_a, a = stock_and_frozen(randomise_bn(TinyNet()), xa)
    stock_b, b = stock_and_frozen(torchvision_models.make("mobilenet_v2"), xb)
    for _ in range(2):
        for frozen, stock, shape in ((a, stock_a, xa.shape), (b, stock_b, xb.shape)):
            check(frozen, stock, torch.randn(shape))
    arena_a = next(iter(scheduled(a).schedules.values()))._arena
    arena_b = next(iter(scheduled(b).schedules.values()))._arena
    assert not np.shares_memory(arena_a, arena_b)


@pytest.mark.parametrize("threads", [1, 2])
def test_python_threads_calling_one_model_and_two(threads):
    """Threads calling the same frozen model at once: one runs the schedule,
    the others the fx code (the arena is the schedule's), all correct; and
    leanconv's kernels at 1 and 2 threads inside."""
    x = torch.randn(1, 3, 12, 12)
    stock, frozen = stock_and_frozen(SelfResidual(3), x)
    stock2, other = stock_and_frozen(randomise_bn(Features()), x)
    inputs = [torch.randn(1, 3, 12, 12) for _ in range(6)]
    with torch.no_grad():
        want = [stock(t) for t in inputs] + [stock2(t) for t in inputs]
    errors, results = [], {}

    def work(i):
        try:
            model = frozen if i < 6 else other
            with torch.no_grad():
                for _ in range(3):
                    results[i] = model(inputs[i % 6])
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append(e)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        ts = [threading.Thread(target=work, args=(i,)) for i in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        torch.set_num_threads(before)
    assert not errors
    for i in range(12):
        assert rel_err(results[i], want[i]) < FLOAT_TOL


def test_settings_change_between_calls_rebinds():
    x = torch.randn(1, 4, 32, 32)
    stock, frozen = stock_and_frozen(randomise_bn(TinyNet()), x)
    before = torch.get_num_threads()
    try:
        for n in (2, 1, 2):
            torch.set_num_threads(n)
            check(frozen, stock, x)
            assert next(iter(scheduled(frozen).schedules.values())).threads == n
    finally:
        torch.set_num_threads(before)


# --- shapes ---------------------------------------------------------------------------------

def test_another_shape_compiles_the_second_time_and_few_are_kept(monkeypatch):
    x = torch.randn(1, 3, 32, 32)
    stock, frozen = stock_and_frozen(torchvision_models.make("squeezenet1_1"), x)
    run = scheduled(frozen)
    monkeypatch.setattr(runner, "MAX_SCHEDULES", 2)
    shapes = [(1, 3, 40, 40), (2, 3, 32, 32), (1, 3, 48, 36)]
    for shape in shapes:
        t = torch.randn(shape)
        check(frozen, stock, t)                 # first sight: the fx code
        assert (t.shape, torch.float32) not in {k[0] for k in run.schedules}
        check(frozen, stock, t)                 # second: compiled
        assert ((t.shape, torch.float32),) in run.schedules
        assert len(run.schedules) <= 2
    assert list(run.schedules) == [((torch.Size(s), torch.float32),) for s in shapes[1:]]


class MaskedMean(nn.Module):
    """An output shape that follows the input's values."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y[y > 0]


def test_a_shape_that_follows_the_data_falls_back_to_the_fx_code():
    x = torch.randn(1, 3, 8, 8)
    stock, frozen = stock_and_frozen(MaskedMean(), x)
    for seed in range(3):
        t = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            y, ref = frozen(t), stock(t)
        assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-5)
    assert scheduled(frozen).why is not None


# --- graph features -------------------------------------------------------------------------

class Features(nn.Module):
    """Shape queries, views, chunk + getitem, torch.cat, an in-place op on a
    value nobody else reads, a dict output."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 1)
        self.c = nn.Conv2d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        y = self.a(x)
        left, right = y.chunk(2, dim=1)
        z = torch.cat([self.b(left), F.relu(self.c(right))], 1)
        z = F.relu(self.bn(z), inplace=True)
        z = z * 0.5
        flat = z.mean((2, 3)).view(z.size(0), -1)
        return {"logits": self.fc(flat), "out": z}


def test_views_shape_queries_cat_inplace_and_dict_outputs(monkeypatch):
    x = torch.randn(2, 3, 10, 12)
    stock, frozen = stock_and_frozen(randomise_bn(Features()), x)
    run = scheduled(frozen)
    assert run.why is None
    sched = next(iter(run.schedules.values()))
    assert "fold" in sched.kinds and "view" in sched.kinds
    assert not sched.blas      # the two-row Linear head runs in leanconv's C dense kernel
    assert any(type(m).__name__ == "FrozenDense" for m in frozen.modules())
    fx_code_must_not_run(monkeypatch, frozen)
    t = torch.randn(2, 3, 10, 12)
    with torch.no_grad():
        y, ref = frozen(t), stock(t)
    assert set(y) == {"logits", "out"}
    for k in y:
        assert rel_err(y[k], ref[k]) < FLOAT_TOL


class UpsampleHead(nn.Module):
    """deeplabv3's tail (an SE-like gate, then the logits upsampled to the
    input size) and the other interpolations torch has out= kernels for."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.gate = nn.Conv2d(5, 5, 1)

    def forward(self, x):
        y = self.conv(x)
        g = torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        y = y * g                       # broadcast multiply
        y = 1.5 - y / 3 + y.mul(g)      # scalars, and a method
        if self.how == "size":
            return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.how == "corners":
            return F.interpolate(y, size=(11, 7), mode="bilinear", align_corners=True)
        if self.how == "scale":
            return F.interpolate(y, scale_factor=1.7, mode="bilinear")
        if self.how == "nearest":
            return F.interpolate(y, scale_factor=(2, 3), mode="nearest")
        return F.interpolate(y, size=(9, 9), mode="bicubic")     # no out= form: copied in


@pytest.mark.parametrize("how", ["size", "corners", "scale", "nearest", "bicubic"])
def test_elementwise_ops_and_interpolation_write_into_the_arena(how, monkeypatch):
    x = torch.randn(1, 3, 13, 10)
    stock, frozen = stock_and_frozen(UpsampleHead(how), x)
    sched = next(iter(scheduled(frozen).schedules.values()))
    t = torch.randn(1, 3, 13, 10)
    with torch.no_grad():
        fx = scheduled(frozen).eager(t)       # the same layers, each op called as the graph does
        fx_code_must_not_run(monkeypatch, frozen)
        y = frozen(t)
        assert torch.equal(y, fx)             # torch's own kernels with out=: the same bits
        assert rel_err(y, stock(t)) < FLOAT_TOL
    # no result allocated and copied in but the mean's (no out= form) and the
    # interpolation's without an out= kernel
    copied = {s.name for s, _ in sched.calls if s.workspace_bytes and s.op_type != "Conv"}
    assert copied == {"mean"} | ({"interpolate"} if how == "bicubic" else set())


class MutatesAReadValue(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        z = y.relu_()       # y itself changes: the read below sees it
        return y + z


def test_an_inplace_op_on_a_value_read_elsewhere_keeps_the_fx_code():
    x = torch.randn(1, 3, 8, 8)
    stock, frozen = stock_and_frozen(MutatesAReadValue(), x)
    assert "writes into" in scheduled(frozen).why
    check(frozen, stock, torch.randn(1, 3, 8, 8))


class SelfResidual(nn.Module):
    """conv(x) + x: the conv's input is also its residual."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return F.relu(self.conv(x) + x)


@pytest.mark.parametrize("algorithm", [a for a in lc.algorithms() if a != "depthwise"])
def test_a_conv_whose_input_is_its_residual(algorithm):
    """The output may not take over the residual's buffer here: it is the
    input the conv is still reading."""
    x = torch.randn(1, 8, 9, 11)
    stock, frozen = stock_and_frozen(SelfResidual(), x, algorithm=algorithm)
    assert scheduled(frozen).schedules
    for _ in range(2):
        check(frozen, stock, torch.randn(1, 8, 9, 11))


# --- what keeps the fx code -----------------------------------------------------------------

def test_a_signature_the_plan_refuses_is_not_compiled_again(monkeypatch):
    x = torch.randn(1, 8, 6, 6)
    stock, frozen = stock_and_frozen(SelfResidual(), x)
    run = scheduled(frozen)
    compiles = []
    real = run.compile
    monkeypatch.setattr(run, "compile", lambda args: (compiles.append(1), real(args))[1])
    x64 = x.double()
    with torch.no_grad():
        want = stock(x)
        for _ in range(4):      # float64: the schedule's convs refuse it; the fx code's take it
            y = frozen(x64)
            assert y.dtype == torch.float64 and rel_err(y, want) < FLOAT_TOL
    assert compiles == [1] and "float64" in run.why



def test_grad_inputs_keyword_calls_and_autocast_use_the_fx_code(monkeypatch):
    x = torch.randn(1, 4, 16, 16)
    stock, frozen = stock_and_frozen(randomise_bn(TinyNet()), x)
    run = scheduled(frozen)
    calls = []
    real = run.eager
    monkeypatch.setattr(run, "eager", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    with torch.no_grad():
        ref = stock(x)
        frozen(x)
    assert calls == []
    xg = x.clone().requires_grad_(True)
    assert rel_err(frozen(xg).detach(), ref) < FLOAT_TOL
    with torch.no_grad():
        assert rel_err(frozen(x=x), ref) < FLOAT_TOL
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert frozen(x).dtype == torch.bfloat16
    assert len(calls) == 3


def test_an_edited_graph_is_planned_again():
    x = torch.randn(1, 3, 8, 8)
    stock, frozen = stock_and_frozen(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), x)
    with torch.no_grad():
        before = frozen(x)
    out = next(n for n in frozen.graph.nodes if n.op == "output")
    with frozen.graph.inserting_before(out):
        doubled = frozen.graph.call_function(torch.mul, (out.args[0], 2.0))
    out.args = (doubled,)
    frozen.recompile()
    with torch.no_grad():
        for _ in range(3):
            assert torch.allclose(frozen(x), 2 * before)



def test_frozen_models_run_on_the_schedule_without_the_onnx_package(tmp_path):
    """The executor lives in leanconv.onnx but needs no onnx package: a Python
    whose path has every installed package but onnx still runs frozen models
    on their schedule, and leanconv.onnx's API says what it needs."""
    import os
    import site
    import subprocess
    import sys
    import leanconv
    packages = tmp_path / "site"
    packages.mkdir()
    # the leanconv under test (built in place or installed), then the rest
    os.symlink(os.path.dirname(os.path.abspath(leanconv.__file__)), packages / "leanconv")
    for root in site.getsitepackages():
        for entry in os.listdir(root):
            if entry == "onnx" or entry.startswith("onnx-") or (packages / entry).exists():
                continue
            os.symlink(os.path.join(root, entry), packages / entry)
    script = tmp_path / "no_onnx.py"
    script.write_text(
        "import sys, torch\n"
        "from test_torch_freeze import TinyNet\n"
        "import leanconv.onnx, leanconv.torch as lct\n"
        "model = TinyNet().eval()\n"
        "x = torch.randn(1, 4, 16, 16)\n"
        "with torch.no_grad():\n"
        "    want = model(x)\n"
        "frozen = lct.freeze(model, x)\n"
        "assert frozen._lc_scheduled.why is None, frozen._lc_scheduled.why\n"
        "assert frozen._lc_scheduled.schedules, 'no schedule compiled'\n"
        "err = float((frozen(x) - want).abs().max() / want.abs().max())\n"
        "assert err < 1e-4, err\n"
        "try:\n"
        "    leanconv.onnx.prepare\n"
        "except ImportError as e:\n"
        "    assert 'needs the onnx package' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('leanconv.onnx.prepare imported without onnx')\n"
        "assert 'onnx' not in sys.modules\n"
        "print('ok')\n")
    here = os.path.dirname(os.path.abspath(__file__))
    path = [str(packages), here]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    out = subprocess.run([sys.executable, "-S", str(script)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_a_call_without_hooks_skips_torchs_call_and_hooks_still_run(monkeypatch):
    """runner._call: with no hooks the frozen model's call goes straight to its
    schedule (torch's Module.__call__ is not entered); a forward hook or pre-hook
    on it, or a global one, sends the call through torch's, which runs them."""
    x = torch.randn(1, 4, 16, 16)
    stock, frozen = stock_and_frozen(randomise_bn(TinyNet()), x)
    with torch.no_grad():
        ref = stock(x)
    cls = type(frozen)
    real = cls._lc_torch_call
    through_torch = []
    monkeypatch.setattr(cls, "_lc_torch_call",
                        lambda self, *a, **k: (through_torch.append(1), real(self, *a, **k))[1])
    with torch.no_grad():
        assert rel_err(frozen(x), ref) < FLOAT_TOL
    assert through_torch == []
    seen = []
    handles = [frozen.register_forward_hook(lambda m, a, y: seen.append("hook")),
               frozen.register_forward_pre_hook(lambda m, a: seen.append("pre")),
               torch.nn.modules.module.register_module_forward_hook(
                   lambda m, a, y: seen.append("global") if m is frozen else None)]
    with torch.no_grad():
        assert rel_err(frozen(x), ref) < FLOAT_TOL
    assert through_torch == [1] and seen == ["pre", "global", "hook"]
    for h in handles:
        h.remove()
    with torch.no_grad():
        frozen(x)
    assert through_torch == [1]


def test_a_schedule_of_c_calls_only_leaves_torchs_thread_setting_alone(monkeypatch):
    """A frozen model whose schedule is one group of C calls (no torch op runs
    in it) does not lower torch's threads for the call: nothing reads them;
    the kernels still get torch's 2 threads, and the bits are those of a call
    that went through threads.enter."""
    from leanconv.torch.frozen import threads as frozen_threads
    x = torch.randn(1, 3, 16, 16)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 5))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        stock, frozen = stock_and_frozen(model, x)
        sched = next(iter(scheduled(frozen).schedules.values()))
        assert all(lent for _, lent in sched._fns)
        entered = []
        real_enter = frozen_threads.enter
        monkeypatch.setattr(frozen_threads, "enter", lambda m: (entered.append(1), real_enter(m))[1])
        y = check(frozen, stock, x)
        assert entered == [] and sched.threads == 2 and torch.get_num_threads() == 2
        with torch.no_grad():   # the same call through threads.enter: the same bits
            owner = real_enter(frozen)
            try:
                assert frozen(x).numpy().tobytes() == y.numpy().tobytes()
            finally:
                if owner:
                    frozen_threads.leave()
    finally:
        torch.set_num_threads(before)
