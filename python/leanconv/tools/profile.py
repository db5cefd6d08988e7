"""`leanconv profile`: time and memory of every node of a model on leanconv.onnx.

Per node (an executor step: a node, or a Conv with what was fused into it):
  ms               median over whole-model runs (at least min_runs and min_time)
  output_bytes     bytes of the values it writes
  packed_bytes     its packed Conv weights; workspace_bytes: what a call allocates
                   beyond its output
  weight_bytes     other weight bytes it holds (raw Conv weights and bias, which
                   leanconv.onnx keeps to repack for other image sizes; constants it
                   reads first)
  live_bytes       memory held while it runs, in repeated runs (the memory model below)
and the model's peak_bytes, the largest live_bytes.

The memory model.  While node i runs, the process holds
  weights loaded so far   the weight_bytes + packed_bytes of the nodes whose weights
                          are loaded by then.  leanconv.onnx loads every weight at
                          prepare time and keeps the packed copies made on the first
                          run (executor.WEIGHTS_AT_PREPARE), so from the second run on
                          that is every node's; an executor that loaded weights as the
                          network reached them would count nodes 0..i,
  live activations        the model inputs (the caller owns them for the whole run),
                          every value written by nodes 0..i that a node >= i still
                          reads, node i's outputs, and the values kept to the end
                          (the model outputs; for a split, the tensors to send),
  workspace               node i's workspace_bytes.
That is the interpreter (fresh arrays).  With a static arena schedule
(executor.memory_traits()["arena"]) the activations are the arena for every
node, plus the caller's inputs and, at the end, the outputs copied out, and
the workspace is one buffer of the largest Conv workspace held for the whole
run (lent to every Conv; another op's scratch comes on top): see _arena_live.
It counts buffers, not the interpreter's objects, the libraries or allocator
slack."""
from __future__ import annotations

import statistics

from leanconv.tools import executor

SCHEMA = "leanconv-profile/1"


def weights_loaded(nodes, at_prepare=True):
    """Per node, the weight bytes held while it runs (the first term of the model)."""
    held = [n["weight_bytes"] + n["packed_bytes"] for n in nodes]
    if at_prepare:
        return [sum(held)] * len(nodes)
    total, out = 0, []
    for h in held:
        total += h
        out.append(total)
    return out


INTERPRETER = {"weights_at_prepare": True, "arena": False, "feeds_copied": False,
               "outputs_copied": False}


def live_bytes(nodes, tensors, start, keep, traits=None):
    """live_bytes of each node run in the given order (the memory model above).
    nodes: dicts with inputs, outputs, weight_bytes, packed_bytes, workspace_bytes
    (and view: outputs are views of the first input); tensors: value name ->
    bytes; start: the model inputs (present before the first node, owned by the
    caller); keep: values held to the end; traits: executor.memory_traits
    (default: the interpreter, each value a fresh array)."""
    traits = traits or INTERPRETER
    # the executor's objects for these nodes, held throughout (0 in old profiles)
    objects = traits.get("object_bytes_per_node", 0) * len(nodes)
    weights = [w + objects for w in weights_loaded(nodes, traits["weights_at_prepare"])]
    if traits["arena"]:
        return _arena_live(nodes, tensors, start, keep, traits, weights)
    last = {}
    for i, n in enumerate(nodes):
        for v in n["inputs"]:
            last[v] = i
    live = {v: tensors[v] for v in start}
    held = set(keep) | set(start)
    out = []
    for i, (n, w) in enumerate(zip(nodes, weights)):
        for v in n["outputs"]:
            live[v] = tensors[v]
        out.append(w + sum(live.values()) + n["workspace_bytes"])
        for v in [v for v in live if v not in held and last.get(v, -1) <= i]:
            del live[v]
    return out


