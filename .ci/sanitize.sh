#!/usr/bin/env bash
# Builds leanconv with -fsanitize=address,undefined in its own virtual
# environment, from a copy of the sources (the tree is left as it was), and
# runs a fast subset of the suite under it.
#   bash .ci/sanitize.sh [pytest args]      (default: the fast subset below)
# The sanitizer runtimes are LD_PRELOADed because the Python interpreter itself
# is not instrumented; leaks are not checked (CPython keeps memory at exit) and
# huge allocations return NULL so the MemoryError path is exercised, not aborted.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LEANCONV_ASAN_VENV:-/tmp/leanconv-asan-venv}
start=$(date +%s)
rm -rf "$VENV"
python3 -m venv "$VENV"
. "$VENV/bin/activate"
pip install -q --disable-pip-version-check "setuptools>=64" "Cython>=3.0" wheel numpy pytest hypothesis threadpoolctl
# Build from a copy of the sources: building in the tree would leave ASan objects
# in build/ (and a generated _core.c, an egg-info) that a later in-place build
# would pick up as up to date.
SRC=$(mktemp -d "${TMPDIR:-/tmp}/leanconv-asan-src.XXXXXX")
trap 'rm -rf "$SRC"' EXIT
tar -cf - --exclude=./.git --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude='*.so' --exclude='*.o' --exclude=__pycache__ --exclude=./.venv \
    --exclude=.pytest_cache --exclude=.hypothesis . | tar -C "$SRC" -xf -
LEANCONV_SANITIZE=1 pip install -q --disable-pip-version-check --no-build-isolation "$SRC"
ASAN_LIB=$(gcc -print-file-name=libasan.so)
UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(-q -x -p no:cacheprovider tests/test_correctness.py tests/test_errors.py
        tests/test_memory.py tests/test_threads.py tests/test_threadpool.py tests/test_pool_spread.py tests/test_winograd_range.py
        tests/test_direct_lanes.py tests/test_pointwise_lanes.py tests/test_se_block.py
        tests/test_depthwise_tiny.py tests/test_ir_block.py tests/test_pool.py
        tests/test_bound_pool.py tests/test_conv_op.py tests/test_dw_planes_kernel.py
        -k "not gil")
fi
LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" \
ASAN_OPTIONS=detect_leaks=0,allocator_may_return_null=1,abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1,halt_on_error=1 \
  python -m pytest "${args[@]}"
echo "sanitize: clean in $(( $(date +%s) - start )) s"
