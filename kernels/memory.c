/* 64-byte aligned allocation that reports failure instead of aborting. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L
#endif
#include <stdlib.h>
#include "internal.h"
#if defined(_WIN32)
#include <malloc.h>
#endif

void *lc_aligned_alloc(int64_t bytes) {
    if (bytes <= 0) bytes = LC_ALIGN;
    if ((uint64_t)bytes > (uint64_t)SIZE_MAX - LC_ALIGN) return NULL;
#if defined(_WIN32)
    return _aligned_malloc((size_t)bytes, LC_ALIGN);
#else
    void *p = NULL;
    if (posix_memalign(&p, LC_ALIGN, (size_t)bytes) != 0) return NULL;
    return p;
#endif
}

void lc_aligned_free(void *p) {
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}
