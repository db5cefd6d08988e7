"""`leanconv profile --plot`: time and memory along the network (matplotlib, Agg).

Top: each node's median time, coloured by op.  Bottom: the memory held while
each node runs, stacked (weights loaded so far, live activations, workspace);
the device's peak memory if it ran nodes 0..i and sent the rest to a server
(what `leanconv split` checks against a budget); and, on its own axis, each
node's output size: what a cut after that node would send."""
from __future__ import annotations

import os

from .errors import CliError
from .plot import require_pyplot, save


def _op_kind(op):
    return op.split("+")[0]


def plot_profile(result, path):
    plt = require_pyplot()
    nodes = result["nodes"]
    if not nodes:
        raise CliError("--plot: the model has no node to draw")
    x = list(range(len(nodes)))
    mib = 2.0 ** 20
    weights = [n["weights_loaded_bytes"] / mib for n in nodes]
    work = [n["workspace_bytes"] / mib for n in nodes]
    acts = [n["live_bytes"] / mib - w - s for n, w, s in zip(nodes, weights, work)]
    kinds = list(dict.fromkeys(_op_kind(n["op"]) for n in nodes))
    cmap = plt.get_cmap("tab10")
    fig, (ax_t, ax_m) = plt.subplots(2, 1, sharex=True, layout="constrained",
                                     figsize=(min(22.0, max(9.0, 0.12 * len(nodes) + 4)), 8))
    for k, kind in enumerate(kinds):
        idx = [i for i, n in enumerate(nodes) if _op_kind(n["op"]) == kind]
        ax_t.bar(idx, [nodes[i]["ms"] for i in idx], 0.8, color=cmap(k % 10), label=kind)
    ax_t.set_ylabel("ms per node (median)")
    ax_t.legend(fontsize=8, ncol=min(len(kinds), 6), loc="upper left")
    ax_t.grid(axis="y", alpha=0.3)
    name = os.path.basename(str(result["model"]))
    ax_t.set_title(f"{name}: {result['total_ms']:.1f} ms in {len(nodes)} nodes, "
                   f"{result['threads']} thread(s), isa {result['isa']}")
    ax_m.stackplot(x, weights, acts, work, step="mid", alpha=0.8,
                   labels=["weights loaded so far (leanconv.onnx: all, at prepare)",
                           "live activations", "workspace"],
                   colors=["#4c72b0", "#55a868", "#c44e52"])
    ax_m.axhline(result["peak_bytes"] / mib, color="red", ls="--", lw=1,
                 label=f"peak {result['peak_bytes'] / mib:.1f} MiB")
    from leanconv.tools.split import evaluate
    zero = [0.0] * len(nodes)
    prefix_peak = [evaluate(result, (1 << (i + 1)) - 1, zero, 1.0, 0.0)["device_peak_bytes"]
                   for i in range(len(nodes))]
    ax_m.step(x, [p / mib for p in prefix_peak], where="mid", color="purple", lw=1.5,
              label="device peak if it ran nodes 0..i and sent the rest")
    ax_m.set_ylabel("MiB held while the node runs")
    ax_m.set_xlabel("node (execution order)")
    # its own axis: outputs are often a hundredth of the weights
    ax_o = ax_m.twinx()
    ax_o.step(x, [n["output_bytes"] / 1024 for n in nodes], where="mid", color="black",
              lw=1.2, label="output of the node, KiB (right axis)")
    ax_o.set_ylabel("output KiB")
    ax_o.set_ylim(bottom=0)
    handles = [h for ax in (ax_m, ax_o) for h in ax.get_legend_handles_labels()[0]]
    ax_m.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper center",
                bbox_to_anchor=(0.5, -0.12), ncol=3)
    ax_m.grid(axis="y", alpha=0.3)
    save(plt, fig, path)
