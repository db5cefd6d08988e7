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


# Huge pages for a model's long-lived buffers.
#
# A compiled model reads its packed weights, activation arena and workspace
# (SqueezeNet at 128 px: 8 MB, ~2000 pages of 4 KiB) on every run: about as
# many pages as a core's second-level TLB holds, so after a pause (the thread
# idled, other work ran on the core) most of them are page walks again, and
# in a VM each walk is two-dimensional.  Backed by huge pages the same bytes
# are a handful of TLB entries.  The buffers come from malloc (scattered
# through the heap), so the pages around them are collapsed in place
# (MADV_COLLAPSE, Linux 6.1+) rather than the buffers moved.  Collapsing makes
# a span's every page resident: the caller bounds what that may add.

_MADV_HUGEPAGE = 14
_MADV_COLLAPSE = 25


@functools.lru_cache(maxsize=None)
def _huge_page_setup():
    """(libc, base page bytes, huge page bytes), or None where transparent
    huge pages cannot be asked for (not Linux, THP off, no madvise)."""
    import os
    import sys
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                return None
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            huge = int(f.read())
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    except (OSError, ValueError, AttributeError):
        return None
    base = os.sysconf("SC_PAGE_SIZE")
    if huge <= base or huge % base:
        return None
    return libc, base, huge


def back_with_huge_pages(ranges, growth_budget: int = 0) -> int:
    """Ask the kernel to back the huge-page spans holding these (address,
    bytes) ranges with huge pages, now.  Spans not wholly mapped are left
    alone; of the others, the most resident first, as long as the pages they
    would make resident add up to at most growth_budget bytes.  Returns the
    bytes of the spans collapsed (0 where the system offers no huge pages;
    never raises for that)."""
    setup = _huge_page_setup()
    if setup is None:
        return 0
    libc, base, huge = setup
    spans = set()
    for address, nbytes in ranges:
        if nbytes > 0:
            spans.update(range(address // huge * huge, address + nbytes, huge))
    pages = huge // base
    residency = ctypes.create_string_buffer(pages)
    missing = []   # (bytes collapsing would make resident, span)
    for start in spans:
        if libc.mincore(start, huge, residency) == 0:   # else not all mapped (ENOMEM)
            missing.append(((pages - sum(b & 1 for b in residency.raw)) * base, start))
    done = 0
    for grows, start in sorted(missing):
        if grows > growth_budget:
            break
        if libc.madvise(start, huge, _MADV_HUGEPAGE) != 0:
            continue
        if libc.madvise(start, huge, _MADV_COLLAPSE) == 0:   # else khugepaged may, later
            done += huge
            growth_budget -= grows
    return done
