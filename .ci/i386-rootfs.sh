#!/usr/bin/env bash
# Create (or reuse) a 32-bit x86 (i386) Debian bookworm root filesystem, in
# which .ci/wheels-i686.sh builds and tests leanconv natively (the x86-64
# kernel runs i386 programs; no emulation).
#
#   LEANCONV_I386_ROOT      where the rootfs lives (default /var/cache/leanconv/i386-root)
#   LEANCONV_DEBIAN_MIRROR  Debian mirror (default: the host's own apt source, see
#                           debian_mirror in host-packages.sh)
#
# Idempotent and safe to run twice at once (a lock beside the rootfs): a
# finished rootfs carries a stamp file that records how it was made; without a
# matching stamp the directory is wiped and built again. Must run as root.
set -euo pipefail

log() { echo "[i386-rootfs $(date +%H:%M:%S)] $*"; }
die() { echo "[i386-rootfs] ERROR: $*" >&2; exit 1; }
# shellcheck source=host-packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/host-packages.sh"

ROOT="${LEANCONV_I386_ROOT:-/var/cache/leanconv/i386-root}"
SUITE=bookworm
# libc6-dev, gcc: setup.py builds inside; libgomp1: OpenMP at run time.
INCLUDE="python3,python3-dev,python3-setuptools,python3-numpy,python3-pytest,python3-hypothesis,gcc,libc6-dev,libgomp1"
FORMAT=1   # bump to force a rebuild of the rootfs

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
case "$ROOT" in /?*) ;; *) die "LEANCONV_I386_ROOT must be an absolute path" ;; esac
ROOT="${ROOT%/}"
ensure_host_packages debootstrap debian-archive-keyring
MIRROR=$(debian_mirror "$SUITE")
STAMP="$ROOT/.leanconv-rootfs-complete"
STAMP_TEXT="format=$FORMAT suite=$SUITE mirror=$MIRROR include=$INCLUDE"

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
unmount_under_root() {   # debootstrap mounts /proc and /sys inside; a killed run leaves them
    local m
    for m in $(awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}
if rootfs_complete_or_removed "$ROOT" "$STAMP_TEXT" unmount_under_root; then
    log "reusing $ROOT"
    exit 0
fi
start=$(date +%s)
log "debootstrap --arch=i386 $SUITE from $MIRROR (a few minutes; log: $ROOT.debootstrap.log)"
debootstrap --arch=i386 --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" \
    > "$ROOT.debootstrap.log" 2>&1 || { unmount_under_root; tail -20 "$ROOT.debootstrap.log"; die "debootstrap failed"; }
unmount_under_root
rm -rf "$ROOT"/var/cache/apt/archives/*.deb
echo "$STAMP_TEXT" > "$STAMP"
log "rootfs ready at $ROOT in $(( $(date +%s) - start ))s"
