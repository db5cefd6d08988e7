"""Live modules by integer handle, for custom ops: a torch.library op takes
tensors and scalars, not Python objects, so leanconv's ops name the module
whose packed plans they run by a handle.  Weak references: a registry entry
dies with its module."""
from __future__ import annotations

import itertools
import weakref


class Registry:
    def __init__(self, op_name):
        self._op = op_name
        self._modules = weakref.WeakValueDictionary()
        self._next = itertools.count(1)

    def register(self, module) -> int:
        handle = next(self._next)
        self._modules[handle] = module
        return handle

    def get(self, handle):
        m = self._modules.get(handle)
        if m is None:
            raise RuntimeError(f"{self._op}: module {handle} no longer exists (a compiled or "
                               f"exported graph outlived its model, or runs in another "
                               f"process); compile or export the model again")
        return m
