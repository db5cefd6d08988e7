"""ChannelLayerNorm: a LayerNorm over the channels of an NCHW tensor, which
channels_first.py puts where a model permuted to channels-last, normalised
over the last axis and permuted back.  On a frozen schedule it runs
leanconv._channel_norm (C for float32) into its buffer; elsewhere (the fx code,
torch.compile/export tracing, autocast) torch's own layer_norm on the
permuted view, so eager outputs are torch's."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from leanconv._channel_norm import channel_layernorm_bind, channel_layernorm_into


class ChannelLayerNorm(nn.Module):
    def __init__(self, channels, eps, weight=None, bias=None):
        """weight, bias: (C,) tensors of the affine after the normalisation, or None."""
        super().__init__()
        self.channels, self.eps = channels, float(eps)
        for name, t in (("weight", weight), ("bias", bias)):
            self.register_buffer(name, None if t is None else
                                 t.detach().float().reshape(channels).clone())

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), (self.channels,), self.weight, self.bias,
                         self.eps)
        return y.permute(0, 3, 1, 2).contiguous()

    def _affine(self):
        return tuple(None if t is None else t.numpy().reshape(self.channels, 1, 1)
                     for t in (self.weight, self.bias))

    def into(self, y, x, threads=None):
        """y <- the normalised NCHW float32 array x (NumPy arrays, y not x),
        on `threads` (leanconv's setting; None: the default count)."""
        channel_layernorm_into(y, x, self.eps, *self._affine(), threads)

    def bind(self, y, x, threads=None):
        """The C call of into(y, x) fixed for these buffers, or None."""
        return channel_layernorm_bind(y, x, self.eps, *self._affine(), threads)

    def extra_repr(self):
        return f"{self.channels}, eps={self.eps}, affine={self.weight is not None}"
