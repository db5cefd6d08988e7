"""Every benchmark script parses its own command line: `--help` exits 0.

The scripts are run by hand (and by the lead before a release) to regenerate
docs/; an argument clash only shows when someone runs them (model_threads.py
added a --zoo that bench/_model_args.py already adds, and failed at start)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py")
                 if not p.name.startswith("_") and not p.name.startswith("test_")
                 and "argparse" in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_its_arguments(script):
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", r.stderr)
    if r.returncode != 0 and missing and not missing.group(1).startswith(("leanconv", "_")):
        # an optional framework this environment lacks (the NEON rootfs has no torch/onnx)
        pytest.skip(f"{script.name} needs {missing.group(1)}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout
