"""Algorithm names and requests: what "auto", "winograd" and "measure" mean
for one call geometry, and whether a named algorithm can run a shape.

The cost model itself is C (kernels/choose.c, lc_conv_choose); this module
maps names to it and puts the wisdom file (measured winners) in front of it."""
from __future__ import annotations

from . import _core, _wisdom
from ._params import ConvSpec

ALGORITHMS = _core.ALGORITHMS
WINOGRAD = ("winograd_f2", "winograd_f4", "winograd_f6")
# requests resolved per geometry, and their ids for lc_conv_choose
ALIASES = ("auto", "winograd", "measure")
_REQUEST_ID = {"auto": -1, "winograd": -2}
# output size a shape-less question assumes
ASSUMED_OUT_HW = 28


def algorithm_id(name: str) -> int:
    return ALGORITHMS.index(name)


def request_id(request: str) -> int:
    """The C id of a request (include/leanconv/conv.h): "measure" falls back
    on the cost model, like "auto"."""
    return _REQUEST_ID["auto" if request == "measure" else request]


def check_name(algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {type(algorithm).__name__}")
    if algorithm not in ALGORITHMS and algorithm not in ALIASES:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of "
                         f"{', '.join(ALIASES + ALGORITHMS)}")
    return algorithm


def filter_geometry(spec: ConvSpec):
    """A call geometry for filter-only questions (the smallest input)."""
    return (1, spec.C, spec.kH, spec.kW, spec.M, spec.kH, spec.kW, 1, 1) + \
        spec.stride + spec.dilation + spec.pads + (spec.groups,)


def assumed_input_hw(spec: ConvSpec):
    """Input height and width whose output is ASSUMED_OUT_HW square."""
    (sh, sw), (dh, dw) = spec.stride, spec.dilation
    t, b, l, r = spec.pads
    h = (ASSUMED_OUT_HW - 1) * sh + dh * (spec.kH - 1) + 1 - t - b
    w = (ASSUMED_OUT_HW - 1) * sw + dw * (spec.kW - 1) + 1 - l - r
    return max(h, 1), max(w, 1)


def why_unsupported(name: str, spec: ConvSpec, isa_id: int, geometry=None):
    """None if `name` can run this convolution, else the constraint it breaks."""
    if geometry is None:  # filter-only question: any input the weights accept
        geometry = filter_geometry(spec)
    return _core.why_unsupported(algorithm_id(name), isa_id, geometry)


def supported(spec: ConvSpec, isa_id: int, geometry) -> tuple:
    """Every algorithm that can run this geometry, in lc.algorithms() order."""
    return tuple(a for a in ALGORITHMS
                 if _core.why_unsupported(algorithm_id(a), isa_id, geometry) is None)


def model_cost(name: str, isa_id: int, geometry, threads: int) -> float:
    """The C cost model's estimate for one algorithm on one call (units: one
    micro-kernel multiply-add of the ISA)."""
    return _core.cost(algorithm_id(name), isa_id, geometry, threads)[0]


def cost_model(request: str, isa_id: int, geometry, threads: int) -> str:
    """What the C cost model picks for "auto" or "winograd"."""
    return ALGORITHMS[_core.choose(_REQUEST_ID[request], isa_id, geometry, threads)]


def resolve(request: str, spec: ConvSpec, isa_id: int, geometry, threads: int) -> str:
    """A concrete algorithm for this call without measuring: a named one as it
    is; "auto" and "measure" the wisdom file's winner when it has one, else
    the cost model; "winograd" the cost model's best Winograd size."""
    if request in ALGORITHMS:
        return request
    if request in ("auto", "measure"):
        known = _wisdom.lookup(_core.ISA_NAMES[isa_id], threads, spec, geometry)
        if known is not None:
            return known
        request = "auto"
    return cost_model(request, isa_id, geometry, threads)


def choose(algorithm: str, spec: ConvSpec, isa_id: int, hw=None, threads=None, N=1) -> str:
    """Resolve a request to a concrete algorithm for input height/width `hw`
    (None: an input whose output is ASSUMED_OUT_HW square), batch N and
    `threads` (None: the current default)."""
    from . import _threads
    check_name(algorithm)
    if algorithm in ALGORITHMS:
        return algorithm
    H, W = assumed_input_hw(spec) if hw is None else hw
    geometry = spec.geometry(N, spec.C, H, W)
    return resolve(algorithm, spec, isa_id, geometry, _threads.resolve(threads))
