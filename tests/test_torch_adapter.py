"""leanconv.torch: same answers as torch, gradients, re-packing, layouts, fallbacks.

Tolerances.  A single convolution is compared with torch's float64 result and
its error normalised per output element by the receptive field's magnitude,
sum |x|*|w| + |b| (DESIGN.md, "Numerics"); the bound depends on the algorithm
(CONV_TOL).  Whole networks are compared with the float64 network and the
error normalised by the largest output magnitude: NET_TOL.  Gradients come from
torch's own backward, so they are compared with stock torch's float32
gradients (the inputs to backward are the same tensors; only the forward
output differs within CONV_TOL)."""
from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import leanconv as lc  # noqa: E402
import leanconv.torch as lct  # noqa: E402
import reference_nets  # noqa: E402

# max |y - ref| / (sum|x||w| + |b|) per algorithm, float32 against float64.
CONV_TOL = {"direct": 2e-6, "im2col": 2e-6, "patch2vec": 2e-6, "depthwise": 2e-6, "direct_lanes": 2e-6,
            "winograd_f2": 1e-5, "winograd_f4": 3e-5, "winograd_f6": 1e-4}
# max |y - ref| / max |ref| for a whole network, float32 against float64.
NET_TOL = 1e-5


@pytest.fixture(autouse=True)
def fresh_warnings():
    lct.reset_warnings()
    yield
    lct.reset_warnings()


def normalised_error(y, x, w, b=None, **conv_args):
    """max |y - ref| / (sum|x||w| + |b|), both computed by torch in float64."""
    x64, w64 = x.detach().double(), w.detach().double()
    b64 = None if b is None else b.detach().double()
    ref = F.conv2d(x64, w64, b64, **conv_args)
    scale = F.conv2d(x64.abs(), w64.abs(), None if b is None else b64.abs(), **conv_args)
    return float(((y.detach().double() - ref).abs() / (scale + 1e-30)).max())


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


# --- the functional form -------------------------------------------------------------------

CASES = [
    # (x shape, w shape, kwargs)
    ((2, 8, 13, 11), (16, 8, 3, 3), dict(padding=1)),
    ((1, 5, 9, 10), (7, 5, 3, 3), dict(stride=2, padding=(0, 2))),
    ((1, 6, 12, 12), (4, 3, 3, 3), dict(groups=2, dilation=2, padding=2)),
    ((2, 8, 10, 9), (8, 1, 3, 3), dict(groups=8, padding=1)),            # depthwise
    ((1, 4, 8, 8), (12, 1, 5, 5), dict(groups=4, padding="same")),       # multiplier 3
    ((1, 3, 11, 7), (5, 3, 4, 2), dict(padding="same", dilation=(2, 1))),  # asymmetric same
    ((1, 3, 9, 9), (4, 3, 1, 1), dict()),
    ((3, 9, 9), (4, 3, 3, 3), dict(padding="valid")),                   # unbatched
    ((1, 16, 14, 14), (16, 16, 3, 3), dict(padding=[1], stride=(1,))),   # 1-element lists
]


@pytest.mark.parametrize("xs, ws, kw", CASES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv2d_matches_float64_reference(xs, ws, kw, bias):
    x, w = rand(*xs, seed=1), rand(*ws, seed=2)
    b = rand(ws[0], seed=3) if bias else None
    y = lct.conv2d(x, w, b, **kw)
    expect = F.conv2d(x, w, b, **kw)
    assert y.shape == expect.shape and y.dtype == torch.float32
    assert normalised_error(y, x, w, b, **kw) < CONV_TOL["winograd_f6"]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_conv2d_parameter_sweep(data):
    groups = data.draw(st.sampled_from([1, 2, 3]), "groups")
    cg, mg = data.draw(st.integers(1, 4), "C/g"), data.draw(st.integers(1, 4), "M/g")
    kh, kw = data.draw(st.integers(1, 4), "kH"), data.draw(st.integers(1, 4), "kW")
    stride = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), "stride")
    dilation = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), "dilation")
    same = stride == (1, 1) and data.draw(st.booleans(), "same")
    padding = "same" if same else data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                                            "padding")
    h = data.draw(st.integers(dilation[0] * (kh - 1) + 1, 12), "H")
    w_ = data.draw(st.integers(dilation[1] * (kw - 1) + 1, 12), "W")
    n = data.draw(st.integers(1, 2), "N")
    seed = data.draw(st.integers(0, 2**16), "seed")
    x, w = rand(n, cg * groups, h, w_, seed=seed), rand(mg * groups, cg, kh, kw, seed=seed + 1)
    b = rand(mg * groups, seed=seed + 2) if data.draw(st.booleans(), "bias") else None
    kw_args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = lct.conv2d(x, w, b, **kw_args)
    assert y.shape == F.conv2d(x, w, b, **kw_args).shape
    assert normalised_error(y, x, w, b, **kw_args) < CONV_TOL["winograd_f6"]


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "patch2vec", "winograd_f2",
                                       "winograd_f4", "winograd_f6"])
