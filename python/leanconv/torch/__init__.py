"""leanconv inside PyTorch: one line to run a model's convolutions on leanconv.

    import leanconv.torch as lct
    model = lct.convert(model)            # every nn.Conv2d -> lct.Conv2d
    with lct.enable():                    # or: route F.conv2d calls made by any code
        y = model(x)
    y = lct.conv2d(x, w, b, padding=1)    # F.conv2d semantics, leanconv kernels
    frozen = lct.freeze(model.eval(), x)  # inference only: BN folded, activations and
                                          # residual adds fused; consumes `model`

CPU float32 tensors run on leanconv; anything else (other dtypes, other devices,
tracing, 1-D/3-D convolutions) runs on torch after a one-time
LeanconvFallbackWarning, so the answer is always torch's or leanconv's, never
a wrong one.  Gradients flow through torch's own convolution backward.

Threads: unless lc.set_num_threads() was called, a convolution here uses
torch.get_num_threads() threads, so torch.set_num_threads() governs both."""
try:
    import torch as _torch  # noqa: F401  (absolute: the real torch, not this package)
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("leanconv.torch needs PyTorch; install it with "
                      "`pip install torch` (CPU build is enough)") from e

from leanconv.torch.fallback import LeanconvFallbackWarning, reset_warnings
from leanconv.torch.frozen import FreezeWarning, freeze
from leanconv.torch.functional import conv2d
from leanconv.torch.mode import enable
from leanconv.torch.modules import Conv2d, convert

__all__ = ["conv2d", "Conv2d", "convert", "enable", "freeze", "FreezeWarning",
           "LeanconvFallbackWarning", "reset_warnings"]
