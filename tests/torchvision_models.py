"""torchvision's model code without its compiled ops.

The torchvision wheel here is a CUDA build whose C++ ops fail to load beside
CPU torch (`operator torchvision::nms does not exist`); only its pure-Python
model definitions are used, so the two op schemas it registers fake kernels
for are defined first.  Random weights only: nothing is downloaded."""
from __future__ import annotations

import functools

import torch

ARCHITECTURES = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large",
                 "efficientnet_b0", "convnext_tiny", "regnet_y_400mf", "squeezenet1_1",
                 "densenet121", "vgg11", "deeplabv3_mobilenet_v3_large")


@functools.lru_cache(maxsize=None)
def _torchvision_models():
    try:
        torch.ops.torchvision.nms  # noqa: B018 - present when the real ops loaded
    except (AttributeError, RuntimeError):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _torchvision_models.lib = lib       # keep the definitions alive
    import torchvision.models
    import torchvision.models.segmentation
    return torchvision.models


def make(name, seed=0):
    """Architecture `name` with random weights and randomised BN statistics, in eval mode."""
    tvm = _torchvision_models()
    torch.manual_seed(seed)
    if name.startswith(("deeplabv3", "fcn")):
        model = getattr(tvm.segmentation, name)(weights=None, weights_backbone=None,
                                                aux_loss=False)
    else:
        model = getattr(tvm, name)(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def output(y):
    """The tensor a model returned (segmentation models return {'out': ...})."""
    return y["out"] if isinstance(y, dict) else y
