"""leanconv.torch.freeze: whole models give stock torch's answers, and the
fusions happen exactly where they are sound.

Networks are compared with stock torch's float32 output (max error / max
|output| < FLOAT_TOL: the two round differently, BN folding included) and,
for a few, with the network run in float64 (NET_TOL, as for convert())."""
from __future__ import annotations

import copy
import operator

import numpy as np

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402
import reference_nets  # noqa: E402
import torchvision_models  # noqa: E402
from leanconv.torch.frozen import FreezeWarning, choose, epilogue_speed  # noqa: E402
from leanconv.torch.frozen.frozen_conv import FrozenConv2d  # noqa: E402
from leanconv.torch.frozen.frozen_pool import FrozenPool2d  # noqa: E402

NET_TOL = 1e-5
FLOAT_TOL = 2e-5


def rel_err(y, ref):
    y, ref = torchvision_models.output(y), torchvision_models.output(ref)
    return float((y.double() - ref.double()).abs().max() / ref.double().abs().max())


def frozen_convs(m):
    return [c for c in m.modules() if isinstance(c, FrozenConv2d)]


def frozen_pools(m):
    return [p for p in m.modules() if isinstance(p, FrozenPool2d)]


def freeze_and_compare(model, x, tol=FLOAT_TOL, **kw):
    """(frozen, its output) after checking it against the model run by torch
    (before freeze, which consumes it)."""
    args = x if isinstance(x, tuple) else (x,)
    with torch.no_grad():
        ref = model(*args)
    frozen = lct.freeze(model, x, **kw)
    with torch.no_grad():
        y = frozen(*args)
    assert rel_err(y, ref) < tol
    return frozen, y


def call_targets(gm):
    return [n.target for n in gm.graph.nodes if n.op not in ("placeholder", "output")]


# --- whole architectures -------------------------------------------------------------------



@pytest.mark.parametrize("name", torchvision_models.ARCHITECTURES)
def test_torchvision_architecture_matches_stock(name, monkeypatch):
    model = torchvision_models.make(name)
    stock = copy.deepcopy(model)
    x = torch.randn(1, 3, 32, 32)
    frozen, _ = freeze_and_compare(model, x)
    assert frozen_convs(frozen)
    # every one runs as one schedule over a static arena, not its fx code
    assert frozen._lc_scheduled.why is None and frozen._lc_scheduled.schedules
    monkeypatch.setattr(type(frozen), "forward", None)
    x2 = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(frozen(x2), stock(x2)) < FLOAT_TOL
    # torch's conv modules are gone and their weights released
    assert not any(type(m) is nn.Conv2d for m in frozen.modules())
    assert all(m.weight.numel() == 0 for m in model.modules() if type(m) is nn.Conv2d)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_against_float64_network(name):
    model = reference_nets.make(name).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref64 = copy.deepcopy(model).double()(x.double())
    frozen = lct.freeze(model, x)
    with torch.no_grad():
        assert rel_err(frozen(x), ref64) < NET_TOL
        # another input size runs on the same plans
        x2 = torch.randn(2, 3, 48, 40)
        assert frozen(x2).shape == (2, 1000)


def test_resnet18_is_fully_fused():
    frozen = lct.freeze(torchvision_models.make("resnet18"), torch.randn(1, 3, 32, 32))
    convs = frozen_convs(frozen)
    assert len(convs) == 20
    assert sum(c.has_residual for c in convs) == 8
    ops = [t for t in call_targets(frozen) if not str(t).startswith("lc_")]
    assert ops == [torch.flatten]       # the pools and the head run in leanconv too
    assert len(frozen_pools(frozen)) == 2
    assert [type(m).__name__ for m in frozen.modules()].count("FrozenDense") == 1


# --- pooling ------------------------------------------------------------------------------

