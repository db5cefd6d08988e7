"""`leanconv split`: where to cut a model between a device and a server.

A cut is a set D of nodes run on the device that is closed downwards (every
node feeding a node of D is in D); the server runs the rest.  The tensors sent
(`cut`) are the values the device has -- the model inputs and the outputs of
D -- that a server node reads.  For each cut

    total_ms = device_ms(D) + [rtt + transfer_bytes / uplink] + server_ms(rest)

where the bracket counts only when the server has work, device_ms sums the
device profile's node medians and server_ms the server's (its own profile,
or the device's divided by a speedup).  A cut is feasible when the device's
peak memory (profile.live_bytes over D with the model inputs live throughout
and the sent tensors kept to the end) fits the budget and device_ms fits the
time cap.  The fastest feasible cut wins (ties: fewer bytes sent, then fewer
device nodes).

Which cuts: every downward-closed set of the node graph when there are at
most MAX_CUTS of them (a chain of n nodes has n + 1; a branching block of b
parallel chains multiplies them), otherwise the n + 1 prefixes of the
execution order, which the result says."""
from __future__ import annotations

import os

from leanconv.tools import executor
from leanconv.tools.profile import INTERPRETER, live_bytes

MAX_CUTS = 10000
ALL_SETS = "all downward-closed node sets"
PREFIXES = "prefixes of the execution order"


class NoFeasibleCut(ValueError):
    """No cut fits the limits; .smallest_budget is the least device memory that
    would (under the time cap), .cut_text describes that cut."""

    def __init__(self, message, smallest_budget):
        super().__init__(message)
        self.smallest_budget = smallest_budget


def _predecessors(nodes):
    producer = {v: i for i, n in enumerate(nodes) for v in n["outputs"]}
    return [sum(1 << producer[v] for v in set(n["inputs"]) if v in producer) for n in nodes]


def enumerate_cuts(nodes, limit=MAX_CUTS):
    """(list of device node sets as bitmasks, which enumeration)."""
    preds = _predecessors(nodes)
    n = len(nodes)
    found, stack = [], [(0, 0)]
    while stack:
        i, mask = stack.pop()
        if i == n:
            found.append(mask)
            if len(found) > limit:
                return [(1 << k) - 1 for k in range(n + 1)], PREFIXES
            continue
        stack.append((i + 1, mask))
        if preds[i] & ~mask == 0:
            stack.append((i + 1, mask | (1 << i)))
    return sorted(found, key=lambda m: (bin(m).count("1"), m)), ALL_SETS


def evaluate(profile, device_mask, server_ms, uplink, rtt_s):
    """The fields of one cut (times in ms, sizes in bytes)."""
    nodes, tensors = profile["nodes"], profile["tensors"]
    inputs, outputs = list(profile["inputs"]), profile["outputs"]
    device = [i for i in range(len(nodes)) if device_mask >> i & 1]
    server = [i for i in range(len(nodes)) if not device_mask >> i & 1]
    on_device = set(inputs) | {v for i in device for v in nodes[i]["outputs"]}
    read_by_server = [v for i in server for v in nodes[i]["inputs"]]
    cut = list(dict.fromkeys(v for v in read_by_server if v in on_device))
    kept_on_device = [v for v in outputs if v in on_device and v not in inputs]
    device_outputs = list(dict.fromkeys([v for v in cut if v not in inputs] + kept_on_device))
    device_nodes = [nodes[i] for i in device]
    # device.onnx's outputs are held to its end (a model input sent as it is
    # is the caller's array: counted as an input, not as an output)
    peaks = live_bytes(device_nodes, tensors, inputs, device_outputs, traits(profile))
    transfer_bytes = sum(tensors[v] for v in cut)
    device_ms = sum(n["ms"] for n in device_nodes)
    srv_ms = sum(server_ms[i] for i in server)
    transfer_ms = (rtt_s + transfer_bytes / uplink) * 1e3 if server else 0.0
    return {
        "cut": cut,
        "device_nodes": [nodes[i]["name"] for i in device],
        "server_nodes": [nodes[i]["name"] for i in server],
        # model outputs computed on the device stay there; the server makes the rest
        "device_outputs": device_outputs,
        "server_outputs": [v for v in outputs if v not in on_device],
        "device_ms": device_ms,
        "transfer_bytes": transfer_bytes,
        "transfer_ms": transfer_ms,
        "server_ms": srv_ms,
        "total_ms": device_ms + transfer_ms + srv_ms,
        "device_peak_bytes": max(peaks, default=sum(tensors[v] for v in inputs)),
    }


