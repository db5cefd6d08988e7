"""The command-line arguments bench/onnx_models.py and bench/model_threads.py
share: which ONNX exports, how long each engine runs, where exports are kept."""
from __future__ import annotations

import os


def add_model_args(parser, *, min_time, min_rounds=5):
    """Adds --size, --no-zoo, --zoo, --min-time, --min-rounds and --cache to an
    argparse parser (min_time / min_rounds: the script's defaults)."""
    parser.add_argument("--size", type=int, default=128, help="input size of the exports")
    parser.add_argument("--no-zoo", action="store_true", help="skip the onnx light zoo")
    parser.add_argument("--zoo", default="",
                        help="only these models of the light zoo, comma-separated (default: all)")
    parser.add_argument("--min-time", type=float, default=min_time,
                        help="seconds each engine runs per model, at least")
    parser.add_argument("--min-rounds", type=int, default=min_rounds,
                        help="interleaved turns per model, at least")
    parser.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                        "leanconv-onnx-exports"),
                        help="directory the exports are written to and reused from")
