"""leanconv's token GEMM (kernels/token_gemm.c: a transformer's linear layer,
y = x W^T + b over rows of tokens) against onnxruntime's MatMul + Add on the
same shapes: ViT-B/16's, Swin-T's and MaxViT-T's linear layers at 224 px.

    python bench/token_gemm.py [--threads 1] [--runs 25]

One process; per shape the two engines take turns run by run (a short sleep
between them, so neither's spinning threads take the other's core), then
the median ms of each with its interquartile range as % of the median, the
GFLOP/s of leanconv's and the ratio onnxruntime / leanconv (above 1:
leanconv faster); the last line sums the medians."""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from leanconv import _core, _isa, _scratch

# (rows, k, n): tokens x input features x output features
SHAPES = [(197, 768, 2304), (197, 768, 768), (197, 768, 3072), (197, 3072, 768),     # ViT-B/16
          (3136, 96, 288), (3136, 96, 96), (3136, 96, 384), (3136, 384, 96),         # Swin-T
          (784, 192, 576), (784, 768, 192), (196, 384, 1152), (196, 1536, 384),
          (49, 768, 2304), (49, 3072, 768), (784, 384, 192), (49, 1536, 768)]


def _ort_session(w, b, m, threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    n, k = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(np.ascontiguousarray(w.T), "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _stats(times):
    q1, med, q3 = np.percentile(np.array(times) * 1e3, [25, 50, 75])
    return med, 100 * (q3 - q1) / med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=25)
    args = ap.parse_args()
    isa = _isa.isa_id()
    print(f"CPU: {platform.processor() or platform.machine()}, leanconv ISA {_isa.isa()}, "
          f"{args.threads} thread(s), {args.runs} runs a shape")
    g = np.random.default_rng(0)
    total = [0.0, 0.0]
    for m, k, n in SHAPES:
        x = g.standard_normal((m, k)).astype(np.float32)
        w = g.standard_normal((n, k)).astype(np.float32)
        b = g.standard_normal(n).astype(np.float32)
        # 64-byte aligned, as the model's packings are (leanconv._dense._packed_buffer)
        wp = _scratch.aligned_empty(4 * _core.token_packed_floats(n, k, isa)).view(np.float32)
        _core.token_pack(w, wp, isa)
        y = np.empty((m, n), np.float32)
        ws = _scratch.aligned_empty(max(64, _core.token_gemm_workspace(m, k, isa)))
        sess = _ort_session(w, b, m, args.threads)
        io = sess.io_binding()
        io.bind_cpu_input("x", x)
        io.bind_output("y", "cpu")
        ours, theirs = [], []
        for r in range(args.runs + 2):   # the first two untimed
            t = time.perf_counter()
            _core.token_gemm(x.reshape(-1), y.reshape(-1), m, k, n, wp, b, None, None,
                             args.threads, isa, ws)
            t1 = time.perf_counter()
            time.sleep(0.005)
            t2 = time.perf_counter()
            sess.run_with_iobinding(io)
            t3 = time.perf_counter()
            time.sleep(0.005)
            if r >= 2:
                ours.append(t1 - t)
                theirs.append(t3 - t2)
        ref = sess.run(None, {"x": x})[0]
        err = float(np.max(np.abs(y - ref)) / np.max(np.abs(ref)))
        (a, sa), (c, sc) = _stats(ours), _stats(theirs)
        total[0] += a
        total[1] += c
        print(f"{m:5d} x {k:4d} x {n:4d}: leanconv {a:7.3f} ms ±{sa:3.0f}% "
              f"({2 * m * k * n / a / 1e6:5.1f} GFLOP/s)  onnxruntime {c:7.3f} ms ±{sc:3.0f}%  "
              f"x ORT {c / a:4.2f}  max diff {err:.1e}")
    print(f"sum of medians: leanconv {total[0]:.2f} ms, onnxruntime {total[1]:.2f} ms, "
          f"x ORT {total[1] / total[0]:.2f}")


if __name__ == "__main__":
    main()
