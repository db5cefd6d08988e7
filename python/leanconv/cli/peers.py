"""Other libraries to time the same layers against: PyTorch and ONNX Runtime.

Both are optional and imported only when --compare names them; one that is
not installed (or fails to start) is reported as skipped, not an error.
Each peer runs with the same thread count as leanconv:
  torch        torch.nn.functional.conv2d, torch.set_num_threads(T), grad off.
  onnxruntime  a one-node Conv model built with onnx.helper, CPU provider,
               intra_op_num_threads=T, inter_op 1, default graph optimisation.
               Pool spinning is turned off: a spinning idle pool would eat
               the cores leanconv's next interleaved measurement runs on.
"""
from __future__ import annotations

INSTALL_HINT = {"torch": "pip install torch==2.13.0", "onnxruntime": "pip install onnx onnxruntime"}


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


_CLASSES = {"torch": TorchPeer, "onnxruntime": OrtPeer}


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
