"""leanconv.torch.convert() under torch.compile, torch.export and torch.jit.script.

A converted Conv2d is one opaque custom op (leanconv::conv2d) to Dynamo: no
graph breaks, one compile for repeated calls, torch's gradients."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch._dynamo.testing import CompileCounter  # noqa: E402

import leanconv.torch as lct  # noqa: E402


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1, padding_mode="reflect"),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 4))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compile_one_graph_no_recompiles():
    stock = small_net().eval()
    model = lct.convert(stock)
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(2, 3, 16, 16)
            torch.testing.assert_close(compiled(x), stock(x), rtol=1e-4, atol=1e-5)
    assert counter.frame_count == 1
    assert torch._dynamo.explain(model)(x).graph_break_count == 0


def test_compiled_gradients_are_torchs():
    stock = small_net().train()
    model = lct.convert(stock)
    x = torch.randn(2, 3, 16, 16)
    stock(x).square().sum().backward()
    compiled = torch.compile(model, backend=CompileCounter())
    compiled(x).square().sum().backward()
    for (name, p), q in zip(stock.named_parameters(), model.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_export_keeps_leanconv():
    stock = small_net().eval()
    model = lct.convert(stock)
    x = torch.randn(1, 3, 16, 16)
    ep = torch.export.export(model, (x,))
    assert "leanconv.conv2d" in ep.graph_module.code
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), stock(x), rtol=1e-4, atol=1e-5)


def test_jit_script_is_a_clear_error():
    model = lct.convert(small_net().eval())
    with pytest.raises(TypeError, match="torch.compile or torch.export"):
        torch.jit.script(model)