def traits(profile):
    """The profile's executor memory traits, with the arena placement when it had one."""
    t = dict(profile.get("memory_traits") or INTERPRETER)
    if t["arena"]:
        t["place"] = executor.arena_place()
    return t


def server_times(profile, speedup=None, server_profile=None):
    """Per device node, its server time in ms."""
    nodes = profile["nodes"]
    if server_profile is None:
        if not speedup > 0:
            raise ValueError(f"--server-speedup must be > 0, got {speedup!r}")
        return [n["ms"] / speedup for n in nodes]
    theirs = {n["name"]: n["ms"] for n in server_profile.get("nodes", [])}
    missing = [n["name"] for n in nodes if n["name"] not in theirs]
    if missing:
        raise ValueError(f"the server profile does not match the model: it has no node "
                         f"{missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                             if len(missing) > 1 else "")
                         + "; profile the same model on the server with leanconv profile --json")
    return [theirs[n["name"]] for n in nodes]


def choose(profile, device_memory, uplink, rtt_s, server_ms, max_device_ms=None):
    """-> result dict (the best cut's fields, candidates, enumeration); raises
    NoFeasibleCut naming the smallest budget that would fit."""
    masks, how = enumerate_cuts(profile["nodes"])
    cap = float("inf") if max_device_ms is None else max_device_ms
    evaluated = [evaluate(profile, m, server_ms, uplink, rtt_s) for m in masks]
    timely = [c for c in evaluated if c["device_ms"] <= cap]
    feasible = [c for c in timely if c["device_peak_bytes"] <= device_memory]
    if not feasible:
        smallest = min(timely, key=lambda c: c["device_peak_bytes"])
        raise NoFeasibleCut(
            f"no cut fits {device_memory} bytes of device memory"
            + (f" and {max_device_ms:g} ms of device time" if max_device_ms is not None else "")
            + f"; the smallest budget that fits is {smallest['device_peak_bytes']} bytes "
            f"({_mib(smallest['device_peak_bytes'])}, {describe(smallest)})",
            smallest["device_peak_bytes"])
    best = min(feasible, key=lambda c: (c["total_ms"], c["transfer_bytes"],
                                        len(c["device_nodes"])))
    return dict(best, cuts_considered=len(masks), enumeration=how,
                candidates=sorted(feasible, key=lambda c: c["total_ms"]))


def _mib(n):
    return f"{n / 2**20:.2f} MiB"


def describe(c):
    if not c["server_nodes"]:
        return "everything on the device"
    if not c["device_nodes"]:
        return "everything on the server"
    return f"{len(c['device_nodes'])} nodes on the device, cut at {', '.join(c['cut'])}"


def extractor(model):
    """An onnx.utils.Extractor for `model` (reusable across cuts).  This onnx's
    Extractor needs a value_info for every cut tensor: shape inference gives them."""
    import onnx
    from onnx.utils import Extractor
    return Extractor(onnx.shape_inference.infer_shapes(model))


def write_parts(model, result, folder, extract=None):
    """DIR/device.onnx (model inputs -> device outputs) and DIR/server.onnx
    (cut -> model outputs), each omitted when its part is empty.  -> paths written.
    extract: an extractor(model) to reuse."""
    import onnx

    os.makedirs(folder, exist_ok=True)
    inputs = [vi.name for vi in model.graph.input
              if vi.name not in {i.name for i in model.graph.initializer}]
    extract = extract or extractor(model)
    written = {}
    parts = [("device", result["device_nodes"], inputs, result["device_outputs"]),
             ("server", result["server_nodes"], result["cut"], result["server_outputs"])]
    for part, nodes, ins, outs in parts:
        path = os.path.join(folder, f"{part}.onnx")
        if not nodes:
            if os.path.exists(path):
                os.remove(path)   # a stale part from an earlier split would mislead
            continue
        sub = extract.extract_model(ins, outs)
        sub.graph.name = f"{model.graph.name or 'model'}_{part}"
        onnx.checker.check_model(sub)
        onnx.save(sub, path)
        written[part] = path
    return written
