"""Where PyTorch is installed: the same answers as torch.nn.functional.conv2d."""
import numpy as np
import pytest

import leanconv as lc
from cases import CASES

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_conv(x, w, b, c):
    xt = torch.from_numpy(x if x.ndim == 4 else x[None]).double()
    wt = torch.from_numpy(w).double()
    bt = None if b is None else torch.from_numpy(b).double()
    pad = c["padding"]
    if isinstance(pad, tuple) and len(pad) == 4:  # torch has no 4-sided conv padding: pad first
        t, bo, l, r = pad
        xt = F.pad(xt, (l, r, t, bo))
        pad = 0
    y = F.conv2d(xt, wt, bt, stride=c["stride"], padding=pad, dilation=c["dilation"],
                 groups=c["groups"])
    act = c["activation"]
    if act == "relu":
        y = torch.relu(y)
    elif act == "relu6":
        y = torch.clamp(y, 0, 6)
    elif isinstance(act, tuple):
        y = torch.clamp(y, act[1], act[2])
    y = y.numpy()
    return y if x.ndim == 4 else y[0]


@pytest.mark.parametrize("c", CASES, ids=[c["name"] for c in CASES])
def test_matches_torch(isa, c):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(c["x"]).astype(np.float32)
    w = rng.standard_normal(c["w"]).astype(np.float32)
    b = rng.standard_normal(c["w"][0]).astype(np.float32) if c["bias"] else None
    kw = dict(stride=c["stride"], padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    ref = torch_conv(x, w, b, c)
    scale = np.abs(ref).max() + 1
    y = lc.conv2d(x, w, b, activation=c["activation"], **kw)
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() / scale < 1e-3
