"""Capturing a model as fx graphs: the whole model when torch.fx can trace
it, else (with a warning naming the module) each child separately, recursing
until the parts trace.  A Unit is one traced part, the example inputs it saw,
and where its frozen graph goes back into the model."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, _extract_tensor_metadata


class FreezeWarning(UserWarning):
    """freeze left part of a model as it was (untraceable code, training-mode BatchNorm)."""


@dataclass
class Unit:
    gm: torch.fx.GraphModule
    parent: nn.Module | None      # None: the unit is the whole model
    name: str                     # attribute of parent it replaces; dotted path for messages


def _has_conv(m):
    return any(isinstance(s, nn.Conv2d) for s in m.modules()) or \
        any(p.dim() == 4 for p in m.parameters(recurse=False))


def _record_child_inputs(model, inputs):
    """Positional inputs of each direct child's first call during model(*inputs)."""
    seen, handles = {}, []
    for name, child in model.named_children():
        def hook(mod, args, kwargs, name=name):
            if name not in seen:
                seen[name] = None if kwargs else args
        handles.append(child.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def capture(model, inputs, path, parent=None, name=""):
    """Units covering `model`, each with shapes propagated from its example inputs."""
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "not this module"
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        warnings.warn(f"torch.fx cannot trace {path} ({type(model).__name__}: {why}); "
                      f"freezing its submodules one by one, its own code stays as it is",
                      FreezeWarning, stacklevel=4)
        return _capture_children(model, inputs, path)
    _propagate_shapes(gm, inputs)
    return [Unit(gm, parent, name or path)]


class _FakeShapeProp(torch.fx.Interpreter):
    """ShapeProp's tensor_meta, computed on fake tensors: every op gives
    shapes and dtypes without computing (or allocating) anything, so the
    capture does not run the model once at full size (a run that left ~15 MB
    of touched torch code and heap in a ResNet-18 process)."""

    def run_node(self, n):
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            n.meta["tensor_meta"] = _extract_tensor_metadata(result)
        n.meta["type"] = type(result)
        return result


# Example inputs below this many elements are run for real: their run is
# cheaper than fake tensors' per-op dispatch (~ms a node) and leaves little
# memory behind.  1x3x224x224 is 150528.
FAKE_FROM_ELEMENTS = 1 << 17


def _propagate_shapes(gm, inputs):
    """tensor_meta on every node: for large inputs on fake tensors where the
    graph allows (weights stay real, inputs are faked), else by running it."""
    if sum(t.numel() for t in inputs) < FAKE_FROM_ELEMENTS:
        ShapeProp(gm).propagate(*inputs)
        return
    from torch._subclasses.fake_tensor import FakeTensorMode
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        fakes = [mode.from_tensor(t) for t in inputs]
        with mode:
            _FakeShapeProp(gm).run(*fakes)
        return
    except Exception:  # noqa: BLE001 - data-dependent code, ops without fake kernels: run it
        for n in gm.graph.nodes:
            n.meta.pop("tensor_meta", None)
    ShapeProp(gm).propagate(*inputs)


def _capture_children(model, inputs, path):
    units = []
    recorded = _record_child_inputs(model, inputs)
    for name, child in model.named_children():
        args = recorded.get(name)
        if args is None or not _has_conv(child):
            continue    # not called (or called with keywords): left as it is
        units += capture(child, args, f"{path}.{name}", model, name)
    return units
