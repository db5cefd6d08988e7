/* The convolution operator of include/leanconv/conv.h: create / reshape /
 * run / destroy, after XNNPACK's operator lifecycle.  Create keeps what
 * packing needs (the weights, or for a named algorithm its packing at once);
 * reshape decides per input geometry, remembers the decision, fixes the
 * driver's tiling, sizes the workspace and packs lazily; run only runs.
 * Packings of layouts no longer used go least recently used first, but one a
 * setup still holds (a call in flight on another thread) lives until that
 * setup is released. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* geometries whose decision an operator remembers (least recently used
 * out); the table grows as geometries come, from a few: most operators see
 * one or two, and a fixed table of 256 was 10 KB per operator (1.2 MB
 * of DenseNet-121's plan that the memory plan did not see) */
#define LC_OP_DECISIONS 256
#define LC_OP_DECISIONS_FIRST 4

typedef struct lc_packing {
    struct lc_packing *next;
    int layout;
    float *data;
    int64_t floats;
    int refs;       /* setups holding it */
    int retired;    /* out of the kept set: freed when refs drops to 0 */
    uint64_t used;  /* least-recently-used stamp */
} lc_packing;

typedef struct lc_decision {
    int64_t N, H, W;
    int nthreads, algorithm;
    uint64_t used;
} lc_decision;

struct lc_conv_op {
    lc_conv_desc filter;    /* input size unset; algorithm: the request */
    const float *weights;   /* raw weights (NULL: a named packed layout needs none) */
    float *own_weights;     /* the operator's copy of them, if it made one */
    int64_t weight_floats;
    float *bias;            /* copy, or NULL */
    int max_packings;
    lc_packing *packings;   /* kept and retired-but-held */
    lc_decision *decisions; /* ndecisions used of cap_decisions */
    int ndecisions, cap_decisions;
    uint64_t clock;
    int last;
    int64_t made;
};

static int lc_named(const lc_conv_op *op) { return op->filter.algorithm >= 0; }

static lc_conv_desc lc_with_algorithm(const lc_conv_desc *d, int algorithm) {
    lc_conv_desc c = *d;
    c.algorithm = algorithm;
    return c;
}

static void lc_packing_free(lc_packing *p) {
    lc_aligned_free(p->data);
    free(p);
}

/* Makes a packing of `layout` from the raw weights (the algorithm says how). */
static lc_packing *lc_packing_make(lc_conv_op *op, int algorithm, int *status) {
    const lc_conv_desc d = lc_with_algorithm(&op->filter, algorithm);
    const int64_t floats = lc_conv_packed_floats(&d);
    int ok = 1;
    if (floats < 0 || lc_mul(floats, (int64_t)sizeof(float), &ok) < 0 || !ok) {
        *status = LC_ERR_OVERFLOW;
        return NULL;
    }
    lc_packing *p = (lc_packing *)calloc(1, sizeof *p);
    float *data = (float *)lc_aligned_alloc(floats * (int64_t)sizeof(float));
    if (!p || !data) {
        free(p);
        lc_aligned_free(data);
        *status = LC_ERR_NOMEM;
        return NULL;
    }
    lc_conv_pack_weights(&d, op->weights, data);
    p->layout = lc_conv_layout(algorithm);
    p->data = data;
    p->floats = floats;
    p->used = ++op->clock;
    p->next = op->packings;
    op->packings = p;
    op->made++;
    return p;
}

static int lc_kept(const lc_conv_op *op) {
    int n = 0;
    for (const lc_packing *p = op->packings; p; p = p->next) n += !p->retired;
    return n;
}

/* Retires the least recently used kept packings beyond max_packings, and
 * frees retired ones nobody holds. */
static void lc_trim(lc_conv_op *op) {
    while (lc_kept(op) > op->max_packings) {
        lc_packing *oldest = NULL;
        for (lc_packing *p = op->packings; p; p = p->next)
            if (!p->retired && (!oldest || p->used < oldest->used)) oldest = p;
        oldest->retired = 1;
    }
    for (lc_packing **pp = &op->packings; *pp;) {
        lc_packing *p = *pp;
        if (p->retired && p->refs == 0) {
            *pp = p->next;
            lc_packing_free(p);
        } else {
            pp = &p->next;
        }
    }
}