class ConvPool(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = pool

    def forward(self, x):
        return self.pool(self.conv(x))


class FunctionalAdaptive(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.size = size

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.conv(x), self.size)


POOLS = {
    "max3s2p1": nn.MaxPool2d(3, 2, 1),
    "max2": nn.MaxPool2d(2),
    "max3s2ceil": nn.MaxPool2d(3, 2, ceil_mode=True),
    "max3dil2": nn.MaxPool2d(3, 1, 1, dilation=2),
    "max_rect": nn.MaxPool2d((2, 3), (1, 2), (1, 0)),
    "avg2": nn.AvgPool2d(2, 2),
    "avg3s2p1_incl": nn.AvgPool2d(3, 2, 1),
    "avg3s2p1_excl_ceil": nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg3s2p1_incl_ceil": nn.AvgPool2d(3, 2, 1, ceil_mode=True),
    "adaptive1": nn.AdaptiveAvgPool2d(1),
    "adaptive_divides": nn.AdaptiveAvgPool2d((3, 5)),
    "adaptive_none": nn.AdaptiveAvgPool2d((None, 3)),
}


@pytest.mark.parametrize("pool", POOLS.values(), ids=list(POOLS))
@pytest.mark.parametrize("hw", [(15, 15), (12, 15)])
def test_pooling_runs_in_leanconv_and_matches_torch(pool, hw):
    x = torch.randn(2, 3, *hw)
    model = ConvPool(pool)
    with torch.no_grad():
        ref = model(x)
    frozen = lct.freeze(model, x)
    (p,) = frozen_pools(frozen)
    with torch.no_grad():
        y = frozen(x)
        assert y.shape == ref.shape
        assert rel_err(y, ref) < FLOAT_TOL
        # the pool itself gives torch's exact values (same additions, same order of max)
        h = frozen.lc_conv(x)
        assert torch.allclose(p(h), pool(h), rtol=1e-6, atol=1e-7)
        assert torch.equal(p(h.double()), pool(h.double()))      # other dtypes: torch's op


@pytest.mark.parametrize("size", [1, (1, 1), (2, 4)])
def test_functional_adaptive_pool_runs_in_leanconv(size):
    x = torch.randn(1, 3, 8, 8)
    frozen, _ = freeze_and_compare(FunctionalAdaptive(size), x)
    assert len(frozen_pools(frozen)) == 1


def test_pools_leanconv_does_not_run_stay_torch():
    x = torch.randn(1, 3, 10, 10)
    for pool in (nn.MaxPool2d(2, return_indices=True), nn.AvgPool2d(2, divisor_override=3),
                 nn.LPPool2d(2, 2)):
        model = ConvPool(pool)
        frozen = lct.freeze(model, x)
        assert not frozen_pools(frozen)
    # an adaptive pool whose windows differ (7 does not divide 10) falls back per call
    frozen, _ = freeze_and_compare(ConvPool(nn.AdaptiveAvgPool2d(7)), x)
    assert len(frozen_pools(frozen)) == 1


def test_pool_with_nan_propagates_like_torch():
    pool = nn.MaxPool2d(2)
    fp = frozen_pool_of(pool)
    h = torch.randn(1, 2, 4, 4)
    h[0, 0, 1, 1] = float("nan")
    assert torch.equal(fp(h).isnan(), pool(h).isnan())


def frozen_pool_of(pool):
    model = ConvPool(pool)
    (p,) = frozen_pools(lct.freeze(model, torch.randn(1, 3, 8, 8)))
    return p


# --- channels-last islands in NCHW (ConvNeXt's blocks) -------------------------------------

class TokenMLP(nn.Module):
    """ConvNeXt's block: NHWC tokens, LayerNorm, Linear -> act -> Linear, and
    (back=True) back to NCHW, scaled per channel and added to the input; else
    (back=False) the tokens stay NHWC and are pooled there."""

    def __init__(self, act, back=True, scale=None):
        super().__init__()
        self.back = back
        self.conv = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.norm = nn.LayerNorm(6)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.fc1 = nn.Linear(6, 24)
        self.act = act
        self.fc2 = nn.Linear(24, 6, bias=False)
        self.layer_scale = None if scale is None else nn.Parameter(scale.reshape(6, 1, 1))
        self.head = nn.Linear(6, 3)           # one row per image: left on torch

    def forward(self, x):
        t = self.fc2(self.act(self.fc1(self.norm(self.conv(x).permute(0, 2, 3, 1)))))
        if not self.back:
            return self.head(t.mean((1, 2)))
        t = t.permute(0, 3, 1, 2)
        if self.layer_scale is not None:
            t = self.layer_scale * t
        return self.head((x + t).mean((2, 3)))


@pytest.fixture
def linear_wins(monkeypatch):
    """Make the 1x1 form win freeze's timing (the decision, not the speed, is tested)."""
    from leanconv.torch.frozen import frozen_linear
    monkeypatch.setattr(frozen_linear, "_timed_pair",
                        lambda ours, theirs, repeats=7: (ours(), theirs(), 1.0, 2.0)[2:])


def linear_chains(m):
    from leanconv.torch.frozen.frozen_linear import FrozenLinearChain
    return [c for c in m.modules() if isinstance(c, FrozenLinearChain)]


def channel_norms(m):
    from leanconv.torch.frozen.frozen_norm import ChannelLayerNorm
    return [c for c in m.modules() if isinstance(c, ChannelLayerNorm)]


def pointwise_convs(m):
    return [c for c in frozen_convs(m) if c.spec.kH == c.spec.kW == 1 and c.spec.groups == 1]


def graph_ops(m):
    return {n.target for n in m.graph.nodes if n.op in ("call_function", "call_method")}


TOKEN_ACTS = pytest.mark.parametrize(
    "act", [nn.GELU(), nn.GELU(approximate="tanh"), nn.ReLU(), nn.SiLU()],
    ids=["gelu", "gelu_tanh", "relu", "silu"])


def freeze_token_mlp(model):
    """(frozen, stock copy) of a TokenMLP, its output checked against float64."""
    x = torch.randn(2, 6, 5, 7)
    stock = copy.deepcopy(model)
    with torch.no_grad():
        ref64 = copy.deepcopy(model).double()(x.double())
    frozen, y = freeze_and_compare(model, x)
    assert rel_err(y, ref64) < NET_TOL
    return frozen, stock


def check_another_token_count(frozen, stock):
    with torch.no_grad():
        x2 = torch.randn(1, 6, 9, 4)
        assert rel_err(frozen(x2), stock(x2)) < FLOAT_TOL


@TOKEN_ACTS
@pytest.mark.parametrize("scaled", [False, True], ids=["plain", "layer_scale"])
def test_channels_last_island_runs_in_nchw(act, scaled, epilogue):
    scale = torch.linspace(-2, 3, 6) if scaled else None
    model = TokenMLP(act, scale=scale).eval()
    frozen, stock = freeze_token_mlp(model)
    # both Linears are 1x1 convolutions, the LayerNorm's affine (and the layer
    # scale) folded into them, the residual add fused into the second; no
    # permute, multiplication or Linear chain is left
    fc1, fc2 = sorted(pointwise_convs(frozen), key=lambda c: c.spec.M, reverse=True)
    assert (fc1.spec.M, fc1.spec.Cg, fc2.spec.M, fc2.spec.Cg) == (24, 6, 6, 24)
    assert fc1.activation is not None and fc2.has_residual
    (norm,) = channel_norms(frozen)
    assert norm.weight is None and norm.bias is None
    assert not linear_chains(frozen)
    ops = graph_ops(frozen)
    assert "permute" not in ops and torch.permute not in ops and operator.mul not in ops
    assert "lc_dense_head" in call_targets(frozen)    # the one-row head: leanconv C dense
    assert model.fc1.weight.numel() == 0 and model.fc2.weight.numel() == 0   # released
    check_another_token_count(frozen, stock)


class LoneChannelNorm(nn.Module):
    """ConvNeXt's LayerNorm2d before a downsampling conv: an island of one LayerNorm."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(4, eps=1e-6)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)
        self.down = nn.Conv2d(4, 8, 2, stride=2)

    def forward(self, x):
        return self.down(F.relu(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2))


def test_lone_layernorm_island_keeps_its_affine():
    model = LoneChannelNorm().eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        ref64 = copy.deepcopy(model).double()(x.double())
    frozen, y = freeze_and_compare(model, x)
    assert rel_err(y, ref64) < NET_TOL
    (norm,) = channel_norms(frozen)
    assert norm.weight is not None and norm.bias is not None     # no Linear to fold into
    assert "permute" not in graph_ops(frozen)
    assert frozen._lc_scheduled.why is None


class NotAnIsland(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        t = self.conv(x).permute(0, 2, 3, 1)
        if self.kind == "read_twice":          # the tokens are read outside the island too
            return self.fc(t).permute(0, 3, 1, 2) + t.sum()
        if self.kind == "other_permute":       # closed by a permute that is not NHWC -> NCHW
            return self.fc(t).permute(0, 3, 2, 1)
        if self.kind == "shared_linear":       # the same Linear called twice
            return self.fc(self.fc(t)).permute(0, 3, 1, 2) + self.fc(t).sum()
        if self.kind == "non_channel_op":      # an op mixing positions inside
            return self.fc(t).cumsum(1).permute(0, 3, 1, 2)
        raise AssertionError(self.kind)


@pytest.mark.parametrize("kind", ["read_twice", "other_permute", "shared_linear",
                                  "non_channel_op"])
def test_what_is_not_an_island_is_left_alone(kind):
    model = NotAnIsland(kind).eval()
    frozen, _ = freeze_and_compare(model, torch.randn(1, 4, 5, 5))
    assert len(frozen_convs(frozen)) == 1 and not channel_norms(frozen)
    assert "permute" in graph_ops(frozen)


@TOKEN_ACTS
def test_token_linear_chain_runs_as_1x1_convolutions(act, linear_wins, epilogue):
    model = TokenMLP(act, back=False).eval()
    frozen, stock = freeze_token_mlp(model)
    (chain,) = linear_chains(frozen)
    assert len(chain._steps) == 2
    assert "lc_dense_head" in call_targets(frozen)    # the one-row head: leanconv C dense
    assert model.fc1.weight.numel() == 0 and model.fc2.weight.numel() == 0   # released
    check_another_token_count(frozen, stock)


def test_token_linear_chain_stays_on_torch_where_torch_is_faster(monkeypatch):
    from leanconv.torch.frozen import frozen_linear
    monkeypatch.setattr(frozen_linear, "_timed_pair",            # torch wins
                        lambda ours, theirs, repeats=7: (2.0, 1.0))
    model = TokenMLP(nn.GELU(), back=False).eval()
    frozen, _ = freeze_and_compare(model, torch.randn(1, 6, 8, 8))
    assert not linear_chains(frozen)
    assert model.fc1.weight.numel() > 0


def test_linear_chain_timing_runs_torch_as_a_frozen_call_does():
    from leanconv.torch.frozen import frozen_linear
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ours, theirs = frozen_linear._timed_pair(lambda: seen.append(("ours", torch.get_num_threads())),
                                                 lambda: seen.append(("torch", torch.get_num_threads())),
                                                 repeats=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    # interleaved (a warm-up round, then three), torch's chain on one thread
    assert seen == [("ours", 2), ("torch", 1)] * 4
    assert 0 <= ours and 0 <= theirs


@pytest.mark.parametrize("back", [False, True], ids=["linear_chain", "island"])
def test_token_mlp_under_compile_and_export(back, linear_wins):
    from torch._dynamo.testing import CompileCounter
    model = TokenMLP(nn.GELU(), back=back).eval()
    x = torch.randn(1, 6, 8, 8)
    frozen, y = freeze_and_compare(model, x)
    assert linear_chains(frozen) if not back else channel_norms(frozen)
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(frozen, backend=counter)
    with torch.no_grad():
        assert torch.allclose(compiled(x), y, rtol=1e-5, atol=1e-6)
    assert counter.frame_count == 1
    assert torch.allclose(torch.export.export(frozen, (x,)).module()(x), y, rtol=1e-5,
                          atol=1e-6)


def test_island_under_autocast_and_inference_mode():
    model = TokenMLP(nn.GELU()).eval()
    x = torch.randn(1, 6, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = copy.deepcopy(model)(x)
    frozen, y = freeze_and_compare(model, x)
    assert channel_norms(frozen)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = frozen(x)
    assert got.dtype == ref.dtype == torch.bfloat16
    assert rel_err(got, ref) < 0.05          # bf16 rounding on both sides
    with torch.inference_mode():
        assert torch.equal(frozen(x.clone()), y)


def test_convnext_blocks_match_float64():
    """ConvNeXt's layer scale (1e-6 at init) hides its MLP; scaled up, the
    frozen blocks must still give the float64 answer."""
    model = torchvision_models.make("convnext_tiny")
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "layer_scale"):
                m.layer_scale.uniform_(0.2, 0.8)
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    model = nn.Sequential(*model.features[:4]).eval()     # stem and the first two stages
    x = torch.randn(1, 3, 64, 64)    # 256 and 64 token rows
    with torch.no_grad():
        ref64 = copy.deepcopy(model).double()(x.double())
    frozen = lct.freeze(model, x)
    # every block: dw 7x7, then two 1x1 convs, the second adding the block input
    assert len(pointwise_convs(frozen)) == 2 * (3 + 3)
    assert sum(c.has_residual for c in frozen_convs(frozen)) == 3 + 3
    assert len(channel_norms(frozen)) == 1 + 3 + 1 + 3     # stem, blocks, downsampling
    ops = {getattr(t, "__name__", t) for t in graph_ops(frozen)}
    assert not ops & {"permute", "mul", "stochastic_depth"}
    assert not linear_chains(frozen)
    with torch.no_grad():
        assert rel_err(frozen(x), ref64) < NET_TOL


# --- fusion patterns -----------------------------------------------------------------------

class ConvBnAct(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


ACTIVATIONS = {
    "ReLU": nn.ReLU(), "ReLU_inplace": nn.ReLU(inplace=True), "ReLU6": nn.ReLU6(),
    "Hardtanh": nn.Hardtanh(-0.5, 0.7), "Hardswish": nn.Hardswish(),
    "Hardsigmoid": nn.Hardsigmoid(), "SiLU": nn.SiLU(inplace=True), "Sigmoid": nn.Sigmoid(),
    "GELU": nn.GELU(), "GELU_tanh": nn.GELU(approximate="tanh"),
    "LeakyReLU": nn.LeakyReLU(0.2),
    "F.relu": F.relu, "torch.relu": torch.relu, "F.relu6": F.relu6,
    "F.hardswish": F.hardswish, "F.silu": F.silu, "torch.sigmoid": torch.sigmoid,
    "F.gelu": F.gelu, "F.leaky_relu": lambda y: F.leaky_relu(y, 0.3),
    "F.hardtanh": lambda y: F.hardtanh(y, -1.0, 2.0),
    "torch.clamp": lambda y: torch.clamp(y, -0.3, 0.4), "clamp_min": lambda y: y.clamp(min=0.1),
    "method_relu_": lambda y: y.relu_(), "method_sigmoid": lambda y: y.sigmoid(),
}


def randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    return model.eval()


@pytest.fixture(params=["leanconv", "torch"])
def epilogue(request, monkeypatch):
    """Both ways a frozen conv runs its activation and residual add: in
    leanconv's fused epilogue, or as in-place torch ops after the conv
    (epilogue_speed picks per process by timing; here both are forced)."""
    fused = request.param == "leanconv"
    monkeypatch.setattr(epilogue_speed, "_kind_is_fast", lambda act: fused)
    monkeypatch.setattr(epilogue_speed, "fuses_residual", lambda: fused)
    return request.param


@pytest.mark.parametrize("act", ACTIVATIONS, ids=list(ACTIVATIONS))
def test_conv_bn_activation_fuse_to_one_call(act, epilogue):
    model = randomise_bn(ConvBnAct(ACTIVATIONS[act]))
    frozen, _ = freeze_and_compare(model, torch.randn(2, 4, 10, 9))
    assert call_targets(frozen) == ["lc_conv"]
    assert frozen_convs(frozen)[0].activation is not None


class Residual(nn.Module):
    def __init__(self, form, act=None, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(6, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.form, self.act = form, act

    def forward(self, x):
        y = self.bn(self.conv(x))
        if self.form == "add":
            y = y + x
        elif self.form == "radd":
            y = x + y
        elif self.form == "torch.add":
            y = torch.add(y, x)
        elif self.form == "iadd":
            y += x
        elif self.form == "add_":
            y = y.add_(x)
        return y if self.act is None else self.act(y)


@pytest.mark.parametrize("form", ["add", "radd", "torch.add", "iadd", "add_"])
@pytest.mark.parametrize("act", [None, nn.ReLU(inplace=True), nn.Hardswish()],
                         ids=["none", "relu", "hardswish"])
def test_residual_add_and_activation_fuse(form, act, epilogue):
    model = randomise_bn(Residual(form, act))
    frozen, _ = freeze_and_compare(model, torch.randn(1, 6, 9, 11))
    assert call_targets(frozen) == ["lc_conv"]
    conv = frozen_convs(frozen)[0]
    assert conv.has_residual and (conv.activation is None) == (act is None)


def test_conv_output_used_twice_is_not_fused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y) + y

    frozen, _ = freeze_and_compare(Twice().eval(), torch.randn(1, 3, 8, 8))
    targets = call_targets(frozen)
    assert targets[0] == "lc_conv" and torch.relu in targets and operator.add in targets
    assert frozen_convs(frozen)[0].activation is None


def test_training_mode_batchnorm_is_left_alone():
    model = ConvBnAct(nn.ReLU())        # not .eval(): BN uses batch statistics
    x = torch.randn(4, 4, 6, 6)
    with pytest.warns(FreezeWarning, match="training mode"):
        frozen = lct.freeze(copy.deepcopy(model), x)
    assert "bn" in call_targets(frozen)
    with torch.no_grad():
        assert rel_err(frozen(x), model(x)) < FLOAT_TOL


def test_broadcast_add_is_not_fused():
    class Broadcast(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x, bias_map):
            return self.conv(x) + bias_map      # (1, 4, 1, 1): broadcast

    x, r = torch.randn(1, 3, 8, 8), torch.randn(1, 4, 1, 1)
    model = Broadcast().eval()
    with torch.no_grad():
        ref = model(x, r)
    frozen = lct.freeze(model, (x, r))
    assert operator.add in call_targets(frozen)
    assert not frozen_convs(frozen)[0].has_residual
    with torch.no_grad():
        assert rel_err(frozen(x, r), ref) < FLOAT_TOL


def test_non_conv_producers_are_left_alone():
    class NoConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            y = torch.relu(self.bn(x) + x)       # BN and add without a conv before them
            return self.conv(y)

    frozen, _ = freeze_and_compare(randomise_bn(NoConv()), torch.randn(1, 3, 5, 5))
    assert call_targets(frozen) == ["bn", operator.add, torch.relu, "lc_conv"]


def test_lone_batchnorm_runs_as_a_depthwise_1x1_conv():
    """DenseNet's BN -> ReLU -> conv: the BN no conv absorbs is one depthwise
    1x1 call with the ReLU fused (a BN followed by an add stays on torch,
    test_non_conv_producers_are_left_alone)."""
    class PreActivation(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(6)
            self.conv = nn.Conv2d(6, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(F.relu(self.bn(x), inplace=True))

    frozen, _ = freeze_and_compare(randomise_bn(PreActivation()), torch.randn(2, 6, 7, 9))
    assert call_targets(frozen) == ["lc_bn", "lc_conv"]
    bn = frozen.lc_bn
    assert (bn.spec.groups, bn.spec.kH, bn.spec.kW) == (6, 1, 1)
    assert bn.activation.kind == "clamp"


def test_inplace_add_into_the_other_operand_is_not_fused():
    class IaddOther(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            z = x * 2
            z.add_(self.conv(x))      # writes into z, not into the conv's output
            return z

    frozen, _ = freeze_and_compare(IaddOther().eval(), torch.randn(1, 3, 6, 6))
    assert "add_" in call_targets(frozen)


def test_functional_conv_on_own_weights():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(5, 3, 3, 3))
            self.b = nn.Parameter(torch.randn(5))

        def forward(self, x):
            return F.relu6(F.conv2d(x, self.w, self.b, stride=2, padding=1))

    model = Functional().eval()
    frozen, _ = freeze_and_compare(model, torch.randn(1, 3, 9, 9))
    assert len(frozen_convs(frozen)) == 1 and model.w.numel() == 0


def test_untraceable_module_is_frozen_child_by_child():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = ConvBnAct(nn.ReLU())
            self.head = nn.Conv2d(8, 2, 1)

        def forward(self, x):
            y = self.block(x)
            if y.mean() > 0:                    # fx cannot trace this
                y = y * 2
            return self.head(y)

    model = DataDependent()
    randomise_bn(model)
    with pytest.warns(FreezeWarning, match="DataDependent"):
        frozen, _ = freeze_and_compare(model, torch.randn(1, 4, 8, 8))
    assert frozen is model
    assert len(frozen_convs(frozen)) == 2


def test_converted_model_freezes():
    model = lct.convert(reference_nets.make("mobilenet_v2").eval())
    freeze_and_compare(model, torch.randn(1, 3, 32, 32))


# --- modes and integrations ----------------------------------------------------------------

class TinyNet(nn.Module):
    """A stem, a residual block, a depthwise conv and a head: every kind of
    frozen call in a graph small enough for Dynamo to trace quickly."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBnAct(nn.ReLU(inplace=True))
        self.block = Residual("iadd", nn.ReLU())
        self.block.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.block.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 7, stride=2, padding=3, groups=8)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        y = F.hardswish(self.dw(self.block(self.stem(x))))
        return self.head(y.mean((2, 3)))