def test_every_algorithm_within_its_tolerance(algorithm):
    x, w, b = rand(2, 16, 15, 13, seed=4), rand(24, 16, 3, 3, seed=5), rand(24, seed=6)
    y = lct.conv2d(x, w, b, padding=1, algorithm=algorithm)
    assert normalised_error(y, x, w, b, padding=1) < CONV_TOL[algorithm]


def test_output_is_independent_of_thread_count():
    x, w = rand(1, 16, 20, 20), rand(32, 16, 3, 3)
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(lct.conv2d(x, w, padding=1))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], y) for y in results[1:])


def test_non_contiguous_input_and_weight():
    x = rand(2, 8, 20, 20)[:, ::2, 1:15, ::2]
    w = rand(6, 8, 3, 3).transpose(2, 3)[:, ::2]
    y = lct.conv2d(x, w, padding=1)
    assert normalised_error(y, x, w, padding=1) < CONV_TOL["winograd_f6"]


@pytest.mark.parametrize("x_cl, w_cl", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("k", [3, 1])
def test_channels_last_layout_follows_torch(x_cl, w_cl, k):
    x, w = rand(2, 8, 9, 9), rand(6, 8, k, k)
    if x_cl:
        x = x.contiguous(memory_format=torch.channels_last)
    if w_cl:
        w = w.contiguous(memory_format=torch.channels_last)
    y, expect = lct.conv2d(x, w, padding=k // 2), F.conv2d(x, w, padding=k // 2)
    assert y.stride() == expect.stride()
    assert normalised_error(y, x, w, padding=k // 2) < CONV_TOL["winograd_f6"]


def test_output_is_a_fresh_tensor_and_input_untouched():
    x, w = rand(1, 4, 8, 8), rand(4, 4, 3, 3)
    x0 = x.clone()
    y = lct.conv2d(x, w, padding=1)
    assert torch.equal(x, x0)
    assert y.data_ptr() != x.data_ptr() and y.untyped_storage().size() == y.numel() * 4


def test_functional_cache_sees_in_place_weight_change():
    x, w = rand(1, 4, 8, 8), rand(4, 4, 3, 3)
    lct.conv2d(x, w, padding=1)
    w.mul_(-2)
    assert normalised_error(lct.conv2d(x, w, padding=1), x, w, padding=1) < 1e-4


def test_functional_cache_does_not_confuse_a_new_weight_at_a_reused_address():
    x = rand(1, 4, 8, 8)
    for seed in range(6):  # each weight dies before the next is made
        w = rand(4, 4, 3, 3, seed=seed)
        assert normalised_error(lct.conv2d(x, w, padding=1), x, w, padding=1) < 1e-4
        del w


@pytest.mark.parametrize("args, kwargs", [
    (((1, 4, 8, 8), (4, 5, 3, 3)), {}),                  # channel mismatch
    (((1, 4, 2, 2), (4, 4, 3, 3)), {}),                  # kernel larger than input
    (((1, 4, 8, 8), (4, 4, 3, 3)), dict(padding=-1)),
    (((1, 4, 8, 8), (4, 4, 3, 3)), dict(stride=0)),
    (((1, 4, 8, 8), (4, 4, 3, 3)), dict(stride=2, padding="same")),
    (((1, 4, 8, 8), (4, 4, 3, 3)), dict(padding="full")),
    (((4, 8), (4, 4, 3, 3)), {}),                        # 2-D input
])
def test_invalid_arguments_raise_torchs_error(args, kwargs):
    xs, ws = args
    x, w = rand(*xs), rand(*ws)
    with pytest.raises(Exception) as theirs:
        F.conv2d(x, w, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # invalid input is not a "fallback"
        with pytest.raises(type(theirs.value)):
            lct.conv2d(x, w, **kwargs)


# --- autograd ------------------------------------------------------------------------------

GRAD_CASES = [
    ((2, 4, 9, 9), (6, 4, 3, 3), dict(padding=1)),
    ((1, 4, 10, 9), (6, 2, 3, 3), dict(stride=2, groups=2, dilation=(1, 2))),
    ((1, 3, 9, 8), (5, 3, 4, 2), dict(padding="same")),   # asymmetric padding
    ((4, 7, 7), (6, 4, 3, 3), dict(padding=1)),          # unbatched
]


@pytest.mark.parametrize("xs, ws, kw", GRAD_CASES)
def test_gradients_match_torch(xs, ws, kw):
    def grads(fn):
        x = rand(*xs, seed=1).requires_grad_()
        w = rand(*ws, seed=2).requires_grad_()
        b = rand(ws[0], seed=3).requires_grad_()
        y = fn(x, w, b, **kw)
        (y * rand(*y.shape, seed=4)).sum().backward()
        return y, x.grad, w.grad, b.grad

    y, *ours = grads(lct.conv2d)
    _, *theirs = grads(F.conv2d)
    assert y.grad_fn is not None
    for g, t in zip(ours, theirs):
        torch.testing.assert_close(g, t, rtol=1e-5, atol=1e-5)


def test_gradient_only_for_what_requires_it():
    x, w = rand(1, 4, 8, 8).requires_grad_(), rand(4, 4, 3, 3)
    lct.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is not None and w.grad is None


def test_no_grad_gives_plain_tensor():
    x, w = rand(1, 4, 8, 8), rand(4, 4, 3, 3).requires_grad_()
    with torch.no_grad():
        y = lct.conv2d(x, w)
    assert y.grad_fn is None and not y.requires_grad
    with torch.inference_mode():
        y = lct.conv2d(x, w)
    assert normalised_error(y, x, w) < 1e-4


# --- the module ----------------------------------------------------------------------------

def test_module_is_an_nn_conv2d_with_the_same_state_dict():
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 8, 3, padding=1)
    ours = lct.Conv2d(4, 8, 3, padding=1, algorithm="im2col")
    assert isinstance(ours, nn.Conv2d)
    ours.load_state_dict(ref.state_dict())
    assert ours.state_dict().keys() == ref.state_dict().keys()
    x = rand(2, 4, 10, 10)
    assert normalised_error(ours(x), x, ref.weight, ref.bias, padding=1) < CONV_TOL["im2col"]
    assert ours.plan.algorithm == "im2col"


def test_module_repacks_after_load_state_dict_in_place_update_and_optimizer_step():
    torch.manual_seed(0)
    ours = lct.Conv2d(4, 8, 3, padding=1)
    x = rand(1, 4, 10, 10)

    def check():
        err = normalised_error(ours(x), x, ours.weight, ours.bias, padding=1)
        assert err < CONV_TOL["winograd_f6"]

    check()
    first_plan = ours.plan
    ours.load_state_dict(nn.Conv2d(4, 8, 3, padding=1).state_dict())
    check()
    assert ours.plan is not first_plan
    with torch.no_grad():
        ours.weight.mul_(3)
        ours.bias.add_(1)
    check()
    opt = torch.optim.SGD(ours.parameters(), lr=0.5)
    ours(x).square().sum().backward()
    opt.step()
    check()
    ours.weight = nn.Parameter(rand(8, 4, 3, 3, seed=9))
    check()
    ours.weight.data = rand(8, 4, 3, 3, seed=10)   # storage swap: new data pointer
    check()


def test_module_keeps_its_plan_while_weights_are_unchanged():
    ours = lct.Conv2d(4, 8, 3, padding=1)
    x = rand(1, 4, 10, 10)
    ours(x)
    plan = ours.plan
    ours(x)
    assert ours.plan is plan


def test_repack_after_write_through_data():
    ours = lct.Conv2d(4, 8, 3, padding=1)
    x = rand(1, 4, 10, 10)
    ours(x)
    ours.weight.data.mul_(2)  # bypasses the version counter (documented)
    ours.repack()
    assert normalised_error(ours(x), x, ours.weight, ours.bias, padding=1) < 1e-4


def test_module_to_float64_falls_back_with_one_warning():
    ours = lct.Conv2d(4, 8, 3, padding=1).to(torch.float64)
    x = rand(1, 4, 10, 10).double()
    with pytest.warns(lct.LeanconvFallbackWarning, match="float64"):
        y = ours(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y2 = ours(x)
    expect = F.conv2d(x, ours.weight, ours.bias, padding=1)
    assert torch.equal(y, expect) and torch.equal(y2, expect)
    ours.to(torch.float32)  # and back: leanconv again, re-packed
    xf = x.float()
    assert normalised_error(ours(xf), xf, ours.weight, ours.bias, padding=1) < 1e-4


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_padding_modes(mode, padding):
    torch.manual_seed(0)
    ref = nn.Conv2d(3, 5, (3, 4), padding=padding, padding_mode=mode)
    ours = lct.convert(ref)
    x = rand(2, 3, 9, 8)
    with torch.no_grad():
        expect64 = ref.double()(x.double())
        ref.float()
        y = ours(x)
    assert y.shape == expect64.shape
    assert float((y - expect64).abs().max() / expect64.abs().max()) < 1e-5


@pytest.mark.parametrize("k, dilation", [(3, 1), (4, 1), (2, 3)])
def test_module_same_and_valid_strings(k, dilation):
    torch.manual_seed(0)
    for padding in ("same", "valid"):
        ref = nn.Conv2d(3, 4, k, padding=padding, dilation=dilation)
        ours = lct.convert(ref)
        x = rand(1, 3, 11, 10)
        y = ours(x)
        assert y.shape == ref(x).shape
        assert normalised_error(y, x, ref.weight, ref.bias, padding=padding,
                                dilation=dilation) < 1e-4


def test_module_channels_last():
    torch.manual_seed(0)
    ref = nn.Conv2d(8, 8, 3, padding=1).to(memory_format=torch.channels_last)
    ours = lct.convert(ref)
    x = rand(2, 8, 9, 9).contiguous(memory_format=torch.channels_last)
    y, expect = ours(x), ref(x)
    assert y.stride() == expect.stride()
    assert normalised_error(y, x, ref.weight, ref.bias, padding=1) < 1e-4


def test_module_pickles_and_deep_copies_without_its_plan():
    ours = lct.Conv2d(4, 8, 3, padding=1)
    x = rand(1, 4, 10, 10)
    y = ours(x)
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    twin = copy.deepcopy(ours)
    for m in (loaded, twin):
        assert m.plan is None
        assert torch.equal(m(x), y)


# --- convert -------------------------------------------------------------------------------

class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.body = nn.Sequential(self.shared, nn.ReLU(), nn.ModuleList([nn.Conv2d(4, 4, 1)]))
        self.head = nn.Conv2d(4, 2, 3, stride=2)

    def forward(self, x):
        return self.head(self.body[2][0](self.body[1](self.body[0](x))) + self.shared(x))


def test_convert_swaps_every_conv_and_keeps_sharing():
    torch.manual_seed(0)
    model = Mixed()
    converted = lct.convert(model)
    assert converted is not model
    assert all(type(m) is nn.Conv2d for m in model.modules() if isinstance(m, nn.Conv2d))
    convs = [m for m in converted.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, lct.Conv2d) for m in convs)
    assert converted.shared is converted.body[0]
    x = rand(1, 4, 9, 9)
    torch.testing.assert_close(converted(x), model(x), rtol=1e-4, atol=1e-5)


def test_convert_inplace_returns_the_same_model_and_shares_parameters():
    model = Mixed()
    params = list(model.parameters())
    out = lct.convert(model, inplace=True)
    assert out is model and isinstance(model.head, lct.Conv2d)
    assert all(a is b for a, b in zip(params, model.parameters()))


def test_convert_a_bare_conv_and_requested_algorithm():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    out = lct.convert(conv, algorithm="patch2vec")
    assert isinstance(out, lct.Conv2d)
    out(rand(1, 4, 8, 8))
    assert out.plan.algorithm == "patch2vec"


def test_convert_with_an_algorithm_some_layers_cannot_run_warns_once_and_uses_auto():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1))
    converted = lct.convert(model, algorithm="winograd_f4")
    x = rand(1, 4, 8, 8)
    with pytest.warns(lct.LeanconvFallbackWarning) as record:
        y = converted(x)
    assert len(record) == 1
    assert converted[0].plan.algorithm == "winograd_f4"
    assert converted[1].plan.algorithm != "winograd_f4"
    torch.testing.assert_close(y, model(x), rtol=1e-4, atol=1e-5)


def test_convert_leaves_conv2d_subclasses_alone():
    class Standardised(nn.Conv2d):
        def forward(self, x):
            w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
            return F.conv2d(x, w, self.bias, self.stride, self.padding)

    model = nn.Sequential(Standardised(3, 3, 3))
    with pytest.warns(lct.LeanconvFallbackWarning, match="Standardised"):
        converted = lct.convert(model)
    assert type(converted[0]) is Standardised


def test_convert_rejects_bad_arguments():
    with pytest.raises(TypeError):
        lct.convert("not a model")
    with pytest.raises(ValueError, match="unknown algorithm"):
        lct.convert(nn.Conv2d(1, 1, 1), algorithm="fft")
    with pytest.raises(ValueError, match="unknown algorithm"):
        lct.Conv2d(1, 1, 1, algorithm="fft")


# --- fallbacks -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_dtypes_fall_back_with_one_warning(dtype):
    x, w = rand(1, 4, 8, 8).to(dtype), rand(4, 4, 3, 3).to(dtype)
    with pytest.warns(lct.LeanconvFallbackWarning, match=str(dtype)):
        y = lct.conv2d(x, w, padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lct.conv2d(x, w, padding=1)
    assert torch.equal(y, F.conv2d(x, w, padding=1))


def test_meta_device_falls_back():
    x, w = torch.empty(1, 4, 8, 8, device="meta"), torch.empty(4, 4, 3, 3, device="meta")
    with pytest.warns(lct.LeanconvFallbackWarning, match="device meta"):
        y = lct.conv2d(x, w, padding=1)
    assert y.device.type == "meta" and y.shape == (1, 4, 8, 8)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_jit_trace_falls_back_so_the_trace_is_torchs():
    conv = lct.Conv2d(3, 4, 3, padding=1)
    x = rand(1, 3, 8, 8)
    with pytest.warns(lct.LeanconvFallbackWarning, match="jit"):
        traced = torch.jit.trace(conv, x)
    x2 = rand(1, 3, 8, 8, seed=7)
    assert torch.allclose(traced(x2), F.conv2d(x2, conv.weight, conv.bias, padding=1))


def test_vmap_falls_back():
    x, w = rand(3, 1, 4, 8, 8), rand(4, 4, 3, 3)
    with pytest.warns(lct.LeanconvFallbackWarning, match="torch.func"):
        y = torch.func.vmap(lambda t: lct.conv2d(t, w, padding=1))(x)
    torch.testing.assert_close(y, torch.func.vmap(lambda t: F.conv2d(t, w, padding=1))(x))


# --- enable() ------------------------------------------------------------------------------

class Functional(nn.Module):
    """Calls the functional form directly, as a lot of model code does."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(rand(8, 3, 3, 3) * 0.3)
        self.w2 = nn.Parameter(rand(8, 1, 3, 3) * 0.3)
        self.conv = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.w1, padding=1))
        x = F.conv2d(x, self.w2, stride=2, padding=1, groups=8)
        return self.conv(x)


def test_enable_routes_functional_conv2d_through_leanconv(monkeypatch):
    calls = []
    real = lct.functional.conv_with_cache
    monkeypatch.setattr(lct.functional, "conv_with_cache",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    model, x = Functional(), rand(2, 3, 12, 12)
    with torch.no_grad():
        expect64 = copy.deepcopy(model).double()(x.double())
        with lct.enable():
            y = model(x)
    assert len(calls) == 3
    assert float((y - expect64).abs().max() / expect64.abs().max()) < NET_TOL
    calls.clear()
    model(x)
    assert not calls  # the mode is gone after the block


def test_enable_with_gradients():
    model, x = Functional(), rand(2, 3, 12, 12)
    twin = copy.deepcopy(model)
    with lct.enable():
        model(x).square().sum().backward()
    twin(x).square().sum().backward()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_enable_warns_once_for_other_convolutions():
    x1, w1 = rand(1, 3, 10), rand(4, 3, 3)
    x3, w3 = rand(1, 3, 4, 4, 4), rand(4, 3, 3, 3, 3)
    with lct.enable():
        with pytest.warns(lct.LeanconvFallbackWarning, match="conv1d"):
            y1 = F.conv1d(x1, w1)
        with pytest.warns(lct.LeanconvFallbackWarning, match="conv3d"):
            y3 = F.conv3d(x3, w3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            F.conv1d(x1, w1)
    assert torch.equal(y1, F.conv1d(x1, w1)) and torch.equal(y3, F.conv3d(x3, w3))


def test_enable_rejects_an_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown algorithm"):
        lct.enable("fft")


# --- whole networks ------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["resnet18", "mobilenet_v2"])
def network(request):
    return request.param, reference_nets.make(request.param)


def test_converted_network_matches_float64(network):
    name, model = network
    x = rand(1, 3, 64, 64, seed=11)
    with torch.no_grad():
        expect = copy.deepcopy(model).double()(x.double())
        stock = model(x)
        ours = lct.convert(model)(x)
    scale = float(expect.abs().max())
    stock_err = float((stock - expect).abs().max()) / scale
    our_err = float((ours - expect).abs().max()) / scale
    assert our_err < NET_TOL, (name, our_err, stock_err)


def test_converted_network_gradients_match_stock(network):
    # eval mode: training-mode BatchNorm over a batch of 2 at 1x1 spatial size
    # (ResNet's last stage at this input size) amplifies float32 noise without bound.
    name, model = network
    model = copy.deepcopy(model)
    converted = lct.convert(model)
    x = rand(2, 3, 32, 32, seed=12)
    for m in (model, converted):
        m(x).square().mean().backward()
    for (pn, a), b in zip(model.named_parameters(), converted.parameters()):
        scale = float(a.grad.abs().max()) + 1e-12
        assert float((a.grad - b.grad).abs().max()) / scale < 1e-3, (name, pn)


def test_converted_network_under_enable_matches(network):
    name, model = network
    x = rand(1, 3, 48, 48, seed=13)
    with torch.no_grad():
        with lct.enable():
            y = model(x)
        expect = model(x)
    assert float((y - expect).abs().max() / expect.abs().max()) < 2 * NET_TOL


def test_converted_network_reports_its_plans(network):
    name, model = network
    converted = lct.convert(model)
    with torch.no_grad():
        converted(rand(1, 3, 32, 32))
    plans = [m.plan for m in converted.modules() if isinstance(m, lct.Conv2d)]
    assert plans and all(p is not None for p in plans)
    assert {p.algorithm for p in plans} <= set(lc.algorithms())
    if name == "mobilenet_v2":
        assert "depthwise" in {p.algorithm for p in plans}
    assert all(p.packed_bytes >= 0 for p in plans)
    assert np.isfinite(sum(p.packed_bytes for p in plans))


# --- inference mode and autocast (issue 14.1, 14.2) ----------------------------------------

@pytest.fixture
def leanconv_calls(monkeypatch):
    """Counts the convolutions leanconv (not torch) computes."""
    calls = []
    real = lct.functional.conv_with_cache
    monkeypatch.setattr(lct.functional, "conv_with_cache",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_inference_mode_tensors_run_on_leanconv(leanconv_calls):
    """Inference tensors have no version counter; the plan signature must not need one."""
    with torch.inference_mode():
        x, w, b = rand(1, 3, 4, 4), rand(3, 3, 3, 3, seed=1), rand(3, seed=2)
        y = lct.conv2d(x, w, b, stride=2, padding=2)
        assert normalised_error(y, x, w, b, stride=2, padding=2) < CONV_TOL["direct"]
        conv = lct.Conv2d(3, 5, 3, padding=1)              # parameters made in inference mode
        assert normalised_error(conv(x), x, conv.weight, conv.bias, padding=1) < 1e-4
        # the same inference tensors again: the packed plan is reused, not re-packed
        plan = conv.plan
        conv(x)
        assert conv.plan is plan
    assert len(leanconv_calls) == 3


def test_model_built_or_deep_copied_in_inference_mode_runs(leanconv_calls):
    """convert(), enable() and deep copies made under inference mode all run on
    leanconv, in inference mode and (as torch allows) under no_grad after it."""
    model, x = Functional(), rand(2, 3, 12, 12)
    with torch.no_grad():
        expect = model(x)
    with torch.inference_mode():
        built = lct.convert(Functional())          # a model made in inference mode
        built.load_state_dict(model.state_dict())
        copied = copy.deepcopy(lct.convert(model))
        for m in (built, copied):
            assert float((m(x) - expect).abs().max()) < 1e-5
        with lct.enable():
            assert float((copy.deepcopy(model)(x) - expect).abs().max()) < 1e-5
    with torch.no_grad():
        assert float((copied(x) - expect).abs().max()) < 1e-5
    # convert() swaps the nn.Conv2d (one per forward); enable() also takes the F.conv2d calls
    assert len(leanconv_calls) == 2 * 1 + 3 + 1


AUTOCAST = [torch.bfloat16, torch.float16]


def _autocast_error(y, x, w, b, dtype, **kw):
    """Normalised error against float64; the input is rounded to `dtype` first
    only when it came in that dtype, so the bound is the one rounding of y."""
    assert y.dtype == dtype
    return normalised_error(y.float(), x.float(), w, b, **kw)


@pytest.mark.parametrize("dtype", AUTOCAST)
@pytest.mark.parametrize("input_dtype", ["float32", "low"])
def test_autocast_functional_returns_torchs_dtype(dtype, input_dtype, leanconv_calls):
    x, w, b = rand(2, 4, 9, 9), rand(6, 4, 3, 3, seed=1), rand(6, seed=2)
    if input_dtype == "low":
        x = x.to(dtype)
    eps = torch.finfo(dtype).eps
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no fallback warning: leanconv computes it
        with torch.autocast("cpu", dtype=dtype):
            want = F.conv2d(x, w, b, padding=1)
            y = lct.conv2d(x, w, b, padding=1)
    assert y.dtype == want.dtype == dtype
    assert _autocast_error(y, x, w, b, dtype, padding=1) <= eps
    assert len(leanconv_calls) == 1


@pytest.mark.parametrize("dtype", AUTOCAST)
def test_autocast_modules_converted_models_and_enable(dtype, leanconv_calls):
    torch.manual_seed(0)   # nn.Conv2d's initial weights: the same whatever ran before
    model, x = Functional(), rand(2, 3, 12, 12)
    converted = lct.convert(model)
    with torch.autocast("cpu", dtype=dtype):
        want = model(x)
        got = {"converted": converted(x)}
        with lct.enable():
            got["enable"] = model(x)
        conv = lct.Conv2d(3, 4, 3)
        got["module"], want_module = conv(x), F.conv2d(x, conv.weight, conv.bias)
    assert want.dtype == want_module.dtype == dtype
    for name, y in got.items():
        assert y.dtype == dtype, name
    scale = float(want.detach().float().abs().max())
    for name in ("converted", "enable"):
        assert float((got[name].float() - want.float()).abs().max()) < 0.05 * scale, name
    assert _autocast_error(got["module"], x, conv.weight, conv.bias, dtype) <= \
        torch.finfo(dtype).eps
    assert len(leanconv_calls) == 1 + 3 + 1  # converted (its nn.Conv2d), enable(), module


def test_autocast_gradients_flow_in_float32():
    x = rand(1, 3, 8, 8).requires_grad_()
    conv = lct.Conv2d(3, 4, 3, padding=1)
    twin = copy.deepcopy(conv)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    g = rand(1, 4, 8, 8, seed=3)   # a linear loss: the same upstream gradient for both
    (y.float() * g).sum().backward()
    x_twin = x.detach().clone().requires_grad_()
    # y is bfloat16, so its gradient is too: g rounded, then float32 from there on
    g_low = g.to(torch.bfloat16).float()
    (F.conv2d(x_twin, twin.weight, twin.bias, padding=1) * g_low).sum().backward()
    assert y.dtype == torch.bfloat16 and x.grad.dtype == torch.float32
    for a, b in ((x.grad, x_twin.grad), (conv.weight.grad, twin.weight.grad),
                 (conv.bias.grad, twin.bias.grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_autocast_with_low_precision_weights_falls_back_to_torch():
    x, w = rand(1, 4, 8, 8), rand(4, 4, 3, 3).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.warns(lct.LeanconvFallbackWarning, match="bfloat16"):
            y = lct.conv2d(x, w, padding=1)
        assert torch.equal(y, F.conv2d(x, w, padding=1))
