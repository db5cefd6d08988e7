"""leanconv.torch.freeze (implemented in this package): a whole model, inference only, on leanconv.

    frozen = leanconv.torch.freeze(model.eval(), torch.randn(1, 3, 224, 224))
    y = frozen(x)

See freeze() for what it does and what it costs the original model."""
from __future__ import annotations

from leanconv.torch.frozen.capture import FreezeWarning
from leanconv.torch.frozen.freezer import freeze

__all__ = ["freeze", "FreezeWarning"]
