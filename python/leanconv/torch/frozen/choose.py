"""Which algorithm each frozen convolution runs, and within what memory.

A Layer lists its options: the leanconv algorithms that can run it, plus
"torch" (torch's own conv on the folded weights) when measuring, each with a
cost and the bytes its weights hold.  Costs are the C cost model's
(kernels/choose.c, through leanconv._select) for algorithm="auto", seconds timed on the example input for
"measure".  Then `assign` takes each layer's cheapest option and, while the
total weight bytes exceed memory_budget, trades the option that loses the
least time per byte saved (Winograd holds alpha^2/9 times the raw weights)."""
from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from leanconv import _core, _isa
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
    options: dict             # algorithm -> (cost, weight bytes)

    def cheapest(self):
        return min(self.options, key=lambda a: self.options[a][0])


def _geometry(spec, x_shape):
    N, C, H, W = x_shape
    return spec.geometry(N, C, H, W)


def raw_bytes(spec):
    return spec.M * spec.Cg * spec.kH * spec.kW * 4


def packed_bytes(name, spec, x_shape):
    if name == TORCH:
        return raw_bytes(spec)
    return _core.sizes(algorithm_id(name), _isa.isa_id(), _geometry(spec, x_shape), 1)[0]


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
# workspace does not grow with the image.  Each call allocates its workspace
# afresh: a multi-MB one costs page faults each time (ResNet-18's 64@56 3x3:
# Im2Col 13 ms with its 7 MB workspace, Patch2Vec 1.3 ms) or, once glibc's
# mmap threshold has risen, fragments the heap (+30 MB of RSS per forward).
_IM2COL_WORKSPACE = 1 << 20


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
    options = {a: (model_cost(a, spec, hw), packed_bytes(a, spec, x_shape))
               for a in runnable(spec) if a not in ("im2col", "patch2vec") or a == gemm}
    options[preferred] = (min(c for c, _ in options.values()) - 1.0,
                          packed_bytes(preferred, spec, x_shape))
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
    return Layer(name, spec, x_shape, {a: (times[a], packed_bytes(a, spec, x_shape))
                                       for a in names})


def torch_sized_budget(layers):
    """The bytes torch holds for these layers' weights, each layer at least
    its smallest packing (GEMM packings round the output channels up to the
    micro-kernel's rows): freeze's default budget, always feasible."""
    return sum(max(raw_bytes(L.spec), min(s for _, s in L.options.values())) for L in layers)


def assign(layers, memory_budget=None):
    """{layer name: algorithm}: each layer's cheapest option, then trades
    toward smaller weights until the total fits memory_budget (bytes)."""
    pick = {L.name: L.cheapest() for L in layers}
    if memory_budget is None:
        return pick
    total = sum(L.options[pick[L.name]][1] for L in layers)
    while total > memory_budget:
        best = None
        for L in layers:
            cost, size = L.options[pick[L.name]]
            for a, (c, s) in L.options.items():
                if s < size:
                    rate = (c - cost) / (size - s)
                    if best is None or rate < best[0]:
                        best = (rate, L, a, size - s)
        if best is None:
            smallest = sum(min(s for _, s in L.options.values()) for L in layers)
            raise ValueError(f"memory_budget={memory_budget} bytes is below the smallest "
                             f"packing of this model's convolutions ({smallest} bytes)")
        _, L, a, saved = best
        pick[L.name] = a
        total -= saved
    return pick
