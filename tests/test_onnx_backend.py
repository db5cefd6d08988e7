"""leanconv.onnx against ONNX's own backend test suite (onnx.backend.test).

Only the tests of the ops leanconv.onnx implements are included (INCLUDE);
those it deliberately does not pass are listed, with the reason, in EXCLUDED.
Each test checks the outputs against ONNX's reference data with the suite's
own tolerances (rtol 1e-3, atol 1e-7 unless a test sets others)."""
from __future__ import annotations

import os
import re
import tempfile
import warnings

import pytest

pytest.importorskip("onnx")
import onnx.backend.test  # noqa: E402

import leanconv.onnx as lco  # noqa: E402

OPS = ["basic_conv", "conv_with", "batchnorm", "relu", "clip", "leakyrelu", "sigmoid", "add",
       "sum", "mul", "concat", "maxpool", "averagepool", "globalaveragepool", "gemm", "matmul",
       "flatten", "reshape", "transpose", "softmax", "dropout", "lrn", "unsqueeze", "constant",
       "constantofshape", "shape", "gather", "identity", "squeeze", "reduce_mean",
       "tanh", "erf", "gelu", "hardsigmoid", "hardswish", "div", "sub", "pow", "sqrt",
       "reciprocal", "layer_normalization", "slice", "split", "pad", "resize", "expand", "where",
       "cast", "castlike", "reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_l2",
       "reduce_sum_square", "abs", "neg", "exp", "log", "floor", "ceil", "sign", "not", "sin",
       "cos", "softplus", "elu", "max", "min", "mean", "equal", "less", "greater",
       "less_equal", "greater_equal", "and", "or", "xor", "tile", "gathernd", "range", "logsoftmax",
       "instancenorm", "globalmaxpool", "mod", "scatternd", "einsum"]
INCLUDE = [rf"^test_{op}(_.*)?_cpu$" for op in OPS] + [
    # PyTorch-exported single-op models
    r"^test_Conv[12]d.*_cpu$", r"^test_BatchNorm[123]d.*_cpu$",
    r"^test_(ReLU|LeakyReLU|Sigmoid|Softmax|LogSoftmax|ELU|Softplus|Tanh).*_cpu$",
    r"^test_softmax_(functional_dim3|lastdim)_cpu$", r"^test_MaxPool[123]d.*_cpu$",
    r"^test_AvgPool[123]d.*_cpu$", r"^test_GLU.*_cpu$",
    r"^test_operator_(add.*|addconstant|addmm|basic|clip|concat2|conv|flatten|maxpool|mm|"
    r"params|permute2|view)_cpu$",
    r"^test_single_relu_model_cpu$",
    r"^test_Conv3d.*_cpu$",   # 3-D: included so the exclusion below is visible
    # whole networks shipped with onnx (data/light; expected outputs included)
    r"^test_(bvlc_alexnet|densenet121|inception_v1|inception_v2|resnet50|shufflenet|squeezenet|"
    r"vgg19|zfnet512)_cpu$",
]

# name (regex) -> why it is not expected to pass.  Keep this list short and honest.
EXCLUDED = {
    # other ops that share a prefix with a supported one
    r"^test_gather_elements": "GatherElements is another op",
    r"^test_split_to_sequence": "SplitToSequence is another op (sequences are not tensors)",
    r"^test_cast(like)?_.*_to_(FLOAT8|FLOAT4|INT4|UINT4|INT2|UINT2|BFLOAT16)": "8-, 4- and 2-bit "
        "and bfloat16 element types have no NumPy dtype",
    r"^test_einsum_.*bfloat16": "bfloat16 has no NumPy dtype",
    r"^test_resize_.*(cubic|antialias|tf_crop_and_resize|not_larger|not_smaller)":
        "Resize: cubic, antialias, tf_crop_and_resize and keep_aspect_ratio_policy are not "
        "implemented (refused at prepare)",
    r"^test_maxpool_with_argmax": "MaxPool's Indices output is not implemented",
    r"_expanded(_ver\d+)?_cpu$": "function-expanded variants use ops outside the list "
                                 "(Max, Where, ReduceMax, Exp, CastLike, ...)",
    r"^test_identity_(opt|sequence)": "optional and sequence types are not tensors",
    r"^test_Conv3d": "3-D convolution: leanconv computes 1-D and 2-D",
}

# the 'light' model tests write their inputs under ONNX_HOME: keep that out of ~
os.environ.setdefault("ONNX_HOME", os.path.join(tempfile.gettempdir(), "leanconv-onnx-home"))



class Backend(lco.LeanconvBackend):
    """The backend as tested: a model it cannot run fails (NotImplementedError)
    instead of being skipped quietly as 'not compatible'."""

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        return True


with warnings.catch_warnings():   # the suite's own data generation warns (overflows, log(0))
    warnings.simplefilter("ignore")
    backend_test = onnx.backend.test.BackendTest(Backend, __name__)
for pattern in INCLUDE:
    backend_test.include(pattern)
for pattern in EXCLUDED:
    backend_test.exclude(pattern)


def _only_included(cases):
    """The suite's TestCase classes without the thousands of tests of other ops
    (which would otherwise be reported as skipped)."""
    included = re.compile("|".join(INCLUDE))
    for case in cases.values():
        for attr in [a for a in vars(case) if a.startswith("test_") and not included.search(a)]:
            delattr(case, attr)
    return cases


globals().update(_only_included(backend_test.test_cases))
