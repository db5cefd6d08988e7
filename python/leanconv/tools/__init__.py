"""Model-level tools on top of leanconv.onnx: `profile` (time and memory per
node) and `split` (where to cut a model between a device and a server).

executor.py is the only module that knows how leanconv.onnx runs a program;
profile.py and split.py work on the facts it returns.  Needs onnx."""
