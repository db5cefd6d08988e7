"""What the installed leanconv core's epilogue fuses into a convolution's
store: the activation kinds, and whether a call can add a residual tensor.
freeze runs whatever is not fused here as in-place torch ops after the
store, so an older core gives the same answers, a little slower."""
from __future__ import annotations

import functools
import inspect

from leanconv import _params

_OPTIONAL_KINDS = ("hardswish", "hardsigmoid", "silu", "sigmoid", "gelu", "leaky_relu")


@functools.lru_cache(maxsize=None)
def native_kinds() -> frozenset:
    names = set(getattr(_params, "ACTIVATIONS", ()))
    return frozenset({"clamp"} | {k for k in _OPTIONAL_KINDS if k in names})


@functools.lru_cache(maxsize=None)
def native_residual() -> bool:
    from leanconv import _core
    try:
        return "residual" in inspect.signature(_core.Kernel.run).parameters
    except (TypeError, ValueError):     # a Cython method without a signature
        return "residual" in (_core.Kernel.run.__doc__ or "")
