"""The wisdom file: measured winners of algorithm="measure", reused by "auto".

One JSON file, {"format": "leanconv-wisdom", "version": 1, "entries": {key:
{"algorithm": name, "times_ms": {name: median ms}}}}, where a key names
everything a measurement depends on: leanconv version, CPU model and cache
sizes, ISA, threads, and the call geometry (batch, channels, size, filters,
stride, padding, dilation, groups).

Where: LEANCONV_WISDOM=path, LEANCONV_WISDOM=off for none, else the user
cache directory ($XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on
macOS, %LOCALAPPDATA% on Windows) + leanconv/wisdom.json.

Writes are atomic and merge: under an advisory lock on a side file
(path + ".lock"; flock on POSIX, msvcrt.locking on Windows) the file is read
again, our entries merged in, written to a temporary file in the same folder
and moved over the old one with os.replace, so concurrent processes never
see or leave a half-written file and never lose each other's entries.  A
file that is not leanconv wisdom (corrupt, or another program's) is ignored
with one warning per process and never overwritten; measurements then live
in this process only (lc.forget_wisdom() removes the file)."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from . import _core

FORMAT = "leanconv-wisdom"
VERSION = 1

_lock = threading.RLock()
_state = {"path": None, "stamp": None, "entries": {}, "ours": {}, "foreign": False}
_warned: set = set()
_key_locks: dict = {}


def path():
    """The wisdom file in use, or None when LEANCONV_WISDOM=off."""
    env = os.environ.get("LEANCONV_WISDOM", "").strip()
    if env.lower() == "off":
        return None
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "leanconv" / "wisdom.json"


_cpu_model_cache = None


def cpu_model() -> str:
    """CPU model string plus cache sizes: what a measurement is valid for."""
    global _cpu_model_cache
    if _cpu_model_cache is None:
        name = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.lower().startswith(("model name", "hardware", "cpu part")):
                        name = line.split(":", 1)[1].strip()
                        if name:
                            break
        except OSError:
            pass
        if not name and sys.platform == "darwin":
            import subprocess
            try:
                name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                      capture_output=True, text=True, timeout=5).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                name = ""
        name = name or platform.processor() or platform.machine() or "unknown"
        c = _core.cache_sizes()
        _cpu_model_cache = f"{name} L1d={c['l1d']} L2={c['l2']} L3={c['l3']}"
    return _cpu_model_cache


def key(isa: str, threads: int, spec, geometry) -> str:
    from . import __version__
    N, C, H, W = geometry[:4]
    t, b, l, r = spec.pads
    return (f"leanconv {__version__} | {cpu_model()} | {isa} | threads {threads} | "
            f"x {N}x{C}x{H}x{W} | w {spec.M}x{spec.Cg}x{spec.kH}x{spec.kW} | "
            f"stride {spec.stride[0]},{spec.stride[1]} | pad {t},{b},{l},{r} | "
            f"dilation {spec.dilation[0]},{spec.dilation[1]} | groups {spec.groups}")


def _warn_once(p, what):
    if str(p) in _warned:
        return
    _warned.add(str(p))
    warnings.warn(f"leanconv: ignoring the wisdom file {p}: {what}; measurements are kept "
                  f"in this process only (lc.forget_wisdom() removes the file)",
                  RuntimeWarning, stacklevel=4)


def _stamp(p):
    try:
        st = os.stat(p)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(p):
    """(entries, foreign): the valid entries of the file at p ({} if none)."""
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}, False
    except (OSError, ValueError, UnicodeDecodeError) as e:
        _warn_once(p, f"it is not readable JSON ({type(e).__name__})")
        return {}, True
    if not isinstance(data, dict) or data.get("format") != FORMAT or \
            not isinstance(data.get("entries"), dict):
        _warn_once(p, "it is not a leanconv wisdom file")
        return {}, True
    if data.get("version") != VERSION:
        _warn_once(p, f"it has wisdom format version {data.get('version')!r}, "
                      f"this leanconv reads {VERSION}")
        return {}, True
    entries = {}
    for k, v in data["entries"].items():
        if isinstance(k, str) and isinstance(v, dict) and v.get("algorithm") in _core.ALGORITHMS:
            entries[k] = v
    return entries, False


def _current():
    """The entries of the file in use, re-read when it changed on disk."""
    p = path()
    if p is None:
        return None
    st = _state
    if st["path"] != p:
        st.update(path=p, stamp=None, entries={}, ours={}, foreign=False)
    stamp = _stamp(p)
    if stamp != st["stamp"]:
        entries, foreign = _read(p)
        entries.update(st["ours"])  # what this process measured is never forgotten
        st.update(stamp=stamp, entries=entries, foreign=foreign)
    return st["entries"]


def lookup(isa: str, threads: int, spec, geometry):
    """The measured winner for this call, or None."""
    with _lock:
        entries = _current()
        if not entries:
            return None
        e = entries.get(key(isa, threads, spec, geometry))
        return None if e is None else e["algorithm"]


@contextlib.contextmanager
def measuring(k: str):
    """Held while one key is measured, so threads of this process measure it
    once: a second thread waits, then finds the entry."""
    with _lock:
        lk = _key_locks.setdefault(k, threading.Lock())
    with lk:
        yield


def _lookup_key(k):
    with _lock:
        entries = _current()
        e = None if not entries else entries.get(k)
        return None if e is None else e["algorithm"]


@contextlib.contextmanager
def _file_lock(p):
    """An advisory lock on p + ".lock" where the OS has one, else nothing."""
    lock_path = str(p) + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        try:
            if sys.platform == "win32":
                import msvcrt
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            else:
                import fcntl
                fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


def record(k: str, algorithm: str, times_ms: dict) -> None:
    """Store a measured winner: in this process, and merged into the file."""
    entry = {"algorithm": algorithm,
             "times_ms": {a: round(float(t), 4) for a, t in times_ms.items()}}
    with _lock:
        p = path()
        _current()
        _state["ours"][k] = entry
        _state["entries"][k] = entry
        if p is None:
            return
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(p):
                entries, foreign = _read(p)
                if foreign:
                    return
                entries.update(_state["ours"])
                _write_atomically(p, {"format": FORMAT, "version": VERSION,
                                      "entries": dict(sorted(entries.items()))})
                _state["stamp"] = _stamp(p)
                _state["entries"] = entries
        except OSError as e:
            _warn_once(p, f"it cannot be written ({e.strerror or e})")


def _write_atomically(p, data):
    fd, tmp = tempfile.mkstemp(prefix=".wisdom-", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def forget() -> None:
    """Remove the wisdom file and everything this process measured."""
    with _lock:
        p = path()
        _state.update(path=None, stamp=None, entries={}, ours={}, foreign=False)
        _warned.clear()
        if p is None:
            return
        with _file_lock(p):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