lc_conv_op *lc_conv_op_create(const lc_conv_desc *filter, const float *weights,
                              const float *bias, int max_packings, int flags, int *status) {
    int ok = 1;
    *status = LC_OK;
    const lc_conv_desc *f = filter;
    if (!f->isa || f->algorithm < LC_ALGO_WINOGRAD_ANY || f->algorithm >= LC_ALGO_COUNT ||
        f->groups < 1 || f->C < 1 || f->M < 1 || f->C % f->groups || f->M % f->groups ||
        f->kH < 1 || f->kW < 1 || f->stride_h < 1 || f->stride_w < 1 || f->dil_h < 1 ||
        f->dil_w < 1 || f->pad_t < 0 || f->pad_b < 0 || f->pad_l < 0 || f->pad_r < 0) {
        *status = LC_ERR_UNSUPPORTED;
        return NULL;
    }
    lc_conv_op *op = (lc_conv_op *)calloc(1, sizeof *op);
    if (!op) {
        *status = LC_ERR_NOMEM;
        return NULL;
    }
    op->filter = *filter;
    /* a filter-only geometry: the smallest input, as the packers need none */
    op->filter.N = 1;
    op->filter.H = filter->kH;
    op->filter.W = filter->kW;
    op->filter.OH = op->filter.OW = 1;
    op->filter.nthreads = 1;
    op->max_packings = max_packings < 1 ? 1 : max_packings;
    op->last = lc_named(op) ? filter->algorithm : -1;
    op->weight_floats = lc_mul(lc_mul(lc_mul(filter->M, filter->C / filter->groups, &ok),
                                      filter->kH, &ok), filter->kW, &ok);
    lc_mul(op->weight_floats, (int64_t)sizeof(float), &ok);
    if (!ok) {
        *status = LC_ERR_OVERFLOW;
        goto fail;
    }
    if (lc_named(op) && !lc_conv_supports(&op->filter, NULL)) {
        *status = LC_ERR_UNSUPPORTED;
        goto fail;
    }
    if (bias) {
        op->bias = (float *)lc_aligned_alloc(filter->M * (int64_t)sizeof(float));
        if (!op->bias) {
            *status = LC_ERR_NOMEM;
            goto fail;
        }
        memcpy(op->bias, bias, (size_t)filter->M * sizeof(float));
    }
    const int raw_named = lc_named(op) && lc_conv_layout(filter->algorithm) == LC_LAYOUT_RAW;
    if ((flags & LC_CONV_OP_BORROW_WEIGHTS) || (lc_named(op) && !raw_named)) {
        op->weights = weights;
    } else {
        op->own_weights = (float *)lc_aligned_alloc(op->weight_floats * (int64_t)sizeof(float));
        if (!op->own_weights) {
            *status = LC_ERR_NOMEM;
            goto fail;
        }
        memcpy(op->own_weights, weights, (size_t)op->weight_floats * sizeof(float));
        op->weights = op->own_weights;
        op->made += raw_named;  /* a named raw layout's copy is its packing */
    }
    if (lc_named(op) && !raw_named) {
        /* packed at once, and the caller's weights are no longer needed */
        if (!lc_packing_make(op, filter->algorithm, status)) goto fail;
        op->weights = NULL;
    }
    return op;
fail:
    lc_conv_op_destroy(op);
    return NULL;
}

void lc_conv_op_destroy(lc_conv_op *op) {
    if (!op) return;
    while (op->packings) {
        lc_packing *p = op->packings;
        op->packings = p->next;
        lc_packing_free(p);
    }
    lc_aligned_free(op->own_weights);
    lc_aligned_free(op->bias);
    free(op->decisions);
    free(op);
}

static lc_decision *lc_find(const lc_conv_op *op, int64_t N, int64_t H, int64_t W, int t) {
    for (int i = 0; i < op->ndecisions; i++) {
        const lc_decision *e = &op->decisions[i];
        if (e->N == N && e->H == H && e->W == W && e->nthreads == t)
            return (lc_decision *)e;
    }
    return NULL;
}

static void lc_remember(lc_conv_op *op, int64_t N, int64_t H, int64_t W, int t, int algorithm) {
    lc_decision *e = lc_find(op, N, H, W, t);
    if (!e) {
        if (op->ndecisions == op->cap_decisions && op->cap_decisions < LC_OP_DECISIONS) {
            const int cap = op->cap_decisions ? 2 * op->cap_decisions : LC_OP_DECISIONS_FIRST;
            lc_decision *grown = (lc_decision *)realloc(op->decisions, (size_t)cap * sizeof *grown);
            if (grown) {   /* else the least recently used one makes room */
                op->decisions = grown;
                op->cap_decisions = cap;
            }
        }
        if (op->ndecisions < op->cap_decisions) {
            e = &op->decisions[op->ndecisions++];
        } else if (op->ndecisions == 0) {
            return;   /* no table at all (out of memory): decided again next time */
        } else {
            e = &op->decisions[0];
            for (int i = 1; i < op->ndecisions; i++)
                if (op->decisions[i].used < e->used) e = &op->decisions[i];
        }
        e->N = N;
        e->H = H;
        e->W = W;
        e->nthreads = t;
    }
    e->algorithm = algorithm;
    e->used = ++op->clock;
}

/* The packing of `algorithm`'s layout: a kept or still-held one (taken back
 * into the kept set), else a new one.  NULL with *status on failure. */
static lc_packing *lc_packing_for(lc_conv_op *op, int algorithm, int *status) {
    const int layout = lc_conv_layout(algorithm);
    for (lc_packing *p = op->packings; p; p = p->next)
        if (p->layout == layout) {
            p->retired = 0;
            p->used = ++op->clock;
            return p;
        }
    if (lc_named(op) || !op->weights) { /* a named operator packs nothing else */
        *status = LC_ERR_UNSUPPORTED;
        return NULL;
    }
    return lc_packing_make(op, algorithm, status);
}

