/* Broadcasting element-wise binary ops (include/leanconv/binary.h).  In C
 * on leanconv's threads rather than NumPy: a transformer's attention adds
 * a bias and a mask broadcast over its windows and scales strided views,
 * ~4% of Swin-T's run at one thread in NumPy, and NumPy's ufuncs use one
 * thread whatever the model was given.  Portable C: the loops are memory
 * bound and the compiler vectorises the unit-stride ones. */
#include <string.h>

#include "leanconv/binary.h"
#include "internal.h"

/* floats a task writes, at least: a few rows of a small last axis */
#define LC_BINARY_TASK 16384

typedef struct {
    int op, ndim;
    float *y;
    const float *a, *b;
    const int64_t *sy, *sa, *sb, *shape;
    int64_t rows, rows_per_task, row_len;   /* rows: product of every axis but the last */
} lc_binary_ctx;

/* One row of the last axis: a at stride da, b at db (0: broadcast). */
#define LC_BINARY_ROW(EXPR)                                                           \
    do {                                                                              \
        if (da == 1 && db == 1)                                                       \
            for (int64_t i = 0; i < n; i++) { const float u = a[i], v = b[i]; y[i] = EXPR; } \
        else if (da == 1 && db == 0) {                                                \
            const float v = b[0];                                                     \
            for (int64_t i = 0; i < n; i++) { const float u = a[i]; y[i] = EXPR; }    \
        } else if (da == 0 && db == 1) {                                              \
            const float u = a[0];                                                     \
            for (int64_t i = 0; i < n; i++) { const float v = b[i]; y[i] = EXPR; }    \
        } else                                                                        \
            for (int64_t i = 0; i < n; i++) {                                         \
                const float u = a[i * da], v = b[i * db];                             \
                y[i] = EXPR;                                                          \
            }                                                                         \
    } while (0)

static void binary_row(int op, float *y, const float *a, int64_t da, const float *b, int64_t db,
                       int64_t n) {
    switch (op) {
    case LC_BINARY_ADD: LC_BINARY_ROW(u + v); break;
    case LC_BINARY_SUB: LC_BINARY_ROW(u - v); break;
    case LC_BINARY_MUL: LC_BINARY_ROW(u * v); break;
    case LC_BINARY_DIV: LC_BINARY_ROW(u / v); break;
    default:   /* LC_BINARY_COPY */
        if (da == 1)
            memmove(y, a, (size_t)n * sizeof(float));   /* (y may be a) */
        else
            for (int64_t i = 0; i < n; i++) y[i] = a[i * da];
        break;
    }
}

static void binary_task(void *vctx, int64_t item, int thread) {
    const lc_binary_ctx *t = (const lc_binary_ctx *)vctx;
    (void)thread;
    const int last = t->ndim - 1;
    const int64_t r0 = item * t->rows_per_task;
    const int64_t r1 = r0 + t->rows_per_task < t->rows ? r0 + t->rows_per_task : t->rows;
    /* the first row's index along each leading axis (last-but-one fastest),
     * then an odometer: a division per axis a task, not per row */
    int64_t idx[LC_BINARY_DIMS], oy = 0, oa = 0, ob = 0, rest = r0;
    for (int k = last - 1; k >= 0; k--) {
        idx[k] = rest % t->shape[k];
        rest /= t->shape[k];
        oy += idx[k] * t->sy[k];
        oa += idx[k] * t->sa[k];
        ob += idx[k] * t->sb[k];
    }
    for (int64_t r = r0; r < r1; r++) {
        binary_row(t->op, t->y + oy, t->a + oa, t->sa[last], t->b + ob, t->sb[last], t->row_len);
        for (int k = last - 1; k >= 0; k--) {
            oy += t->sy[k];
            oa += t->sa[k];
            ob += t->sb[k];
            if (++idx[k] < t->shape[k]) break;
            oy -= t->shape[k] * t->sy[k];
            oa -= t->shape[k] * t->sa[k];
            ob -= t->shape[k] * t->sb[k];
            idx[k] = 0;
        }
    }
}

int lc_binary(int op, float *y, const int64_t *sy, const float *a, const int64_t *sa,
              const float *b, const int64_t *sb, const int64_t *shape, int ndim, int nthreads) {
    if (op < LC_BINARY_ADD || op > LC_BINARY_COPY || ndim < 1 || ndim > LC_BINARY_DIMS ||
        sy[ndim - 1] != 1)
        return -1;
    lc_binary_ctx t;
    t.op = op; t.ndim = ndim; t.y = y; t.a = a; t.b = b;
    t.sy = sy; t.sa = sa; t.sb = sb; t.shape = shape;
    t.row_len = shape[ndim - 1];
    t.rows = 1;
    for (int k = 0; k < ndim - 1; k++) t.rows *= shape[k];
    if (t.rows <= 0 || t.row_len <= 0) return 0;
    t.rows_per_task = t.row_len >= LC_BINARY_TASK ? 1 : LC_BINARY_TASK / t.row_len;
    const int64_t items = (t.rows + t.rows_per_task - 1) / t.rows_per_task;
    /* work in multiply-adds' worth: an element is a load or two and a store */
    lc_parallel_for(nthreads, items, 2.0 * (double)t.rows * (double)t.row_len, binary_task, &t);
    return 0;
}
