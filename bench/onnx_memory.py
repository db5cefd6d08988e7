"""leanconv.onnx's memory plan against the memory a process really uses.

    python bench/onnx_memory.py MODEL.onnx [--threads 1] [--engine leanconv|onnxruntime]
                                [--memory-budget BYTES]

Runs in this process, which should do nothing else: loads the model, resets
the kernel's peak-RSS mark (/proc/self/clear_refs), prepares, runs once, and
prints one JSON line: the plan (rep.memory(), before the first run) and the
measured peak RSS growth from before prepare to after the run, plus the
process's whole peak RSS.  The onnx checker's one-time schema registry is
built before the baseline (warm_up_checker), and so is what leanconv's first
model in a process costs once (warm_up_leanconv); the interpreter's free
lists are filled (fill_free_lists) and what was freed is given back to the
OS before the baseline is read (baseline).  Linux only (VmHWM,
clear_refs).  The model's input is random (its declared shape)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # resets VmHWM to the current RSS


def baseline():
    """The RSS (KiB) growth is measured from, with the peak mark reset to it.
    Memory freed before (the warm-up model's) is given back first: glibc keeps
    freed memory resident for reuse, and the model's allocations taking it over
    would not show as growth (a 2.8 MB plan measured 6% under)."""
    import gc

    from leanconv._heap import return_freed_memory
    gc.collect()
    fill_free_lists()   # after gc.collect(), which empties them
    return_freed_memory()
    before = status_kib("VmRSS")
    reset_peak()
    return before


def fill_free_lists():
    """Fill CPython's free lists of short tuples (up to 2000 of each length),
    lists, dicts and floats, as any process that has run a real model's
    worth of Python has them: gc.collect() empties them, prepare's
    temporaries fill them again (~90 KB of tuples after ShuffleNet's), and
    that memory is the interpreter's, not the model's.  Filling them also
    takes the free blocks that pools of those sizes had, which the model's
    objects would take unseen, more or fewer by the process's history: the
    same plans read 0.926 (source tree) and 1.018 (installed package) for the
    test's ShuffleNet-like model without this, 0.992 and 1.019 with it;
    ShuffleNet's export 1.018 and 1.054 without, 1.037 and 1.050 with it
    (2026-12-01)."""
    junk = [tuple(range(n)) for n in range(1, 6) for _ in range(2000)]
    junk += [[i] for i in range(80)] + [{i: i} for i in range(80)] + [i + 0.5 for i in range(100)]
    del junk


def warm_up_checker():
    """onnx.checker's first call builds the op schema registry (~7 MB, the
    same for every model): done before the baseline so the growth measured is
    the model's."""
    import onnx
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "warm-up",
                              [vi("x", TensorProto.FLOAT, [1])], [vi("y", TensorProto.FLOAT, [1])])
    onnx.checker.check_model(helper.make_model(graph))


