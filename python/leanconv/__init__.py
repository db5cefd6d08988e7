"""leanconv: lean, fast CPU float32 2-D convolutions.

    import leanconv as lc
    y = lc.conv2d(x, w, bias, stride=1, padding=1)           # functional
    plan = lc.Conv2d(w, bias, padding=1, algorithm="auto")   # weights packed once
    y = plan(x)
"""
from ._core import ALGORITHMS as _ALGORITHMS
from ._isa import available_isas, cpu_features, isa, use_isa
from ._plan import Conv2d, conv2d, supports, workspace_bytes
from ._threads import get_num_threads, set_num_threads
from ._wisdom import forget as forget_wisdom
from ._wisdom import path as wisdom_path

__version__ = "0.1.0"

__all__ = [
    "Conv2d", "conv2d", "workspace_bytes", "supports", "algorithms", "isa",
    "available_isas", "cpu_features", "use_isa", "set_num_threads", "get_num_threads",
    "wisdom_path", "forget_wisdom",
]


def algorithms() -> tuple:
    """The concrete algorithms, in a fixed order."""
    return _ALGORITHMS
