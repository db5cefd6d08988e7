"""`leanconv bench --model model.onnx`: delegate to leanconv.onnx.bench."""
from __future__ import annotations

import json

from .errors import CliError


def run(opts, threads) -> int:
    try:
        from leanconv.onnx.bench import bench_model
    except ImportError as e:
        raise CliError(f"--model needs leanconv.onnx.bench, which cannot be imported here "
                       f"({e}); install onnx and onnxruntime or use a build that has it") from None
    try:
        result = bench_model(opts.model, threads=threads, min_time=opts.min_time,
                             compare=opts.compare_list)
    except FileNotFoundError:
        raise CliError(f"--model {opts.model!r}: no such file") from None
    except (ValueError, TypeError) as e:
        raise CliError(f"--model {opts.model!r}: {e}") from None
    print(result.get("text", ""))
    if opts.json_path:
        with open(opts.json_path, "w") as f:
            json.dump({k: v for k, v in result.items() if k != "text"}, f, indent=2, default=str)
            f.write("\n")
    return 0
