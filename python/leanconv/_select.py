"""Algorithm choice: what "auto" and "winograd" mean for a shape, and
whether a named algorithm can do it."""
from __future__ import annotations

from . import _core
from ._params import ConvSpec

ALGORITHMS = _core.ALGORITHMS
WINOGRAD = ("winograd_f2", "winograd_f4", "winograd_f6")
_ALIASES = ("auto", "winograd")


def algorithm_id(name: str) -> int:
    return ALGORITHMS.index(name)


def check_name(algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {type(algorithm).__name__}")
    if algorithm not in ALGORITHMS and algorithm not in _ALIASES:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of "
                         f"{', '.join(_ALIASES + ALGORITHMS)}")
    return algorithm


def why_unsupported(name: str, spec: ConvSpec, isa_id: int, geometry=None):
    """None if `name` can run this convolution, else the constraint it breaks."""
    if geometry is None:  # filter-only question: any input the weights accept
        geometry = (1, spec.C, spec.kH, spec.kW, spec.M, spec.kH, spec.kW, 1, 1) + \
            spec.stride + spec.dilation + spec.pads + (spec.groups,)
    return _core.why_unsupported(algorithm_id(name), isa_id, geometry)


def winograd_variant(spec: ConvSpec, hw=None) -> str:
    """Best Winograd size for the shape: bigger tiles save more multiplies but
    waste work on small images and cost accuracy, so F(6) only where the image
    holds several 6x6 tiles and channels are wide enough to amortise the
    8x8 transforms."""
    OH = OW = None
    if hw is not None:
        OH, OW = spec.output_hw(*hw)
    small = OH is not None and min(OH, OW) < 8
    if small:
        return "winograd_f2" if min(OH, OW) < 4 else "winograd_f4"
    if min(spec.Cg, spec.M // spec.groups) >= 64:
        return "winograd_f6"
    return "winograd_f4"


def choose(algorithm: str, spec: ConvSpec, isa_id: int, hw=None) -> str:
    """Resolve "auto"/"winograd" to a concrete algorithm for the shape (hw is
    the input height and width when known)."""
    check_name(algorithm)
    if algorithm == "winograd":
        return winograd_variant(spec, hw)
    if algorithm != "auto":
        return algorithm
    if spec.is_depthwise:
        return "depthwise"
    if spec.kH == spec.kW == 1 and spec.stride == (1, 1) and spec.pads == (0, 0, 0, 0):
        return "im2col"  # B is the input itself: no workspace
    wino_ok = why_unsupported("winograd_f4", spec, isa_id) is None
    if wino_ok and min(spec.Cg, spec.M // spec.groups) >= 16:
        return winograd_variant(spec, hw)
    return "patch2vec"
