# Sourced by the .ci scripts: host packages and the host's Debian mirror.
# The caller defines log() and die().

# Install the named Debian packages that are missing on this host (apt-get
# update only when something is missing).
ensure_host_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "needs root to apt-get install ${missing[*]}"
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # another apt (a second CI job) may hold the dpkg lock: wait for it
    local wait=(-o DPkg::Lock::Timeout=900)
    apt-get "${wait[@]}" update -qq
    apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# "URI suite..." for every enabled deb source of this host's apt: deb822
# stanzas in /etc/apt/sources.list.d/*.sources, one-line entries in
# /etc/apt/sources.list and /etc/apt/sources.list.d/*.list.  (LEANCONV_APT_ETC
# replaces /etc/apt, for the tests.)
apt_deb_sources() {
    local f etc="${LEANCONV_APT_ETC:-/etc/apt}"
    for f in "$etc"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'function flush(  i) {
                 if (types ~ /(^| )deb( |$)/ && enabled != "no")
                     for (i = 1; i <= nu; i++) print uri[i], suites
                 types = suites = enabled = ""; nu = 0
             }
             /^[ \t]*#/ { next }
             /^[ \t]*$/ { flush(); next }
             tolower($1) == "types:"   { $1 = ""; types = $0 }
             tolower($1) == "uris:"    { for (i = 2; i <= NF; i++) uri[++nu] = $i }
             tolower($1) == "suites:"  { $1 = ""; suites = $0 }
             tolower($1) == "enabled:" { enabled = tolower($2) }
             END { flush() }' "$f"
    done
    for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI suite components...
        awk '$1 == "deb" { i = 2
                           if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                           print $i, $(i + 1) }' "$f"
    done
}

# The Debian mirror for debootstrap of suite $1: LEANCONV_DEBIAN_MIRROR if set,
# else the host apt source that serves that suite, else one whose path is the
# usual /debian.  The repository names no mirror of its own.
debian_mirror() {
    if [ -n "${LEANCONV_DEBIAN_MIRROR:-}" ]; then
        echo "$LEANCONV_DEBIAN_MIRROR"
        return 0
    fi
    local sources uri
    sources=$(apt_deb_sources)
    uri=$(awk -v s="$1" '{ for (i = 2; i <= NF; i++) if ($i == s) { print $1; exit } }' <<<"$sources")
    [ -n "$uri" ] || uri=$(awk '$1 ~ /\/debian\/?$/ { print $1; exit }' <<<"$sources")
    [ -n "$uri" ] || die "no Debian archive for '$1' among this host's apt sources" \
        "(/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list): set LEANCONV_DEBIAN_MIRROR"
    echo "${uri%/}"
}

# A root filesystem at $1 that carries the stamp text $2 (in $1/.leanconv-rootfs-complete)
# and a python3 is complete: returns 0.  Anything else there is an interrupted or
# outdated one: unmounted with $3 (the caller's function for what a killed run
# left mounted inside), removed, and 1 returned, for the caller to build anew.
rootfs_complete_or_removed() {
    local root="$1" stamp_text="$2" unmount="$3"
    if [ -f "$root/.leanconv-rootfs-complete" ] && [ "$(cat "$root/.leanconv-rootfs-complete")" = "$stamp_text" ] \
        && [ -x "$root/usr/bin/python3" ]; then
        return 0
    fi
    if [ -e "$root" ]; then
        log "removing incomplete or outdated $root"
        "$unmount"
        rm -rf --one-file-system "$root"
    fi
    return 1
}
