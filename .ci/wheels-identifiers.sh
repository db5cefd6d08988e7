#!/usr/bin/env bash
# Proof 1: the cibuildwheel configuration builds exactly the intended wheels,
# and the jobs of .github/workflows/wheels.yml build each of them exactly once.
#
#   bash .ci/wheels-identifiers.sh
#
# No Docker, macOS or Windows needed: cibuildwheel only lists the builds.
# When the matrix changes on purpose, change EXPECTED below with it.
set -euo pipefail
# shellcheck disable=SC2034  # PROOF is read by wheels-lib.sh
PROOF=wheels-identifiers
source "$(dirname "$0")/wheels-lib.sh"

# CPython 3.10-3.14, no free-threaded builds.  Left out on purpose:
# musllinux i686 and cp310-win_arm64, for which NumPy has no wheels.
declare -A EXPECTED
EXPECTED[linux]="
cp310-manylinux_x86_64 cp311-manylinux_x86_64 cp312-manylinux_x86_64 cp313-manylinux_x86_64 cp314-manylinux_x86_64
cp310-manylinux_i686 cp311-manylinux_i686 cp312-manylinux_i686 cp313-manylinux_i686 cp314-manylinux_i686
cp310-manylinux_aarch64 cp311-manylinux_aarch64 cp312-manylinux_aarch64 cp313-manylinux_aarch64 cp314-manylinux_aarch64
cp310-musllinux_x86_64 cp311-musllinux_x86_64 cp312-musllinux_x86_64 cp313-musllinux_x86_64 cp314-musllinux_x86_64
cp310-musllinux_aarch64 cp311-musllinux_aarch64 cp312-musllinux_aarch64 cp313-musllinux_aarch64 cp314-musllinux_aarch64"
EXPECTED[macos]="
cp310-macosx_arm64 cp311-macosx_arm64 cp312-macosx_arm64 cp313-macosx_arm64 cp314-macosx_arm64
cp310-macosx_x86_64 cp311-macosx_x86_64 cp312-macosx_x86_64 cp313-macosx_x86_64 cp314-macosx_x86_64"
EXPECTED[windows]="
cp310-win_amd64 cp311-win_amd64 cp312-win_amd64 cp313-win_amd64 cp314-win_amd64
cp310-win32 cp311-win32 cp312-win32 cp313-win32 cp314-win32
cp311-win_arm64 cp312-win_arm64 cp313-win_arm64 cp314-win_arm64"

sorted_words() { tr ' ' '\n' | sed '/^$/d' | sort; }

step "tools: cibuildwheel $CIBW_VERSION in a cached venv"
ensure_tools_venv
CIBW=("$TOOLS_VENV/bin/python" -m cibuildwheel)
cd "$REPO"

