#!/usr/bin/env bash
# Run leanconv's pytest suite on arm64 under qemu user emulation, so the NEON
# kernels are really built and executed on an x86-64 machine.
#
#   .ci/test-neon.sh [pytest args...]      (default: -q -x tests)
#
# Steps: make sure the arm64 rootfs exists (.ci/arm64-rootfs.sh); Cythonize
# _core.pyx on the host; cross-compile it and every kernels/**/*.c with
# aarch64-linux-gnu-gcc against the rootfs's Python headers; stage the package
# with the .so in a temp dir; run the rootfs's python3 -m pytest via qemu -L.
# Exits with pytest's exit code (5, "no tests collected", is a failure too).
#
#   LEANCONV_SRC         source tree (default: this script's parent's parent)
#   LEANCONV_ARM64_ROOT  rootfs (default /var/cache/leanconv/arm64-root)
#   LEANCONV_OPENMP=0    build without -fopenmp (it is also dropped by itself
#                        if the OpenMP build fails)
#   LEANCONV_CFLAGS      extra flags for every compile
#   LEANCONV_KEEP_BUILD=1  keep the temp build dir (its path is printed)
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

[ $# -gt 0 ] || set -- -q -x tests

log() { echo "[test-neon $(date +%H:%M:%S)] $*"; }
die() { echo "[test-neon] ERROR: $*" >&2; exit 1; }

log "source tree: $SRC"
[ -f "$SRC/python/leanconv/_core.pyx" ] || die "no python/leanconv/_core.pyx under $SRC"

# 1. The arm64 rootfs (also installs qemu-user-static, debootstrap, ...).
bash "$HERE/arm64-rootfs.sh"

# 2. Host tools: the cross compiler and Cython.
# libc6-dev-arm64-cross is only a Recommends of the compiler; without it the
# cross gcc silently falls back to the host's /usr/include and fails.
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# `cython --version` rather than `command -v`: a pyenv shim can exist for a
# Python version that does not have Cython.
if cython --version >/dev/null 2>&1; then
    CYTHON=(cython)
else
    if ! python3 -c 'import Cython' 2>/dev/null; then
        log "pip install cython"
        python3 -m pip install -q cython \
            || die "cannot pip install cython into $(command -v python3) (PEP 668 system Python?); install Cython first"
    fi
    CYTHON=(python3 -m cython)
fi
QEMU="$(command -v qemu-aarch64 || command -v qemu-aarch64-static)" || die "no qemu-aarch64"

BUILD="$(mktemp -d /tmp/leanconv-neon.XXXXXX)"
cleanup() {
    if [ "${LEANCONV_KEEP_BUILD:-0}" = 1 ]; then log "build dir kept: $BUILD"; else rm -rf "$BUILD"; fi
}
trap cleanup EXIT

# 3. C from Cython, generated on the host: the C is target-neutral, and the
# rootfs has no Cython. Run from $SRC so Cython sees the package structure
# (module name leanconv._core, .pxd files next to the .pyx).
log "cython $("${CYTHON[@]}" --version 2>&1 | tail -n1): python/leanconv/_core.pyx"
(cd "$SRC" && "${CYTHON[@]}" -3 python/leanconv/_core.pyx -o "$BUILD/_core.c")

# 4. Cross-compile. All kernels/**/*.c are built: x86-only files are #if-guarded
# and come out empty on aarch64. Headers: the project's, plus the arm64
# Python's (pyconfig.h is per-architecture, so the host's would be wrong); libc
# headers come from the cross toolchain's sysroot, which matches bookworm's glibc.
KERNELS=()
if [ -d "$SRC/kernels" ]; then
    mapfile -t KERNELS < <(cd "$SRC" && find kernels -name '*.c' | LC_ALL=C sort)
fi
# shellcheck disable=SC2206  # LEANCONV_CFLAGS is meant to be word-split
CFLAGS=(-O2 -fPIC -std=c11
        # With -std=c11 (not gnu11) POSIX functions are not declared unless a
        # feature macro is set; an implicit declaration truncates pointers on
        # 64-bit and crashes at run time, so make it a build error instead.
        -Werror=implicit-function-declaration
        -I"$SRC/include" -I"$SRC/kernels"
        -I"$ROOT/usr/include/python$PYVER" -I"$ROOT/usr/include/$TRIPLET/python$PYVER"
        # Debian's python3.11/pyconfig.h is a wrapper doing
        # #include <aarch64-linux-gnu/python3.11/pyconfig.h>, so the rootfs's
        # /usr/include must be searched too; -idirafter puts it after the
        # toolchain's own libc headers, which keep precedence.
        -idirafter "$ROOT/usr/include"
        ${LEANCONV_CFLAGS:-})

build_extension() {   # $1 = 1 to build with OpenMP, 0 without
    local omp=() src obj objs=()
    [ "$1" = 1 ] && omp=(-fopenmp -DLC_HAVE_OPENMP=1)
    rm -rf "$BUILD/obj" && mkdir -p "$BUILD/obj"
    for src in "${KERNELS[@]}"; do
        obj="$BUILD/obj/$(echo "${src%.c}" | tr / _).o"   # kernels/a/b.c -> kernels_a_b.o
        "$CC" "${CFLAGS[@]}" "${omp[@]}" -c "$SRC/$src" -o "$obj" || return 1
        objs+=("$obj")
    done
    "$CC" "${CFLAGS[@]}" "${omp[@]}" -c "$BUILD/_core.c" -o "$BUILD/obj/_core.o" || return 1
    # No -lpython: like any Debian extension, Python symbols come from the
    # interpreter at import time. -fopenmp at link time pulls in libgomp.
    "$CC" -shared "${omp[@]}" -o "$BUILD/_core$EXT_SUFFIX" "$BUILD/obj/_core.o" "${objs[@]}"
}

log "cross-compiling ${#KERNELS[@]} kernel file(s) + _core.c with $CC ($("$CC" -dumpfullversion))"
if [ "${LEANCONV_OPENMP:-1}" = 1 ] && build_extension 1; then
    log "built with OpenMP"
else
    [ "${LEANCONV_OPENMP:-1}" = 1 ] && log "OpenMP build failed; building without -fopenmp"
    build_extension 0 || die "cross-compilation failed"
    log "built without OpenMP"
fi
"$TRIPLET-readelf" -h "$BUILD/_core$EXT_SUFFIX" | grep -q 'AArch64' || die "built .so is not AArch64"

# 5. Stage the package: python/leanconv without anything host-built (an x86
# _core*.so or a stale __pycache__ from a local build must not be picked up),
# plus the arm64 extension.
STAGE="$BUILD/stage"
mkdir -p "$STAGE" "$BUILD/tmp"
tar -C "$SRC/python" --exclude='*.so' --exclude='__pycache__' -cf - leanconv | tar -C "$STAGE" -xf -
cp "$BUILD/_core$EXT_SUFFIX" "$STAGE/leanconv/"

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