def same_but_the_head(traced, y):
    """A compiled/exported frozen model against its own call: the same bits
    but for the classifier head, which the call's schedule runs in leanconv's
    C dense kernel and a trace as torch's matmul on its panels (another
    summation order)."""
    return torch.allclose(traced, y, rtol=1e-6, atol=1e-7)


def small_resnet():
    return randomise_bn(TinyNet()), torch.randn(1, 4, 16, 16)


def test_inference_mode():
    model, x = small_resnet()
    frozen, y = freeze_and_compare(model, x)
    with torch.inference_mode():
        xi = x.clone()
        assert torch.equal(frozen(xi), y)


def test_autocast_returns_torch_dtype():
    model, x = small_resnet()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = copy.deepcopy(model)(x)
    frozen = lct.freeze(model, x)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = frozen(x)
    assert y.dtype == ref.dtype == torch.bfloat16
    assert rel_err(y, ref) < 0.05          # bf16 rounding on both sides


def test_compile_has_no_graph_breaks_or_recompiles():
    from torch._dynamo.testing import CompileCounter
    model, x = small_resnet()
    frozen, y = freeze_and_compare(model, x)
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(frozen, backend=counter)
    with torch.no_grad():
        for _ in range(3):
            out = compiled(x)
    assert counter.frame_count == 1          # one graph: no breaks, no recompiles
    assert same_but_the_head(out, y)
    explained = torch._dynamo.explain(frozen)(x)
    assert explained.graph_break_count == 0


