"""`leanconv tune`: measure the layers of a suite or an ONNX model ahead of
time, so the wisdom file (lc.wisdom_path()) holds their winners and "auto"
and "measure" use them without measuring."""
from __future__ import annotations

import os

import numpy as np

import leanconv as lc
from leanconv import _select, _wisdom

from .errors import CliError


def _suite_geometries(names, batch):
    from dataclasses import replace

    from .suites import SUITES
    seen = {}
    for name in names:
        for layer in SUITES[name]:
            layer = replace(layer, N=batch)
            params = dict(stride=layer.stride, padding=layer.pad, dilation=layer.dilation,
                          groups=layer.groups)
            key = (layer.x_shape, layer.w_shape, tuple(sorted(params.items())))
            seen.setdefault(key, (f"{name}: {layer.name}", layer.x_shape, layer.w_shape, params))
    return list(seen.values())


def _model_geometries(path):
    """Run the model once through leanconv.onnx to learn each Conv's input shape."""
    if not os.path.isfile(path):  # the user's mistake first, whatever is installed
        raise CliError(f"--model {path!r}: no such file")
    try:
        import onnx

        from leanconv.onnx import prepare
        from leanconv.onnx.bench import random_inputs
    except ImportError as e:
        raise CliError(f"--model needs leanconv.onnx ({e}); install onnx") from None
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise CliError(f"--model {path!r}: no such file") from None
    except Exception as e:  # onnx raises its own error types for bad files
        raise CliError(f"--model {path!r}: cannot read it ({e})") from None
    try:
        rep = prepare(model)
        rep.program.run(rep.feeds(random_inputs(model)))
    except (ValueError, TypeError, NotImplementedError) as e:
        raise CliError(f"--model {path!r}: {e}") from None
    seen = {}
    for step in rep.program.steps:
        conv = getattr(step, "conv", None)
        if conv is None or conv.last_plan is None:
            continue
        s = conv.last_plan.spec
        params = dict(stride=s.stride, padding=s.pads, dilation=s.dilation, groups=s.groups)
        w_shape = (s.M, s.Cg, s.kH, s.kW)
        key = (tuple(conv.last_input_shape), w_shape, tuple(sorted(params.items())))
        seen.setdefault(key, (f"{path}: {step.label()}", tuple(conv.last_input_shape), w_shape,
                              params))
    return list(seen.values())


def run(opts) -> int:
    if (opts.suite is None) == (opts.model is None):
        raise CliError("give one of --suite NAME[,NAME] or --model FILE.onnx")
    if lc.wisdom_path() is None:
        raise CliError("LEANCONV_WISDOM=off: there is no wisdom file to fill")
    if opts.isa:
        try:
            lc._isa.set_isa(opts.isa)
        except (TypeError, ValueError) as e:
            raise CliError(f"--isa: {e}") from None
    threads = opts.threads or lc.get_num_threads()
    if opts.suite is not None:
        from .args import parse_suites
        layers = _suite_geometries(parse_suites(opts.suite), opts.batch)
    else:
        layers = _model_geometries(opts.model)
    rng = np.random.default_rng(0)
    print(f"wisdom file: {lc.wisdom_path()}  (isa {lc.isa()}, {threads} thread(s))")
    isa_id = lc._isa.isa_id()
    for label, x_shape, w_shape, params in layers:
        w = rng.standard_normal(w_shape).astype(np.float32)
        plan = lc.Conv2d(w, algorithm="measure", **params)
        spec = plan.spec
        geometry = spec.geometry(*spec.input_dims(x_shape)[:4])
        had = _wisdom.lookup(lc.isa(), threads, spec, geometry)
        plan(np.ones(x_shape, np.float32), threads=threads)
        model = _select.cost_model("auto", isa_id, geometry, threads)
        print(f"  {label:52s} {plan.algorithm:12s} "
              f"({'already known' if had else 'measured'}; cost model: {model})")
    return 0
