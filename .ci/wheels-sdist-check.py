"""Checks an sdist: it holds everything a build needs (headers, kernels, the
Cython binding, the tests) and nothing generated (Cython's _core.c, objects,
compiled modules, caches).  Usage: python .ci/wheels-sdist-check.py dist/leanconv-*.tar.gz"""
import fnmatch
import sys
import tarfile

MUST_HAVE = [
    "pyproject.toml", "setup.py", "MANIFEST.in", "PKG-INFO",
    "include/leanconv/conv.h", "include/leanconv/ukernels.h",
    "kernels/isa_build.h", "kernels/dispatch.c", "kernels/scalar/gemm.c",
    "python/leanconv/__init__.py", "python/leanconv/_core.pyx",
    "tests/test_wheel_build.py",
]
MUST_NOT_HAVE = ["python/leanconv/_core.c", "*.so", "*.pyd", "*.dylib", "*.o", "*.obj",
                 "*.pyc", "*/__pycache__/*", "build/*", "*/.hypothesis/*", ".git/*"]


def main(path):
    with tarfile.open(path) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()
                 if m.isfile() and "/" in m.name]
    missing = [f for f in MUST_HAVE if f not in names]
    extra = sorted(n for n in names if any(fnmatch.fnmatch(n, pat) for pat in MUST_NOT_HAVE))
    kernels = sum(n.startswith("kernels/") and n.endswith(".c") for n in names)
    print(f"sdist {path}: {len(names)} files, {kernels} kernel .c files")
    for f in missing:
        print(f"  MISSING {f}")
    for f in extra:
        print(f"  SHOULD NOT BE THERE {f}")
    if missing or extra:
        sys.exit(1)
    print("  ok: headers, kernels, _core.pyx and tests present; no generated or compiled files")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
