# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Binding: NumPy buffers -> C descriptors, the GIL released around the kernels.

Everything here is mechanical; argument checking and algorithm choice live in
the pure-Python layer (_params.py, _select.py, _plan.py)."""
from libc.stdint cimport int64_t

cdef extern from "leanconv/conv.h":
    ctypedef struct lc_epilogue:
        float lo
        float hi
        int clamp
    ctypedef struct lc_isa_config:
        const char *name
        int mr
        int nr
        int kc
    ctypedef struct lc_conv_desc:
        int64_t N, C, H, W, M, kH, kW, OH, OW
        int64_t stride_h, stride_w, dil_h, dil_w
        int64_t pad_t, pad_b, pad_l, pad_r, groups
        int algorithm
        int nthreads
        lc_epilogue epilogue
        const lc_isa_config *isa
    int lc_conv_supports(const lc_conv_desc *d, const char **why) nogil
    int64_t lc_conv_packed_floats(const lc_conv_desc *d) nogil
    void lc_conv_pack_weights(const lc_conv_desc *d, const float *w, float *packed) nogil
    int64_t lc_conv_workspace_bytes(const lc_conv_desc *d) nogil
    int lc_conv_run(const lc_conv_desc *d, const float *x, const float *packed,
                    const float *bias, float *y, void *workspace, int64_t workspace_bytes) nogil
    void *lc_aligned_alloc(int64_t nbytes) nogil
    void lc_aligned_free(void *p) nogil

cdef extern from "leanconv/ukernels.h":
    const lc_isa_config *lc_isa_get(int isa)
    const char *lc_isa_name(int isa)
    int lc_isa_compiled(int isa)
    int LC_ISA_COUNT

cdef extern from "leanconv/cpu.h":
    ctypedef struct lc_cpu_features:
        int x86, arm64, arm32, sse2, avx, avx2, fma, f16c
        int avx512f, avx512bw, avx512vl, avx512dq, os_ymm, os_zmm, neon
    const lc_cpu_features *lc_cpu()

cdef extern from *:
    """
    #ifdef LC_HAVE_OPENMP
    #include <omp.h>
    static int lc_openmp_enabled(void) { return 1; }
    static int lc_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int lc_openmp_enabled(void) { return 0; }
    static int lc_omp_max_threads(void) { return 1; }
    #endif
    """
    int lc_openmp_enabled()
    int lc_omp_max_threads()

ALGORITHMS = ("direct", "im2col", "patch2vec", "winograd_f2", "winograd_f4",
              "winograd_f6", "depthwise")
ISA_NAMES = tuple(lc_isa_name(i).decode() for i in range(LC_ISA_COUNT))

# Bytes of the last workspace a call on this process allocated (for tests that
# check workspace_bytes() is the number the call really uses).
cdef int64_t _last_workspace_bytes = -1


def last_workspace_bytes():
    return _last_workspace_bytes


def cpu_features():
    cdef const lc_cpu_features *f = lc_cpu()
    return {k: bool(v) for k, v in dict(
        x86=f.x86, arm64=f.arm64, arm32=f.arm32, sse2=f.sse2, avx=f.avx, avx2=f.avx2,
        fma=f.fma, f16c=f.f16c, avx512f=f.avx512f, avx512bw=f.avx512bw,
        avx512vl=f.avx512vl, avx512dq=f.avx512dq, os_saves_ymm=f.os_ymm,
        os_saves_zmm=f.os_zmm, neon=f.neon).items()}


def isa_status():
    """[(name, compiled into this build, runs on this CPU)] in ISA id order."""
    return [(ISA_NAMES[i], bool(lc_isa_compiled(i)), lc_isa_get(i) != NULL)
            for i in range(LC_ISA_COUNT)]


def isa_tile(int isa):
    cdef const lc_isa_config *cfg = lc_isa_get(isa)
    if cfg == NULL:
        raise ValueError(f"ISA {ISA_NAMES[isa]!r} is not available")
    return cfg.mr, cfg.nr, cfg.kc


def openmp_enabled():
    return bool(lc_openmp_enabled())


def omp_max_threads():
    return lc_omp_max_threads()


cdef int fill_desc(lc_conv_desc *d, int algorithm, int isa, tuple geometry,
                   tuple clamp, int nthreads) except -1:
    """geometry: (N, C, H, W, M, kH, kW, OH, OW, sh, sw, dh, dw, pt, pb, pl, pr, groups)"""
    (d.N, d.C, d.H, d.W, d.M, d.kH, d.kW, d.OH, d.OW, d.stride_h, d.stride_w,
     d.dil_h, d.dil_w, d.pad_t, d.pad_b, d.pad_l, d.pad_r, d.groups) = geometry
    d.algorithm = algorithm
    d.nthreads = nthreads if nthreads > 0 else 1
    d.isa = lc_isa_get(isa)
    if d.isa == NULL:
        raise ValueError(f"ISA {ISA_NAMES[isa]!r} is not available on this CPU")
    d.epilogue.clamp = 1 if clamp is not None else 0
    d.epilogue.lo = clamp[0] if clamp is not None else 0.0
    d.epilogue.hi = clamp[1] if clamp is not None else 0.0
    return 0


def why_unsupported(int algorithm, int isa, tuple geometry):
    """None when the algorithm supports the shape, else the constraint."""
    cdef lc_conv_desc d
    cdef const char *why = NULL
    fill_desc(&d, algorithm, isa, geometry, None, 1)
    if lc_conv_supports(&d, &why):
        return None
    return why.decode()


def sizes(int algorithm, int isa, tuple geometry, int nthreads):
    """(packed weight bytes, workspace bytes) for this call; -1 where a size
    overflows 63 bits."""
    cdef lc_conv_desc d
    fill_desc(&d, algorithm, isa, geometry, None, nthreads)
    cdef int64_t packed = lc_conv_packed_floats(&d)
    cdef int64_t ws = lc_conv_workspace_bytes(&d)
    return (packed * 4 if packed >= 0 else -1), ws


cdef class Kernel:
    """Weights packed once for one algorithm, ISA and filter geometry; runs
    calls on any input size."""
    cdef float *packed
    cdef int64_t packed_floats
    cdef readonly int algorithm, isa
    cdef tuple clamp
    cdef tuple wgeom

    def __cinit__(self):
        self.packed = NULL

    def __init__(self, int algorithm, int isa, const float[::1] weights, tuple geometry,
                 tuple clamp):
        cdef lc_conv_desc d
        self.algorithm = algorithm
        self.isa = isa
        self.clamp = clamp
        self.wgeom = geometry
        fill_desc(&d, algorithm, isa, geometry, clamp, 1)
        self.packed_floats = lc_conv_packed_floats(&d)
        if self.packed_floats < 0:
            raise ValueError("packed weights would not fit in 63 bits")
        self.packed = <float *>lc_aligned_alloc(self.packed_floats * 4)
        if self.packed == NULL:
            raise MemoryError(f"leanconv could not allocate {self.packed_floats * 4} bytes "
                              f"for the packed weights")
        with nogil:
            lc_conv_pack_weights(&d, &weights[0], self.packed)

    def __dealloc__(self):
        if self.packed != NULL:
            lc_aligned_free(self.packed)

    @property
    def packed_bytes(self):
        return self.packed_floats * 4

    def run(self, const float[::1] x, float[::1] y, const float[::1] bias, tuple geometry,
            int nthreads):
        """y = conv(x).  `geometry` is the full call geometry (same filters as
        at packing).  Allocates exactly lc_conv_workspace_bytes and frees it."""
        global _last_workspace_bytes
        cdef lc_conv_desc d
        cdef int64_t ws_bytes
        cdef void *ws = NULL
        cdef int status
        cdef const float *bias_ptr = NULL
        if bias is not None:
            bias_ptr = &bias[0]
        fill_desc(&d, self.algorithm, self.isa, geometry, self.clamp, nthreads)
        ws_bytes = lc_conv_workspace_bytes(&d)
        if ws_bytes < 0:
            raise ValueError("the workspace of this call would not fit in 63 bits")
        if ws_bytes > 0:
            ws = lc_aligned_alloc(ws_bytes)
            if ws == NULL:
                raise MemoryError(f"leanconv could not allocate {ws_bytes} bytes of workspace "
                                  f"for {ALGORITHMS[self.algorithm]}")
        _last_workspace_bytes = ws_bytes
        try:
            with nogil:
                status = lc_conv_run(&d, &x[0], self.packed, bias_ptr, &y[0], ws, ws_bytes)
        finally:
            if ws != NULL:
                lc_aligned_free(ws)
        if status != 0:
            raise RuntimeError(f"leanconv kernel failed with status {status}")
