"""`--plot FILE.png`: per-layer speed and workspace charts (matplotlib, Agg).

Top: GFLOP/s of each algorithm that ran on a layer (pre-packed plan call)
and of each peer, bars side by side per layer, colour = algorithm.  Bottom:
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
    multi = len({r["suite"] for r in rows}) > 1
    for r in rows:
        key = (r["suite"], r["layer"])
        bars = layers.setdefault(key, {})
        bars.setdefault(r["algorithm"], (r["plan_gflops"], r["workspace_bytes"]))
        for p in peers:
            if r.get(f"{p}_ms"):
                bars.setdefault(p, (r["gflop"] / r[f"{p}_ms"] * 1e3, None))
    out = []
    for (suite, layer), bars in layers.items():
        ours = sorted(((n, g, w) for n, (g, w) in bars.items() if n not in peers),
                      key=lambda bar: _ORDER.index(bar[0]))
        theirs = [(p, *bars[p]) for p in peers if p in bars]
        out.append((f"{suite}: {layer}" if multi else layer, ours + theirs))
    return out


def plot(result, path):
    rows = [r for r in result["rows"] if r["kind"] == "layer" and r["status"] == "ok"]
    if not rows:
        raise CliError("--plot: no layer ran, nothing to draw")
    plt = require_pyplot()
    peers = peer_names(result)
    layers = _bars_per_layer(rows, peers)
    algs = [a for a in _ORDER if any(r["algorithm"] == a for r in rows)]
    cmap = plt.get_cmap("tab10")
    colour = {a: cmap(i % 10) for i, a in enumerate(_ORDER)}
    most = max(len(bars) for _, bars in layers)
    width = 0.8 / most

    fig, (ax_speed, ax_ws) = plt.subplots(
        2, 1, figsize=(max(8.0, len(layers) * (0.35 + 0.18 * most) + 2), 9), sharex=True)
    labelled = set()
    speeds = []
    for x, (_, bars) in enumerate(layers):
        n_ours = sum(1 for b in bars if b[0] not in peers)
        for j, (name, gflops, ws) in enumerate(bars):
            pos = x + (j - (len(bars) - 1) / 2) * width
            style = _PEER_STYLE[peers.index(name) % 2] if name in peers else \
                {"color": colour[name]}
            label = None if name in labelled else name
            labelled.add(name)
            ax_speed.bar(pos, gflops, width, label=label, **style)
            speeds.append(gflops)
            if ws is not None:  # ours only, centred on the tick
                ax_ws.bar(x + (j - (n_ours - 1) / 2) * width, max(ws, 1) / 2**20, width,
                          color=colour[name])
    meta = result["metadata"]
    peak = meta["fma_peak"]["gflops"]
    if peak:
        ax_speed.axhline(peak, color="red", lw=1, ls="--", label=f"FMA peak {peak:.0f}")
    top = max(speeds + [peak or 0])
    if top > 20 * max(min(speeds), 1e-9):
        ax_speed.set_yscale("log")
        ax_speed.set_ylim(top=top * 4)  # headroom for the legend
    else:
        ax_speed.set_ylim(0, top * 1.3)
    ax_speed.set_ylabel("GFLOP/s (plan call)")
    ax_speed.set_title(f"leanconv {meta['version']}: {', '.join(meta['suites'])}; isa "
                       f"{meta['isa']}, {meta['threads']} thread(s), batch {meta['batch']}")
    handles = dict(zip(*reversed(ax_speed.get_legend_handles_labels())))
    order = [n for n in algs + peers if n in handles] + [n for n in handles if n not in labelled]
    ax_speed.legend([handles[n] for n in order], order, fontsize=8, loc="upper right",
                    ncol=min(len(order), 6))
    ax_speed.grid(axis="y", alpha=0.3)
    ax_ws.set_yscale("log")
    ax_ws.set_ylabel("workspace MiB (log; 0 drawn as 1 B)")
    ax_ws.set_title("leanconv workspace beyond the output, per call")
    ax_ws.grid(axis="y", alpha=0.3)
    ax_ws.set_xticks(range(len(layers)))
    ax_ws.set_xticklabels([label for label, _ in layers], rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise CliError(f"--plot {path!r}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
