"""Packed leanconv plans for one torch weight (and bias), re-packed when they change.

A plan packs the weights once; a torch weight can change under it in place
(optimizer steps, load_state_dict, `with no_grad(): w.mul_(2)`), by storage
swap (`.to()`, `module._apply`, `param.data = ...`) or by being replaced by
another tensor.  The signature below sees all three: the tensor's identity
(a weak reference, so a dead tensor's successor at the same address never
matches), its version counter (every in-place op bumps it) and its data
pointer, shape and strides.  What it cannot see is an in-place write through
`.data` or `.numpy()`, which bypasses the version counter, or an in-place
write to an inference tensor (it has no version counter); call
`Conv2d.repack()` after one of those."""
from __future__ import annotations

import threading
import weakref

import torch

from leanconv import _isa, _threads
from leanconv._params import ConvSpec
from leanconv._plan import Conv2d as _Plan
from leanconv._select import choose, why_unsupported
from leanconv.torch.fallback import warn_once


def torch_threads():
    """Threads for a call from torch: lc.set_num_threads() wins if it was
    called, else torch's own setting (so torch.set_num_threads governs both)."""
    if _threads._explicit is not None:
        return None
    return max(1, torch.get_num_threads())


def _sig(t):
    if t is None:
        return None
    # Inference tensors (made under torch.inference_mode) have no version
    # counter; they can be changed in place only inside inference mode, and
    # such a write is, like one through `.data`, invisible here (repack()).
    version = None if t.is_inference() else t._version
    return (version, t.data_ptr(), tuple(t.shape), t.stride())


def as_numpy(t):
    """A float32 C-contiguous NumPy view of a CPU float32 tensor (a copy only
    when the tensor is not contiguous)."""
    return t.detach().contiguous().numpy()


class PlanCache:
    """The plans (one per concrete algorithm) of one weight/bias/geometry."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        self._key = None
        self._refs = (None, None)
        self._plans = {}
        self._algo_by_hw = {}
        self.last = None

    def _current(self, weight, bias, key):
        wref, bref = self._refs
        if self._key != key or wref is None or wref() is not weight:
            return False
        return (bias is None and bref is None) or (bref is not None and bref() is bias)

    def get(self, weight, bias, call, algorithm="auto", activation=None, hw=None):
        """The plan for this weight, bias and call geometry on an input of
        spatial size hw, packing it if the weight or bias changed."""
        key = (_sig(weight), _sig(bias), call, algorithm, activation, _isa.isa())
        with self._lock:
            if not self._current(weight, bias, key):
                self.clear()
                self._key = key
                self._refs = (weakref.ref(weight), None if bias is None else weakref.ref(bias))
                self._weight_np = as_numpy(weight)
                self._bias_np = None if bias is None else as_numpy(bias)
                self._spec = ConvSpec.build(self._weight_np.shape, call.stride, call.pads,
                                            call.dilation, call.groups, activation)
            name = self._algo_by_hw.get(hw)
            if name is None:
                name = self._resolve(algorithm, hw)
                self._algo_by_hw[hw] = name
            plan = self._plans.get(name)
            if plan is None:
                c = call
                plan = _Plan(self._weight_np, self._bias_np, c.stride, c.pads, c.dilation,
                             c.groups, algorithm=name, activation=activation)
                self._plans[name] = plan
            self.last = plan
            return plan

    def _resolve(self, algorithm, hw):
        isa_id = _isa.isa_id()
        name = choose(algorithm, self._spec, isa_id, hw)
        why = why_unsupported(name, self._spec, isa_id)
        if why is None:
            return name
        warn_once(f"algorithm {algorithm!r} cannot run a {self._spec.kH}x{self._spec.kW} "
                  f"stride-{self._spec.stride} convolution ({why}); those use 'auto'",
                  stacklevel=6)
        return choose("auto", self._spec, isa_id, hw)


# Plans for the functional path, one PlanCache per live weight tensor.  An entry
# dies with its weight (weakref callback), so a new tensor at a reused address
# starts afresh.
_functional: dict = {}
_functional_lock = threading.Lock()


def functional_cache(weight) -> PlanCache:
    key = id(weight)
    with _functional_lock:
        entry = _functional.get(key)
        if entry is not None and entry[0]() is weight:
            return entry[1]
        cache = PlanCache()

        def _forget(ref, key=key):
            with _functional_lock:
                current = _functional.get(key)
                if current is not None and current[0] is ref:
                    del _functional[key]

        _functional[key] = (weakref.ref(weight, _forget), cache)
        return cache
