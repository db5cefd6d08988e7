"""When a call cannot run on leanconv, torch runs it; the user hears about it once.

A reason is a short phrase ("dtype torch.float64", "device cuda:0"); each
reason warns once per process (reset_warnings() starts over, for tests)."""
from __future__ import annotations

import threading
import warnings


class LeanconvFallbackWarning(UserWarning):
    """A convolution ran on PyTorch instead of leanconv."""


_seen: set = set()
_lock = threading.Lock()


def warn_once(reason: str, stacklevel: int = 3) -> None:
    with _lock:
        if reason in _seen:
            return
        _seen.add(reason)
    warnings.warn(f"leanconv cannot run this convolution ({reason}); using PyTorch's. "
                  f"This warning is shown once per reason.",
                  LeanconvFallbackWarning, stacklevel=stacklevel)


def reset_warnings() -> None:
    """Forget which fallbacks were already reported."""
    with _lock:
        _seen.clear()
