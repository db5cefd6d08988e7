"""`--plot FILE.png`: per-layer speed and workspace charts (matplotlib, Agg).

Top: GFLOP/s (direct-convolution FLOPs for every algorithm, as the title
says: Winograd does fewer multiplies and can pass the FMA peak) of each
algorithm that ran on a layer (pre-packed plan call) and of each peer, bars
side by side per layer, colour = algorithm.  Bottom:
each algorithm's workspace per call, log scale.  Where the fastest bar is
more than 20x the slowest the speed axis turns logarithmic too, so a slow
path stays visible beside a fast one."""
from __future__ import annotations

from leanconv import algorithms

from .errors import CliError
from .report import peer_names

_ORDER = list(algorithms())  # fixed bar order and colour per algorithm
_PEER_STYLE = ({"color": "0.30", "hatch": "//"}, {"color": "0.65", "hatch": "\\\\"})


def require_pyplot():
    try:
        import matplotlib
    except ImportError:
        raise CliError("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def _bars_per_layer(rows, peers):
    """[(label, [(series name, gflops, workspace bytes or None)])] per layer;
    auto rows repeat a named row's measurement, so each algorithm appears once."""
    layers = {}
    for r in rows:
        bars = layers.setdefault(r["layer"], {})
        bars.setdefault(r["algorithm"], (r["plan_gflops"], r["workspace_bytes"]))
        for p in peers:
            if r.get(f"{p}_ms"):
                bars.setdefault(p, (r["gflop"] / r[f"{p}_ms"] * 1e3, None))
    out = []
    for layer, bars in layers.items():
        ours = sorted(((n, g, w) for n, (g, w) in bars.items() if n not in peers),
                      key=lambda bar: _ORDER.index(bar[0]))
        theirs = [(p, *bars[p]) for p in peers if p in bars]
        out.append((layer, ours + theirs))
    return out


def _draw_suite(ax_speed, ax_ws, suite, layers, peers, colour, peak):
    most = max(len(bars) for _, bars in layers)
    width = 0.8 / most
    labelled, speeds = [], []
    for x, (_, bars) in enumerate(layers):
        n_ours = sum(1 for b in bars if b[0] not in peers)
        for j, (name, gflops, ws) in enumerate(bars):
            pos = x + (j - (len(bars) - 1) / 2) * width
            style = _PEER_STYLE[peers.index(name) % 2] if name in peers else \
                {"color": colour[name]}
            ax_speed.bar(pos, gflops, width, label=None if name in labelled else name, **style)
            if name not in labelled:
                labelled.append(name)
            speeds.append(gflops)
            if ws is not None:  # ours only, centred on the tick
                ax_ws.bar(x + (j - (n_ours - 1) / 2) * width, max(ws, 1) / 2**20, width,
                          color=colour[name])
    if peak:
        ax_speed.axhline(peak, color="red", lw=1, ls="--", label=f"FMA peak {peak:.0f}")
    top = max(speeds + [peak or 0])
    if top > 20 * max(min(speeds), 1e-9):
        ax_speed.set_yscale("log")
        ax_speed.set_ylim(top=top * 4)  # headroom for the legend
    else:
        ax_speed.set_ylim(0, top * 1.3)
    handles = dict(zip(*reversed(ax_speed.get_legend_handles_labels())))
    order = [n for n in _ORDER + peers if n in handles] + \
        [n for n in handles if n not in _ORDER + peers]
    ax_speed.legend([handles[n] for n in order], order, fontsize=8, loc="upper right",
                    ncol=min(len(order), 6))
    ax_speed.set_ylabel("GFLOP/s (plan call, direct-conv FLOPs)")
    ax_speed.set_title(f"{suite}: speed per layer")
    ax_speed.grid(axis="y", alpha=0.3)
    ax_ws.set_yscale("log")
    ax_ws.set_ylabel("workspace MiB (log; 0 as 1 B)")
    ax_ws.set_title(f"{suite}: leanconv workspace beyond the output, per call")
    ax_ws.grid(axis="y", alpha=0.3)
    ax_ws.set_xticks(range(len(layers)))
    ax_ws.set_xticklabels([label for label, _ in layers], rotation=45, ha="right", fontsize=8)
    ax_speed.set_xticks(range(len(layers)))
    ax_speed.set_xticklabels([])  # the names sit under the workspace panel below
    ax_speed.set_xlim(ax_ws.get_xlim())


def plot(result, path):
    """Two panels (speed, workspace) per suite, stacked."""
    rows = [r for r in result["rows"] if r["kind"] == "layer" and r["status"] == "ok"]
    if not rows:
        raise CliError("--plot: no layer ran, nothing to draw")
    plt = require_pyplot()
    peers = peer_names(result)
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    per_suite = {s: _bars_per_layer([r for r in rows if r["suite"] == s], peers)
                 for s in suites}
    cmap = plt.get_cmap("tab10")
    colour = {a: cmap(i % 10) for i, a in enumerate(_ORDER)}
    widest = max(len(layers) * (0.35 + 0.18 * max(len(b) for _, b in layers))
                 for layers in per_suite.values())
    fig, axes = plt.subplots(2 * len(suites), 1, squeeze=False, layout="constrained",
                             figsize=(min(22.0, max(8.0, widest + 2)), 8.5 * len(suites)))
    meta = result["metadata"]
    peak = meta["fma_peak"]["gflops"]
    for i, suite in enumerate(suites):
        _draw_suite(axes[2 * i][0], axes[2 * i + 1][0], suite, per_suite[suite], peers,
                    colour, peak)
    fig.suptitle(f"leanconv {meta['version']}  isa {meta['isa']}, {meta['threads']} "
                 f"thread(s), batch {meta['batch']}  (peers hatched)\n"
                 f"GFLOP/s counts direct-convolution FLOPs for every algorithm:\n"
                 f"Winograd does fewer multiplies, so its bars can pass the FMA peak",
                 fontsize=10)
    save(plt, fig, path)


def save(plt, fig, path):
    """Write the figure (an OSError as one CliError line) and free it."""
    try:
        fig.savefig(path, dpi=100)
    except OSError as e:
        raise CliError(f"--plot {path!r}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
