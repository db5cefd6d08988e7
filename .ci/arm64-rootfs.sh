#!/usr/bin/env bash
# Create (or reuse) an arm64 Debian bookworm root filesystem, used to run the
# test suite under qemu-aarch64 user emulation (see .ci/test-neon.sh).
#
#   LEANCONV_ARM64_ROOT   where the rootfs lives (default /var/cache/leanconv/arm64-root)
#   LEANCONV_DEBIAN_MIRROR  Debian mirror (default: the host's own apt source, see
#                         debian_mirror in host-packages.sh)
#   LEANCONV_ARM64_NO_BINFMT=1  never use binfmt_misc; unpack the packages on the
#                         host instead of running debootstrap's second stage
#                         (this is also what happens when binfmt cannot be set up)
#
# Idempotent: a finished rootfs carries a stamp file that records how it was
# made; without a matching stamp (first run, interrupted run, changed package
# list) the directory is wiped and built again. Must run as root.
set -euo pipefail

ROOT="${LEANCONV_ARM64_ROOT:-/var/cache/leanconv/arm64-root}"
SUITE=bookworm
TRIPLET=aarch64-linux-gnu
PYVER=3.11
# libgomp1: the extension is linked with -fopenmp and needs libgomp.so.1 at run time.
INCLUDE="python3,python3-numpy,python3-pytest,python3-hypothesis,libpython${PYVER}-dev,python3-dev,libgomp1"
# Bump FORMAT when the way the rootfs is built changes, to force a rebuild.
FORMAT=1
STAMP="$ROOT/.leanconv-rootfs-complete"
STAMP_TEXT="format=$FORMAT suite=$SUITE include=$INCLUDE"