def test_export_and_script():
    model, x = small_resnet()
    frozen, y = freeze_and_compare(model, x)
    ep = torch.export.export(frozen, (x,))
    assert "leanconv.frozen_conv2d" in ep.graph_module.code
    assert same_but_the_head(ep.module()(x), y)
    with pytest.raises(TypeError, match="torch.compile or torch.export"):
        torch.jit.script(frozen)


# --- algorithm choice and memory -----------------------------------------------------------

def test_measure_keeps_a_layer_on_torch_when_torch_is_faster(monkeypatch):
    real = choose.time_options

    def torch_wins_on_the_stem(spec, weight, bias, x_shape, names, repeats=5):
        times = real(spec, weight, bias, x_shape, names, repeats=1)
        if spec.kH == 7:
            times[choose.TORCH] = 0.0
        return times

    monkeypatch.setattr(choose, "time_options", torch_wins_on_the_stem)
    model, x = small_resnet()
    frozen, _ = freeze_and_compare(model, x, algorithm="measure")
    algos = {c.spec.kH: c.algorithm for c in frozen_convs(frozen)}
    assert algos[7] == "torch"
    dw = frozen.lc_dw
    assert dw.plan is None and dw.weight.shape == (8, 1, 7, 7)


def test_measure_times_every_option():
    model, x = small_resnet()
    frozen, _ = freeze_and_compare(model, x, algorithm="measure")
    assert all(c.algorithm in lc.algorithms() + ("torch",) for c in frozen_convs(frozen))