def _arena_live(nodes, tensors, start, keep, traits, weights):
    """The arena executor: one buffer per value that is not a view, alive from
    its writer to its last reader (through views) or to the end when kept,
    placed by the executor's own placement; the inputs copied in; the kept
    values copied out at the end.  The arena is held throughout, and so is the
    scratch buffer the executor lends to every Conv (traits workspace_lent)."""
    root = {}
    for n in nodes:
        if n.get("view"):
            for v in n["outputs"]:
                root[v] = root.get(n["inputs"][0], n["inputs"][0])
    end = len(nodes)
    first, last = {}, {}
    for i, n in enumerate(nodes):
        for v in n["outputs"]:
            if v not in root:
                first.setdefault(v, i)
        for v in n["inputs"]:
            r = root.get(v, v)
            last[r] = max(last.get(r, -1), i)
    for v in keep:
        last[root.get(v, v)] = end
    buffers = {v: (tensors[v], first[v], last[v]) for v in first if v in last}
    if traits["feeds_copied"]:
        buffers.update({v: (tensors[v], -1, last[v]) for v in start if v in last})
    arena = traits["place"](buffers)[1] if buffers else 0
    caller = sum(tensors[v] for v in start)
    # a lent workspace: the largest Conv's, held throughout; other ops' own on top
    lent = traits.get("workspace_lent", False)
    convs = [lent and n.get("op", "").split("+")[0] == "Conv" for n in nodes]
    held = max((n["workspace_bytes"] for n, c in zip(nodes, convs) if c), default=0)
    out = [w + arena + caller + held + (0 if c else n["workspace_bytes"])
           for n, w, c in zip(nodes, weights, convs)]
    if traits["outputs_copied"] and out:
        out[-1] += sum(tensors[v] for v in keep)
    return out


def profile_model(model, prepared, feeds, min_runs=7, min_time=0.2, label=None):
    """The profile as a dict (schema leanconv-profile/1): nodes, peak_bytes, and
    what split needs to re-run the memory model on a part of the graph:
    each node's inputs/outputs, `tensors` (value name -> bytes), model
    `inputs` and `outputs`."""
    facts = executor.trace(prepared, feeds)
    samples = executor.time_steps(prepared, feeds, min_runs, min_time)
    samples = [samples[f.index] for f in facts]
    traits = executor.memory_traits(prepared, feeds)
    tensors = {name: int(v.nbytes) for name, v in feeds.items()}
    nodes = []
    for f, ts in zip(facts, samples):
        tensors.update(f.output_bytes)
        q1, _, q3 = statistics.quantiles(ts, n=4) if len(ts) >= 2 else (ts[0], 0, ts[0])
        nodes.append(dict(
            name=f.name, op=f.op, ms=statistics.median(ts) * 1e3, ms_q1=q1 * 1e3,
            ms_q3=q3 * 1e3, output_bytes=sum(f.output_bytes.values()),
            packed_bytes=f.packed_bytes, workspace_bytes=f.workspace_bytes,
            weight_bytes=f.weight_bytes, inputs=f.inputs, outputs=f.outputs, view=f.view))
    outputs = list(prepared.output_names)
    for n, w, live in zip(nodes, weights_loaded(nodes, traits["weights_at_prepare"]),
                          live_bytes(nodes, tensors, list(feeds), outputs, traits)):
        n["weights_loaded_bytes"], n["live_bytes"] = w, live
    import leanconv as lc
    return {
        "schema": SCHEMA,
        "model": label,
        "version": lc.__version__,
        "isa": lc.isa(),
        "threads": prepared.program.settings.threads or lc.get_num_threads(),
        "runs": len(samples[0]) if samples else 0,
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "outputs": outputs,
        "nodes": nodes,
        "peak_bytes": max((n["live_bytes"] for n in nodes), default=sum(
            tensors[k] for k in feeds)),
        "total_ms": sum(n["ms"] for n in nodes),
        "tensors": tensors,
        "memory_traits": {k: v for k, v in traits.items() if k != "place"},
    }
