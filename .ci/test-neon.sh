#!/usr/bin/env bash
# Run leanconv's pytest suite on arm64 under qemu user emulation, so the NEON
# kernels are really built and executed on an x86-64 machine.
#
#   .ci/test-neon.sh [pytest args...]      (default: -q -x -n CPUS tests)
#
# Steps: make sure the arm64 rootfs exists (.ci/arm64-rootfs.sh); build the
# extension with setup.py, exactly as `pip install .` would on an arm64 Debian
# machine (same flags, -O3 included, same OpenMP probe), but on this host with
# the cross compiler: the arm64 python's sysconfig (_PYTHON_SYSCONFIGDATA_NAME)
# names the compiler flags and the extension suffix, the rootfs its headers;
# stage the package with the .so in a temp dir; run the rootfs's python3 -m
# pytest via qemu -L.  Exits with pytest's exit code (5, "no tests
# collected", is a failure too).
#
#   LEANCONV_SRC         source tree (default: this script's parent's parent)
#   LEANCONV_ARM64_ROOT  rootfs (default /var/cache/leanconv/arm64-root)
#   LEANCONV_NO_OPENMP=1 and the other setup.py switches work as for any build
#   LEANCONV_KEEP_BUILD=1  keep the temp build dir (its path is printed)
#
# Emulation is 10-50x slower than the CPU, and this run is most of CI's time,
# so the default spreads the tests over one emulated python per CPU with
# pytest-xdist (a pure-Python wheel staged next to the package: the rootfs's
# Debian pytest stays as it is). Without the wheels (no index reachable) the
# tests run one after another. The portable C path is not run here at all:
# tests/conftest.py leaves it to the native runs (LEANCONV_EMULATED).
# Must run as root (installs host packages, may build the rootfs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "${LEANCONV_SRC:-$HERE/..}" && pwd)"
export LEANCONV_ARM64_ROOT="${LEANCONV_ARM64_ROOT:-/var/cache/leanconv/arm64-root}"
ROOT="${LEANCONV_ARM64_ROOT%/}"
TRIPLET=aarch64-linux-gnu
CC="$TRIPLET-gcc"
PYVER=3.11                                  # bookworm's python3
EXT_SUFFIX=".cpython-311-$TRIPLET.so"       # what the arm64 python imports

