/* Copying runs of floats gathered from offsets (kernels/gather.c): the copy a
 * reshape of a permuted view makes, e.g. ShuffleNet's channel shuffle
 * (Reshape -> Transpose -> Reshape), whose runs are whole planes. */
#ifndef LEANCONV_GATHER_H
#define LEANCONV_GATHER_H

#include <stdint.h>

/* y[i * run + k] = x[offsets[i] + k] for i < runs, k < run, on up to nthreads
 * threads (runs split between them; a pure copy, so the same bits on any
 * count).  The caller checks the offsets against x's length. */
int lc_gather_runs(const float *x, float *y, const int64_t *offsets, int64_t runs, int64_t run,
                   int nthreads);

#endif
