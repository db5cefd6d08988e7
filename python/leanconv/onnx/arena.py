"""Offsets of intermediate tensors in one static arena.

Every buffer lives from the step that writes it to the last step that reads
it (inclusive).  Two buffers whose lifetimes overlap must not overlap in
memory; buffers that never live at the same time may share bytes.  Placing
the largest first, each at the lowest offset free for its whole lifetime, is
the usual greedy for this (offline interval colouring by size); it is exact
bookkeeping, not an estimate: the arena is the bytes this placement needs."""
from __future__ import annotations

ALIGN = 64   # a cache line: every buffer starts on one (SIMD loads, no false sharing)


def aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def place(buffers):
    """buffers: {key: (nbytes, first_step, last_step)}.  Returns ({key: offset}, arena bytes)."""
    order = sorted(buffers, key=lambda k: (-buffers[k][0], buffers[k][1]))
    placed = []   # (offset, end, first, last)
    offsets = {}
    for k in order:
        size, first, last = buffers[k]
        size = aligned(max(size, 1))
        busy = sorted((o, e) for o, e, f, la in placed if f <= last and first <= la)
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[k] = offset
        placed.append((offset, offset + size, first, last))
    total = max((e for _, e, _, _ in placed), default=0)
    return offsets, total
