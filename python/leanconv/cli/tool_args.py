"""The argparse side of `leanconv profile` and `leanconv split` (values that need
units are parsed later, by leanconv.tools.units, so their errors are one line)."""
from __future__ import annotations

import argparse

from .args import _positive_int, add_timing_options
from .errors import CliError


def _common(p):
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model (leanconv.onnx runs it)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads per convolution (default: lc.get_num_threads())")
    p.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]1x3xHxW",
                   help="input shape (repeatable, NAME= when the model has several inputs; "
                        "default: the declared shape, symbolic dimensions 1)")
    add_timing_options(p)
    p.add_argument("--json", dest="json_path", default=None, metavar="FILE",
                   help="write the result as JSON")


def add_profile_parser(sub):
    p = sub.add_parser(
        "profile", help="time and memory of every node of an ONNX model on leanconv",
        description="Run MODEL.onnx through leanconv.onnx and report per node: time (median\n"
                    "of whole-model runs), output, packed-weight and workspace bytes, and the\n"
                    "memory held while it runs; and the model's peak.",
        epilog="example:\n  leanconv profile resnet18.onnx --threads 1 --json r18.json "
               "--plot r18.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--plot", dest="plot_path", default=None, metavar="FILE.png",
                   help="draw time and memory along the network (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no table on stdout")


def add_split_parser(sub):
    p = sub.add_parser(
        "split", help="cut an ONNX model between a device and a server for the lowest latency",
        description="Consider every cut of MODEL.onnx into a device prefix and a server\n"
                    "suffix; latency = device time + RTT + bytes sent / uplink + server time;\n"
                    "reject cuts over the device memory or time budget; write the fastest as\n"
                    "DIR/device.onnx and DIR/server.onnx.",
        epilog="examples:\n"
               "  leanconv split r18.onnx --device-memory 64MiB --uplink 10Mbit/s --rtt 40ms "
               "--server-speedup 20 --out parts\n"
               "  leanconv split r18.onnx --device-memory 1GiB --uplink 50Mbit/s --rtt 20ms "
               "--server-profile server.json --max-device-ms 30 --out parts --json split.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--device-memory", required=True, metavar="SIZE",
                   help="device memory budget: bytes or e.g. 64MiB, 512MB")
    p.add_argument("--uplink", required=True, metavar="RATE",
                   help="device-to-server rate, e.g. 10Mbit/s, 1Gbit/s, 5MB/s")
    p.add_argument("--rtt", required=True, metavar="TIME", help="round-trip time, e.g. 40ms")
    server = p.add_mutually_exclusive_group(required=True)
    server.add_argument("--server-speedup", metavar="X",
                        help="the server runs every node X times faster than this machine")
    server.add_argument("--server-profile", metavar="PROFILE.json",
                        help="`leanconv profile --json` of the same model, run on the server")
    p.add_argument("--device-profile", metavar="PROFILE.json", default=None,
                   help="`leanconv profile --json` of this model taken on the device "
                        "(default: profile it here, on this machine)")
    p.add_argument("--max-device-ms", metavar="T", default=None,
                   help="cap on the device's compute time in ms (or with a unit, e.g. 0.1s)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for device.onnx and server.onnx (created if missing)")


def parse_shapes(texts):
    """['1x3x64x64', 'y=1x4'] -> {None: [1, 3, 64, 64], 'y': [1, 4]}."""
    shapes = {}
    for text in texts:
        name, sep, dims = text.rpartition("=")
        key = name.strip() if sep else None
        try:
            shape = [int(d) for d in dims.lower().replace(",", "x").split("x")]
        except ValueError:
            raise CliError(f"--input-shape {text!r}: expected [NAME=]DxDx... with integer "
                           f"dimensions, e.g. 1x3x224x224") from None
        if any(d < 1 for d in shape):
            raise CliError(f"--input-shape {text!r}: dimensions must be >= 1")
        if key in shapes:
            raise CliError(f"--input-shape given twice for {key or 'the input'}")
        shapes[key] = shape
    return shapes
