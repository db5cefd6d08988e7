"""FrozenConv2d: one convolution (+ folded BatchNorm, + residual add, +
activation) of a frozen model, run by a packed leanconv plan or, where
freeze measured torch to be faster, by torch's own conv on folded weights.

Inference only: no autograd, no parameters, and its buffers are folded
weights, not a training checkpoint.  The eager call is kept short (one dict
lookup for the geometry of an input shape, then the kernel) because a
60-conv model pays it 60 times per forward; under torch.compile/export the
module calls the opaque custom op leanconv::frozen_conv2d instead."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from leanconv import _scratch
from leanconv._params import ConvSpec
from leanconv.torch.frozen import epilogue_speed
from leanconv.torch.frozen.activations import Activation
from leanconv.torch.frozen.threads import frozen_threads, torch_ops_threads


def _flat(t):
    """A float32 tensor's values as a flat NumPy array (a view when contiguous)."""
    if t.requires_grad:
        t = t.detach()
    return t.contiguous().numpy().reshape(-1)


class FrozenConv2d(nn.Module):
    def __init__(self, spec: ConvSpec, weight: torch.Tensor, bias: torch.Tensor, *,
                 algorithm: str, activation: Activation | None, residual: bool):
        """weight/bias: folded float32 tensors (packed, or kept for torch);
        activation: applied after the residual add; residual: forward takes
        a second tensor added to the conv's output."""
        super().__init__()
        self.spec = spec
        self.algorithm = algorithm
        self.activation = activation
        self.has_residual = residual
        # leanconv's epilogue does act(conv + bias + residual) in the conv's
        # output pass where that is faster than torch (epilogue_speed); the
        # rest, and everything on a layer left on torch, runs as in-place
        # torch ops after the conv, in the same order
        on_lc = algorithm != "torch"
        self._residual_native = on_lc and residual and epilogue_speed.fuses_residual()
        fuse_act = on_lc and activation is not None and epilogue_speed.fuses(activation) \
            and (not residual or self._residual_native)
        native_act = activation.leanconv_form() if fuse_act else None
        self._post = activation if activation is not None and not fuse_act else None
        self._geoms = {}
        self.workspace_bytes = 0    # of the shared workspace, on freeze's example input
        self.trimmed = None         # the convolution of the live taps (leanconv/_dead_taps.py), if packed
        self._trim_window, self._trim_ok = None, {}
        if algorithm == "torch":
            self.register_buffer("weight", weight.detach().contiguous())
            self.register_buffer("bias", bias.detach().contiguous())
            self.plan = None
            self.packed_bytes = self.weight.numel() * 4     # the bytes its weights hold
        else:
            from leanconv._plan import Conv2d as Plan
            s = spec
            self.plan = Plan(weight.detach().numpy(), bias.detach().numpy(), s.stride, s.pads,
                             s.dilation, s.groups, algorithm=algorithm, activation=native_act)
            self._kernel_run = self.plan._kernel.run
            self._bias_np = self.plan._bias
            self.packed_bytes = self.plan.packed_bytes
        from leanconv.torch.frozen import custom_op
        self.handle = custom_op.register(self)

    def attach_trimmed(self, trimmed, window):
        """Run `trimmed` (a FrozenConv2d of this one's live taps, dead_taps.py)
        for every input size where the taps outside `window` only read padding."""
        # a plain attribute, not a submodule: part of this layer, not a layer of the model
        object.__setattr__(self, "trimmed", trimmed)
        self._trim_window = window
        self.packed_bytes += trimmed.packed_bytes

    def for_shape(self, shape):
        """The FrozenConv2d that runs inputs of this shape: the trimmed one
        where it gives the same output, else this one."""
        if self.trimmed is None:
            return self
        ok = self._trim_ok.get(shape)
        if ok is None:
            from leanconv import _dead_taps as dead_taps
            ok = self._trim_ok[shape] = len(shape) == 4 and shape[1] == self.spec.C and \
                dead_taps.applies(self.spec, self._trim_window, tuple(shape))
        return self.trimmed if ok else self

    # -- shapes -------------------------------------------------------------
    def output_shape(self, x_shape):
        N, C, H, W = x_shape
        OH, OW = self.spec.output_hw(H, W)
        return (N, self.spec.M, OH, OW)

    def _geometry(self, shape, threads):
        """(C geometry, output shape, workspace bytes) of an input shape."""
        g = self._geoms.get((shape, threads))
        if g is None:
            if len(shape) != 4 or shape[1] != self.spec.C:
                raise ValueError(f"frozen convolution expects an (N, {self.spec.C}, H, W) input, "
                                 f"got {tuple(shape)}")
            N, C, H, W = shape
            g = self._geoms[(shape, threads)] = (
                self.spec.geometry(N, C, H, W), self.output_shape(shape),
                self.plan.workspace_bytes(tuple(shape), threads))
        return g

    # -- running ------------------------------------------------------------
    def forward(self, x, residual=None):
        if type(x) is not torch.Tensor or torch.compiler.is_compiling():
            from leanconv.torch.frozen import custom_op
            return custom_op.frozen_conv2d(x, self.handle, residual)
        return self.run(x, residual)

    # Called straight, without nn.Module.__call__'s hook machinery (~1.5 us a
    # call, 60 times per forward): a frozen conv has no hooks to run.
    __call__ = forward

    def run(self, x, residual=None):
        """The convolution on a real tensor (the custom op's implementation too)."""
        out_dtype = None
        if x.dtype != torch.float32:
            out_dtype = x.dtype     # autocast handed us its dtype
            x = x.float()
        if torch.is_autocast_enabled("cpu"):
            out_dtype = torch.get_autocast_dtype("cpu")
        if self.trimmed is not None and self.for_shape(tuple(x.shape)) is not self:
            y = self.trimmed.run(x, residual)
            return y if out_dtype is None else y.to(out_dtype)
        if self.plan is None:
            s = self.spec
            t, b, l, r = s.pads
            with torch_ops_threads():
                if t == b and l == r:
                    y = torch.conv2d(x, self.weight, self.bias, s.stride, (t, l), s.dilation,
                                     s.groups)
                else:
                    y = torch.conv2d(torch.nn.functional.pad(x, (l, r, t, b)), self.weight,
                                     self.bias, s.stride, 0, s.dilation, s.groups)
        else:
            threads = frozen_threads()
            geom, oshape, ws = self._geometry(x.shape, threads)
            # NumPy allocates the output and torch wraps it: half the cost of
            # torch.empty followed by .numpy() (this runs once per conv per call)
            yn = np.empty(oshape, np.float32)
            y = torch.from_numpy(yn)
            r = None
            if self._residual_native:
                r = _flat(residual.float())
                residual = None
            # the workspace is this thread's one scratch buffer, shared by every
            # frozen layer (leanconv._scratch): no allocation per call
            self._kernel_run(_flat(x), yn.reshape(-1), self._bias_np, geom, threads, r, -1,
                             _scratch.lend(ws) if ws else None)
        if residual is not None:
            y.add_(residual.float())
        if self._post is not None:
            y = self._post.apply_(y)
        return y if out_dtype is None else y.to(out_dtype)

    def __prepare_scriptable__(self):
        raise TypeError("a frozen leanconv convolution cannot be compiled by torch.jit.script "
                        "(it calls C kernels through Python); use torch.compile or "
                        "torch.export, which see it as the custom op leanconv::frozen_conv2d")

    def extra_repr(self):
        s = self.spec
        act = None if self.activation is None else self.activation.leanconv_form()
        return (f"{s.C}, {s.M}, kernel=({s.kH}, {s.kW}), stride={s.stride}, pads={s.pads}, "
                f"groups={s.groups}, algorithm={self.algorithm!r}, activation={act}, "
                f"residual={self.has_residual}" +
                ("" if self.trimmed is None else f", live taps={self._trim_window}"))
