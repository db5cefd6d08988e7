"""Other libraries to time the same layers against: PyTorch, ONNX Runtime,
OpenVINO and ncnn.

Both are optional and imported only when --compare names them; one that is
not installed (or fails to start) is reported as skipped, not an error.
Each peer runs with the same thread count as leanconv:
  torch        torch.nn.functional.conv2d, torch.set_num_threads(T), grad off.
  onnxruntime  a one-node Conv model built with onnx.helper, CPU provider,
               intra_op_num_threads=T, inter_op 1, default graph optimisation.
               Pool spinning is turned off: a spinning idle pool would eat
               the cores leanconv's next interleaved measurement runs on.
  openvino     a one-op model built with openvino's opset API (Convolution or
               GroupConvolution, then Add for the bias), CPU plugin,
               INFERENCE_PRECISION_HINT=f32 (its default on AMX/AVX512-BF16
               CPUs is bf16: not like for like), INFERENCE_NUM_THREADS=T,
               one stream, latency hint, no core pinning.
  ncnn         a one-layer net (Convolution, or ConvolutionDepthWise for
               groups > 1) written as a param/bin pair to a temporary
               directory; every fp16/bf16 storage, packing and arithmetic
               option off (fp32 SIMD packing stays on), num_threads=T,
               OpenMP blocktime 0 (no spinning).  ncnn has no batch axis:
               a batch runs image by image.
"""
from __future__ import annotations

import struct
import tempfile
from pathlib import Path

INSTALL_HINT = {"torch": "pip install torch==2.13.0", "onnxruntime": "pip install onnx onnxruntime",
                "openvino": "pip install openvino", "ncnn": "pip install ncnn"}


class TorchPeer:
    name = "torch"

    def __init__(self, threads):
        import torch
        self._torch = torch
        torch.set_num_threads(threads)
        torch.set_grad_enabled(False)
        self.version = torch.__version__
        self.config = f"F.conv2d, set_num_threads({threads})"

    def prepare(self, layer, x, w, b):
        """-> a zero-argument callable computing the layer (returns a NumPy array)."""
        t = self._torch
        xt, wt, bt = t.from_numpy(x), t.from_numpy(w), t.from_numpy(b)
        conv = t.nn.functional.conv2d
        s, p, d, g = layer.stride, layer.pad, layer.dilation, layer.groups

        def run():
            return conv(xt, wt, bt, stride=s, padding=p, dilation=d, groups=g)
        return run

    @staticmethod
    def to_numpy(y):
        return y.numpy()


class OrtPeer:
    name = "onnxruntime"

    def __init__(self, threads):
        import onnx  # noqa: F401  (the model is built with onnx.helper)
        import onnxruntime
        self._ort = onnxruntime
        self._threads = threads
        self.version = onnxruntime.__version__
        self.config = f"one-node Conv, intra_op_num_threads={threads}, spinning off"

    def prepare(self, layer, x, w, b):
        from onnx import TensorProto, helper, numpy_helper
        ort = self._ort
        OH, OW = layer.out_hw
        node = helper.make_node(
            "Conv", ["x", "w", "b"], ["y"], kernel_shape=[layer.kH, layer.kW],
            strides=[layer.stride] * 2, pads=[layer.pad] * 4, dilations=[layer.dilation] * 2,
            group=layer.groups)
        graph = helper.make_graph(
            [node], "conv",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                           [layer.N, layer.M, OH, OW])],
            initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
        # opset 13 / IR 7: old enough for any onnxruntime that is still installed
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 7
        so = ort.SessionOptions()
        so.intra_op_num_threads = self._threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        feeds = {"x": x}

        def run():
            return sess.run(None, feeds)[0]
        return run

    @staticmethod
    def to_numpy(y):
        return y


