"""`leanconv split MODEL.onnx ...`: parse the limits, profile the model here
(the device), pick the cut (leanconv.tools.split), write the two parts and
the JSON report."""
from __future__ import annotations

import json

from .errors import CliError
from .model import load_prepared
from .profile_cmd import measure, write_json
from .tool_args import parse_shapes
from .report import fmt_bytes, fmt_ms, render

SCHEMA = "leanconv-split/1"
FIELDS = ("cut", "device_nodes", "server_nodes", "device_ms", "transfer_bytes", "transfer_ms",
          "server_ms", "total_ms", "device_peak_bytes")


def _limits(opts):
    from leanconv.tools import units
    try:
        memory = units.parse_size(opts.device_memory, "--device-memory")
        uplink = units.parse_rate(opts.uplink, "--uplink")
        rtt = units.parse_time(opts.rtt, "--rtt")
        cap = None
        if opts.max_device_ms is not None:
            text = opts.max_device_ms.strip()
            cap = units.parse_time(text + ("ms" if _plain_number(text) else ""),
                                   "--max-device-ms") * 1e3
    except ValueError as e:
        raise CliError(str(e)) from None
    return memory, uplink, rtt, cap


def _plain_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _speedup(text):
    try:
        x = float(text)
    except ValueError:
        raise CliError(f"--server-speedup {text!r} is not a number (e.g. 20)") from None
    if not 0 < x < float("inf"):
        raise CliError(f"--server-speedup {text!r} must be a finite number > 0")
    return x


def _load_profile(path, option):
    """A `leanconv profile --json` file, or a CliError naming `option`."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CliError(f"{option} {path!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{option} {path!r}: {getattr(e, 'strerror', None) or e}") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{option} {path!r} is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or data.get("schema") != "leanconv-profile/1" or \
            not isinstance(data.get("nodes"), list):
        raise CliError(f"{option} {path!r} is not a `leanconv profile --json` file")
    return data


def _device_profile(opts):
    """(model, profile): measured here, or read from --device-profile (the
    profile taken on the device itself) after checking it is this model's."""
    if opts.device_profile is None:
        return measure(opts)
    profile = _load_profile(opts.device_profile, "--device-profile")
    import leanconv as lc
    from leanconv.tools import executor
    model, prepared, feeds = load_prepared(opts.model, opts.threads or lc.get_num_threads(),
                                           "model", parse_shapes(opts.input_shape))
    mine = executor.step_names(prepared, feeds)
    theirs = [n.get("name") for n in profile["nodes"]]
    if theirs != mine or profile.get("inputs") != {k: list(v.shape) for k, v in feeds.items()}:
        raise CliError(f"--device-profile {opts.device_profile!r} is not a profile of this model "
                       f"with these input shapes ({len(theirs)} nodes, inputs "
                       f"{profile.get('inputs')}; the model has {len(mine)} nodes)")
    return model, profile


def run(opts) -> int:
    from leanconv.tools import split
    memory, uplink, rtt, cap = _limits(opts)
    speedup = _speedup(opts.server_speedup) if opts.server_speedup is not None else None
    theirs = _load_profile(opts.server_profile, "--server-profile") if opts.server_profile \
        else None
    model, profile = _device_profile(opts)
    try:
        server_ms = split.server_times(profile, speedup, theirs)
        result = split.choose(profile, memory, uplink, rtt, server_ms, cap)
    except ValueError as e:   # NoFeasibleCut included: one line naming the budget
        raise CliError(str(e)) from None
    try:
        written = split.write_parts(model, result, opts.out)
    except OSError as e:
        raise CliError(f"--out {opts.out!r}: {e.strerror or e}") from None
    report = {"schema": SCHEMA, "model": opts.model,
              **{k: result[k] for k in FIELDS},
              "device_outputs": result["device_outputs"],
              "server_outputs": result["server_outputs"],
              "files": written,
              "limits": {"device_memory_bytes": memory, "uplink_bytes_per_s": uplink,
                         "rtt_ms": rtt * 1e3, "max_device_ms": cap,
                         "server": ({"speedup": speedup} if theirs is None else
                                    {"profile": opts.server_profile})},
              "profile": {k: profile[k] for k in ("version", "isa", "threads", "runs",
                                                  "inputs", "total_ms", "peak_bytes")},
              "enumeration": result["enumeration"],
              "cuts_considered": result["cuts_considered"],
              "candidates": [{k: c[k] for k in FIELDS} for c in result["candidates"]]}
    print(format_summary(report))
    if opts.json_path:
        write_json(report, opts.json_path)
    return 0


def format_summary(r) -> str:
    from leanconv.tools.split import describe
    from leanconv.tools.units import format_rate
    lim = r["limits"]
    server = (f"{lim['server']['speedup']:g}x faster server" if "speedup" in lim["server"]
              else f"server profile {lim['server']['profile']}")
    lines = [f"leanconv split {r['model']}: device memory {fmt_bytes(lim['device_memory_bytes'])}, "
             f"uplink {format_rate(lim['uplink_bytes_per_s'])}, rtt {lim['rtt_ms']:g} ms, "
             f"{server}"
             + (f", device time <= {lim['max_device_ms']:g} ms" if lim["max_device_ms"] else ""),
             f"{r['cuts_considered']} cuts considered ({r['enumeration']}), "
             f"{len(r['candidates'])} within the limits", "",
             f"best: {describe(r)}",
             f"  device {fmt_ms(r['device_ms'])} ms + transfer {fmt_ms(r['transfer_ms'])} ms "
             f"({fmt_bytes(r['transfer_bytes'])}) + server {fmt_ms(r['server_ms'])} ms = "
             f"{fmt_ms(r['total_ms'])} ms; device peak {fmt_bytes(r['device_peak_bytes'])}",
             "  wrote " + (", ".join(r["files"].values()) or "nothing"), "",
             "fastest candidates:"]
    table = [["total ms", "device ms", "sent", "server ms", "device peak", "cut"]]
    for c in r["candidates"][:8]:
        cut = ", ".join(c["cut"]) or "(none: all on the device)"
        table.append([fmt_ms(c["total_ms"]), fmt_ms(c["device_ms"]),
                      fmt_bytes(c["transfer_bytes"]), fmt_ms(c["server_ms"]),
                      fmt_bytes(c["device_peak_bytes"]), cut[:60]])
    lines += ["  " + line for line in render(table, set(table[0][:5]))]
    return "\n".join(lines)
