"""Which algorithm each frozen convolution runs, and within what memory.

A Layer lists its options: the leanconv algorithms that can run it, plus
"torch" (torch's own conv on the folded weights) when measuring, each with a
cost and the bytes its weights hold.  Costs are the C cost model's
(kernels/choose.c, through leanconv._select) for algorithm="auto", seconds timed on the example input for
"measure".  Then `assign` takes each layer's cheapest option and, while what
the layers hold (held_bytes: every packing, plus one workspace -- the
largest, as the layers share a lent one) exceeds memory_budget, trades the
option that loses the least time per byte saved (Winograd holds alpha^2/9
times the raw weights).  default_budget is freeze's budget when none is given."""
from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from leanconv import _budget, _core, _isa
from leanconv._params import ConvSpec
from leanconv._plan import Conv2d as Plan
from leanconv._select import ALGORITHMS, algorithm_id, choose, why_unsupported
from leanconv._select import model_cost as _c_cost
from leanconv.torch.frozen.capture import FreezeWarning
from leanconv.torch.plans import torch_threads

TORCH = "torch"


@dataclass
class Layer:
    name: str                 # for messages: the fx node's name
    spec: ConvSpec
    x_shape: tuple
    options: dict             # algorithm -> (cost, packed weight bytes, workspace bytes)

    def cheapest(self):
        return min(self.options, key=lambda a: self.options[a][0])


def _geometry(spec, x_shape):
    N, C, H, W = x_shape
    return spec.geometry(N, C, H, W)


def raw_bytes(spec):
    return spec.M * spec.Cg * spec.kH * spec.kW * 4


def sizes(name, spec, x_shape, threads=1):
    """(packed weight bytes, workspace bytes) of one option on this layer."""
    if name == TORCH:
        return raw_bytes(spec), 0
    packed, ws = _core.sizes(algorithm_id(name), _isa.isa_id(), _geometry(spec, x_shape), threads)
    return packed, max(ws, 0)


def runnable(spec):
    """leanconv algorithms that can run this convolution (direct, the slow
    reference, only when nothing else can)."""
    isa_id = _isa.isa_id()
    ok = [a for a in ALGORITHMS if why_unsupported(a, spec, isa_id) is None]
    fast = [a for a in ok if a != "direct"]
    return fast or ok


def model_cost(name, spec, hw):
    """The C cost model's estimate ("auto"'s view, kernels/choose.c) of one
    algorithm on this layer, one image, one thread."""
    return _c_cost(name, _isa.isa_id(), spec.geometry(1, spec.C, *hw), 1)


# Largest Im2Col workspace a frozen layer takes; beyond it Patch2Vec, whose
# workspace does not grow with the image (the cost model prices the two
# alike).  Frozen layers share one lent workspace (leanconv._scratch), so a
# larger one costs no time per call, but it stays resident for the process:
# 2 MiB lets MobileNetV2's stem run Im2Col (1.3 MB; 0.15-0.23 ms against
# Patch2Vec's 0.39-0.46) and keeps ResNet-18's (7.4 MB) on Patch2Vec.
_IM2COL_WORKSPACE = 2 << 20


def _gemm_form(spec, x_shape):
    """Im2Col or Patch2Vec for a layer: the model costs them alike, but
    Im2Col's workspace grows with the image."""
    ws = _core.sizes(algorithm_id("im2col"), _isa.isa_id(), _geometry(spec, x_shape), 1)[1]
    return "im2col" if 0 <= ws <= _IM2COL_WORKSPACE else "patch2vec"


def model_layer(name, spec, x_shape, algorithm):
    """Options for "auto", "winograd" or a named algorithm, costed by the
    shape model; the requested (or "auto"'s) algorithm is the cheapest, the
    others are there for memory_budget to trade to."""
    hw = tuple(x_shape[2:])
    isa_id = _isa.isa_id()
    if algorithm not in ("auto", "winograd") and \
            why_unsupported(algorithm, spec, isa_id) is not None:
        warnings.warn(f"algorithm {algorithm!r} cannot run {spec.kH}x{spec.kW} "
                      f"stride-{spec.stride} convolutions: those use 'auto'",
                      FreezeWarning, stacklevel=5)
        algorithm = "auto"
    preferred = choose(algorithm, spec, isa_id, hw)
    gemm = _gemm_form(spec, x_shape)
    if algorithm in ("auto", "winograd") and preferred in ("im2col", "patch2vec"):
        preferred = gemm
    threads = torch_threads() or 1
    options = {a: (model_cost(a, spec, hw),) + sizes(a, spec, x_shape, threads)
               for a in runnable(spec) if a not in ("im2col", "patch2vec") or a == gemm}
    options[preferred] = (min(o[0] for o in options.values()) - 1.0,) + \
        sizes(preferred, spec, x_shape, threads)
    return Layer(name, spec, x_shape, options)


