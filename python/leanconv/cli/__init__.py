"""The `leanconv` command line: `leanconv info`, `bench`, `profile` and `split`.

One job per module: args (parsing; tool_args for profile/split), suites (network
layer tables), timing (interleaved runs, medians, spread), peers (PyTorch / ONNX
Runtime per layer), model_peers (ONNX Runtime / OpenVINO per model), hardware
(CPU name, FMA peak), info, bench (the measurement loop), report (table / JSON /
CSV), plot, model (--model), profile_cmd / profile_plot (`leanconv profile`),
split_cmd (`leanconv split`); the profile and split logic is in leanconv.tools.
Only NumPy is needed; torch, onnx, onnxruntime, openvino and matplotlib are
imported when an option asks for them."""
