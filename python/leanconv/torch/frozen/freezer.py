"""freeze(): capture, find the fusible chains, choose algorithms, then pack
and rewrite one chain at a time, releasing torch's copy of each weight as
soon as its last user is packed (so the peak never holds two full copies)."""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import torch
from torch import nn

from leanconv import _dead_taps as dead_taps
from leanconv._fold import fold_batchnorm
from leanconv._heap import return_freed_memory as _return_freed_memory
from leanconv._params import ConvSpec
from leanconv._select import check_name
from leanconv.torch import modules as lct_modules
from leanconv.torch.frozen import channels_first, choose, frozen_dense, frozen_linear, frozen_pool
from leanconv.torch.frozen import patterns, runner
from leanconv.torch.frozen import threads as frozen_threads
from leanconv.torch.frozen.capture import FreezeWarning, capture, propagate_shapes
from leanconv.torch.frozen.choose import raw_bytes
from leanconv.torch.frozen.frozen_conv import FrozenConv2d


def freeze(model, example_inputs, *, algorithm="auto", memory_budget=None):
    """An inference-only copy of `model` whose convolutions run on leanconv.

    example_inputs: a tensor or a tuple of tensors `model` is called with;
    plans are made for their shapes (other shapes work too).  Convolutions
    (nn.Conv2d, leanconv.torch.Conv2d, F.conv2d on the model's own weights)
    are fused with an eval-mode BatchNorm after them (folded into the
    weights), a residual add and the activation that follows (ReLU, ReLU6,
    hardtanh/clamp, Hardswish, Hardsigmoid, SiLU, Sigmoid, GELU, LeakyReLU).
    The graph is captured with torch.fx; a module it cannot trace is frozen
    child by child, with a FreezeWarning naming it.  Channels-last islands
    (permute to NHWC, LayerNorm / Linear / activations over the channels,
    permute back: ConvNeXt's blocks) are computed in NCHW, their Linears as
    1x1 convolutions (channels_first.py).  A convolution whose outer taps
    only read padding on the example input (dilated convolutions on small
    maps) also packs the convolution of its live taps, for the sizes where
    that gives the same output (leanconv/_dead_taps.py).

    algorithm: "auto" (the shape model), a leanconv algorithm name, or
    "measure": time each layer's candidates and torch's own conv on the
    example input and keep the fastest (a layer may stay on torch).
    memory_budget: bytes the frozen convolutions may hold in all: their packed
    weights plus the one workspace they share (the largest layer's: frozen
    layers borrow the calling thread's scratch buffer, leanconv._scratch, and
    allocate nothing per call).  Layers trade to smaller packings, each time
    the switch losing the least time per byte saved (Winograd holds
    alpha^2/9 the raw weights), until they fit; a ValueError if nothing does.
    With algorithm="auto" and no budget, the budget is torch's own conv
    weight bytes plus the largest layer's (choose.default_budget): packing a
    layer holds torch's copy and the packing at once, so freezing reaches
    that much anyway, and the frozen process still peaks at or below a
    process that builds and runs the stock model (it never pages in torch's
    convolution code, capture runs on the meta device, BatchNorm folds in
    NumPy; docs/torch-models.md measures both).  The extra goes to Winograd
    where it saves the most time per byte: on ResNet-18 at 224, 64@56 takes
    F4 and 128@28 F2, 512@7 (F2: 16 MiB for 9 MiB raw, ~0.1 ms saved) stays
    on GEMM.  memory_budget=sys.maxsize lets every layer take the packing
    "auto" prefers.

    The frozen graph runs as one schedule over a static activation arena,
    compiled now for example_inputs' shapes (and for another shape the second
    time it is seen), on leanconv.onnx's executor; what a call returns never
    aliases the arena.  Where that does not apply the graph's fx code runs
    (leanconv/torch/frozen/runner.py says when).

    Threads: leanconv's kernels use torch.get_num_threads() (or
    lc.set_num_threads() if called); during the frozen model's call torch's
    own ops between them run on one thread, so torch's pool does not spin
    beside leanconv's (leanconv/torch/frozen/threads.py).

    **freeze consumes `model`**: each convolution's (and BatchNorm's) tensors
    are emptied once packed, so `model` cannot run afterwards; deep-copy it
    first if you still need it.  The frozen module has no parameters; its
    state_dict holds only the folded weights of layers left on torch and is
    not a training checkpoint.  It runs CPU float32 inputs (under autocast it
    returns autocast's dtype), also under torch.compile and torch.export
    (each convolution is one opaque custom op)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"freeze needs a torch.nn.Module, got {type(model).__name__}")
    if algorithm != "measure":
        check_name(algorithm)
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
        else tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else None
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError("example_inputs must be a tensor or a non-empty tuple of tensors, got "
                        f"{type(example_inputs).__name__}")
    for i, t in enumerate(inputs):
        if t.device.type != "cpu" or t.dtype != torch.float32:
            raise ValueError(f"example_inputs[{i}] is {t.dtype} on {t.device}; freeze runs "
                             f"CPU float32 models (call .float().cpu() first)")
    if memory_budget is not None and (isinstance(memory_budget, bool) or
                                      not isinstance(memory_budget, int) or memory_budget < 0):
        raise ValueError(f"memory_budget must be a non-negative int (bytes) or None, "
                         f"got {memory_budget!r}")
    with torch.no_grad():
        units = capture(model, inputs, type(model).__name__)
        for unit in units:
            if channels_first.rewrite(unit.gm):
                propagate_shapes(unit.gm, unit.inputs)
        jobs = _find_jobs(units)
        layers = [_layer(job, algorithm) for job in jobs]
        if memory_budget is None and algorithm == "auto":
            memory_budget = choose.default_budget(layers)
        picks, trims = _assign(jobs, layers, memory_budget)
        _pack_all(jobs, picks, {L.name: L for L in layers}, trims)
        root = model
        for unit in units:
            frozen_pool.rewrite_pools(unit.gm)
            frozen_linear.rewrite_linears(unit.gm, _release, _return_freed_memory)
            frozen_dense.rewrite_dense(unit.gm, _release)
            unit.gm.delete_all_unused_submodules()
            unit.gm.graph.lint()
            unit.gm.recompile()
            unit.gm.train(unit.parent.training if unit.parent is not None else model.training)
            if unit.parent is None:
                root = unit.gm
            else:
                setattr(unit.parent, unit.name, unit.gm)
    _return_freed_memory()
    runners = {}
    with torch.no_grad():
        for unit in units:      # each graph's schedule over a static arena, for its example shapes
            runners[id(unit.gm)] = runner.install(unit.gm, unit.inputs)
    if runners.get(id(root)) is None:
        frozen_threads.install(root)    # (a frozen GraphModule's forward does it itself)
    return root


class _Job:
    """One chain of one unit, with what packing it needs."""

    def __init__(self, unit, chain, modules):
        self.unit, self.chain = unit, chain
        s = chain.source
        self.spec = ConvSpec.build(tuple(s.weight.shape), s.stride, s.padding, s.dilation,
                                   s.groups)
        self.x_shape = tuple(chain.conv.args[0].meta["tensor_meta"].shape)
        self.spec.geometry(*self.x_shape)           # a bad geometry fails here, not later
        self.bn = None if chain.bn is None else modules[chain.bn.target]
        self.name = f"{unit.name}:{chain.conv.name}"

    def tensors(self):
        """Every torch tensor whose values the packed layer replaces."""
        s = self.chain.source
        ts = [s.weight, s.bias]
        if self.bn is not None:
            ts += [self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var]
        return [t for t in ts if t is not None]

    def folded(self, in_place=False):
        """(weight, bias) as float32 tensors with the BatchNorm folded in
        (leanconv._fold, as leanconv.onnx folds).  in_place: scale torch's
        weight tensor itself, when it is released right after, so folding
        needs no second copy."""
        s = self.chain.source
        w = s.weight.detach()
        b = None if s.bias is None else s.bias.detach().numpy()
        bn = self.bn
        if bn is None:
            b = np.zeros(w.shape[0], np.float32) if b is None else b
            return w.contiguous(), torch.from_numpy(np.ascontiguousarray(b, np.float32))
        if not (in_place and w.is_contiguous()):
            w = w.clone(memory_format=torch.contiguous_format)
        _, bias = fold_batchnorm(w.numpy(), b, _np(bn.weight), _np(bn.bias),
                                 bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps)
        return w, torch.from_numpy(bias)


def _np(t):
    return None if t is None else t.detach().numpy()


def _eligible_input(node):
    tm = node.meta.get("tensor_meta") if isinstance(node, torch.fx.Node) else None
    return tm is not None and hasattr(tm, "shape") and len(tm.shape) == 4 and \
        tm.dtype == torch.float32


def _find_jobs(units):
    jobs = []
    for unit in units:
        modules = dict(unit.gm.named_modules())
        claimed = set()
        for node in list(unit.gm.graph.nodes):
            if node in claimed:
                continue
            source = patterns.conv_source(node, modules, unit.gm)
            if source is None or not _eligible_input(node.args[0] if node.args else None):
                continue
            if source.weight.dtype != torch.float32:
                continue
            _warn_training_bn(node, modules)
            chain = patterns.find_chain(node, source, modules, claimed)
            try:
                job = _Job(unit, chain, modules)
            except ValueError:
                continue        # torch will report it, as it did before freeze
            claimed.update(chain.nodes)
            jobs.append(job)
        for node in list(unit.gm.graph.nodes):
            chain = patterns.lone_batchnorm(node, modules, claimed)
            if chain is not None:
                claimed.update(chain.nodes)
                jobs.append(_Job(unit, chain, modules))
    return jobs


def _warn_training_bn(conv, modules):
    for user in conv.users:
        if user.op == "call_module" and isinstance(modules[user.target], nn.BatchNorm2d) \
                and modules[user.target].training:
            warnings.warn(f"BatchNorm {user.target} is in training mode: freeze leaves it "
                          f"unfused (call model.eval() before freeze)", FreezeWarning,
                          stacklevel=4)


def _layer(job, algorithm):
    if algorithm == "measure":
        w, b = job.folded()
        return choose.measured_layer(job.name, job.spec, w, b, job.x_shape)
    return choose.model_layer(job.name, job.spec, job.x_shape, algorithm)


def _releasable(jobs):
    """How many jobs read each tensor, or None for tensors something else
    in the graphs reads too (a module also called outside a chain): kept."""
    uses = Counter(id(t) for job in jobs for t in job.tensors())
    in_chains = {n for job in jobs for n in job.chain.nodes}
    called_elsewhere = set()
    for gm in {id(j.unit.gm): j.unit.gm for j in jobs}.values():
        mods = dict(gm.named_modules())
        called_elsewhere |= {id(mods[n.target]) for n in gm.graph.nodes
                             if n.op == "call_module" and n not in in_chains}
    for job in jobs:
        owners = [job.chain.source.owner, job.bn]
        if any(id(o) in called_elsewhere for o in owners if o is not None):
            for t in job.tensors():
                uses[id(t)] = None
    return uses


def _release(t):
    """Drop the storage of t for every holder (a Parameter shared by several
    modules or a GraphModule's get_attr alike)."""
    t.data = torch.empty(0, dtype=t.dtype)


def _assign(jobs, layers, memory_budget):
    """(picks, {job name: live-tap packing}) -- the convolutions of the
    live taps (leanconv/_dead_taps.py) come first: on a few bytes they save most of a
    layer's work, so the budget reserves their packings and workspaces (each
    counted whole) and the layers' choices share the rest; without room for
    them, none."""
    trims = {}
    for job in jobs:
        found = dead_taps.trimmed_spec(job.spec, job.x_shape)
        if found is not None:
            layer = choose.model_layer(job.name, found[0], job.x_shape, "auto")
            algorithm = layer.cheapest()
            trims[job.name] = found + (algorithm, sum(layer.options[algorithm][1:]))
    reserve = sum(t[3] for t in trims.values())
    if memory_budget is not None and trims:
        try:
            return choose.assign(layers, memory_budget - reserve), trims
        except ValueError:
            trims = {}
    return choose.assign(layers, memory_budget), trims


def _pack_all(jobs, picks, layers, trims):
    """Pack, fuse and rewrite every job, largest weights first: a layer's
    torch weights and its packing coexist while it is packed, and that
    moment is cheapest for the largest layer before the others' Winograd
    packings (larger than their torch weights) exist.  trims: the live-tap
    convolutions to pack as well (_assign)."""
    uses = _releasable(jobs)
    for job in sorted(jobs, key=lambda j: -raw_bytes(j.spec)):
        last_use = uses[id(job.chain.source.weight)] == 1
        w, b = job.folded(in_place=last_use)
        chain = job.chain
        frozen = FrozenConv2d(job.spec, w, b, algorithm=picks[job.name],
                              activation=chain.activation, residual=chain.add is not None)
        frozen.workspace_bytes = layers[job.name].options[picks[job.name]][2]
        if picks[job.name] != choose.TORCH and job.name in trims:
            _attach_trimmed(frozen, job, w, b, trims[job.name])
        del w, b
        for t in job.tensors():
            if uses[id(t)] is not None:
                uses[id(t)] -= 1
                if uses[id(t)] == 0:
                    _release(t)
        owner = chain.source.owner
        if isinstance(owner, lct_modules.Conv2d):
            owner.repack()
            owner._lc_cache._weight_np = owner._lc_cache._bias_np = None
        _rewrite(job.unit.gm, chain, frozen)
        _return_freed_memory()     # the next layer's packing can use these pages


def _attach_trimmed(frozen, job, w, b, trim):
    """Pack the convolution of the layer's live taps too (leanconv/_dead_taps.py)."""
    spec, window, algorithm, _ = trim
    (r0, r1), (c0, c1) = window
    chain = job.chain
    trimmed = FrozenConv2d(spec, w[:, :, r0:r1 + 1, c0:c1 + 1].contiguous(), b,
                           algorithm=algorithm, activation=chain.activation,
                           residual=chain.add is not None)
    frozen.attach_trimmed(trimmed, window)


def _rewrite(gm, chain, frozen):
    graph = gm.graph
    name = f"lc_{chain.conv.name}"
    gm.add_submodule(name, frozen)
    # read the operands now: chains rewritten before may have replaced them
    args = (chain.conv.args[0],)
    if chain.add is not None:
        args += tuple(a for a in chain.add.args if a not in chain.nodes)
    with graph.inserting_before(chain.last):
        new = graph.call_module(name, args)
    new.meta = dict(chain.last.meta)
    chain.last.replace_all_uses_with(new)
    for node in reversed(chain.nodes):
        graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)