XDIST_SPECS=("pytest-xdist==3.6.1" "execnet==2.1.1")   # 3.6 is the last for the rootfs's pytest 7.2
XDIST_CACHE="${LEANCONV_CACHE:-/var/cache/leanconv}/qemu-xdist"
DEFAULT_ARGS=0
if [ $# -eq 0 ]; then
    DEFAULT_ARGS=1
    set -- -q -x tests
fi

log() { echo "[test-neon $(date +%H:%M:%S)] $*"; }
die() { echo "[test-neon] ERROR: $*" >&2; exit 1; }

log "source tree: $SRC"
[ -f "$SRC/python/leanconv/_core.pyx" ] || die "no python/leanconv/_core.pyx under $SRC"

# 1. The arm64 rootfs (also installs qemu-user-static, debootstrap, ...).
bash "$HERE/arm64-rootfs.sh"

# 2. Host tools: the cross compiler, and Cython and setuptools for setup.py.
# libc6-dev-arm64-cross is only a Recommends of the compiler; without it the
# cross gcc silently falls back to the host's /usr/include and fails.
# shellcheck source=host-packages.sh
. "$HERE/host-packages.sh"
ensure_host_packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
HOST_PY=(python3)
if ! "${HOST_PY[@]}" -c 'import Cython, setuptools' 2>/dev/null; then
    log "pip install cython setuptools"
    "${HOST_PY[@]}" -m pip install -q cython setuptools \
        || die "cannot pip install cython into $(command -v python3) (PEP 668 system Python?); install Cython first"
fi
QEMU="$(command -v qemu-aarch64 || command -v qemu-aarch64-static)" || die "no qemu-aarch64"

BUILD="$(mktemp -d /tmp/leanconv-neon.XXXXXX)"
cleanup() {
    if [ "${LEANCONV_KEEP_BUILD:-0}" = 1 ]; then log "build dir kept: $BUILD"; else rm -rf "$BUILD"; fi
}
trap cleanup EXIT

# 3. A copy of the tree to build in (setup.py writes next to its sources), with
# nothing host-built: no x86 .so, no generated _core.c, no build/.
tar -C "$SRC" --exclude='*.so' --exclude='__pycache__' --exclude='python/leanconv/_core.c' \
    -cf - setup.py pyproject.toml README.md MANIFEST.in include kernels python \
    | (mkdir -p "$BUILD/src" && tar -C "$BUILD/src" -xf -)

# 4. setup.py build_ext for arm64.  The arm64 python's sysconfig data is copied
# alone onto PYTHONPATH (its whole stdlib would shadow the host's); with it the
# host python reads the arm64 compiler (CC, LDSHARED: Debian's are the
# aarch64-linux-gnu-gcc cross names), its flags (Debian's OPT; setup.py then
# adds the same -O3 and flags as for every build) and EXT_SUFFIX.  Headers: the arm64
# Python's first (pyconfig.h is per-architecture), and the rootfs's /usr/include
# after the cross toolchain's libc headers (Debian's pyconfig.h wrapper includes
# <aarch64-linux-gnu/python3.11/pyconfig.h>).
SYSCONFIG="$(cd "$ROOT/usr/lib/python$PYVER" && ls _sysconfigdata_*"$TRIPLET"*.py | head -n1)" \
    || die "no arm64 _sysconfigdata in $ROOT/usr/lib/python$PYVER"
mkdir -p "$BUILD/sysconfig"
cp "$ROOT/usr/lib/python$PYVER/$SYSCONFIG" "$BUILD/sysconfig/"
log "setup.py build_ext with $CC ($("$CC" -dumpfullversion)), sysconfig ${SYSCONFIG%.py}"
(cd "$BUILD/src" && \
    env -u CC -u LDSHARED -u LDFLAGS -u CPPFLAGS \
        _PYTHON_SYSCONFIGDATA_NAME="${SYSCONFIG%.py}" PYTHONPATH="$BUILD/sysconfig" \
        CFLAGS="-idirafter $ROOT/usr/include" \
        "${HOST_PY[@]}" setup.py -q build_ext \
            --include-dirs "$ROOT/usr/include/python$PYVER:$ROOT/usr/include/$TRIPLET/python$PYVER" \
            --build-lib "$BUILD/lib" --build-temp "$BUILD/obj") \
    || die "setup.py build_ext for arm64 failed"
SO="$BUILD/lib/leanconv/_core$EXT_SUFFIX"
[ -f "$SO" ] || die "setup.py did not produce $SO (EXT_SUFFIX from the arm64 sysconfig?)"
"$TRIPLET-readelf" -h "$SO" | grep -q 'AArch64' || die "built .so is not AArch64"

# 5. Stage the package: python/leanconv without anything host-built (an x86
# _core*.so or a stale __pycache__ from a local build must not be picked up),
# plus the arm64 extension.
STAGE="$BUILD/stage"
mkdir -p "$STAGE" "$BUILD/tmp"
tar -C "$SRC/python" --exclude='*.so' --exclude='__pycache__' -cf - leanconv | tar -C "$STAGE" -xf -
cp "$SO" "$STAGE/leanconv/"

# pytest-xdist for the default run: wheels downloaded once (cached), unpacked
# into the stage, where the guest python finds them and their entry point.
if [ "$DEFAULT_ARGS" = 1 ]; then
    mkdir -p "$XDIST_CACHE"
    if [ "$(ls "$XDIST_CACHE"/*.whl 2>/dev/null | wc -l)" -lt "${#XDIST_SPECS[@]}" ]; then
        "${HOST_PY[@]}" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            -d "$XDIST_CACHE" "${XDIST_SPECS[@]}" 2>&1 \
            | grep -v "is ignored: it is neither a file nor a directory" || true
    fi
    if [ "$(ls "$XDIST_CACHE"/*.whl 2>/dev/null | wc -l)" -ge "${#XDIST_SPECS[@]}" ]; then
        for whl in "$XDIST_CACHE"/*.whl; do "${HOST_PY[@]}" -m zipfile -e "$whl" "$STAGE"; done
        set -- -n "$(nproc)" "$@"
    else
        log "no pytest-xdist wheels (index unreachable?): the tests run one after another"
    fi
fi

# A pytest plugin (loaded with -p) with defaults for emulated runs: code runs
# 10-50x slower under qemu, so Hypothesis' 200 ms per-example deadline and its
# too_slow health check would fail at random. The project's own conftest can
# still load another profile; it runs after this.
cat > "$STAGE/_leanconv_qemu_plugin.py" <<'EOF'
try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    settings.register_profile("leanconv-qemu", deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("leanconv-qemu")
EOF

# 6. Run pytest with the arm64 python. -L (and QEMU_LD_PREFIX, which also
# covers arm64 children started through binfmt) make the guest find its
# loader and libraries in $ROOT; any path that does not exist in $ROOT (the
# source tree, /tmp/...) falls through to the host. python3 -P keeps the cwd
# off sys.path, so only the staged package can be imported as leanconv.
# Host Python variables are dropped: the host's user site-packages or
# PYTHONHOME would hand x86 modules to the arm64 interpreter. Nothing is
# written into the source tree: no .pytest_cache, no __pycache__, and the
# Hypothesis database goes to the build dir.
log "running pytest $* (qemu: $QEMU, rootfs: $ROOT)"
cd "$SRC"
set +e
env -u PYTHONHOME -u PYTHONSTARTUP -u PYTHONUSERBASE -u PYTHONSAFEPATH \
    QEMU_LD_PREFIX="$ROOT" \
    PYTHONPATH="$STAGE" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR="$BUILD/tmp" HYPOTHESIS_STORAGE_DIRECTORY="$BUILD/hypothesis" \
    LEANCONV_EMULATED=qemu-aarch64 \
    "$QEMU" -L "$ROOT" "$ROOT/usr/bin/python3" -P -m pytest \
        -p no:cacheprovider -p _leanconv_qemu_plugin "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    log "FAILED: pytest collected no tests (exit 5)"
elif [ "$rc" != 0 ]; then
    log "FAILED: pytest exit code $rc"
else
    log "pytest passed under qemu-aarch64"
fi
exit "$rc"
