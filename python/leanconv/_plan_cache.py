"""lc.conv2d's plans, cached per weight array so repeated calls do not repack.

Key: the weight array itself (by identity, held weakly: an entry dies with
its array, so a new array at a reused address starts afresh) plus the
normalised parameters, the algorithm request and the ISA.  Weights that are
not already a C-contiguous aligned float32 ndarray would be copied on every
call anyway, so they get a one-off plan and no entry.

Staleness: NumPy arrays are mutable, and neither a flag nor a version
counter says whether one changed.  So every cached call compares the array
byte for byte with the copy taken when the plan was made (one memcmp, which
reads the weights at memory speed: on 256x256x3x3 weights, 0.05 ms against
3.3 ms to pack them for Im2Col and 14 ms for Winograd F4, AMD EPYC, one
thread); any difference repacks.  A
plan that decides per geometry already keeps that copy (it packs from it);
a plan of a named algorithm gets one for the cache.

Bounded: at most MAX_PLANS plans and MAX_BYTES bytes (packings plus copies)
in all, least recently used out first; a plan keeps at most
Conv2d.max_packings packings."""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from . import _core, _isa
from ._params import ConvSpec

MAX_PLANS = 16
MAX_BYTES = 256 << 20

_lock = threading.Lock()
_cache: OrderedDict = OrderedDict()  # key -> (weakref to the array, plan, snapshot)


def _reusable(weight) -> bool:
    return isinstance(weight, np.ndarray) and weight.dtype == np.float32 and \
        weight.flags.c_contiguous and weight.flags.aligned


def _entry_bytes(plan, snapshot) -> int:
    own = 0 if snapshot is plan._weights else snapshot.nbytes
    return plan.packed_bytes + own


_dead: list = []  # weakrefs of arrays that died, purged at the next lookup


def _forget(ref):
    # runs wherever the garbage collector does, maybe with _lock held by this
    # very thread: only note it
    _dead.append(ref)


def _purge():
    while _dead:
        ref = _dead.pop()
        for k in [k for k, e in _cache.items() if e[0] is ref]:
            del _cache[k]


def plan_for(weight, stride, padding, dilation, groups, algorithm, activation):
    """A plan for these weights and parameters: cached when the weights can
    be told apart from later versions of themselves."""
    from ._plan import Conv2d
    if not _reusable(weight):
        return Conv2d(weight, None, stride, padding, dilation, groups, algorithm=algorithm,
                      activation=activation)
    spec = ConvSpec.build(weight.shape, stride, padding, dilation, groups, activation)
    key = (id(weight), spec, algorithm, _isa.isa())
    flat = weight.reshape(-1)
    with _lock:
        _purge()
        entry = _cache.get(key)
        if entry is not None and entry[0]() is weight and _core.same_bytes(flat, entry[2]):
            _cache.move_to_end(key)
            return entry[1]
        plan = Conv2d(weight, None, stride, padding, dilation, groups, algorithm=algorithm,
                      activation=activation)
        snapshot = plan._weights if plan._weights is not None else flat.copy()
        _cache[key] = (weakref.ref(weight, _forget), plan, snapshot)
        _cache.move_to_end(key)
        _trim()
        return plan


def _trim():
    total = sum(_entry_bytes(p, s) for _, p, s in _cache.values())
    while len(_cache) > 1 and (len(_cache) > MAX_PLANS or total > MAX_BYTES):
        _, (_, p, s) = _cache.popitem(last=False)
        total -= _entry_bytes(p, s)


def clear() -> None:
    """Drop every cached plan."""
    with _lock:
        _cache.clear()


def info() -> dict:
    """{"plans": cached plans, "bytes": what they hold}."""
    with _lock:
        _purge()
        return {"plans": len(_cache),
                "bytes": sum(_entry_bytes(p, s) for _, p, s in _cache.values())}