def held(frozen):
    """What a frozen model's convolutions hold: packings and one shared workspace."""
    convs = frozen_convs(frozen)
    return sum(c.packed_bytes for c in convs) + max(c.workspace_bytes for c in convs)


def test_memory_budget_is_honoured():
    model, x = small_resnet()
    free = lct.freeze(copy.deepcopy(model), x, algorithm="winograd_f6")
    unbounded = held(free)
    raw = sum(c.spec.M * c.spec.Cg * c.spec.kH * c.spec.kW * 4 for c in frozen_convs(free))
    budget = (unbounded + raw) // 2
    frozen, _ = freeze_and_compare(copy.deepcopy(model), x, algorithm="winograd_f6",
                                   memory_budget=budget)
    assert held(frozen) <= budget < unbounded
    with pytest.raises(ValueError, match="memory_budget"):
        lct.freeze(model, x, memory_budget=100)


def test_default_budget_is_torchs_weights_plus_the_largest_layer():
    """Without a memory_budget, "auto" holds (packings + the shared workspace)
    at most torch's conv weight bytes plus the largest layer's, and spends
    that room on Winograd; memory_budget=sys.maxsize lets every layer take it."""
    import sys
    model = torchvision_models.make("resnet18")
    sizes = [m.weight.numel() * 4 for m in model.modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(1, 3, 64, 64)
    free = lct.freeze(copy.deepcopy(model), x, memory_budget=sys.maxsize)
    assert held(free) > sum(sizes)
    frozen, _ = freeze_and_compare(model, x)
    assert sum(sizes) < held(frozen) <= sum(sizes) + max(sizes)
    assert any(c.algorithm.startswith("winograd") for c in frozen_convs(frozen))


def test_assign_trades_least_time_per_byte_and_counts_one_workspace():
    """assign: the cheapest options first; under a budget the switch losing
    least time per byte saved; workspaces count once (the largest), and
    when no single switch lowers the total the leanest pick is taken."""
    def layer(name, **opts):
        return choose.Layer(name, None, None, opts)
    a = layer("a", fast=(1.0, 100, 50), lean=(2.0, 10, 50))
    b = layer("b", fast=(1.0, 100, 50), lean=(9.0, 10, 50))
    assert choose.assign([a, b]) == {"a": "fast", "b": "fast"}
    assert choose.held_bytes([a, b], {"a": "fast", "b": "fast"}) == 250
    assert choose.assign([a, b], 160) == {"a": "lean", "b": "fast"}
    assert choose.assign([a, b], 70) == {"a": "lean", "b": "lean"}
    # two layers tied on the largest workspace: only both switching lowers it
    c = layer("c", fast=(1.0, 10, 500), small=(2.0, 10, 0))
    d = layer("d", fast=(1.0, 10, 500), small=(3.0, 10, 0))
    assert choose.assign([c, d], 20) == {"c": "small", "d": "small"}
    assert choose.smallest_held([c, d]) == 20
    with pytest.raises(ValueError, match="memory_budget=19 bytes"):
        choose.assign([c, d], 19)


def test_no_large_im2col_workspace():
    """A layer whose Im2Col workspace is large runs Patch2Vec (each call's
    workspace is fresh memory: page faults or heap fragmentation)."""
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1)).eval()
    x = torch.randn(1, 16, 96, 96)                    # Im2Col workspace 5.3 MB
    frozen, _ = freeze_and_compare(model, x, memory_budget=10 ** 9)
    (c,) = frozen_convs(frozen)
    assert c.algorithm != "im2col"
    small, _ = freeze_and_compare(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1)).eval(),
                                  torch.randn(1, 16, 8, 8), algorithm="im2col")
    assert frozen_convs(small)[0].algorithm == "im2col"      # asked for by name: kept


