"""The repository itself (issue 14.7, 14.8): it names no package registry or
mirror host, the CI scripts take the Debian mirror from the machine's apt
configuration, the NEON test builds through setup.py, and the C sources use
no compiler-specific spelling outside kernels/isa_build.h."""
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"

pytestmark = pytest.mark.skipif(not CI.is_dir(), reason="needs the source tree")


def _files(*dirs):
    for d in dirs:
        for p in sorted((ROOT / d).rglob("*")):
            if p.is_file():
                yield p


def test_ci_and_workflows_name_no_registry_or_mirror_host():
    """Every URL in .ci and .github is documentation of a tool, not a place
    packages come from: Debian mirrors come from apt's configuration, Python
    packages from pip's, the publish action uses its default index."""
    hosts = re.compile(r"https?://([^/\s\"'`)]+)")
    found = [(p.relative_to(ROOT), h) for p in _files(".ci", ".github")
             for h in hosts.findall(p.read_text(errors="replace"))]
    assert found == [], found


def _mirror(tmp_path, suite, env=None, **files):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (etc / name.replace("__", "/").replace("_dot_", ".")).write_text(text)
    script = ('log() { :; }; die() { echo "$*" >&2; exit 1; }; '
              f'. "{CI / "host-packages.sh"}"; debian_mirror {suite}')
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={"LEANCONV_APT_ETC": str(etc), "PATH": "/usr/bin:/bin", **(env or {})})


DEB822 = """Types: deb
# a comment
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
"""


ONE_LINE = ("# deb http://old.example/debian buster main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.example/debian bookworm main\n")
OTHER_SUITE = "deb https://vendor.example/apt stable main\ndeb http://trixie.example/debian trixie main\n"


@pytest.mark.parametrize("files, mirror", [
    ({"sources_dot_list_dot_d__debian_dot_sources": DEB822}, "http://mirror.example/debian"),
    ({"sources_dot_list": ONE_LINE}, "http://one.example/debian"),
    # no source for the suite: the Debian archive of another release serves it too
    ({"sources_dot_list": OTHER_SUITE}, "http://trixie.example/debian"),
], ids=["deb822", "one-line", "other-suite"])
def test_debian_mirror_comes_from_apt_configuration(tmp_path, files, mirror):
    r = _mirror(tmp_path, "bookworm", **files)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == mirror


def test_debian_mirror_env_overrides_and_none_is_a_clear_error(tmp_path):
    r = _mirror(tmp_path, "bookworm", env={"LEANCONV_DEBIAN_MIRROR": "http://mine.example/d"})
    assert r.stdout.strip() == "http://mine.example/d"
    r = _mirror(tmp_path, "bookworm", sources_dot_list="deb https://vendor.example/apt stable main\n")
    assert r.returncode != 0 and "LEANCONV_DEBIAN_MIRROR" in r.stderr


def test_c_sources_use_no_compiler_specific_attribute():
    """MSVC builds the AVX2/AVX-512 kernels too (isa_build.h): GCC's
    __attribute__ only through isa_build.h's macros (or clang-only pragmas)."""
    offenders = []
    for p in _files("kernels", "include"):
        if p.suffix not in (".c", ".h") or p.name == "isa_build.h":
            continue
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if "__attribute__" in line and "#pragma clang attribute" not in line:
                offenders.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)


def test_readme_points_only_inside_the_repository():
    """Every file README names exists in the repository (the design too)."""
    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`((?:\.\./|[\w.-]+/)[\w./-]+\.(?:md|py|sh|h|c|toml))`", text))
    assert "docs/design.md" in named
    # a benchmark's table may not be generated yet: a bench/ script that writes it counts
    generated = " ".join(b.read_text() for b in (ROOT / "bench").glob("*.py"))
    missing = [p for p in sorted(named) if p.startswith("../") or
               not ((ROOT / p).is_file() or pathlib.PurePath(p).name in generated)]
    assert missing == [], missing


def test_readme_describes_what_auto_does():
    """README's account of "auto" against what plans choose (issue 14.7)."""
    import numpy as np

    import leanconv as lc
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "Patch2Vec otherwise" not in text
    assert "within 8 × L2, else Patch2Vec" in text and "answers for a 28×28 output" in text
    assert "kernels/choose.c" in text

    def auto(w_shape, x_shape, **kw):
        return lc.Conv2d(np.zeros(w_shape, np.float32), input_shape=x_shape, **kw).algorithm
    assert auto((8, 1, 3, 3), (1, 8, 16, 16), groups=8, padding=1) == "depthwise"
    assert auto((64, 64, 1, 1), (1, 64, 56, 56)) == "im2col"
    assert auto((64, 64, 3, 3), (1, 64, 56, 56), padding=1).startswith("winograd")
    # 5x5: K x P = 64*25*56*56*4 bytes = 20 MiB > 8 x L2 -> Patch2Vec; at 16x16 1.6 MiB -> Im2Col
    # (for any L2 of at least 256 KiB, the fallback size; 256 pixels fill the GEMM's pixel
    # panels, so direct_lanes is not weighed at stride 1)
    assert auto((64, 64, 5, 5), (1, 64, 56, 56), padding=2) == "patch2vec"
    assert auto((64, 64, 5, 5), (1, 64, 16, 16), padding=2) == "im2col"


def test_onnx_extra_installs_what_torch_onnx_export_needs():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in extras["onnx"]}
    assert {"onnx", "onnxruntime", "onnxscript"} <= names


def test_neon_test_builds_through_setup_py():
    """What runs under qemu is what ships: .ci/test-neon.sh has setup.py build
    the extension (its flags, its OpenMP probe) and compiles nothing itself;
    tests/test_neon.py then checks the build's -O level under qemu."""
    script = (CI / "test-neon.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"setup\.py\b.*\bbuild_ext", code)
    assert not re.search(r'"\$CC"[^\n]*\s-c\s', code), "a compile outside setup.py"
    assert not re.search(r"(^|[\s(])-O[0-3s]\b", code), "optimisation flags of its own"
