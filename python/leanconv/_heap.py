"""Handing freed heap memory back to the operating system.

glibc keeps memory freed with free() for later reuse: the top of its heap
up to a threshold that grows with the largest buffer freed so far (up to
64 MiB), and every page inside a free hole.  After a phase that frees a
lot -- loading and packing weights -- that memory would stay in the
process's resident set for good.  malloc_trim(0) returns it: the free
top of the heap, and the whole pages of the holes (madvise)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):   # not glibc (musl, macOS, Windows): nothing to trim
        return None


def return_freed_memory():
    """Give the heap's free pages back to the OS now (glibc; elsewhere a no-op)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
