"""Which leanconv a benchmark script imports: this checkout's python/ when it
is built in place (`python setup.py build_ext --inplace`), else whatever is
installed -- a fresh clone beside a pip-installed leanconv has the sources
but no compiled _core, and importing them would fail.  "Built" means built for
this interpreter: an x86-64 build in the tree is no use to the arm64 python
that .ci/test-neon.sh runs under qemu."""
import importlib.machinery
import os
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "python"


def is_built() -> bool:
    return any((SOURCE / "leanconv" / f"_core{suffix}").is_file()
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def use_source_tree(position: int = 0) -> None:
    if is_built() and str(SOURCE) not in sys.path:
        sys.path.insert(position, str(SOURCE))


def child_env() -> dict:
    """The environment for a child Python process that must import the same
    leanconv as this script: this checkout's python/ first on PYTHONPATH when
    it is built in place, else the environment as it is."""
    env = dict(os.environ)
    if is_built():
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SOURCE)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
