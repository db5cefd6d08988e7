"""torchvision networks (random weights, torchvision_models.make) exported to
ONNX, for the profile / split tests and benchmarks."""
from __future__ import annotations

import warnings

import torch

import torchvision_models


def load_torchvision():
    """torchvision's model code (ImportError when it is not installed)."""
    return torchvision_models._torchvision_models()


def export(name, path, size=64, seed=0):
    """Export torchvision.models.<name> (random weights, eval mode) for a
    1x3xSIZExSIZE input named x, output y, opset 17; -> path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # GoogLeNet's init notice, the exporter's deprecation
        model = torchvision_models.make(name, seed)
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path),
                          input_names=["x"], output_names=["y"], dynamo=False,
                          opset_version=17)
    return path
