#!/usr/bin/env bash
# Proof 3: leanconv builds and passes its tests as 32-bit x86 (i686), natively
# (the x86-64 kernel runs i386 programs; no emulation).
#
#   bash .ci/wheels-i686.sh           (as root: apt-get, debootstrap, chroot)
#
# 1. every C file compiles with Debian's i686 cross compiler (OpenMP on, -Wall);
#    the objects link into one shared object with no undefined symbol;
# 2. a 32-bit Debian bookworm (.ci/i386-rootfs.sh: debootstrap --arch=i386, cached
#    with a stamp in $LEANCONV_I386_ROOT, default /var/cache/leanconv/i386-root) builds the
#    extension with setup.py, the way pip would, under `linux32` as
#    cibuildwheel's i686 containers do;
# 3. pytest runs the suite there against that build.
# Bookworm's cython3 is 0.29; Cython >= 3 comes from PyPI as a wheel for i686
# (downloaded on the host, unpacked into the rootfs: no pip or network inside).
set -euo pipefail
# shellcheck disable=SC2034  # PROOF is read by wheels-lib.sh
PROOF=wheels-i686
source "$(dirname "$0")/wheels-lib.sh"

ROOT="${LEANCONV_I386_ROOT:-$CACHE/i386-root}"
export LEANCONV_I386_ROOT="$ROOT"   # .ci/i386-rootfs.sh builds it there
CYTHON_SPEC="Cython>=3.0"
WORK="$CACHE/wheels-i686"
CROSS=i686-linux-gnu-gcc

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
case "$ROOT" in /?*) ;; *) die "LEANCONV_I386_ROOT must be an absolute path" ;; esac
ROOT="${ROOT%/}"

step "host tools: debootstrap and Debian's i686 cross compiler"
ensure_host_packages debootstrap debian-archive-keyring gcc-i686-linux-gnu libc6-dev-i386-cross
mkdir -p "$WORK"
export_tree "$WORK/src"

step "every C file compiles for i686 (gcc-i686-linux-gnu, OpenMP, SSE2) and links"
rm -rf "$WORK/obj" && mkdir -p "$WORK/obj"
# The flags setup.py gives GCC on a 32-bit x86 Python.
CFLAGS=(-std=c99 -O3 -fPIC -fno-strict-aliasing -msse2 -mfpmath=sse -fopenmp -DLC_HAVE_OPENMP
        -Wall -Wno-unused-function -I"$WORK/src/include" -I"$WORK/src/kernels")
# One compiler per CPU; at most that many run at once, waiting on the oldest.
# `wait PID` returns that compiler's status, so set -e stops on the first error.
jobs_max=$(nproc)
n=0
running=()
while IFS= read -r -d '' c; do
    "$CROSS" "${CFLAGS[@]}" -c "$c" -o "$WORK/obj/$(echo "${c#"$WORK"/src/}" | tr / _).o" &
    running+=("$!")
    n=$((n + 1))
    if [ "${#running[@]}" -ge "$jobs_max" ]; then
        wait "${running[0]}"
        running=("${running[@]:1}")
    fi
done < <(find "$WORK/src/kernels" -name '*.c' -print0 | sort -z)
for pid in "${running[@]}"; do wait "$pid"; done
"$CROSS" -shared -fopenmp -Wl,--no-undefined -o "$WORK/obj/libleanconv-kernels.so" "$WORK"/obj/*.o -lm
log "$n files compiled; $(file -b "$WORK/obj/libleanconv-kernels.so" | cut -d, -f1-2)"

step "a 32-bit Debian bookworm root filesystem (cached: .ci/i386-rootfs.sh)"
bash "$(dirname "$0")/i386-rootfs.sh"
in_root() {   # a clean environment: nothing of the host's PATH, Python or pip settings
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"
}
in_root linux32 chroot "$ROOT" python3 -c '
import platform, struct, numpy, pytest, hypothesis
print("    chroot python", platform.python_version(), platform.machine(), struct.calcsize("P") * 8, "bit;",
      "numpy", numpy.__version__, "pytest", pytest.__version__, "hypothesis", hypothesis.__version__)'

step "Cython >= 3 for the rootfs (an i686 wheel from PyPI, cached)"
pyver=$(in_root chroot "$ROOT" python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')
mkdir -p "$WORK/cython-wheel"
if ! ls "$WORK"/cython-wheel/[Cc]ython-*.whl > /dev/null 2>&1; then
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$WORK/cython-wheel" \
        --implementation cp --python-version "$pyver" --abi "cp$pyver" \
        --platform manylinux_2_17_i686 --platform manylinux2014_i686 --platform manylinux_2_28_i686 \
        "$CYTHON_SPEC" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
fi
CYWHEEL=$(ls "$WORK"/cython-wheel/[Cc]ython-*.whl | tail -1)
[ -f "$CYWHEEL" ] || die "no Cython wheel for cp$pyver i686"
if [ "$(cat "$ROOT/opt/cython/.wheel" 2>/dev/null)" != "$(basename "$CYWHEEL")" ]; then
    rm -rf "$ROOT/opt/cython" && mkdir -p "$ROOT/opt/cython"
    "$PYTHON" -m zipfile -e "$CYWHEEL" "$ROOT/opt/cython"
    basename "$CYWHEEL" > "$ROOT/opt/cython/.wheel"
fi
in_root chroot "$ROOT" env PYTHONPATH=/opt/cython python3 -c 'import Cython; print("    Cython", Cython.__version__, "from", Cython.__file__)'

step "setup.py builds the extension inside the 32-bit root (OpenMP probe, flags)"
rm -rf "$ROOT/build/leanconv" && mkdir -p "$ROOT/build"
cp -a "$WORK/src" "$ROOT/build/leanconv"
in_root linux32 chroot "$ROOT" env PYTHONPATH=/opt/cython sh -c \
    'cd /build/leanconv && python3 setup.py build_ext --inplace' > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; die "setup.py build_ext failed (log: $WORK/build.log)"; }
grep -E "^leanconv: " "$WORK/build.log" | sed 's/^/    /'
grep -m1 -oE "\-msse2 -mfpmath=sse" "$WORK/build.log" > /dev/null || die "the i686 build lacks -msse2 -mfpmath=sse"
so=$(ls "$ROOT"/build/leanconv/python/leanconv/_core*.so)
log "built $(basename "$so"): $(file -b "$so" | cut -d, -f1-2)"

step "pytest in the 32-bit root, against that build"
in_root linux32 chroot "$ROOT" env PYTHONPATH=/build/leanconv/python LEANCONV_EXPECT_OPENMP=1 python3 -c '
import leanconv, leanconv._core as c
print("    leanconv", leanconv.__version__, "isa", leanconv.isa(), "available", leanconv.available_isas(),
      "openmp", c.openmp_enabled(), "threads", leanconv.get_num_threads())'
in_root linux32 chroot "$ROOT" env PYTHONPATH=/build/leanconv/python LEANCONV_EXPECT_OPENMP=1 \
    sh -c 'cd /tmp && python3 -m pytest /build/leanconv/tests -q -p no:cacheprovider'
finish
