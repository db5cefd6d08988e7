/* Softmax over the middle axis of outer x n x inner floats
 * (include/leanconv/softmax.h).  In C rather than NumPy for a classifier's
 * 1000 values: NumPy's four ufunc calls cost ~10 us warm but 100-150 us as
 * the first NumPy work after a model's convolutions (its dispatch paths
 * cold).  A task is a run of rows (inner == 1) or a block of LC_SM_COLS
 * columns of one outer index; the ISA's primitive (kernels/softmax_lanes_template.h)
 * does it with its vector exp, or the portable loop below. */
#include <math.h>

#include "leanconv/softmax.h"
#include "leanconv/ukernels.h"
#include "internal.h"

/* columns per task when inner > 1: whole vectors of every ISA (16, 8, 4
 * lanes), and a task of n x 64 floats read three times stays in L2 */
#define LC_SM_COLS 64

/* values per task when inner == 1: attention's short rows (49, 197 keys) a
 * few dozen at a time, so a task's dispatch is not paid per row */
#define LC_SM_ROW_VALUES 4096

typedef struct {
    lc_softmax_fn fn;
    const float *x;
    float *y;
    int64_t n, inner, blocks;   /* blocks: column blocks per outer index */
    int64_t outer, rows;        /* inner == 1: rows per task */
} lc_softmax_ctx;

/* One softmax of n values `stride` floats apart, in double: libm's exp of
 * the exact x - m, the sum, then one rounding per output (exps computed
 * twice, as storing them in float would round once more: the scalar ISA is
 * the fallback, its accuracy the reference). */
static void softmax_portable(float *y, const float *x, int64_t n, int64_t stride) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) {
        const float v = x[i * stride];
        m = v > m || v != v ? v : m;   /* a NaN sticks */
    }
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += exp((double)x[i * stride] - (double)m);
    for (int64_t i = 0; i < n; i++)
        y[i * stride] = (float)(exp((double)x[i * stride] - (double)m) / s);
}

static void softmax_task(void *vctx, int64_t item, int thread) {
    const lc_softmax_ctx *t = (const lc_softmax_ctx *)vctx;
    (void)thread;
    if (t->inner == 1) {
        const int64_t r0 = item * t->rows;
        const int64_t cnt = t->outer - r0 < t->rows ? t->outer - r0 : t->rows;
        if (t->fn) {
            t->fn(t->y + r0 * t->n, t->x + r0 * t->n, (size_t)t->n, 1, (size_t)cnt);
            return;
        }
        for (int64_t r = r0; r < r0 + cnt; r++) softmax_portable(t->y + r * t->n, t->x + r * t->n, t->n, 1);
        return;
    }
    const int64_t o = item / t->blocks, b = item % t->blocks;
    const int64_t j0 = b * LC_SM_COLS;
    const int64_t cnt = t->inner - j0 < LC_SM_COLS ? t->inner - j0 : LC_SM_COLS;
    const int64_t at = o * t->n * t->inner + j0;
    if (t->fn) {
        t->fn(t->y + at, t->x + at, (size_t)t->n, (size_t)t->inner, (size_t)cnt);
        return;
    }
    for (int64_t j = 0; j < cnt; j++) softmax_portable(t->y + at + j, t->x + at + j, t->n, t->inner);
}

int lc_softmax(const lc_isa_config *isa, const float *x, float *y, int64_t outer, int64_t n,
               int64_t inner, int nthreads) {
    if (outer <= 0 || n <= 0 || inner <= 0) return LC_OK;
    lc_softmax_ctx t;
    t.fn = isa ? isa->softmax : NULL;
    t.x = x; t.y = y; t.n = n; t.inner = inner;
    t.blocks = (inner + LC_SM_COLS - 1) / LC_SM_COLS;
    t.outer = outer;
    t.rows = n >= LC_SM_ROW_VALUES ? 1 : LC_SM_ROW_VALUES / n;
    const int64_t items = inner == 1 ? (outer + t.rows - 1) / t.rows : outer * t.blocks;
    /* work: about 20 multiply-adds' worth a value (the exp, three passes) */
    const double work = 20.0 * (double)outer * (double)n * (double)inner;
    lc_parallel_for(nthreads, items, work, softmax_task, &t);
    return LC_OK;
}
