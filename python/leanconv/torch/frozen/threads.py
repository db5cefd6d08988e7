"""Threads of a frozen model's run: leanconv's kernels take the thread count
torch is set to (torch.set_num_threads, or lc.set_num_threads if called),
while torch's own ops between them (an unfused activation, a residual add
torch runs, flatten, the classifier's Linear) run on one thread.

Why: those torch ops are small next to the convolutions, and at 2+ threads
each would start torch's intra-op pool, whose idle workers then spin (or,
when leanconv's OpenMP runtime is not torch's -- a wheel vendors its own --
compete) for the cores leanconv's next kernel needs.  A frozen
GraphModule's forward (runner.py) sets torch to one thread for the call and
restores it after; any other frozen model gets a forward pre-hook and an
always-called forward hook that do the same;
a layer freeze left on torch gets torch's threads back for its own conv."""
from __future__ import annotations

import threading

import torch

from leanconv import _threads
from leanconv.torch.plans import torch_threads

_local = threading.local()


def frozen_threads() -> int:
    """Threads for a leanconv kernel of a frozen model: the count in force
    when the frozen model's call began, else torch's (or lc's) setting now."""
    n = getattr(_local, "threads", None)
    if n is not None:
        return n
    return torch_threads() or _threads.get_num_threads()


class torch_ops_threads:
    """Context: torch's own ops at the frozen model's thread count (for a
    layer left on torch)."""

    def __enter__(self):
        self.n = getattr(_local, "threads", None)
        if self.n is not None and self.n > 1:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n is not None and self.n > 1:
            torch.set_num_threads(1)


def enter(module) -> bool:
    """Start `module`'s frozen call: True if this call now owns the thread
    setting (then leave() must follow); False inside another frozen call or
    while torch.compile traces."""
    if torch.compiler.is_compiling() or getattr(_local, "threads", None) is not None:
        return False
    n = frozen_threads()
    # kept for the call: each layer then reads it instead of asking torch
    _local.threads, _local.owner, _local.torch_before = n, module, torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    return True


def leave():
    """End the frozen call that enter() returned True for: torch's setting back."""
    if _local.threads > 1:
        torch.set_num_threads(_local.torch_before)
    _local.threads = _local.owner = None


def _before(module, args):
    enter(module)


def _after(module, args, output):
    if getattr(_local, "owner", None) is module:
        leave()


def install(root):
    """Run root's calls as described above (a module whose forward does not
    call enter/leave itself)."""
    root.register_forward_pre_hook(_before)
    root.register_forward_hook(_after, always_call=True)