@torch.fx.wrap
def _through_numpy(t):
    return torch.from_numpy(t.numpy() * 2)


class DataDependent(nn.Module):
    """Traceable by fx, but its wrapped function has no meta-tensor form."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.b(_through_numpy(self.a(x)))


@pytest.mark.parametrize("meta_ok", [True, False])
def test_shapes_of_a_large_input_from_meta_tensors(meta_ok, monkeypatch):
    """Large example inputs are propagated on the meta device (no full-size run);
    where meta tensors fail (a NumPy round trip), by a real run."""
    from leanconv.torch.frozen import capture
    real_runs = []
    real = capture.ShapeProp.propagate
    monkeypatch.setattr(capture.ShapeProp, "propagate",
                        lambda self, *a: (real_runs.append(1), real(self, *a))[1])
    model = (ConvPool(nn.MaxPool2d(2)) if meta_ok else DataDependent()).eval()
    frozen, _ = freeze_and_compare(model, torch.randn(1, 3, 256, 256))
    assert frozen_convs(frozen)
    assert real_runs == ([] if meta_ok else [1])


def test_frozen_module_holds_no_torch_conv_or_linear_weights():
    model, x = small_resnet()
    head = model.head
    frozen = lct.freeze(model, x)
    assert [n for n, _ in frozen.named_parameters()] == []
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
                   for m in frozen.modules())
    assert head.weight.numel() == 0      # torch's copy released once packed


@pytest.mark.parametrize("args, err, match", [
    (("not a model", torch.randn(1, 3, 8, 8)), TypeError, "nn.Module"),
    ((nn.Conv2d(3, 3, 1), "x"), TypeError, "example_inputs"),
    ((nn.Conv2d(3, 3, 1), torch.randn(1, 3, 8, 8).double()), ValueError, "float32"),
])
def test_bad_arguments(args, err, match):
    with pytest.raises(err, match=match):
        lct.freeze(*args)


def test_bad_options():
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown algorithm"):
        lct.freeze(nn.Conv2d(3, 3, 1), x, algorithm="fastest")
    with pytest.raises(ValueError, match="memory_budget"):
        lct.freeze(nn.Conv2d(3, 3, 1), x, memory_budget=-1)
    with pytest.warns(FreezeWarning, match="winograd_f4"):
        lct.freeze(nn.Conv2d(3, 3, 1), x, algorithm="winograd_f4")  # 1x1: 'auto' instead


# --- threads ------------------------------------------------------------------------------------

_SEEN = []


@torch.fx.wrap
def _probe(x, flag):
    """Records torch's thread setting while the frozen model runs (or fails)."""
    _SEEN.append(torch.get_num_threads())
    if flag < 0:
        raise RuntimeError("asked to fail")
    return x


class ConvProbeConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 1)

    def forward(self, x, flag):
        return self.b(_probe(self.a(x), flag))


def test_torch_ops_run_on_one_thread_and_leanconv_on_torchs_setting(monkeypatch):
    """At 2 threads, torch's ops inside a frozen model's call run on one
    thread (no idle torch pool spinning beside leanconv's), the kernels get
    the 2 threads, and torch's setting is restored after -- also when the
    call raises."""
    from leanconv.torch.frozen import frozen_conv
    seen, kernel_threads = _SEEN, []
    model = ConvProbeConv().eval()
    x, flag = torch.randn(1, 3, 8, 8), torch.tensor(1.0)
    x2 = torch.randn(1, 3, 9, 9)
    ref, ref2 = model(x, flag), model(x2, flag)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        frozen = lct.freeze(model, (x, flag))
        real = frozen_conv.frozen_threads
        monkeypatch.setattr(frozen_conv, "frozen_threads",
                            lambda: (kernel_threads.append(real()), real())[1])
        seen.clear()
        with torch.no_grad():   # the schedule compiled at freeze: kernels bound for 2 threads
            assert rel_err(frozen(x, flag), ref) < 1e-5
        assert seen == [1] and kernel_threads == []
        assert [s.threads for s in frozen._lc_scheduled.schedules.values()] == [2]
        assert torch.get_num_threads() == 2
        seen.clear()
        with torch.no_grad():   # a shape seen the first time: the fx code, each conv asks
            assert rel_err(frozen(x2, flag), ref2) < 1e-5
        assert seen[-1] == 1 and kernel_threads == [2, 2]
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="asked to fail"):
            frozen(x, torch.tensor(-1.0))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# --- what a frozen process holds ------------------------------------------------------------