def time_options(spec, weight, bias, x_shape, names, repeats=5):
    """Median seconds of each option on a random input of x_shape, timed in
    interleaved rounds at the thread count the frozen model will use."""
    x = torch.randn(x_shape)
    xn = x.numpy()
    threads = torch_threads()
    t, b, l, r = spec.pads
    symmetric = t == b and l == r

    def torch_run():
        if symmetric:
            torch.conv2d(x, weight, bias, spec.stride, (t, l), spec.dilation, spec.groups)
        else:
            torch.conv2d(torch.nn.functional.pad(x, (l, r, t, b)), weight, bias, spec.stride, 0,
                         spec.dilation, spec.groups)

    runs = {}
    wn, bn = weight.numpy(), bias.numpy()
    for name in names:
        if name == TORCH:
            runs[name] = torch_run
        else:
            plan = Plan(wn, bn, spec.stride, spec.pads, spec.dilation, spec.groups,
                        algorithm=name)
            out = np.empty(plan.output_shape(x_shape), np.float32)
            runs[name] = (lambda p=plan, o=out: p(xn, out=o, threads=threads))
    times = {n: [] for n in names}
    with torch.inference_mode():
        for fn in runs.values():
            fn()                                            # warm-up: caches, page faults
        for _ in range(repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(ts) for n, ts in times.items()}


def measured_layer(name, spec, weight, bias, x_shape):
    names = runnable(spec) + [TORCH]
    times = time_options(spec, weight, bias, x_shape, names)
    threads = torch_threads() or 1
    return Layer(name, spec, x_shape, {a: (times[a],) + sizes(a, spec, x_shape, threads)
                                       for a in names})


def torch_sized_budget(layers):
    """The bytes torch holds for these layers' weights, each layer at least
    its smallest packing (GEMM packings round the output channels up to the
    micro-kernel's rows)."""
    return sum(max(raw_bytes(L.spec), min(o[1] for o in L.options.values())) for L in layers)


def _options(layers):
    """Each layer's options as leanconv._budget takes them: (algorithm,
    packed bytes, workspace bytes, cost), the cheapest first."""
    lists = []
    for L in layers:
        first = L.cheapest()
        lists.append([(a,) + L.options[a][1:] + L.options[a][:1]
                      for a in [first] + [a for a in L.options if a != first]])
    return lists


def _pick(layers, lists, choice):
    return {L.name: opts[k][0] for L, opts, k in zip(layers, lists, choice)}


def leanest(layers):
    """The pick that holds least (held_bytes, leanconv._budget.leanest)."""
    lists = _options(layers)
    return _pick(layers, lists, _budget.leanest(lists))


def smallest_held(layers):
    """The least any choice holds (packings and the shared workspace)."""
    return held_bytes(layers, leanest(layers))


def default_budget(layers):
    """freeze's memory budget when none is given (algorithm="auto"): torch's
    own weight bytes (torch_sized_budget) plus the largest layer's raw
    weight bytes, for Winograd packings and the one shared workspace.

    Why that much: packing a layer holds its torch weights and its packing at
    once, so freezing reaches torch's weights + one layer's anyway (the
    largest layer's, at its turn); the frozen model may hold as much for
    good without raising the process's peak resident memory above what a
    process building and running the stock model reaches (docs/torch-models.md
    measures both: stock torch pages in its convolution code and its own
    activations, which the frozen process does not)."""
    extra = max((raw_bytes(L.spec) for L in layers), default=0)
    return max(torch_sized_budget(layers) + extra, smallest_held(layers))


def held_bytes(layers, pick):
    """What a frozen model holds for these layers under `pick`: every packing,
    and one workspace (the largest: the layers share a lent one)."""
    packed = sum(L.options[pick[L.name]][1] for L in layers)
    return packed + max((L.options[pick[L.name]][2] for L in layers), default=0)


def assign(layers, memory_budget=None):
    """{layer name: algorithm}: each layer's cheapest option, then, while
    held_bytes exceeds memory_budget, the switches leanconv._budget.fit
    trades (least time lost per byte saved)."""
    pick = {L.name: L.cheapest() for L in layers}
    if memory_budget is None:
        return pick
    lists = _options(layers)
    choice, held = _budget.fit(lists, memory_budget)
    if held > memory_budget:
        raise ValueError(f"memory_budget={memory_budget} bytes is below the least this "
                         f"model's convolutions hold: {smallest_held(layers)} bytes "
                         f"(smallest packings and workspace)")
    return _pick(layers, lists, choice)
