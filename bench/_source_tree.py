"""Which leanconv a benchmark script imports: this checkout's python/ when it
is built in place (`python setup.py build_ext --inplace`), else whatever is
installed -- a fresh clone beside a pip-installed leanconv has the sources
but no compiled _core, and importing them would fail."""
import os
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "python"


def is_built() -> bool:
    return any(p.suffix in (".so", ".pyd") for p in (SOURCE / "leanconv").glob("_core*"))


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