def warm_up_leanconv(threads):
    """Prepare and run a tiny model with a node of every kind the benchmarked
    models use (convolutions of each kind, an expanding 1x1 Conv before a depthwise
    one, a residual Add, an SE block with
    HardSigmoid and HardSwish, a Sigmoid gate, pooling, a bilinear Resize,
    Concat, a channel shuffle and split in the exporters' Shape/Gather/Reshape
    arithmetic, Gemm) before the baseline: what leanconv's first model in a
    process pays once -- the code pages of its kernels (0.7 MiB for
    LR-ASPP's when the warm-up lacked its op kinds), threadpoolctl's scan of
    the loaded libraries, module-level caches -- is not the model's, as
    onnx's checker registry is not."""
    import leanconv.onnx as lco
    from onnx import TensorProto, helper, numpy_helper
    g = np.random.default_rng(0)
    inits = {"w": (8, 3, 3, 3), "dw": (8, 1, 3, 3), "pw": (8, 8, 1, 1), "s1": (4, 8, 1, 1),
             "s1b": (4,), "s2": (8, 4, 1, 1), "s2b": (8,), "fc": (10, 16), "fb": (10,),
             "xw": (16, 8, 1, 1), "xdw": (16, 1, 3, 3)}
    node = helper.make_node
    nodes = [node("Conv", ["x", "w"], ["a"], pads=[1] * 4), node("Clip", ["a"], ["b"]),
             node("Conv", ["b", "dw"], ["c"], pads=[1] * 4, group=8),
             node("HardSwish", ["c"], ["c2"]),
             # an expanding 1x1 and a depthwise after it: prepare asks onnx's shape
             # inference whether to fuse them (ir_block.py)
             node("Conv", ["c2", "xw"], ["x1"]),
             node("Conv", ["x1", "xdw"], ["x2"], pads=[1] * 4, group=16),
             node("GlobalAveragePool", ["c2"], ["q"]),                      # SE block
             node("Conv", ["q", "s1", "s1b"], ["q1"]), node("Relu", ["q1"], ["q2"]),
             node("Conv", ["q2", "s2", "s2b"], ["q3"]), node("HardSigmoid", ["q3"], ["q4"]),
             node("Mul", ["c2", "q4"], ["c3"]),
             node("Conv", ["c3", "pw"], ["d"]), node("Add", ["d", "b"], ["e"]),
             node("Sigmoid", ["e"], ["gate"]), node("Mul", ["e", "gate"], ["e2"]),
             node("AveragePool", ["e2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             node("Resize", ["p", "", "scales"], ["up"], mode="linear",
                  coordinate_transformation_mode="half_pixel"),
             # a channel shuffle and a channel split in the exporters' shape arithmetic
             node("Shape", ["e2"], ["sh"]),
             node("Gather", ["sh", "i0"], ["n"], axis=0), node("Gather", ["sh", "i1"], ["ch"], axis=0),
             node("Gather", ["sh", "i2"], ["hh"], axis=0), node("Gather", ["sh", "i3"], ["ww"], axis=0),
             *[node("Unsqueeze", [v, "ax0"], [v + "_1"]) for v in ("n", "ch", "hh", "ww")],
             node("Div", ["ch_1", "two"], ["half_1"]),   # of 1-element tensors, as exported
             node("Concat", ["n_1", "two", "half_1", "hh_1", "ww_1"], ["shape5"], axis=0),
             node("Reshape", ["e2", "shape5"], ["r5"]),
             node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             node("Concat", ["n_1", "ch_1", "hh_1", "ww_1"], ["shape4"], axis=0),
             node("Reshape", ["t5", "shape4"], ["shuffled"]),
             node("Mul", ["half_1", "i1"], ["end"]),
             node("Slice", ["shuffled", "ax0", "end", "one"], ["half_c"]),
             node("Concat", ["half_c", "half_c"], ["e3"], axis=1),
             node("Concat", ["up", "e3"], ["cat"], axis=1),
             node("MaxPool", ["cat"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
             node("GlobalAveragePool", ["mp"], ["f"]), node("Flatten", ["f"], ["h"]),
             node("Gemm", ["h", "fc", "fb"], ["y"], transB=1)]
    vi = helper.make_tensor_value_info
    tensors = [numpy_helper.from_array(g.standard_normal(s).astype(np.float32), k)
               for k, s in inits.items()]
    tensors.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    tensors += [numpy_helper.from_array(np.array(v, np.int64), k)
                for k, v in (("i0", 0), ("i1", 1), ("i2", 2), ("i3", 3), ("two", [2]),
                             ("ax0", [0]), ("one", [1]))]
    graph = helper.make_graph(
        nodes, "warm-up", [vi("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [vi("y", TensorProto.FLOAT, [1, 10]), vi("x2", TensorProto.FLOAT, [1, 16, 16, 16])],
        tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rep = lco.prepare(model, threads=threads)
    rep.run({"x": np.ones((1, 3, 16, 16), np.float32)})


def measure(path, threads, engine, memory_budget=None):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _source_tree import use_source_tree
    use_source_tree()   # a tree built in place; else the installed package
    from leanconv.onnx.bench import random_inputs
    from leanconv.onnx.model_file import load_without_weights
    # Both engines open the file themselves, as a user would: a ModelProto
    # loaded here would put the whole model in this process's peak for both.
    skeleton, _ = load_without_weights(path)
    feeds = random_inputs(skeleton)
    del skeleton
    if engine == "onnxruntime":
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        before = baseline()
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
        plan = None
    else:
        import leanconv.onnx as lco
        import threadpoolctl  # noqa: F401  (imported by the first BLAS step otherwise)
        warm_up_checker()
        warm_up_leanconv(threads)
        before = baseline()
        rep = lco.prepare(path, threads=threads, memory_budget=memory_budget)
        plan = rep.memory()
        rep.run(feeds)
    peak = status_kib("VmHWM")
    return {"engine": engine, "model": str(path), "threads": threads, "plan": plan,
            "memory_budget": memory_budget,
            "growth_bytes": (peak - before) * 1024, "peak_rss_bytes": peak * 1024,
            "rss_before_bytes": before * 1024}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--engine", choices=("leanconv", "onnxruntime"), default="leanconv")
    p.add_argument("--memory-budget", type=int, default=None, metavar="BYTES",
                   help="leanconv: prepare(memory_budget=BYTES)")
    a = p.parse_args(argv)
    np.random.seed(0)
    print(json.dumps(measure(a.model, a.threads, a.engine, a.memory_budget)))


if __name__ == "__main__":
    main()
