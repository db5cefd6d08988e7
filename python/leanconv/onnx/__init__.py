"""leanconv as an ONNX backend (onnx.backend.base form), CPU float32 CNNs.

    import onnx, leanconv.onnx as lco
    rep = lco.prepare(onnx.load("resnet18.onnx"))
    (logits,) = rep.run([x])
    report = lco.bench.bench_model("resnet18.onnx", threads=1)   # vs onnxruntime
    print(report["text"])

Conv runs on leanconv (BatchNormalization folded into its weights, a residual
Add and the activation after it fused into its epilogue); pooling and
standalone activations in leanconv's C, the other supported ops in NumPy, all
in one static memory arena planned at prepare (rep.memory()).  Unsupported ops
or attributes are a NotImplementedError at prepare time naming them all."""
import importlib as _importlib
import importlib.util as _util

__all__ = ["LeanconvBackend", "LeanconvRep", "prepare", "run_model", "run_node",
           "supports_device", "is_compatible", "SUPPORTED_OPS", "bench"]

# The API is imported on first use, not with the package: the executor it
# runs on (program, schedule, arena, footprint, budget: none imports onnx) is
# what leanconv.torch.freeze runs frozen models on too, also where the onnx
# package is not installed, and importing it should not page in onnx (~5 MB
# of a frozen process's resident memory) nor the graph builders.
_HOME = {"SUPPORTED_OPS": "graph", "bench": None}


def __getattr__(name):
    if name not in __all__:
        raise AttributeError(f"module 'leanconv.onnx' has no attribute {name!r}")
    if _util.find_spec("onnx") is None:
        raise ImportError(f"leanconv.onnx.{name} needs the onnx package: pip install onnx")
    home = _HOME.get(name, "backend")
    if home is None:   # the module itself (it pulls in onnxruntime)
        return _importlib.import_module(f"{__name__}.{name}")
    return getattr(_importlib.import_module(f"{__name__}.{home}"), name)
