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
try:
    import onnx as _onnx  # noqa: F401  (absolute: the real onnx package)
except ImportError as e:  # pragma: no cover - exercised only without onnx
    raise ImportError("leanconv.onnx needs the onnx package: pip install onnx") from e

from leanconv.onnx.backend import (LeanconvBackend, LeanconvRep, is_compatible, prepare,
                                   run_model, run_node, supports_device)
from leanconv.onnx.graph import SUPPORTED_OPS

__all__ = ["LeanconvBackend", "LeanconvRep", "prepare", "run_model", "run_node",
           "supports_device", "is_compatible", "SUPPORTED_OPS", "bench"]


def __getattr__(name):
    if name == "bench":   # imported on first use: it pulls in onnxruntime
        import importlib
        return importlib.import_module("leanconv.onnx.bench")
    raise AttributeError(f"module 'leanconv.onnx' has no attribute {name!r}")
