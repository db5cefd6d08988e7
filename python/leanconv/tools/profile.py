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
It counts buffers, not the interpreter, the libraries or allocator slack."""
from __future__ import annotations

import statistics

from leanconv.tools import executor

SCHEMA = "leanconv-profile/1"


def weights_loaded(nodes, at_prepare=executor.WEIGHTS_AT_PREPARE):
    """Per node, the weight bytes held while it runs (the first term of the model)."""
    held = [n["weight_bytes"] + n["packed_bytes"] for n in nodes]
    if at_prepare:
        return [sum(held)] * len(nodes)
    total, out = 0, []
    for h in held:
        total += h
        out.append(total)
    return out


def live_bytes(nodes, tensors, start, keep):
    """live_bytes of each node run in the given order (the memory model above).
    nodes: dicts with inputs, outputs, weight_bytes, packed_bytes, workspace_bytes;
    tensors: value name -> bytes; start: values present before the first node;
    keep: values held to the end."""
    last = {}
    for i, n in enumerate(nodes):
        for v in n["inputs"]:
            last[v] = i
    live = {v: tensors[v] for v in start}
    held = set(keep) | set(start)
    out = []
    for i, (n, weights) in enumerate(zip(nodes, weights_loaded(nodes))):
        for v in n["outputs"]:
            live[v] = tensors[v]
        out.append(weights + sum(live.values()) + n["workspace_bytes"])
        for v in [v for v in live if v not in held and last.get(v, -1) <= i]:
            del live[v]
    return out


def profile_model(model, prepared, feeds, min_runs=7, min_time=0.2, label=None):
    """The profile as a dict (schema leanconv-profile/1): nodes, peak_bytes, and
    what split needs to re-run the memory model on a part of the graph:
    each node's inputs/outputs, `tensors` (value name -> bytes), model
    `inputs` and `outputs`."""
    facts = executor.trace(prepared, feeds)
    samples = executor.time_steps(prepared, feeds, min_runs, min_time)
    tensors = {name: int(v.nbytes) for name, v in feeds.items()}
    nodes = []
    for f, ts in zip(facts, samples):
        tensors.update(f.output_bytes)
        q1, _, q3 = statistics.quantiles(ts, n=4) if len(ts) >= 2 else (ts[0], 0, ts[0])
        nodes.append(dict(
            name=f.name, op=f.op, ms=statistics.median(ts) * 1e3, ms_q1=q1 * 1e3,
            ms_q3=q3 * 1e3, output_bytes=sum(f.output_bytes.values()),
            packed_bytes=f.packed_bytes, workspace_bytes=f.workspace_bytes,
            weight_bytes=f.weight_bytes, inputs=f.inputs, outputs=f.outputs))
    outputs = list(prepared.output_names)
    for n, w, live in zip(nodes, weights_loaded(nodes),
                          live_bytes(nodes, tensors, list(feeds), outputs)):
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
    }
