"""ONNX files of torchvision models (random weights) and of the onnx package's
light zoo, for the leanconv.onnx tests and bench/onnx_models.py.

    path = export("resnet18", size=64, exporter="torchscript", cache_dir=tmp)
    model = onnx.load(path)

torchvision is imported by torchvision_onnx.load_torchvision (its compiled
ops do not load beside a CPU-only torch; the schemas its model code needs are
defined first).  Unlike torchvision_onnx.export this covers both exporters,
segmentation models and a per-session cache: exports are cached by (name,
size, exporter) under `cache_dir`."""
from __future__ import annotations

import glob
import os

from torchvision_onnx import load_torchvision

# classification models, then one segmentation model
TORCHVISION = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
               "convnext_tiny", "regnet_y_400mf", "squeezenet1_1", "densenet121", "googlenet",
               "vgg11", "shufflenet_v2_x1_0", "lraspp_mobilenet_v3_large"]
EXPORTERS = ("torchscript", "dynamo")


def import_torchvision():
    """torchvision, its op schemas defined first (ImportError when absent)."""
    load_torchvision()
    import torchvision
    return torchvision


def torchvision_model(name):
    """torchvision model `name` in eval mode with random weights (seeded)."""
    import torch
    torchvision = import_torchvision()
    torch.manual_seed(0)
    kwargs = {"weights": None}
    if name.startswith(("lraspp", "deeplabv3", "fcn")):
        kwargs["weights_backbone"] = None
        kwargs["num_classes"] = 21
        if not name.startswith("lraspp"):
            kwargs["aux_loss"] = False
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=False)
    model = torchvision.models.get_model(name, **kwargs).eval()
    from torchvision_models import randomise_batchnorm
    randomise_batchnorm(model)
    return model


class _Main(object):
    """Segmentation models return a dict: export its 'out' tensor."""

    def __new__(cls, model):
        import torch

        class Main(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x):
                y = self.model(x)
                return y["out"] if isinstance(y, dict) else y
        return Main().eval()


def export(name, size=64, exporter="torchscript", cache_dir=None):
    """Path of the ONNX export of torchvision model `name` for a (1, 3, size,
    size) input; the TorchScript exporter at opset 17 or the dynamo one at its
    default opset."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    cache_dir = cache_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "leanconv-onnx-exports")
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"{name}-{size}-{exporter}.onnx")
    if os.path.exists(path):
        return path
    import warnings

    import torch
    model = _Main(torchvision_model(name))
    x = torch.zeros(1, 3, size, size)
    tmp = path + f".{os.getpid()}.tmp"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, (x,), tmp, input_names=["x"], output_names=["y"],
                              dynamo=False, opset_version=17, do_constant_folding=False)
        else:
            prog = torch.onnx.export(model, (x,), input_names=["x"], output_names=["y"],
                                     dynamo=True, verbose=False)
            prog.save(tmp)
    os.replace(tmp, path)
    return path


def zoo_models():
    """name -> path of each model in the onnx package's light zoo."""
    import onnx.backend.test
    root = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "light")
    return {os.path.basename(p)[len("light_"):-len(".onnx")]: p
            for p in sorted(glob.glob(os.path.join(root, "light_*.onnx")))}
