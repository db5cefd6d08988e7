"""Bench results as a human table, JSON and CSV -- the same data in each.

JSON schema "leanconv-bench/1":

  {"schema": "leanconv-bench/1",
   "metadata": {"version", "isa", "threads",
                "cpu": {"name", "machine", "features": [flag, ...]},
                "peers": {name: {"status": "ok", "version", "config"}
                               | {"status": "skipped", "reason"}},
                "fma_peak": {"isa", "gflops_per_thread", "gflops"},   (null: not measured)
                "algorithms", "suites", "batch", "min_time_s", "min_runs", "noisy_spread",
                "loadavg", "python", "numpy", "command"},
   "rows": [row, ...],
   "notes": [str, ...]}

A row is one layer x one requested algorithm (kind "layer"), or the count-
weighted sum of a suite for one requested algorithm (kind "total"):

  kind, suite, layer, shape, count      what and how often in the network
  N, C, H, W, M, kH, kW, stride, pad, dilation, groups, OH, OW   (layer rows)
  gflop            2*N*M*OH*OW*(C/groups)*kH*kW / 1e9 of one call (total: x count, summed)
  requested        the name asked for (auto, winograd, or a concrete algorithm)
  algorithm        the concrete algorithm that ran ("mixed" in a total when auto
                   picked several); auto_choice: true when auto picks this one
  status, note     "ok" | "skipped" (note says why) | "partial" (total missing layers)
  plan_ms          median ms of a pre-packed plan call into a preallocated output,
                   over at least min_runs calls and min_time_s seconds
  plan_min_ms      the fastest such call (layer rows): robust to a busy machine
  plan_q1_ms, plan_q3_ms, plan_max_ms   its quartiles and slowest call (layer rows)
  plan_spread      (q3 - q1) / median (layer rows)
  noisy            true when the plan's or a peer's spread exceeds noisy_spread
                   (total: when any of its layers is noisy)
  plan_gflops      gflop / plan time; plan_peak_pct: % of fma_peak.gflops (null if unknown)
  func_ms, func_gflops   the same for lc.conv2d (packs weights, allocates output)
  repeats          timed plan calls behind the median
  workspace_bytes  bytes a call allocates beyond its output (total: the largest layer's)
  packed_bytes     bytes of the packed weights; weight_bytes: raw float32 weights;
  packed_ratio     packed / raw (Winograd holds alpha^2/9 = 1.8-7.1x the raw weights)
  <peer>_ms        median ms of the peer on the same layer (torch, onnxruntime);
  <peer>_min_ms    its fastest call; <peer>_spread its (q3 - q1) / median (layer rows)
  vs_<peer>        <peer>_ms / plan_ms: > 1 means leanconv is faster (total: ratio of
                   the count-weighted sums, which one slow layer can dominate)
  vs_<peer>_geomean, vs_<peer>_min, vs_<peer>_max   (total rows) count-weighted
                   geometric mean of the layers' vs_<peer>, and their range
A skipped row has null timings and sizes."""
from __future__ import annotations

import csv
import json
from collections import defaultdict

BASE_FIELDS = [
    "kind", "suite", "layer", "shape", "count", "N", "C", "H", "W", "M", "kH", "kW",
    "stride", "pad", "dilation", "groups", "OH", "OW", "gflop", "requested", "algorithm",
    "auto_choice", "status", "note", "plan_ms", "plan_min_ms", "plan_q1_ms", "plan_q3_ms",
    "plan_max_ms", "plan_spread", "noisy", "plan_gflops", "plan_peak_pct", "func_ms",
    "func_gflops", "repeats", "workspace_bytes", "packed_bytes", "weight_bytes", "packed_ratio",
]
PEER_FIELDS = ["{}_ms", "{}_min_ms", "{}_spread", "vs_{}", "vs_{}_geomean", "vs_{}_min",
               "vs_{}_max"]


def peer_names(result):
    return [n for n, st in result["metadata"]["peers"].items() if st["status"] == "ok"]


def fields(result):
    out = list(BASE_FIELDS)
    for name in peer_names(result):
        out += [f.format(name) for f in PEER_FIELDS]
    return out


def normalized_rows(result):
    """Every row with every field (missing ones None), in field order."""
    keys = fields(result)
    return [{k: row.get(k) for k in keys} for row in result["rows"]]


def write_json(result, path):
    out = dict(result, rows=normalized_rows(result))
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def write_csv(result, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields(result))
        writer.writeheader()
        for row in normalized_rows(result):
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


# ---- the human table -------------------------------------------------------

def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _shown(rows):
    """Hide an auto/winograd row whose algorithm was also asked for by name:
    the named row (marked *) already shows the same measurement."""
    named = {(r["suite"], r["layer"], r["algorithm"]) for r in rows
             if r["requested"] == r["algorithm"]}
    out = []
    for r in rows:
        if r["status"] == "skipped" and r["kind"] == "layer":
            continue  # listed under the table instead
        if r["kind"] == "layer" and r["requested"] != r["algorithm"] and \
                (r["suite"], r["layer"], r["algorithm"]) in named:
            continue
        out.append(r)
    return out


