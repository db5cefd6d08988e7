"""Cache-size detection, its fallback and the budgets derived from it."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import leanconv as lc
from leanconv import _core

PYTHONPATH = str(Path(lc.__file__).resolve().parent.parent)

# What a fresh process reports: caches, budgets, and the Winograd / GEMM
# workspaces that depend on them, plus a conv result to compare bit for bit.
PROBE = """
import hashlib, json, numpy as np, leanconv as lc
from leanconv import _core
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 32, 30, 30)).astype(np.float32)
w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
ys = {a: hashlib.sha256(lc.conv2d(x, w, padding=1, algorithm=a, threads=1).tobytes()).hexdigest()
      for a in ("im2col", "winograd_f4")}
ws = lc.workspace_bytes((1, 64, 112, 112), (64, 64, 3, 3), padding=1,
                        algorithm="winograd_f2", threads=1)
print(json.dumps({"cache": lc.cpu_features()["cache"], "blocking": _core.blocking(),
                  "wino_ws": ws, "ys": ys}))
"""


def probe(cache_env):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    env.pop("LEANCONV_CACHE", None)
    if cache_env is not None:
        env["LEANCONV_CACHE"] = cache_env
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_detected_sizes_are_plausible():
    c = lc.cpu_features()["cache"]
    assert c["source"] in ("sysfs", "sysctl", "GetLogicalProcessorInformation", "cpuid",
                           "default", "LEANCONV_CACHE")
    assert 4 << 10 <= c["l1d"] <= 4 << 20
    assert c["l2"] >= c["l1d"]
    assert c["l3"] == 0 or c["l3"] >= c["l2"] // 4  # an L3 may be sliced per core


def test_budgets_derive_from_the_caches():
    c, b = lc.cpu_features()["cache"], _core.blocking()
    assert b == {"gemm_b_l2": c["l2"] * 3 // 8, "gemm_b_l1": c["l1d"] * 2 // 3,
                 "gemm_panel_l1": c["l1d"] // 4, "gemm_a_stream": c["l2"] // 2,
                 "gemm_b_whole": c["l2"] // 2, "gemm_a_far": c["l2"] // 4,
                 "wino_block": c["l2"] // 2, "ir_band": c["l2"],
                 "ir_fuse_min": c["l2"] * 3 // 4}


def test_fallback_is_forced_and_used():
    """LEANCONV_CACHE=default is the path a failed detection takes: the
    conservative sizes, budgets derived from them, workspaces that follow, and
    correct results (here: the same bits, as the budgets only block)."""
    fb, given = probe("default"), probe("48K,1M,32M")
    assert fb["cache"] == {"l1d": 32 << 10, "l2": 256 << 10, "l3": 2 << 20, "source": "default"}
    assert fb["blocking"]["wino_block"] == (256 << 10) // 2
    assert given["cache"]["source"] == "LEANCONV_CACHE" and given["cache"]["l2"] == 1 << 20
    # a smaller block budget means fewer tile panels per Winograd block
    assert fb["wino_ws"] < given["wino_ws"]
    assert fb["ys"] == given["ys"]


@pytest.mark.skipif(not (sys.platform.startswith("linux") and
                         platform.machine().lower() in ("x86_64", "amd64")),
                    reason="compares CPUID with Linux sysfs")
def test_cpuid_agrees_with_sysfs():
    ours, os_says = probe("cpuid")["cache"], probe(None)["cache"]
    if os_says["source"] != "sysfs":
        pytest.skip("no sysfs cache information here")
    assert ours["source"] == "cpuid"
    assert (ours["l1d"], ours["l2"]) == (os_says["l1d"], os_says["l2"])


@pytest.mark.parametrize("bad", ["32K", "1,1M,0", "48K,1M,junk", "lots"])
def test_unreadable_override_fails_at_import(bad):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, LEANCONV_CACHE=bad)
    r = subprocess.run([sys.executable, "-c", "import leanconv"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "LEANCONV_CACHE" in r.stderr and repr(bad) in r.stderr


def test_info_shows_the_caches():
    from leanconv.cli.info import format_text, gather
    text = format_text(gather(peak_seconds=0.0))
    assert "caches" in text and "L1d" in text


def test_results_do_not_depend_on_the_budgets_path(rng):
    x = rng.standard_normal((1, 8, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    a = lc.conv2d(x, w, padding=1, algorithm="patch2vec", threads=1)
    b = lc.conv2d(x, w, padding=1, algorithm="patch2vec", threads=2)
    assert a.tobytes() == b.tobytes()