def test_frozen_layers_share_one_lent_workspace():
    """Every frozen conv borrows the calling thread's scratch buffer: after a
    call it holds at least the largest workspace a layer needed, and the
    next call reuses that very buffer."""
    from leanconv import _scratch
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1)).eval()
    x = torch.randn(1, 8, 32, 32)
    frozen, _ = freeze_and_compare(model, x, algorithm="im2col")
    need = max(c.workspace_bytes for c in frozen_convs(frozen))
    assert need > 0
    frozen(x)
    buf = _scratch.lend(0)
    assert buf.shape[0] >= need and buf.ctypes.data % _scratch.ALIGN == 0
    frozen(x)
    assert _scratch.lend(0) is buf                      # reused, not reallocated


def test_scratch_is_per_thread_aligned_and_grows():
    import threading
    from leanconv import _scratch
    a = _scratch.lend(100)
    assert a.dtype == np.uint8 and a.shape[0] >= 100 and a.ctypes.data % 64 == 0
    assert _scratch.lend(50) is a
    b = _scratch.lend(a.shape[0] + 1000)
    assert b.shape[0] >= a.shape[0] + 1000 and b.ctypes.data % 64 == 0
    other = []
    t = threading.Thread(target=lambda: other.append(_scratch.lend(10)))
    t.start()
    t.join()
    assert not np.shares_memory(other[0], b)
    _scratch.release()
    assert _scratch.held_bytes() == 0


def test_epilogue_times_only_the_activations_a_model_uses(monkeypatch):
    """Timing an activation pages torch's code for it into the process for
    good: freeze times a kind only when a model has it (ReLU, a clamp, is
    never timed)."""
    monkeypatch.setattr(epilogue_speed, "_kinds_fast", {})
    freeze_and_compare(ConvBnAct(nn.ReLU()).eval(), torch.randn(1, 4, 10, 9))
    assert epilogue_speed._kinds_fast == {}
    freeze_and_compare(ConvBnAct(nn.SiLU()).eval(), torch.randn(1, 4, 10, 9))
    assert list(epilogue_speed._kinds_fast) == [("silu", ())]
