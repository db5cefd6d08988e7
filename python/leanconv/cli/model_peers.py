"""Whole-model peers for `leanconv bench --model`: ONNX Runtime and OpenVINO.

Each loads the same ONNX file and runs with the same thread count as leanconv:
  onnxruntime  CPU provider, all graph optimisations, intra_op_num_threads=T,
               inter_op 1, sequential, pool spinning off (a spinning idle pool
               would eat the cores the next interleaved measurement runs on).
  openvino     CPU device, INFERENCE_PRECISION_HINT=f32 (no bf16/fp16
               shortcuts: the same arithmetic as ours), INFERENCE_NUM_THREADS=T.
A peer that is not installed, or cannot load the model, is skipped with the
reason; it never stops leanconv's own figures."""
from __future__ import annotations

from .errors import CliError
from .args import split_list

_ALIASES = {"onnxruntime": "onnxruntime", "ort": "onnxruntime", "onnx": "onnxruntime",
            "openvino": "openvino", "ov": "openvino"}
MODEL_PEERS = ("onnxruntime", "openvino")
INSTALL_HINT = {"onnxruntime": "pip install onnxruntime", "openvino": "pip install openvino"}


def parse_model_peers(text):
    out = []
    for name in split_list(text):
        key = _ALIASES.get(name.lower())
        if key is None:
            raise CliError(f"unknown peer {name!r} in --compare for --model; choose from "
                           f"{', '.join(MODEL_PEERS)}")
        out.append(key)
    return list(dict.fromkeys(out))


class OrtModel:
    name = "onnxruntime"

    def __init__(self, path, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self._sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        self.config = f"CPU provider, ORT_ENABLE_ALL, intra_op_num_threads={threads}, " \
                      f"spinning off"

    def runner(self, feeds):
        sess = self._sess
        return lambda: sess.run(None, feeds)


class OpenVinoModel:
    name = "openvino"

    def __init__(self, path, threads):
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
        self._compiled = core.compile_model(core.read_model(path), "CPU", config)
        self.version = ov.__version__
        self.config = f"CPU, INFERENCE_PRECISION_HINT=f32, INFERENCE_NUM_THREADS={threads}"

    def runner(self, feeds):
        request = self._compiled.create_infer_request()
        n_out = len(self._compiled.outputs)

        def run():
            request.infer(feeds)
            return [request.get_output_tensor(i).data for i in range(n_out)]
        return run


_CLASSES = {"onnxruntime": OrtModel, "openvino": OpenVinoModel}


def load_model_peers(names, path, threads):
    """-> (list of ready peers, {name: status dict})."""
    ready, status = [], {}
    for name in names:
        try:
            peer = _CLASSES[name](path, threads)
        except ImportError as e:
            status[name] = {"status": "skipped",
                            "reason": f"not installed ({e.name or e}); {INSTALL_HINT[name]}"}
            continue
        except Exception as e:  # cannot load this model: its result, not our failure
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            status[name] = {"status": "skipped", "reason": f"cannot run the model: {first}"}
            continue
        ready.append(peer)
        status[name] = {"status": "ok", "version": peer.version, "config": peer.config}
    return ready, status
