"""torchvision networks (random weights) exported to ONNX, for the profile /
split tests and benchmarks.

torchvision's compiled ops do not load beside the CPU-only torch here, and its
model code needs only the schemas of two of them: define those before the
import.  Nothing is downloaded."""
from __future__ import annotations

import warnings

_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_library = None


def load_torchvision():
    """(torch, torchvision), the two schemas defined first."""
    global _library
    import torch
    if _library is None:
        try:
            _library = torch.library.Library("torchvision", "DEF")
            for schema in _SCHEMAS:
                _library.define(schema)
        except RuntimeError:   # already defined (torchvision's own ops loaded after all)
            pass
    import torchvision
    return torch, torchvision


_OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": False}}


def export(name, path, size=64, seed=0):
    """Export torchvision.models.<name> (random weights, eval mode) for a
    1x3xSIZExSIZE input named x, output y, opset 17; -> path."""
    torch, torchvision = load_torchvision()
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, **_OPTIONS.get(name, {})).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path),
                          input_names=["x"], output_names=["y"], dynamo=False,
                          opset_version=17)
    return path
