"""Capturing a model as fx graphs: the whole model when torch.fx can trace
it, else (with a warning naming the module) each child separately, recursing
until the parts trace.  A Unit is one traced part, the example inputs it saw,
and where its frozen graph goes back into the model."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.fx.node import map_aggregate
from torch.fx.passes.shape_prop import ShapeProp, _extract_tensor_metadata


class FreezeWarning(UserWarning):
    """freeze left part of a model as it was (untraceable code, training-mode BatchNorm)."""


@dataclass
class Unit:
    gm: torch.fx.GraphModule
    parent: nn.Module | None      # None: the unit is the whole model
    name: str                     # attribute of parent it replaces; dotted path for messages
    inputs: tuple = ()            # the example inputs it was traced with


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
    propagate_shapes(gm, inputs)
    return [Unit(gm, parent, name or path, tuple(inputs))]


class _MetaShapeProp(torch.fx.Interpreter):
    """ShapeProp's tensor_meta from a run on the meta device: the input and,
    for the run only, every parameter and buffer are meta tensors, so each op
    gives its output's shape and dtype without computing or allocating
    anything.  Running the model for real at full size (ShapeProp) leaves
    ~29 MB in the process (activations, and torch's convolution code paged
    in), fake tensors (FakeTensorMode) ~8 MB of dispatch machinery and code, the
    meta device ~4 MB (ResNet-18 at 224, measured with /proc/self/smaps).
    A frozen process keeps what capture paged in, and never runs it again."""

    def run_node(self, n):
        result = super().run_node(n)
        found = []

        def extract(v):
            if isinstance(v, torch.Tensor):
                found.append(True)
                return _extract_tensor_metadata(v)
            return v
        meta = map_aggregate(result, extract)   # a tuple of tensors too, as ShapeProp
        if found:
            n.meta["tensor_meta"] = meta
        n.meta["type"] = type(result)
        return result


# Example inputs below this many elements are run for real: their run is
# cheap and leaves little memory behind.  1x3x224x224 is 150528.
META_FROM_ELEMENTS = 1 << 17


def propagate_shapes(gm, inputs):
    """tensor_meta on every node: for large inputs on the meta device where
    the graph allows, else by running it."""
    if sum(t.numel() for t in inputs) >= META_FROM_ELEMENTS:
        from torch.nn.utils.stateless import _reparametrize_module
        metas = {k: v.to("meta") for k, v in
                 list(gm.named_parameters()) + list(gm.named_buffers())}
        try:
            with _reparametrize_module(gm, metas):
                _MetaShapeProp(gm).run(*(t.to("meta") for t in inputs))
            return
        except Exception:  # noqa: BLE001 - data-dependent code, ops without meta kernels: run it
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
