"""Fitting convolution algorithms into a memory budget: the one trading rule
both model front ends use (leanconv.onnx's prepare(memory_budget=...) and
leanconv.torch.freeze(memory_budget=...)).

Each layer offers options (algorithm, packed weight bytes, workspace bytes,
cost), its preferred one first.  What the layers hold is every packing plus
one workspace -- the largest, as a run lends the same scratch to every layer
in turn -- on top of bytes fixed by the caller.  Starting from every layer's
preferred option, while that total exceeds the budget, the one switch that
loses the least time per byte it saves is taken (Winograd packs alpha^2/9
times the raw weights, so it gives way where it buys the least time).  A
switch that lowers a workspace tied for the largest saves nothing yet but
lets the next one save, so it is taken, priced as if it saved a millionth of
its bytes.  Every step lowers the total, or keeps it and lowers that layer's
own bytes, so the loop ends.  If no single switch helps, the leanest pick
(every layer's smallest packing under each workspace cap) is the last try.
A switch saves whole packings, so the last one taken often overshoots the
budget by megabytes (ResNet-18 224's default budget: 1.5 MiB left, enough for
one 128@28 layer's Winograd F4 packing over its F2 one, 1.3 MB for ~0.4 ms):
the fit then spends what is left, a switch back at a time, the one that
buys the most time per byte added first, while the total stays within the
budget.  Every such step lowers the summed cost, and none goes past a
layer's preferred option, so it ends too."""
from __future__ import annotations


def held(layers, choice, fixed=0, floor_scratch=0):
    """Bytes held under `choice` (an option index per layer): `fixed`, every
    packing, and the largest workspace (at least `floor_scratch`: scratch
    that steps other than these layers need)."""
    packed = sum(opts[k][1] for opts, k in zip(layers, choice))
    scratch = max([floor_scratch] + [opts[k][2] for opts, k in zip(layers, choice)])
    return fixed + packed + scratch


def _best_switch(layers, choice, fixed, floor_scratch, now):
    best = None   # (time lost per byte saved, total after, layer, option)
    for i, opts in enumerate(layers):
        keep = choice[i]
        own = opts[keep][1] + opts[keep][2]
        for k, option in enumerate(opts):
            if k == keep:
                continue
            choice[i] = k
            after = held(layers, choice, fixed, floor_scratch)
            choice[i] = keep
            saved = now - after
            if saved == 0 and option[1] + option[2] < own:
                saved = (own - option[1] - option[2]) * 1e-6
            if saved > 0:
                rate = max(option[3] - opts[keep][3], 0.0) / saved
                if best is None or (rate, after) < best[:2]:
                    best = (rate, after, i, k)
    return best


def leanest(layers, fixed=0, floor_scratch=0):
    """The choice that holds least: for each workspace size an option needs,
    every layer's smallest packing (then cheapest) within it; the best."""
    best = None
    for cap in sorted({o[2] for opts in layers for o in opts}):
        choice = []
        for opts in layers:
            fits = [k for k, o in enumerate(opts) if o[2] <= cap]
            if not fits:
                break
            choice.append(min(fits, key=lambda k: (opts[k][1], opts[k][3])))
        else:
            if best is None or held(layers, choice, fixed, floor_scratch) < \
                    held(layers, best, fixed, floor_scratch):
                best = choice
    return best if best is not None else [0] * len(layers)


def _best_refill(layers, choice, fixed, floor_scratch, now, budget):
    best = None   # (bytes added per time bought, -time bought, total after, layer, option)
    for i, opts in enumerate(layers):
        keep = choice[i]
        for k, option in enumerate(opts):
            bought = opts[keep][3] - option[3]
            if bought <= 0 or option[3] < opts[0][3]:
                continue   # no faster, or past the preferred option (auto's own pick)
            choice[i] = k
            after = held(layers, choice, fixed, floor_scratch)
            choice[i] = keep
            if after > budget:
                continue
            key = (max(after - now, 0) / bought, -bought, after, i, k)
            if best is None or key < best:
                best = key
    return best


def fit(layers, budget, fixed=0, floor_scratch=0):
    """(option index per layer, bytes held): the trade described above;
    the bytes may still exceed `budget` when nothing fits (the caller
    refuses or settles for it)."""
    choice = [0] * len(layers)
    now = held(layers, choice, fixed, floor_scratch)
    while now > budget:
        best = _best_switch(layers, choice, fixed, floor_scratch, now)
        if best is None:
            break
        _, now, i, k = best
        choice[i] = k
    while now <= budget:
        best = _best_refill(layers, choice, fixed, floor_scratch, now, budget)
        if best is None:
            break
        *_, now, i, k = best
        choice[i] = k
    if now > budget:
        lean = leanest(layers, fixed, floor_scratch)
        lean_bytes = held(layers, lean, fixed, floor_scratch)
        if lean_bytes < now:
            return lean, lean_bytes
    return choice, now