class OpenVinoPeer:
    name = "openvino"

    def __init__(self, threads):
        import openvino
        self._ov = openvino
        self._core = openvino.Core()
        self._props = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                       "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                       "ENABLE_CPU_PINNING": False}
        self.version = openvino.__version__
        self.config = (f"Convolution + Add model, CPU, INFERENCE_PRECISION_HINT=f32, "
                       f"INFERENCE_NUM_THREADS={threads}, 1 stream")

    def prepare(self, layer, x, w, b):
        import numpy as np
        ov = self._ov
        ops = ov.opset13
        s, p, d, g = [layer.stride] * 2, [layer.pad] * 2, [layer.dilation] * 2, layer.groups
        xin = ops.parameter(list(x.shape), np.float32, name="x")
        if g == 1:
            conv = ops.convolution(xin, ops.constant(w), s, p, p, d)
        else:
            wg = w.reshape(g, layer.M // g, *w.shape[1:])
            conv = ops.group_convolution(xin, ops.constant(wg), s, p, p, d)
        y = ops.add(conv, ops.constant(b.reshape(1, layer.M, 1, 1)))
        model = ov.Model([y], [xin], "conv")
        compiled = self._core.compile_model(model, "CPU", self._props)
        got = compiled.get_property("INFERENCE_PRECISION_HINT")
        if got != ov.Type.f32:  # bf16 would not be like for like
            raise RuntimeError(f"OpenVINO kept inference precision {got}, not f32")
        req = compiled.create_infer_request()
        feeds = {0: x}

        def run():
            req.infer(feeds, share_inputs=True)
            return req.get_output_tensor(0)
        return run

    @staticmethod
    def to_numpy(y):
        return y.data.copy()


def _ncnn_param_bin(layer, w, b):
    """(param text, model bytes) of a one-layer ncnn net: input 'data',
    output 'out'.  Weights: a 4-byte tag 0 (raw float32), then the floats;
    the bias is raw float32 with no tag (ncnn's ModelBin layout)."""
    kind = "Convolution" if layer.groups == 1 else "ConvolutionDepthWise"
    fields = [f"0={layer.M}", f"1={layer.kW}", f"11={layer.kH}", f"2={layer.dilation}",
              f"12={layer.dilation}", f"3={layer.stride}", f"13={layer.stride}",
              f"4={layer.pad}", f"14={layer.pad}", "5=1", f"6={w.size}"]
    if layer.groups != 1:
        fields.append(f"7={layer.groups}")
    param = "\n".join(["7767517", "2 2",
                        f"Input data 0 1 data 0={layer.W} 1={layer.H} 2={layer.C}",
                        f"{kind} conv 1 1 data out " + " ".join(fields), ""])
    model = struct.pack("<I", 0) + w.astype("<f4").tobytes() + b.astype("<f4").tobytes()
    return param, model


class NcnnPeer:
    name = "ncnn"

    def __init__(self, threads):
        import ncnn
        self._ncnn = ncnn
        self._threads = threads
        self.version = ncnn.__version__
        self.config = (f"one Convolution layer, num_threads={threads}, fp16/bf16 options off, "
                       f"openmp_blocktime=0")

    def _options(self, opt):
        for name in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                     "use_bf16_storage", "use_bf16_packed", "use_int8_inference",
                     "use_vulkan_compute"):
            if hasattr(opt, name):
                setattr(opt, name, False)
        opt.num_threads = self._threads
        opt.openmp_blocktime = 0

    def prepare(self, layer, x, w, b):
        ncnn = self._ncnn
        net = ncnn.Net()
        self._options(net.opt)
        param, model = _ncnn_param_bin(layer, w, b)
        with tempfile.TemporaryDirectory() as tmp:
            pp, bp = Path(tmp) / "conv.param", Path(tmp) / "conv.bin"
            pp.write_text(param)
            bp.write_bytes(model)
            if net.load_param(str(pp)) != 0 or net.load_model(str(bp)) != 0:
                raise RuntimeError("ncnn refused the one-layer net")
        mats = [ncnn.Mat(x[n]) for n in range(x.shape[0])]  # NCHW images, converted once

        def run():
            outs = []
            for mat in mats:
                ex = net.create_extractor()
                ex.input("data", mat)
                ret, out = ex.extract("out")
                if ret != 0:
                    raise RuntimeError(f"ncnn extract failed ({ret})")
                outs.append(out)
            return outs
        run.net = net  # keep the net alive as long as the runner
        return run

    @staticmethod
    def to_numpy(y):
        import numpy as np
        return np.stack([np.array(m) for m in y])


_CLASSES = {"torch": TorchPeer, "onnxruntime": OrtPeer, "openvino": OpenVinoPeer,
            "ncnn": NcnnPeer}


def load_peers(names, threads):
    """-> (list of ready peers, {name: status dict}) for the metadata."""
    ready, status = [], {}
    for name in names:
        try:
            peer = _CLASSES[name](threads)
        except ImportError as e:
            status[name] = {"status": "skipped",
                            "reason": f"not installed ({e.name or e}); {INSTALL_HINT[name]}"}
            continue
        except Exception as e:  # a broken install must not stop our own numbers
            status[name] = {"status": "skipped", "reason": f"failed to start: {e}"}
            continue
        ready.append(peer)
        status[name] = {"status": "ok", "version": peer.version, "config": peer.config}
    return ready, status