log() { echo "[arm64-rootfs $(date +%H:%M:%S)] $*"; }
die() { echo "[arm64-rootfs] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"
case "$ROOT" in
    /*) ;;
    *) die "LEANCONV_ARM64_ROOT must be an absolute path (got '$ROOT')" ;;
esac
ROOT="${ROOT%/}"
if [ -z "$ROOT" ] || [ "$ROOT" = / ]; then die "refusing to use / as the rootfs"; fi

# Host tools. qemu-user-static (not qemu-user) because its binary is static:
# it can be copied into the rootfs for chroot, and it also serves `-L` runs.
# Its postinst registers binfmt through binfmt-support where that is possible.
HOST_PACKAGES=(debootstrap qemu-user-static binfmt-support debian-archive-keyring)
# shellcheck source=host-packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/host-packages.sh"
MIRROR=$(debian_mirror "$SUITE")

# Print the mount points at or below $ROOT, deepest first.
mounts_under_root() {
    awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r
}
# debootstrap's second stage mounts /proc and /sys inside the chroot; a killed
# run can leave them behind. Unmount before any rm -rf, or we'd delete through them.
unmount_all() {
    local m
    for m in $(mounts_under_root); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

QEMU_STATIC=/usr/bin/qemu-aarch64-static

# Run an arm64 program of the rootfs without chroot and without binfmt:
# -L makes qemu (and the guest's dynamic loader) look up absolute paths in
# $ROOT first. QEMU_LD_PREFIX does the same for children started via binfmt.
guest() { QEMU_LD_PREFIX="$ROOT" "$QEMU_STATIC" -L "$ROOT" "$@"; }

# Make the kernel run aarch64 ELF files through qemu (binfmt_misc). Needed
# (a) by debootstrap's second stage, which execs hundreds of arm64 programs in
# a chroot, and (b) by tests that start `sys.executable` in a subprocess:
# qemu-user does not follow execve, so without binfmt such a child fails with
# "Exec format error". The registration lives in the kernel and is lost on
# reboot, so it is renewed on every run, also when the rootfs is reused.
# Returns non-zero when impossible (e.g. an unprivileged container).
register_binfmt() {
    [ "${LEANCONV_ARM64_NO_BINFMT:-0}" = 1 ] && return 1
    local bm=/proc/sys/fs/binfmt_misc
    if [ ! -e "$bm/register" ]; then
        mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || return 1
    fi
    if ! grep -qx enabled "$bm/qemu-aarch64" 2>/dev/null; then
        # The spec comes from qemu-user-static (/usr/share/binfmts/qemu-aarch64).
        update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    fi
    grep -qx enabled "$bm/qemu-aarch64" 2>/dev/null
}

# binfmt registered and a chroot into the half-made rootfs runs arm64 code?
chroot_works() {
    # Debian registers qemu with the F (fix-binary) flag, so the kernel keeps
    # the interpreter open and the chroot needs no copy of it; the copy makes
    # the chroot work with registrations made without F, too.
    install -D -m 0755 "$QEMU_STATIC" "$ROOT/usr/bin/qemu-aarch64-static"
    chroot "$ROOT" /usr/bin/true 2>/dev/null
}

second_stage_chroot() {
    # A clean environment: the host's PATH/locale mean nothing in the chroot.
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
        DEBIAN_FRONTEND=noninteractive \
        chroot "$ROOT" /debootstrap/debootstrap --second-stage
    unmount_all
}

# Fallback without binfmt: unpack every downloaded .deb on the host. No
# maintainer scripts run, which is fine for our use (python runs via qemu -L);
# the one thing that matters, the BLAS/LAPACK alternatives, is fixed below.
second_stage_unpack() {
    log "second stage: no binfmt_misc; unpacking packages on the host instead"
    local debs=() _pkg path n=0
    while read -r _pkg path; do
        debs+=("$ROOT$path")
    done < "$ROOT/debootstrap/debpaths"
    for path in "${debs[@]}"; do
        # --keep-directory-symlink: bookworm's rootfs is merged-/usr (/bin ->
        # usr/bin ...); plain tar would replace those links with real dirs.
        dpkg-deb --fsys-tarfile "$path" | tar -x --keep-directory-symlink -C "$ROOT" -f -
        n=$((n + 1))
    done
    log "unpacked $n packages"
    rm -rf "$ROOT/debootstrap"
}

# numpy links libblas.so.3 / liblapack.so.3, which Debian provides through
# update-alternatives: /usr/lib/$TRIPLET/libblas.so.3 -> /etc/alternatives/...
# -> /usr/lib/$TRIPLET/blas/libblas.so.3. Two ways this breaks numpy here:
#  - the links are missing when maintainer scripts did not run (unpack
#    fallback, or a postinst that misbehaved under emulation);
#  - they are ABSOLUTE. Under `qemu-aarch64 -L $ROOT`, qemu redirects the path
#    the guest opens, but the kernel then follows the symlink's absolute target
#    on the HOST (/etc/alternatives/... does not exist there), so
#    `import numpy` fails even in a perfect chroot-made rootfs.
# So: point each link straight at the implementation with a RELATIVE link,
# which resolves the same inside a chroot and under -L.
resolve_in_root() {   # follow a symlink chain, reading absolute targets inside $ROOT
    local p="$1" t i=0
    while [ -L "$p" ] && [ $i -lt 40 ]; do
        t=$(readlink "$p")
        case "$t" in
            /*) p="$ROOT$t" ;;
            *) p="$(dirname "$p")/$t" ;;
        esac
        i=$((i + 1))
    done
    [ -e "$p" ] && realpath -e "$p"
}
fix_blas_alternatives() {
    local libdir lib link target sub real_root
    real_root=$(realpath -e "$ROOT")
    libdir=$(realpath -e "$ROOT/usr/lib/$TRIPLET")
    for lib in libblas.so.3 liblapack.so.3; do
        link="$libdir/$lib"
        # Already fine if the host resolves it to a file inside the rootfs.
        target=$(realpath -e "$link" 2>/dev/null || true)
        case "$target" in "$real_root"/*) continue ;; esac
        target=$(resolve_in_root "$link" || true)
        if [ -z "$target" ]; then   # no alternative set at all: pick a provider
            for sub in blas lapack openblas-pthread openblas-openmp openblas-serial atlas; do
                [ -e "$libdir/$sub/$lib" ] && { target="$libdir/$sub/$lib"; break; }
            done
        fi
        [ -n "$target" ] || { log "WARNING: no provider of $lib found"; continue; }
        # Prefer the provider's SONAME link (blas/libblas.so.3) over the
        # versioned file it points to, so a package upgrade keeps it valid.
        [ -e "$(dirname "$target")/$lib" ] && target="$(dirname "$target")/$lib"
        # (not `ln -r`: it would resolve the SONAME link to the versioned file)
        ln -sfn "$(realpath -s --relative-to="$libdir" "$target")" "$link"
        log "fixed alternative link: $lib -> $(readlink "$link")"
    done
}

check_rootfs() {
    local f
    for f in usr/bin/python3 "usr/include/python$PYVER/Python.h" \
             "usr/include/$TRIPLET/python$PYVER/pyconfig.h" "usr/lib/$TRIPLET/libgomp.so.1"; do
        [ -e "$ROOT/$f" ] || { echo "missing $ROOT/$f" >&2; return 1; }
    done
    guest "$ROOT/usr/bin/python3" -c '
import numpy, pytest, hypothesis, platform
a = numpy.arange(16.0).reshape(4, 4)
assert (a @ numpy.eye(4) == a).all()   # goes through BLAS
print("guest python", platform.python_version(), platform.machine(),
      "numpy", numpy.__version__, "pytest", pytest.__version__,
      "hypothesis", hypothesis.__version__)'
}

# ---------------------------------------------------------------------------
mkdir -p "$(dirname "$ROOT")"
# Serialise concurrent runs (two CI jobs, or test-neon.sh run twice at once).
exec 9>"$ROOT.lock"
flock 9

ensure_host_packages "${HOST_PACKAGES[@]}"

if register_binfmt; then
    have_binfmt=1
else
    have_binfmt=0
    log "WARNING: binfmt_misc unavailable: arm64 programs run only through an explicit" \
        "qemu-aarch64 call; tests that spawn sys.executable will fail"
fi

if rootfs_complete_or_removed "$ROOT" "$STAMP_TEXT" unmount_all; then
    log "reusing complete rootfs at $ROOT"
    exit 0
fi

start=$(date +%s)
mkdir -p "$ROOT"

# First stage, on the host: download everything, unpack the essential set.
# Retried, because one flaky download fails the whole run.
for attempt in 1 2 3; do
    log "first stage: debootstrap --foreign --arch=arm64 $SUITE from $MIRROR (attempt $attempt)"
    debootstrap --foreign --arch=arm64 --variant=minbase --include="$INCLUDE" \
        "$SUITE" "$ROOT" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 && break
    tail -n 20 "$ROOT.debootstrap.log" >&2
    [ "$attempt" = 3 ] && die "debootstrap first stage failed (log: $ROOT.debootstrap.log)"
    rm -rf --one-file-system "$ROOT" && mkdir -p "$ROOT"
    sleep 10
done
log "first stage done ($(wc -l < "$ROOT/debootstrap/debpaths") packages downloaded)"

if [ "$have_binfmt" = 1 ] && chroot_works; then
    log "second stage: debootstrap --second-stage in chroot (binfmt + qemu), a few minutes"
    second_stage_chroot >> "$ROOT.debootstrap.log" 2>&1 \
        || { unmount_all; tail -n 30 "$ROOT.debootstrap.log" >&2; die "second stage failed (log: $ROOT.debootstrap.log)"; }
else
    second_stage_unpack
fi

fix_blas_alternatives
# Downloaded .debs are no longer needed; drop ~100 MB.
rm -f "$ROOT"/var/cache/apt/archives/*.deb

log "checking the rootfs under qemu"
check_rootfs || die "rootfs check failed"

echo "$STAMP_TEXT" > "$STAMP"
log "rootfs ready at $ROOT in $(( $(date +%s) - start ))s"
