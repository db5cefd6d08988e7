"""Command-line parsing: the argparse tree and the parsers of option values.

Every mistake becomes a CliError (or argparse's own error, re-routed to one
line), so the user sees one line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import argparse
import sys

from .errors import CliError
from .suites import DEFAULT_SUITE, SUITES, Layer
from .timing import MIN_RUNS, MIN_TIME_S

PEERS = ("torch", "onnxruntime", "openvino", "ncnn")
_PEER_ALIASES = {"torch": "torch", "pytorch": "torch", "onnxruntime": "onnxruntime",
                 "ort": "onnxruntime", "onnx": "onnxruntime", "openvino": "openvino",
                 "ov": "openvino", "ncnn": "ncnn"}


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we print one line."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="leanconv", description="leanconv: lean CPU float32 convolutions.")
    p.add_argument("--version", action="version", version=f"leanconv {_version()}")
    sub = p.add_subparsers(dest="command", metavar="{info,bench,profile,split,tune}",
                           parser_class=_Parser)
    sub.required = True

    info = sub.add_parser("info", help="version, build, CPU, ISAs, threads, FMA peak")
    info.add_argument("--json", action="store_true", help="print the same as JSON")
    info.add_argument("--peak-time", type=float, default=0.2, metavar="S",
                      help="seconds spent measuring each ISA's FMA peak (default 0.2)")

    b = sub.add_parser(
        "bench", help="time convolution layers, optionally against PyTorch / ONNX Runtime",
        description="Time the conv layers of a suite or custom layers per algorithm:\n"
                    "pre-packed plan calls and functional lc.conv2d calls, median over\n"
                    "repeats, against peers with --compare.",
        epilog="examples:\n"
               "  leanconv bench --suite cifar_resnet20 --compare torch\n"
               "  leanconv bench --suite resnet18 --threads 1 --compare torch,onnxruntime "
               "--json r18.json --plot r18.png\n"
               "  leanconv bench --layer C=256,H=14,M=256,k=3,pad=1 --algorithms all",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--suite", default=None, metavar="NAME[,NAME]",
                   help=f"built-in suites: {', '.join(SUITES)} (default {DEFAULT_SUITE} "
                        f"when no --layer is given)")
    b.add_argument("--layer", action="append", default=[], metavar="SPEC",
                   help="custom layer, e.g. C=64,H=56,W=56,M=64,k=3,stride=1,pad=1; "
                        "keys C H W M k (or kH kW) stride pad groups dilation N; W defaults "
                        "to H, N to --batch (repeatable)")
    b.add_argument("--algorithms", default="auto", metavar="LIST",
                   help="comma list of auto, winograd, " + ", ".join(_algorithms())
                        + ", or 'all' (auto plus every algorithm that supports the layer)")
    b.add_argument("--isa", default=None, help="micro-kernel ISA (see leanconv info)")
    b.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for leanconv and the peers (default: lc.get_num_threads())")
    b.add_argument("--batch", type=_positive_int, default=1, metavar="N",
                   help="batch size N of suite layers (default 1)")
    add_timing_options(b)
    b.add_argument("--compare", default="", metavar="LIST",
                   help="peers: torch, onnxruntime, openvino, ncnn (a peer not installed is skipped)")
    b.add_argument("--json", dest="json_path", default=None, metavar="FILE",
                   help="write the results as JSON")
    b.add_argument("--csv", dest="csv_path", default=None, metavar="FILE",
                   help="write the rows as CSV")
    b.add_argument("--plot", dest="plot_path", default=None, metavar="FILE.png",
                   help="draw per-layer speed and workspace charts (needs matplotlib)")
    b.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="benchmark a whole ONNX model instead (needs leanconv.onnx)")
    b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    from .tool_args import add_profile_parser, add_split_parser
    add_profile_parser(sub)
    add_split_parser(sub)
    add_tune_parser(sub)
    return p


def add_timing_options(parser):
    """--min-time / --min-runs: one definition for every command that times."""
    parser.add_argument("--min-time", type=_positive_float, default=MIN_TIME_S, metavar="S",
                        help=f"at least this many seconds of timed calls per figure "
                             f"(default {MIN_TIME_S:g})")
    parser.add_argument("--min-runs", type=_positive_int, default=MIN_RUNS, metavar="N",
                        help=f"and at least this many timed calls; the median is reported with "
                             f"its spread (default {MIN_RUNS})")


def _version():
    from leanconv import __version__
    return __version__


def add_tune_parser(sub):
    t = sub.add_parser(
        "tune", help="measure the layers of a suite or ONNX model into the wisdom file",
        description="Time every algorithm on each distinct conv layer (algorithm='measure') "
                    "and keep the winners in the wisdom file (lc.wisdom_path(); "
                    "LEANCONV_WISDOM=path overrides), which 'auto' then follows.")
    t.add_argument("--suite", default=None, metavar="NAME[,NAME]",
                   help=f"built-in suites: {', '.join(SUITES)}")
    t.add_argument("--model", default=None, metavar="MODEL.onnx",
                   help="the conv layers of an ONNX model (needs leanconv.onnx)")
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="threads to tune for (default: lc.get_num_threads())")
    t.add_argument("--batch", type=_positive_int, default=1, metavar="N",
                   help="batch size N of suite layers (default 1)")
    t.add_argument("--isa", default=None, help="micro-kernel ISA (see leanconv info)")


def _algorithms():
    from leanconv import algorithms
    return algorithms()


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def split_list(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_suites(text):
    names = split_list(text)
    for name in names:
        if name not in SUITES:
            raise CliError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    if not names:
        raise CliError(f"--suite is empty; choose from {', '.join(SUITES)}")
    return names


def parse_algorithms(text):
    """-> list of requested names ('auto' and 'winograd' kept as asked)."""
    concrete = _algorithms()
    names = split_list(text)
    if not names:
        raise CliError("--algorithms is empty")
    out = []
    for name in names:
        if name == "all":
            out += ["auto"] + list(concrete)
        elif name in concrete or name in ("auto", "winograd"):
            out.append(name)
        else:
            raise CliError(f"unknown algorithm {name!r}; choose from auto, winograd, "
                           f"{', '.join(concrete)} or all")
    return list(dict.fromkeys(out))  # keep order, drop repeats


def parse_peers(text):
    out = []
    for name in split_list(text):
        key = _PEER_ALIASES.get(name.lower())
        if key is None:
            raise CliError(f"unknown peer {name!r} in --compare; choose from {', '.join(PEERS)}")
        out.append(key)
    return list(dict.fromkeys(out))


_LAYER_KEYS = {"c": "C", "h": "H", "w": "W", "m": "M", "n": "N", "k": "k", "kh": "kH",
               "kw": "kW", "stride": "stride", "s": "stride", "pad": "pad",
               "padding": "pad", "p": "pad", "groups": "groups", "g": "groups",
               "dilation": "dilation", "d": "dilation"}


def parse_layer(text, batch=1, index=1):
    """'C=64,H=56,W=56,M=64,k=3,stride=1,pad=1' -> Layer (W defaults to H,
    N to --batch).  Checks only the syntax and value ranges here; whether
    the convolution is possible is checked against leanconv by the caller."""
    fields = {}
    for part in split_list(text):
        key, sep, value = part.partition("=")
        name = _LAYER_KEYS.get(key.strip().lower())
        if not sep or name is None:
            raise CliError(f"malformed --layer {text!r}: {part!r} is not KEY=INT with KEY in "
                           f"C, H, W, M, k (or kH, kW), stride, pad, groups, dilation, N")
        if name in fields:
            raise CliError(f"malformed --layer {text!r}: {key.strip()} given twice")
        try:
            fields[name] = int(value)
        except ValueError:
            raise CliError(f"malformed --layer {text!r}: {key.strip()}={value.strip()!r} "
                           f"is not an integer") from None
    missing = [k for k in ("C", "H", "M") if k not in fields]
    if "k" not in fields and not ("kH" in fields and "kW" in fields):
        missing.append("k")
    if missing:
        raise CliError(f"malformed --layer {text!r}: missing {', '.join(missing)}")
    k = fields.pop("k", None)
    fields.setdefault("kH", k)
    fields.setdefault("kW", k)
    fields.setdefault("W", fields["H"])
    fields.setdefault("N", batch)
    for key, value in fields.items():
        low = 0 if key == "pad" else 1
        if value < low:
            raise CliError(f"impossible --layer {text!r}: {key} must be >= {low}, got {value}")
    if fields["C"] % fields.get("groups", 1):
        raise CliError(f"impossible --layer {text!r}: C={fields['C']} is not divisible by "
                       f"groups={fields['groups']}")
    if fields["M"] % fields.get("groups", 1):
        raise CliError(f"impossible --layer {text!r}: M={fields['M']} is not divisible by "
                       f"groups={fields['groups']}")
    layer = Layer(name=f"layer{index}", **fields)
    OH, OW = layer.out_hw
    if OH < 1 or OW < 1:
        eh = layer.dilation * (layer.kH - 1) + 1
        ew = layer.dilation * (layer.kW - 1) + 1
        raise CliError(f"impossible --layer {text!r}: kernel extent {eh}x{ew} is larger than "
                       f"the padded input {layer.H + 2 * layer.pad}x{layer.W + 2 * layer.pad}")
    return layer
