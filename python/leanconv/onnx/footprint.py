"""The bytes of the executor's own objects: the steps, their closures and bound
calls, the plans' Python side, shapes, names -- what a prepared model holds
beyond its packed weights, constants, arena and workspace (about 20 KB per
step, 6% of MobileNetV2's plan).

Counted by walking the objects reachable from the prepared program with
sys.getsizeof, stopping at what is shared with the rest of the process
(modules and their dicts, classes, code) and at arrays the plan already
counts (their data; an array the plan does not count, such as a plan's copy
of a bias, counts in full), each as the allocator rounds it (_allocated).  C
structures behind extension objects are not visible to it."""
from __future__ import annotations

import gc
import sys
import types
from array import array
from bisect import bisect_left, insort

import numpy as np

from leanconv._heap import return_freed_memory

_SHARED = (type, types.ModuleType, types.CodeType, types.BuiltinFunctionType,
           types.BuiltinMethodType, types.MethodWrapperType, types.WrapperDescriptorType,
           types.GetSetDescriptorType, types.MemberDescriptorType, np.dtype)


def _data_owner(a):
    while True:
        base = a.base
        if not isinstance(base, np.ndarray):
            # as_strided's view (a reshape step's flat view of its input, made at
            # the first run) has a holder object as base, which keeps the array
            base = getattr(base, "base", None)
            if not isinstance(base, np.ndarray):
                return a
        a = base


def object_bytes(roots, counted_arrays):
    """Bytes of every object reachable from `roots` that is not shared with the
    process; `counted_arrays`: arrays whose data the plan already counts (a
    view of one counts its header only)."""
    # the walk's scratch (the id of every object, 56 KB for ShuffleNet's
    # 7000 objects) would come on top of what the caller just freed: the heap's
    # free pages go back first
    return_freed_memory()
    counted = _Ids(id(_data_owner(a)) for a in counted_arrays if isinstance(a, np.ndarray))
    shared = _Ids([id(m.__dict__) for m in list(sys.modules.values()) if m is not None] +
                  [id(v) for v in (None, True, False, Ellipsis, NotImplemented)])
    seen, total, todo = _Ids(()), 0, list(roots)
    while todo:
        o = todo.pop()
        if id(o) in seen or id(o) in shared or isinstance(o, _SHARED):
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            owner = _data_owner(o)
            # the object (a small one), and its shape and strides, which NumPy
            # mallocs apart (sys.getsizeof counts them as if in the object)
            shape = sys.getsizeof(o) - (o.nbytes if o.base is None else 0) - type(o).__basicsize__
            total += _allocated(type(o).__basicsize__)
            if shape > 0:
                total += _malloced(shape)
            if owner is not o:
                todo.append(owner)
            elif id(o) not in counted:
                total += _malloced(o.nbytes)   # NumPy's data: malloc, at any size
            continue
        total += _allocated(sys.getsizeof(o))
        if isinstance(o, types.FunctionType):   # its closure and defaults, not its module
            # the closure's tuple and cells too (a cell shared by two closures once;
            # its contents through gc.get_referents): ~40 KB of ShuffleNet's steps
            todo.extend(v for v in (o.__closure__, o.__defaults__) if v is not None)
            continue
        todo.extend(gc.get_referents(o))
    return total


class _Ids:
    """A set of object ids in one array of machine words, sorted.  A set of
    Python ints would leave its ints' blocks in pymalloc's pools when freed,
    resident for good (32 bytes an object: ShuffleNet's export grew 0.2 MB
    more with the walk than without it, 2026-12-01); the array is one malloc,
    given back whole."""

    def __init__(self, ids):
        self._a = array("Q", np.sort(np.fromiter(ids, np.uint64)).tobytes())

    def __contains__(self, i):
        k = bisect_left(self._a, i)
        return k < len(self._a) and self._a[k] == i

    def add(self, i):
        insort(self._a, i)


def _allocated(nbytes):
    """The bytes an allocation of `nbytes` takes: Python's small-object
    allocator hands out multiples of 16 up to 512 bytes, malloc adds its
    8-byte header and rounds to 16 (~60 KB of ShuffleNet's 7600 objects)."""
    if nbytes <= 512:
        return -(-nbytes // 16) * 16
    return _malloced(nbytes)


def _malloced(nbytes):
    """The chunk malloc takes for `nbytes`: an 8-byte header, rounded to 16, 32 at least."""
    return max(32, -(-(nbytes + 8) // 16) * 16)
