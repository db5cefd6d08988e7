"""How long leanconv's idle OpenMP threads spin before they sleep.

GNU libgomp lets a thread that has finished its part of a parallel region
spin for GOMP_SPINCOUNT pause iterations (300,000 by default, about 5 ms
on the EPYC this was measured on) before it sleeps, so that the next region
finds it awake.  Between one layer and the next that is a gap of micro-
seconds; but after the last layer of a run the workers keep two cores busy
for ~5 ms, taking them from whatever the program does next (another
inference engine, the user's own threads), and on an oversubscribed machine
a spinning worker holds a core the thread with work to do is waiting for.
OMP_WAIT_POLICY=passive (no spin) costs a futex wake-up per region instead.

So, unless the user has chosen (OMP_WAIT_POLICY or GOMP_SPINCOUNT set, or
LEANCONV_OMP_SPINCOUNT to pick leanconv's own bound), leanconv loads its
extension with GOMP_SPINCOUNT=SPINCOUNT: ~25 us (~25 ns a count measured),
longer than the gap between back-to-back layers (about 1 us between bound
convolutions, 5-20 us across a Python step), far shorter than a run.  Under
load (2 cores, load average ~10) 1000 ran 2-3x faster back to back than
10000 and 5-10x faster than libgomp's default; passive was faster still
there, but pays a futex wake-up per region on a quiet machine.  libgomp reads its
environment once, when it is loaded; the variable is removed again right
after, so child processes do not inherit it.  When libgomp is already loaded
(PyTorch imported first: one libgomp per process for an in-place build, as
both name it libgomp.so.1) its setting stays as it is.  A wheel bundles its
own renamed libgomp, which is always loaded here.  LLVM's libomp (KMP_*
variables) is left at its defaults."""
from __future__ import annotations

import os

SPINCOUNT = 1000
USER_CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def spincount_to_set(environ) -> str | None:
    """The GOMP_SPINCOUNT leanconv sets when loading its extension, or None
    when the user has chosen a wait policy (ValueError for a bad
    LEANCONV_OMP_SPINCOUNT)."""
    if any(environ.get(k, "").strip() for k in USER_CHOICES):
        return None
    own = environ.get("LEANCONV_OMP_SPINCOUNT", "").strip()
    if not own:
        return str(SPINCOUNT)
    if not own.isdigit():
        raise ValueError(f"LEANCONV_OMP_SPINCOUNT must be a non-negative int, got {own!r}")
    return own


def load_core():
    """Import leanconv._core with the bounded spin in its environment."""
    value = spincount_to_set(os.environ)
    if value is not None:
        os.environ["GOMP_SPINCOUNT"] = value
    try:
        from . import _core
    finally:
        if value is not None:
            os.environ.pop("GOMP_SPINCOUNT", None)
    return _core


load_core()