def _alg_label(r):
    if r["kind"] == "total":
        return r["requested"] if r["requested"] == r["algorithm"] else \
            f"{r['requested']} ({r['algorithm'] or '-'})"
    return r["algorithm"] + ("*" if r["auto_choice"] else "")


def format_table(result) -> str:
    meta = result["metadata"]
    peers = peer_names(result)
    peak = meta["fma_peak"]["gflops"]
    load = meta.get("loadavg")
    head = (f"leanconv {meta['version']} bench  isa={meta['isa']}  threads={meta['threads']}  "
            f"batch={meta['batch']}  min-time={meta['min_time_s']:g}s  "
            f"min-runs={meta['min_runs']}  cpu: {meta['cpu']['name']}"
            + (f"  load {load:.2f}" if load is not None else ""))
    head += f"\nFMA peak {peak:.1f} GFLOP/s ({meta['threads']} thread(s))" if peak else \
        "\nFMA peak: n/a in this build (no %peak column)"
    cols = ["layer", "shape", "x", "algorithm", "ms", "IQR"] + (["%peak"] if peak else []) + \
        ["fn ms", "workspace", "packed (xraw)"] + [f"{p} ms (vs)" for p in peers]
    cols.insert(6, "GFLOP/s")
    right = set(cols) - {"layer", "shape", "algorithm"}
    lines = [head]
    rows = _shown(result["rows"])
    for suite_name in dict.fromkeys(r["suite"] for r in rows):
        table = [cols]
        last_layer = None
        for r in (r for r in rows if r["suite"] == suite_name):
            first = r["layer"] != last_layer
            last_layer = r["layer"]
            if first and r["kind"] == "total":
                table.append(["--"])
            # a total's shape and count differ per algorithm when some layers were skipped
            every = r["kind"] == "total"
            cells = [r["layer"] if first else "", r["shape"] if first or every else "",
                     str(r["count"]) if first or every else "", _alg_label(r)]
            if r["status"] == "skipped":
                cells += ["skipped"] + [""] * (len(cols) - len(cells) - 1)
            else:
                cells += [fmt_ms(r["plan_ms"]), _spread_cell(r), f"{r['plan_gflops']:.1f}"]
                if peak:
                    cells.append(f"{r['plan_peak_pct']:.0f}%")
                cells += [fmt_ms(r["func_ms"]), fmt_bytes(r["workspace_bytes"]),
                          f"{fmt_bytes(r['packed_bytes'])} ({r['packed_ratio']:.1f}x)"]
                cells += [_peer_cell(r, p) for p in peers]
            table.append(cells)
        lines += ["", f"suite {suite_name}"] + render(table, right)
    lines += ["", f"ms = median of >= {meta['min_runs']} plan calls and >= "
              f"{meta['min_time_s']:g} s (weights pre-packed); IQR = interquartile range / "
              f"median, '!' = noisy (> {meta['noisy_spread']:.0%} here or at a peer);",
              "fn ms = lc.conv2d (packs each call); * = auto's choice; (vs) = peer time / "
              "leanconv plan time: > 1 means leanconv is faster.",
              "TOTAL = layers weighted by count; its (vs) is the count-weighted geometric mean "
              "of the layers' ratios (one outlier",
              "layer cannot dominate it), 'sum' the ratio of the summed times; the layers' "
              "range is in the JSON."]
    if peak:
        lines.append("%peak = GFLOP/s over the FMA peak x threads, counting direct-convolution "
                     "FLOPs: Winograd does fewer multiplies and can pass 100%.")
    lines += _notes(result)
    return "\n".join(lines)


def _spread_cell(r):
    if r["kind"] == "total":
        return "!" if r.get("noisy") else ""
    return f"{100 * r['plan_spread']:.0f}%" + ("!" if r.get("noisy") else "")


def _peer_cell(r, p):
    v = r.get(f"{p}_ms")
    if v is None:
        return "-"
    if r["kind"] == "total":
        return f"{fmt_ms(v)} ({r[f'vs_{p}_geomean']:.2f}x geo, {r[f'vs_{p}']:.2f}x sum)"
    return f"{fmt_ms(v)} ({r[f'vs_{p}']:.2f}x)"


def render(table, right):
    """Aligned text lines of table (header row first; ["--"] is a rule); columns
    whose header is in `right` are right-aligned."""
    header = table[0]
    widths = [max(len(row[i]) for row in table if len(row) > 1) for i in range(len(header))]
    out = []
    for row in table:
        if row == ["--"]:
            out.append("  ".join("-" * w for w in widths))
            continue
        cells = [c.rjust(w) if header[i] in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def _notes(result):
    """Skipped algorithms grouped (one line per algorithm and reason), then other notes."""
    skipped = defaultdict(list)
    for r in result["rows"]:
        if r["kind"] == "layer" and r["status"] == "skipped":
            skipped[(r["requested"], r["note"])].append(r["layer"])
    out = []
    for (req, why), layers in skipped.items():
        which = ", ".join(layers[:4]) + (f" and {len(layers) - 4} more" if len(layers) > 4 else "")
        out.append(f"note: {req} skipped on {which}: {why}")
    return out + [f"note: {n}" for n in result["notes"]]
