"""Algorithm choice under a memory budget (prepare(model, memory_budget=N)).

A run holds packed weights (per layer: Winograd's are alpha^2/9 the raw
size, im2col's about the raw size), constants, the activation arena and the
largest scratch of one step (per layer: a convolution's workspace, tiny for
patch2vec).  Starting from what 'auto' picks, the cheapest memory-wise
switch is made until the total fits: at each round the one layer change that
lowers the total most.  If nothing fits, MemoryError names the smallest total
found."""
from __future__ import annotations


def total(fixed, other_scratch, layers, choice):
    packed = sum(c[k][1] for c, k in zip(layers, choice))
    scratch = max([other_scratch] + [c[k][2] for c, k in zip(layers, choice)])
    return fixed + packed + scratch


def fit(layers, fixed, other_scratch, budget):
    """layers: per Conv, [(algorithm, packed bytes, workspace bytes)] with the
    preferred one first.  Returns the chosen algorithm per layer."""
    choice = [0] * len(layers)
    now = total(fixed, other_scratch, layers, choice)
    while now > budget:
        best = None
        for i, cands in enumerate(layers):
            keep = choice[i]
            for k in range(len(cands)):
                if k == keep:
                    continue
                choice[i] = k
                t = total(fixed, other_scratch, layers, choice)
                if t < now and (best is None or t < best[0]):
                    best = (t, i, k)
            choice[i] = keep
        if best is None:
            break
        now, i, k = best
        choice[i] = k
    if now > budget:
        raise MemoryError(f"the model needs at least {now} bytes ({now / 2**20:.1f} MiB) with "
                          f"the leanest algorithms leanconv has; memory_budget={budget}")
    return [c[k][0] for c, k in zip(layers, choice)]
