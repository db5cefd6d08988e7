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
               "vgg11", "shufflenet_v2_x1_0", "lraspp_mobilenet_v3_large",
               "deeplabv3_mobilenet_v3_large"]
# transformers, at the one size their patch and window grids are made for (torch's
# TorchScript exporter refuses vit_b_16's attention: only its dynamo export exists)
TRANSFORMERS = ["swin_t", "maxvit_t", "vit_b_16"]
ONLY_SIZE = {"vgg11": 224, "swin_t": 224, "maxvit_t": 224, "vit_b_16": 224}
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


# models of tests/reference_nets.py that torchvision has no form of (bench/onnx_models.py
# --models takes them as well)
OWN = ("fast_neural_style",)


def own_model(name):
    """reference_nets' model `name`, random weights (seeded), eval mode."""
    import reference_nets
    return reference_nets.make(name)


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
    """Path of the ONNX export of torchvision model `name` (or one of OWN) for
    a (1, 3, size, size) input; the TorchScript exporter at opset 17 or the dynamo one at its
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
    model = _Main(own_model(name) if name in OWN else torchvision_model(name))
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
    """name -> path of each model in the onnx package's light zoo, as shipped:
    every weight is a ConstantOfShape of 0.02, so every output channel of a
    layer is the same and a model's logits are one value repeated (its Softmax
    is 0.001 everywhere).  Compare engines on `zoo_with_random_weights`."""
    import onnx.backend.test
    root = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "light")
    return {os.path.basename(p)[len("light_"):-len(".onnx")]: p
            for p in sorted(glob.glob(os.path.join(root, "light_*.onnx")))}


# What a constant's reader makes of it: (op, input index) -> how to draw it.
# He-scaled weights and BatchNorm statistics near 1 keep activations of order
# one through a deep network, so the logits differ and no value overflows.
_WEIGHT_ROLES = {("Conv", 1): "fan_in", ("Gemm", 1): "fan_in", ("MatMul", 1): "fan_in",
                 ("Conv", 2): "small", ("Gemm", 2): "small",
                 ("BatchNormalization", 1): "near_one", ("BatchNormalization", 2): "small",
                 ("BatchNormalization", 3): "small", ("BatchNormalization", 4): "near_one"}


def _draw(rng, role, shape, reader):
    import numpy as np
    if role == "fan_in":
        if reader.op_type == "Conv":
            fan_in = int(np.prod(shape[1:]))
        else:   # Gemm's B is (K, N), or (N, K) when transB
            trans_b = any(a.name == "transB" and a.i for a in reader.attribute)
            fan_in = shape[1] if trans_b else shape[0]
        return rng.standard_normal(shape, dtype=np.float32) * np.float32((2.0 / fan_in) ** 0.5)
    if role == "small":
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)   # near_one, or a reader not listed


def with_random_weights(model, seed=0):
    """A copy of `model` whose ConstantOfShape constants with a constant
    shape (the light zoo's weights) are seeded random initializers of that
    shape, drawn for the op that reads them (_WEIGHT_ROLES)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    shapes = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    readers = {}
    for node in g.node:
        for k, name in enumerate(node.input):
            readers.setdefault(name, (node, k))
    rng = np.random.default_rng(seed)
    kept = []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[node.input[0]])
            reader, k = readers.get(node.output[0], (node, -1))
            role = _WEIGHT_ROLES.get((reader.op_type, k), "near_one")
            g.initializer.append(numpy_helper.from_array(_draw(rng, role, shape, reader),
                                                         node.output[0]))
            if model.ir_version < 4:   # there, every initializer is a graph input too
                g.input.append(onnx.helper.make_tensor_value_info(
                    node.output[0], onnx.TensorProto.FLOAT, shape))
        else:
            kept.append(node)
    del g.node[:]
    g.node.extend(kept)
    # the shapes the ConstantOfShape nodes read are read by nothing now
    read = {name for node in g.node for name in node.input}
    for items in (g.initializer, g.input):
        unread = [v for v in items if v.name in shapes and v.name not in read]
        for v in unread:
            items.remove(v)
    return model


def zoo_with_random_weights(name, cache_dir=None, seed=0):
    """Path of light zoo model `name` with random weights (with_random_weights),
    cached under `cache_dir` like the exports."""
    cache_dir = cache_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "leanconv-onnx-exports")
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"zoo-{name}-random{seed}.onnx")
    if not os.path.exists(path):
        import onnx
        model = with_random_weights(onnx.load(zoo_models()[name]), seed)
        tmp = path + f".{os.getpid()}.tmp"
        onnx.save(model, tmp)
        os.replace(tmp, path)
    return path


def with_logits_output(model):
    """`model` with the input of its last Softmax as an extra output (a
    Softmax keeps its input's shape: the output's type is copied)."""
    import onnx
    soft = [n for n in model.graph.node if n.op_type == "Softmax"]
    outputs = {o.name: o for o in model.graph.output}
    if soft and soft[-1].output[0] in outputs:
        logits = onnx.ValueInfoProto()
        logits.CopyFrom(outputs[soft[-1].output[0]])
        logits.name = soft[-1].input[0]
        model.graph.output.append(logits)
    return model
