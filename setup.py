"""Build of the leanconv extension: one module, leanconv._core, from the
Cython binding plus every C file under kernels/.

ISA-specific files carry their own target pragmas and #if guards (see
kernels/isa_build.h), so no file needs per-file flags and the tree builds with
any C compiler.  Environment switches:
  LEANCONV_NO_OPENMP=1   build without OpenMP (serial)
  LEANCONV_NO_SIMD=1     build the scalar kernels only
  LEANCONV_SANITIZE=1    -fsanitize=address,undefined (see README)
  LIBOMP_PREFIX=<dir>    macOS: where libomp is, if not Homebrew's usual place
  LEANCONV_BUILD_JOBS=N  compile N sources at once (default: the CPUs this
                         process may use; 1 compiles one after another)
"""
import os
import platform
import struct
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()


def kernel_sources():
    return sorted(str(p.relative_to(ROOT)).replace(os.sep, "/")
                  for p in (ROOT / "kernels").rglob("*.c"))


def header_files():
    """Every header the kernels include: a change to one rebuilds the
    extension (setuptools only compares the sources' times otherwise)."""
    return sorted(str(p.relative_to(ROOT)).replace(os.sep, "/")
                  for d in ("kernels", "include") for p in (ROOT / d).rglob("*.h"))


def flag_on(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class BuildExt(build_ext):
    """Adds compiler-dependent flags once the compiler is known."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        cflags, ldflags, macros = [], [], []
        if msvc:
            cflags += ["/O2"]
        else:
            cflags += ["-O3", "-fno-strict-aliasing", "-Wno-unused-function"]
            if is_32bit_x86():
                # GCC and clang default to x87 floating point on i686; SSE2
                # (every x86 CPU since 2003) is faster and rounds like x86-64.
                cflags += ["-msse2", "-mfpmath=sse"]
        if not flag_on("LEANCONV_NO_OPENMP"):
            omp = self.openmp_flags(msvc)
            if omp is not None:
                cflags += omp[0]
                ldflags += omp[1]
                macros.append(("LC_HAVE_OPENMP", "1"))
        if flag_on("LEANCONV_NO_SIMD"):
            macros.append(("LC_NO_SIMD", "1"))
        if flag_on("LEANCONV_SANITIZE") and not msvc:
            san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                   "-fno-sanitize-recover=undefined"]
            cflags = [f for f in cflags if not f.startswith("-O")] + ["-O1", "-g"] + san
            ldflags += san
        # The optimisation level this build used, for `leanconv info` and for the
        # tests that check a build went through here (e.g. the NEON one under qemu).
        opt = [f for f in cflags if f[:2] in ("-O", "/O")][-1]
        macros.append(("LC_BUILD_OPT_LEVEL", opt[2:]))
        for ext in self.extensions:
            ext.extra_compile_args += cflags
            ext.extra_link_args += ldflags
            ext.define_macros += macros
        compile_in_parallel(self.compiler, build_jobs())
        super().build_extensions()

    def openmp_flags(self, msvc):
        """(compile flags, link flags) if the compiler builds an OpenMP program."""
        if msvc:
            candidates = [(["/openmp"], [])]
        elif sys.platform == "darwin":
            # Apple clang has no OpenMP runtime of its own: use Homebrew's
            # keg-only libomp when it is there (wheels build serial, see docs/wheels.md).
            candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
            for prefix in libomp_prefixes():
                candidates.append((["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                                   [f"-L{prefix}/lib", "-lomp"]))
            candidates.append((["-fopenmp"], ["-fopenmp"]))
        else:
            candidates = [(["-fopenmp"], ["-fopenmp"])]
        for cflags, ldflags in candidates:
            if self.try_compile_and_link(cflags, ldflags):
                print(f"leanconv: building with OpenMP ({' '.join(cflags + ldflags)})", file=sys.stderr)
                return cflags, ldflags
        print("leanconv: OpenMP not available, building the serial version", file=sys.stderr)
        return None

    def try_compile_and_link(self, cflags, ldflags):
        src = "#include <omp.h>\nint main(void){ return omp_get_max_threads() > 0 ? 0 : 1; }\n"
        with tempfile.TemporaryDirectory() as tmp:
            c_file = os.path.join(tmp, "omp_probe.c")
            with open(c_file, "w") as f:
                f.write(src)
            try:
                objs = self.compiler.compile([c_file], output_dir=tmp, extra_postargs=cflags)
                self.compiler.link_executable(objs, os.path.join(tmp, "omp_probe"),
                                              extra_postargs=ldflags)
                return True
            except Exception:
                return False


def build_jobs():
    """How many sources to compile at once: LEANCONV_BUILD_JOBS, else the CPUs
    this process may run on (CI machines and wheel containers have few, and
    the build is most of CI's wall time, so use them all)."""
    env = os.environ.get("LEANCONV_BUILD_JOBS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise SystemExit(f"LEANCONV_BUILD_JOBS must be a positive integer, got {env!r}")
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def compile_in_parallel(compiler, jobs):
    """Make `compiler.compile` run up to `jobs` compiler processes at once.

    distutils compiles one extension's sources one after another; leanconv is
    one extension of ~100 C files, so that leaves all but one core idle.  The
    per-object step (`_compile`) only starts a compiler process, so threads are
    enough.  Sources keep their order, so the biggest (the Cython module,
    listed first) starts first.  MSVC compiles in one call and keeps its own
    path."""
    if jobs <= 1 or compiler.compiler_type == "msvc":
        return
    serial_compile = compiler.compile

    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
        if len(sources) < 2:
            return serial_compile(sources, output_dir, macros, include_dirs, debug,
                                  extra_preargs, extra_postargs, depends)
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

        def one(obj):
            if obj in build:
                src, ext = build[obj]
                compiler._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, objects))  # list(): re-raises a failed compile
        return objects

    compiler.compile = compile


def is_32bit_x86():
    return struct.calcsize("P") == 4 and platform.machine().lower() in (
        "i386", "i486", "i586", "i686", "x86", "x86_64", "amd64")


def libomp_prefixes():
    """Homebrew's libomp: $LIBOMP_PREFIX, then the Apple-silicon and Intel prefixes."""
    found = [os.environ.get("LIBOMP_PREFIX", ""), "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [p for p in found if p and os.path.isfile(os.path.join(p, "include", "omp.h"))]


def extensions():
    from Cython.Build import cythonize

    ext = Extension(
        "leanconv._core",
        sources=["python/leanconv/_core.pyx"] + kernel_sources(),
        include_dirs=["include", "kernels"],
        depends=header_files(),
        extra_compile_args=[],
        extra_link_args=[],
        define_macros=[],
    )
    return cythonize([ext], language_level=3, compiler_directives={"embedsignature": True})


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
