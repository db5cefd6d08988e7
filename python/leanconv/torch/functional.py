"""leanconv.torch.conv2d: torch.nn.functional.conv2d, computed by leanconv."""
from __future__ import annotations

import torch

from leanconv.torch import eligibility
from leanconv.torch.autograd import LeanConv2dFunction
from leanconv.torch.fallback import warn_once
from leanconv.torch.plans import PlanCache, as_numpy, functional_cache, torch_threads

# torch's own conv2d, captured at import so code running under enable() (which
# intercepts F.conv2d) can still reach it.
_torch_conv2d = torch.conv2d


def run_plan(plan, input, weight):
    """y = plan(input) as a tensor in the layout torch's conv would return."""
    x = as_numpy(input)
    shape = plan.output_shape(x.shape)
    out = torch.empty(shape, dtype=torch.float32)
    plan(x, out=out.numpy(), threads=torch_threads())
    fmt = eligibility.output_memory_format(input, weight)
    return out if fmt == torch.contiguous_format else out.contiguous(memory_format=fmt)


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def conv_with_cache(cache: PlanCache, input, weight, bias, call, algorithm="auto"):
    """leanconv forward (with autograd when needed) through a plan cache."""
    hw = tuple(input.shape[-2:])
    plan = cache.get(weight, bias, call, algorithm, None, hw)
    if _needs_grad(input, weight, bias):
        return LeanConv2dFunction.apply(input, weight, bias,
                                        lambda: run_plan(plan, input, weight), call)
    return run_plan(plan, input, weight)


def autocast_dtype(input):
    """The dtype torch's CPU autocast would give this conv2d (bfloat16 or
    float16), or None when autocast is off or would leave the input alone.

    Under autocast torch computes conv2d in that dtype.  leanconv computes in
    float32 instead (from the float32 weights and the input widened exactly)
    and rounds the result once: torch's dtype, at least torch's accuracy."""
    if not isinstance(input, torch.Tensor) or input.device.type != "cpu" or \
            input.dtype not in _AUTOCAST_INPUTS or not torch.is_autocast_enabled("cpu"):
        return None
    return torch.get_autocast_dtype("cpu")


# Input dtypes CPU autocast casts (float64 it leaves alone).
_AUTOCAST_INPUTS = (torch.float32, torch.bfloat16, torch.float16)


def conv_or_fallback(cache, input, weight, bias, stride, padding, dilation, groups, algorithm):
    """leanconv when it can run the call (also under autocast), else torch."""
    low = autocast_dtype(input)
    x = input if low is None else input.float()
    call = eligibility.check(x, weight, bias, stride, padding, dilation, groups)
    if isinstance(call, eligibility.Skip):
        if call.warn:
            warn_once(call.reason, stacklevel=4)
        return _torch_conv2d(input, weight, bias, stride, padding, dilation, groups)
    y = conv_with_cache(cache(weight), x, weight, bias, call, algorithm)
    return y if low is None else y.to(low)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           algorithm="auto"):
    """torch.nn.functional.conv2d with leanconv doing the arithmetic.

    Same arguments, shapes, output layout, dtype (also under CPU autocast) and
    errors as F.conv2d.  CPU float32 tensors run on leanconv (weights packed
    once per weight tensor and version, then reused); anything else runs on
    torch after a one-time warning."""
    return conv_or_fallback(functional_cache, input, weight, bias, stride, padding, dilation,
                            groups, algorithm)
