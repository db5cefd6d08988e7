"""`leanconv profile MODEL.onnx`: the per-node table, JSON and plot of
leanconv.tools.profile (which documents the fields and the memory model)."""
from __future__ import annotations

import json

from .errors import CliError
from .model import load_prepared
from .report import fmt_bytes, fmt_ms, render
from .tool_args import parse_shapes


def measure(opts, option="model"):
    """(model proto, the profile dict) of opts.model on this machine."""
    import leanconv as lc
    threads = opts.threads or lc.get_num_threads()
    model, prepared, feeds = load_prepared(opts.model, threads, option,
                                           parse_shapes(opts.input_shape))
    from leanconv.tools.profile import profile_model
    try:
        result = profile_model(model, prepared, feeds, opts.min_runs, opts.min_time,
                               label=opts.model)
    except (ValueError, TypeError) as e:
        raise CliError(f"{option} {opts.model!r}: {e}") from None
    return model, result


def write_json(data, path):
    try:
        with open(path, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    except OSError as e:
        raise CliError(f"--json {path!r}: {e.strerror or e}") from None


def run(opts) -> int:
    if opts.plot_path:
        from .plot import require_pyplot
        require_pyplot()
    _, result = measure(opts)
    if not opts.quiet:
        print(format_table(result))
    if opts.json_path:
        write_json(result, opts.json_path)
    if opts.plot_path:
        from .profile_plot import plot_profile
        plot_profile(result, opts.plot_path)
    return 0


def format_table(r) -> str:
    inputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in r["inputs"].items())
    lines = [f"leanconv {r['version']} profile {r['model']}  isa={r['isa']}  "
             f"threads={r['threads']}  inputs: {inputs}", ""]
    table = [["#", "node", "op", "ms", "output", "packed", "workspace", "live"]]
    for i, n in enumerate(r["nodes"]):
        table.append([str(i), n["name"], n["op"], fmt_ms(n["ms"]), fmt_bytes(n["output_bytes"]),
                      fmt_bytes(n["packed_bytes"]), fmt_bytes(n["workspace_bytes"]),
                      fmt_bytes(n["live_bytes"])])
    lines += render(table, set(table[0]) - {"node", "op"})
    peak_at = max(range(len(r["nodes"])), key=lambda i: r["nodes"][i]["live_bytes"]) \
        if r["nodes"] else None
    lines += ["", f"total {fmt_ms(r['total_ms'])} ms (sum of the nodes' medians over "
              f"{r['runs']} runs); peak {fmt_bytes(r['peak_bytes'])}"
              + (f" at node {peak_at}" if peak_at is not None else ""),
              "live = weights loaded so far (packed + raw kept) + live activations "
              "(inputs, outputs, values still to be read) + workspace"]
    return "\n".join(lines)
