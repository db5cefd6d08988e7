"""pytest-benchmark suite over a few representative conv layers.

    pytest bench/ --benchmark-only                       # all
    pytest bench/ --benchmark-only -k "resnet18 and 3x3"  # a subset
    LEANCONV_ISA=scalar LEANCONV_NUM_THREADS=1 pytest bench/ --benchmark-only

Not part of the default test run (pyproject's testpaths is tests/).  Results
are grouped per layer, so each group compares the algorithms (and PyTorch,
when installed) on one shape; extra_info carries GFLOP/s, workspace and
packed-weight bytes.  The layer shapes come from the CLI's suites, so this
file and `leanconv bench` measure the same convolutions."""
from __future__ import annotations

import numpy as np
import pytest

import leanconv as lc
from leanconv.cli.suites import MOBILENET_V2, RESNET18, RESNET50, VGG16


def _pick(suite, name):
    return next(layer for layer in suite if layer.name == name)


LAYERS = {
    "resnet18 conv1 7x7s2": _pick(RESNET18, "conv1"),
    "resnet18 layer1 3x3": _pick(RESNET18, "layer1 3x3"),
    "resnet18 layer3 3x3": _pick(RESNET18, "layer3 3x3"),
    "resnet18 layer2 3x3s2": _pick(RESNET18, "layer2.0.conv1"),
    "resnet50 layer3 1x1": _pick(RESNET50, "layer3 expand"),
    "vgg16 conv3_2": _pick(VGG16, "conv3_2/3"),
    "mobilenet_v2 dw 384": _pick(MOBILENET_V2, "dw 384"),
    "mobilenet_v2 expand 64>384": _pick(MOBILENET_V2, "expand 64>384"),
}
ALGORITHMS = ("auto", "im2col", "patch2vec", "winograd_f2", "winograd_f4", "winograd_f6",
              "depthwise")


def _data(layer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    w = rng.standard_normal(layer.w_shape, dtype=np.float32) * np.float32(0.05)
    b = rng.standard_normal(layer.M, dtype=np.float32)
    return x, w, b


def _kwargs(layer):
    return dict(stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
                groups=layer.groups)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_plan(benchmark, name, algorithm):
    """A pre-packed plan into a preallocated output: the steady-state cost."""
    layer = LAYERS[name]
    if not lc.supports(algorithm, layer.x_shape, layer.w_shape, **_kwargs(layer)):
        pytest.skip(f"{algorithm} cannot run {name}")
    x, w, b = _data(layer)
    plan = lc.Conv2d(w, b, algorithm=algorithm, input_shape=layer.x_shape, **_kwargs(layer))
    y = np.empty((layer.N, layer.M) + layer.out_hw, dtype=np.float32)
    benchmark.group = name
    benchmark.name = f"{plan.algorithm}" + (" (auto)" if algorithm == "auto" else "")
    benchmark(plan, x, out=y)
    t = benchmark.stats.stats.median
    benchmark.extra_info.update(
        gflops=layer.flops / t / 1e9, workspace_bytes=plan.workspace_bytes(layer.x_shape),
        packed_bytes=plan.packed_bytes, isa=plan.isa, threads=lc.get_num_threads())


@pytest.mark.parametrize("name", list(LAYERS))
def test_functional_auto(benchmark, name):
    """lc.conv2d with algorithm='auto': packing and output allocation included."""
    layer = LAYERS[name]
    x, w, b = _data(layer)
    benchmark.group = name
    benchmark.name = "lc.conv2d auto"
    benchmark(lc.conv2d, x, w, b, **_kwargs(layer))
    benchmark.extra_info["gflops"] = layer.flops / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("name", list(LAYERS))
def test_torch(benchmark, name):
    """PyTorch on the same layer and thread count, for reference."""
    torch = pytest.importorskip("torch")
    layer = LAYERS[name]
    x, w, b = (torch.from_numpy(a) for a in _data(layer))
    torch.set_num_threads(lc.get_num_threads())
    benchmark.group = name
    benchmark.name = "torch F.conv2d"
    with torch.no_grad():
        benchmark(torch.nn.functional.conv2d, x, w, b, **_kwargs(layer))
    benchmark.extra_info["gflops"] = layer.flops / benchmark.stats.stats.median / 1e9
