"""The `leanconv` command line: `leanconv info` and `leanconv bench`.

One job per module: args (parsing), suites (network layer tables), timing,
peers (PyTorch / ONNX Runtime), hardware (CPU name, FMA peak), info, bench
(the measurement loop), report (table / JSON / CSV), plot, model (--model).
Only NumPy is needed; torch, onnx, onnxruntime and matplotlib are imported
when an option asks for them."""