step "the configuration and the workflows are valid (cibuildwheel's and GitHub's schemas)"
# cibuildwheel ignores some misplaced options without a word (e.g. test-skip in
# a platform table); its own JSON schema does not.
"$TOOLS_VENV/bin/python" - "$REPO/pyproject.toml" <<'PY'
import json, pathlib, sys, tomllib
import cibuildwheel, jsonschema
schema = json.loads((pathlib.Path(cibuildwheel.__file__).parent / "resources/cibuildwheel.schema.json").read_text())
jsonschema.validate(tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"], schema)
print("    [tool.cibuildwheel]: valid")
PY
"$TOOLS_VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows \
    "$REPO"/.github/workflows/*.yml | sed 's/^/    workflows: /'

step "pyproject.toml lists exactly the expected builds per platform"
total=0
for platform in linux macos windows; do
    got=$("${CIBW[@]}" --print-build-identifiers --platform "$platform" | sorted_words)
    want=$(echo "${EXPECTED[$platform]}" | sorted_words)
    if [ "$got" != "$want" ]; then
        echo "--- $platform: expected (<) vs cibuildwheel (>)"
        diff <(echo "$want") <(echo "$got") || true
        die "$platform builds differ from the expected list"
    fi
    n=$(echo "$got" | wc -l)
    total=$((total + n))
    log "$platform: $n builds, as expected"
done
log "matrix: $total wheels"

step "the workflow jobs partition the matrix (each wheel built by exactly one job)"
WORKFLOW="$REPO/.github/workflows/wheels.yml"
grep -q "pypa/cibuildwheel@v$CIBW_VERSION\$" "$WORKFLOW" \
    || die "wheels.yml does not use pypa/cibuildwheel@v$CIBW_VERSION (the version proved here)"
jobs=$("$TOOLS_VENV/bin/python" - "$WORKFLOW" <<'PY'
import sys, yaml
wf = yaml.safe_load(open(sys.argv[1]))
for job in wf["jobs"]["build_wheels"]["strategy"]["matrix"]["include"]:
    print(job["name"], job["runner"], job["platform"], job["archs"])
PY
)
all_built=""
# The same environment variables the workflow gives the cibuildwheel action.
while read -r name runner platform archs; do
    built=$(CIBW_PLATFORM="$platform" CIBW_ARCHS="$archs" "${CIBW[@]}" --print-build-identifiers | sorted_words)
    [ -n "$built" ] || die "job $name builds nothing"
    log "job $name on $runner ($platform, $archs): $(echo "$built" | wc -l) wheels"
    all_built+="$built"$'\n'
done <<< "$jobs"
dups=$(echo "$all_built" | sed '/^$/d' | sort | uniq -d)
[ -z "$dups" ] || die "built by more than one job: $dups"
want_all=$(for p in linux macos windows; do echo "${EXPECTED[$p]}"; done | sorted_words)
got_all=$(echo "$all_built" | sed '/^$/d' | sort)
if [ "$got_all" != "$want_all" ]; then
    diff <(echo "$want_all") <(echo "$got_all") || true
    die "the workflow's jobs do not build exactly the matrix"
fi
log "the $(echo "$got_all" | wc -l) wheels of the workflow are exactly the matrix, none twice"

step "every wheel's effective options: OpenMP promise, repair tool, tested or not"
# cibuildwheel's own option resolution (its Python API, pinned version), so
# platform tables and overrides are read exactly as a real build reads them.
"$TOOLS_VENV/bin/python" - <<'PY'
import dataclasses
from cibuildwheel.options import CommandLineArguments, compute_options
import subprocess, sys
untested = {"cp311-manylinux_i686", "cp312-manylinux_i686", "cp313-manylinux_i686"}
repair_tool = {"linux": "auditwheel repair", "macos": "delocate-wheel", "windows": "delvewheel repair"}
count = {}
for plat in ("linux", "macos", "windows"):
    ids = subprocess.run([sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
                          "--platform", plat], capture_output=True, text=True, check=True).stdout.split()
    opts = compute_options(plat, dataclasses.replace(CommandLineArguments.defaults(), platform=plat), {})
    for ident in ids:
        b = opts.build_options(ident)
        env, tenv = b.environment.as_dictionary({}), b.test_environment.as_dictionary({})
        serial = plat == "macos"
        assert (env.get("LEANCONV_NO_OPENMP") == "1") == serial, (ident, env)
        assert tenv.get("LEANCONV_EXPECT_OPENMP") == ("0" if serial else "1"), (ident, tenv)
        assert b.repair_command.startswith(repair_tool[plat]), (ident, b.repair_command)
        assert b.globals.test_selector(ident) == (ident not in untested), ident
        assert "pytest {project}/tests" in (b.test_command or ""), (ident, b.test_command)
        if plat == "linux":
            arch = ident.split("_", 1)[1]
            image = (b.musllinux_images if "musllinux" in ident else b.manylinux_images)[arch]
            assert ("musllinux_1_2" if "musllinux" in ident else "manylinux_2_28") in image, (ident, image)
        count[plat] = count.get(plat, 0) + 1
print("    checked:", count, "| OpenMP promised everywhere but macOS; tests skipped only on",
      " ".join(sorted(untested)))
PY

step "the test command runs the suite and the ISA report on every wheel"
"$TOOLS_VENV/bin/python" - "$REPO/pyproject.toml" <<'PY'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"]
cmd = " && ".join(cfg["test-command"])
assert "pytest {project}/tests" in cmd, cmd
assert "available_isas()" in cmd or "leanconv info" in cmd, cmd
assert cfg["test-extras"] == ["test"], cfg.get("test-extras")
print("test-command:", cmd)
print("test-skip:", " ".join(cfg.get("test-skip", [])))
PY
finish
