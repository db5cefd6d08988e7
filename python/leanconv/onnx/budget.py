"""Algorithm choice under a memory budget (prepare(model, memory_budget=N)).

A run holds packed weights (per layer: Winograd's are alpha^2/9 the raw
size, im2col's about the raw size), constants, the activation arena and the
largest scratch of one step (per layer: a convolution's workspace, tiny for
patch2vec).  Starting from what 'auto' picks, layers are switched to leaner
algorithms until the total fits, by the trading rule leanconv.torch.freeze
shares (leanconv/_budget.py), time as the C cost model prices it (so the
slow direct reference is taken only when nothing else saves bytes).  If
nothing fits, MemoryError names the smallest total found."""
from __future__ import annotations

from leanconv import _budget


def default_budget(layers, raw, largest):
    """The algorithms of prepare(memory_budget=None, algorithm="auto"): the
    convolutions' packings and the one workspace they share hold at most
    their raw weight bytes (`raw`: per Conv) plus the model's largest weight
    (`largest`: bytes of its largest Conv weight or other constant), spent on
    Winograd where it saves the most time per byte.  Why that much: packing
    a layer holds its raw weights and its packing at once, so preparing
    reaches the raw weights plus a layer's anyway (leanconv.torch.freeze's
    rule); and where one weight dwarfs the convolutions (VGG's 400 MB
    classifier), the convolutions' packings are small next to what the model
    holds anyway and keep their fastest algorithms.  Never refuses: a model
    that cannot fit it gets its leanest choice.  The caller prices the
    layers' workspaces at one thread (schedule.py), so the choice, and the
    bits, are the same at every thread count."""
    options = [_default_options(c) for c in layers]
    return fit(options, 0, 0, sum(raw) + max([largest] + raw), refuse=False)


GEMM_FORMS = ("im2col", "patch2vec")


def _default_options(cands):
    """What the default budget may switch a layer to: not the direct
    reference, and one GEMM form (the preferred one, else the cheaper by the
    cost model): the model prices Im2Col and Patch2Vec nearly alike, so
    trading one for the other's smaller workspace would look free, and is
    not (Patch2Vec ran 0.8 -> 1.3 ms on ResNet-18's 256@14)."""
    first = cands[0]
    gemm = [c for c in cands if c[0] in GEMM_FORMS]
    keep = first if first[0] in GEMM_FORMS else min(gemm, key=lambda c: c[3], default=None)
    return [first] + [c for c in cands[1:] if c[0] != "direct" and
                      (c[0] not in GEMM_FORMS or c is keep)]


def fit(layers, fixed, other_scratch, budget, refuse=True):
    """layers: per Conv, [(algorithm, packed bytes, workspace bytes, cost)]
    with the preferred one first.  Returns the chosen algorithm per layer;
    refuse: MemoryError when nothing fits (else the leanest total found)."""
    choice, now = _budget.fit(layers, budget, fixed, other_scratch)
    if now > budget and refuse:
        raise MemoryError(f"the model needs at least {now} bytes ({now / 2**20:.1f} MiB) with "
                          f"the leanest algorithms leanconv has; memory_budget={budget}")
    return [c[k][0] for c, k in zip(layers, choice)]
