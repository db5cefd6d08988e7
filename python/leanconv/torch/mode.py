"""with leanconv.torch.enable(): ... -- F.conv2d calls made by any code run on leanconv."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from leanconv._select import check_name
from leanconv.torch.fallback import warn_once
from leanconv.torch.functional import conv2d

# Convolutions leanconv does not compute: they run on torch, with a warning.
_OTHER_CONVS = {torch.conv1d: "conv1d", torch.conv3d: "conv3d",
                F.conv_transpose1d: "conv_transpose1d", F.conv_transpose2d: "conv_transpose2d",
                F.conv_transpose3d: "conv_transpose3d"}


class _LeanconvMode(TorchFunctionMode):
    def __init__(self, algorithm):
        super().__init__()
        self.algorithm = algorithm

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.conv2d:
            return conv2d(*args, algorithm=self.algorithm, **kwargs)
        name = _OTHER_CONVS.get(func)
        if name is not None:
            warn_once(f"{name} is not a 2-D convolution", stacklevel=4)
        return func(*args, **kwargs)


def enable(algorithm="auto"):
    """A context manager under which torch.nn.functional.conv2d (and so every
    stock nn.Conv2d) runs on leanconv:

        with leanconv.torch.enable():
            y = model(x)
    """
    return _LeanconvMode(check_name(algorithm))
