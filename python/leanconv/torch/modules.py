"""leanconv.torch.Conv2d (an nn.Conv2d on leanconv) and convert(model)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from leanconv._select import check_name
from leanconv.torch import compiled
from leanconv.torch.fallback import warn_once
from leanconv.torch.functional import conv_or_fallback
from leanconv.torch.plans import PlanCache


class Conv2d(nn.Conv2d):
    """nn.Conv2d whose forward runs on leanconv.

    Same constructor (plus `algorithm=`), parameters, state_dict and results
    as nn.Conv2d.  The packed leanconv plan is kept between calls and re-packed
    when the weight or bias changes (load_state_dict, optimizer steps, other
    in-place updates, .to()).  Writes through `.data` or `.numpy()` bypass
    torch's version counter: call repack() after those.  `plan` is the
    leanconv plan the last call used (algorithm, packed_bytes, workspace)."""

    def __init__(self, *args, algorithm="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algorithm = check_name(algorithm)
        self._new_cache()

    def _new_cache(self):
        self._lc_cache = PlanCache()
        self._lc_handle = compiled.register(self)    # this module, to leanconv::conv2d

    @classmethod
    def from_torch(cls, conv: nn.Conv2d, algorithm="auto") -> "Conv2d":
        """A leanconv Conv2d sharing `conv`'s parameters, buffers, hooks and mode."""
        new = cls.__new__(cls)
        state = {k: (v.copy() if isinstance(v, dict) else v) for k, v in conv.__dict__.items()}
        new.__dict__.update(state)
        new.algorithm = check_name(algorithm)
        new._new_cache()
        return new

    @property
    def plan(self):
        """The leanconv plan of the last call (None before the first or after a fallback)."""
        return self._lc_cache.last

    def repack(self):
        """Drop the packed plans; the next call packs the current weights."""
        self._lc_cache.clear()

    def forward(self, input):
        if torch.compiler.is_compiling():   # one opaque op to Dynamo (compiled.py)
            return compiled.conv2d(input, self.weight, self.bias, self._lc_handle)
        return self.eager_forward(input)

    def eager_forward(self, input):
        padding = self.padding
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return conv_or_fallback(lambda weight: self._lc_cache, input, self.weight, self.bias,
                                self.stride, padding, self.dilation, self.groups, self.algorithm)

    def extra_repr(self):
        return super().extra_repr() + f", algorithm={self.algorithm!r}"

    def __prepare_scriptable__(self):
        raise TypeError("torch.jit.script cannot compile leanconv.torch.Conv2d (it calls C "
                        "kernels through NumPy): script the stock model, or use torch.compile "
                        "or torch.export, which keep leanconv as the custom op leanconv::conv2d")

    # The packed plans are a cache: not pickled, not deep-copied.
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lc_cache", None)
        state.pop("_lc_handle", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._new_cache()


def convert(model: nn.Module, algorithm="auto", inplace=False) -> nn.Module:
    """Swap every nn.Conv2d in `model` for leanconv.torch.Conv2d; returns the model.

    inplace=False converts a deep copy and leaves `model` alone.  Parameters are
    shared with the module they replace (so an optimizer over the converted
    model's parameters keeps working).  Subclasses of nn.Conv2d are left alone
    (they may have their own forward); a module used at several places stays one
    module."""
    check_name(algorithm)
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert needs a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    memo = {}

    def swap(m):
        if type(m) is nn.Conv2d:
            if id(m) not in memo:
                memo[id(m)] = Conv2d.from_torch(m, algorithm)
            return memo[id(m)]
        if isinstance(m, Conv2d):
            m.algorithm = algorithm
            m.repack()
        elif isinstance(m, nn.Conv2d):
            warn_once(f"{type(m).__name__} subclasses nn.Conv2d with its own code; "
                      f"convert() leaves it on torch")
        return m

    def walk(parent):
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            new = swap(child)
            if new is not child:
                parent._modules[name] = new
            else:
                walk(child)

    root = swap(model)
    if root is model:
        walk(model)
    return root