/* The call descriptor for an input geometry; 0 when the input is smaller
 * than the dilated kernel (no output). */
static int lc_call_desc(const lc_conv_op *op, int64_t N, int64_t H, int64_t W, int nthreads,
                        lc_conv_desc *d) {
    *d = op->filter;
    const int64_t eh = d->dil_h * (d->kH - 1) + 1, ew = d->dil_w * (d->kW - 1) + 1;
    const int64_t ph = H + d->pad_t + d->pad_b, pw = W + d->pad_l + d->pad_r;
    if (N < 1 || H < 1 || W < 1 || ph < eh || pw < ew) return 0;
    d->N = N;
    d->H = H;
    d->W = W;
    d->OH = (ph - eh) / d->stride_h + 1;
    d->OW = (pw - ew) / d->stride_w + 1;
    d->nthreads = nthreads < 1 ? 1 : nthreads;
    return 1;
}

int lc_conv_op_reshape(lc_conv_op *op, int64_t N, int64_t H, int64_t W, int nthreads,
                       int algorithm, int flags, lc_conv_setup *s) {
    int status = LC_OK;
    memset(s, 0, sizeof *s);
    if (!lc_call_desc(op, N, H, W, nthreads, &s->desc)) return LC_ERR_UNSUPPORTED;
    const int t = s->desc.nthreads;
    if (algorithm == LC_ALGO_AUTO) {
        lc_decision *e = lc_named(op) ? NULL : lc_find(op, N, H, W, t);
        if (e) e->used = ++op->clock;
        algorithm = lc_named(op) ? op->filter.algorithm
                    : e           ? e->algorithm
                                  : lc_conv_choose(&s->desc);
    } else if (lc_named(op) && lc_conv_layout(algorithm) != lc_conv_layout(op->filter.algorithm)) {
        return LC_ERR_UNSUPPORTED;
    }
    s->desc.algorithm = algorithm;
    if (!lc_conv_supports(&s->desc, NULL)) return LC_ERR_UNSUPPORTED;
    s->workspace_bytes = lc_conv_workspace_bytes(&s->desc);
    if (s->workspace_bytes < 0) return LC_ERR_OVERFLOW;
    lc_conv_tiling(&s->desc, s->tiling);
    if (!lc_named(op) && !(flags & LC_RESHAPE_TRIAL)) lc_remember(op, N, H, W, t, algorithm);
    if (flags & LC_RESHAPE_NO_PACK) return LC_OK;
    if (lc_conv_layout(algorithm) == LC_LAYOUT_RAW) {
        s->packed = op->weights;
    } else {
        const int64_t made = op->made;
        lc_packing *p = lc_packing_for(op, algorithm, &status);
        if (!p) return status;
        p->refs++;
        s->held = p;
        s->packed = p->data;
        s->packed_now = op->made != made;
        lc_trim(op);
    }
    op->last = algorithm;
    return LC_OK;
}

int lc_conv_op_run(const lc_conv_op *op, const lc_conv_setup *s, const float *x,
                   const float *bias, const float *residual, float *y, void *workspace,
                   int64_t workspace_bytes) {
    if (!s->packed) return LC_ERR_UNSUPPORTED;
    return lc_conv_run_tiled(&s->desc, s->tiling, s->workspace_bytes, x, s->packed,
                             bias ? bias : op->bias, residual, y, workspace, workspace_bytes);
}

void lc_conv_op_release(lc_conv_op *op, lc_conv_setup *s) {
    lc_packing *held = (lc_packing *)s->held;
    s->held = NULL;
    s->packed = NULL;
    if (!held) return;
    held->refs--;
    lc_trim(op);
}

int lc_conv_op_algorithm(const lc_conv_op *op) { return op->last; }

int lc_conv_op_decided(const lc_conv_op *op, int64_t N, int64_t H, int64_t W, int nthreads) {
    if (lc_named(op)) return op->filter.algorithm;
    const lc_decision *e = lc_find(op, N, H, W, nthreads < 1 ? 1 : nthreads);
    return e ? e->algorithm : -1;
}

int64_t lc_conv_op_packed_bytes(const lc_conv_op *op) {
    int64_t floats = op->own_weights ? op->weight_floats : 0;
    for (const lc_packing *p = op->packings; p; p = p->next) floats += p->floats;
    return floats * (int64_t)sizeof(float);
}

int64_t lc_conv_op_meta_bytes(const lc_conv_op *op) {
    int64_t n = (int64_t)sizeof *op + op->cap_decisions * (int64_t)sizeof(lc_decision);
    if (op->bias) n += op->filter.M * (int64_t)sizeof(float);
    for (const lc_packing *p = op->packings; p; p = p->next) n += (int64_t)sizeof *p;
    return n;
}

int lc_conv_op_packings(const lc_conv_op *op) { return lc_kept(op); }

int64_t lc_conv_op_packings_made(const lc_conv_op *op) { return op->made; }
