/* The entry points of include/leanconv/conv.h: which algorithm supports what,
 * how much memory it needs, and the call itself. */
#include <string.h>
#include "internal.h"

static int lc_is_winograd(int a) { return lc_wino_variant_of(a) >= 0; }

int lc_conv_supports(const lc_conv_desc *d, const char **why) {
    if (lc_is_winograd(d->algorithm)) {
        if (d->kH != 3 || d->kW != 3 || d->stride_h != 1 || d->stride_w != 1 ||
            d->dil_h != 1 || d->dil_w != 1) {
            if (why) *why = "Winograd needs a 3x3 kernel with stride 1 and dilation 1";
            return 0;
        }
        if (lc_wino_is_lean(d->algorithm) && !lc_wino_lean_supports(d)) {
            if (why) *why = "lean Winograd needs the ISA's channel-lanes Winograd kernels and "
                            "output channels per group a multiple of their width";
            return 0;
        }
    } else if (d->algorithm == LC_ALGO_DEPTHWISE) {
        if (d->groups != d->C && !lc_grouped_supports(d)) {
            if (why) *why = "depthwise needs groups == C (one input channel per group) or "
                            "groups > 1 with C/groups <= 16";
            return 0;
        }
    } else if (d->algorithm == LC_ALGO_DIRECT_LANES) {
        const lc_isa_config *isa = d->isa;
        if (!isa || !isa->dl_kernel || !isa->pw_kernel ||
            !isa->dl_kernel_half != !isa->pw_kernel_half ||
            !isa->dl_kernel_quarter != !isa->pw_kernel_quarter ||
            (isa->dl_kernel_quarter && !isa->dl_kernel_half) || isa->dl_cols > LC_DL_MAX_COLS ||
            isa->dl_lanes > LC_DL_MAX_LANES || isa->dl_rows > LC_DL_MAX_ROWS ||
            isa->pw_rows > LC_DL_MAX_ROWS ||
            isa->dl_rows_half > LC_DL_MAX_ROWS || isa->dl_rows_quarter > LC_DL_MAX_ROWS) {
            if (why) *why = "direct_lanes has no kernel for this ISA";
            return 0;
        }
    } else if (d->algorithm < 0 || d->algorithm >= LC_ALGO_COUNT) {
        if (why) *why = "unknown algorithm";
        return 0;
    }
    return 1;
}

int lc_conv_layout(int a) {
    switch (a) {
    case LC_ALGO_DIRECT:
    case LC_ALGO_DEPTHWISE: return LC_LAYOUT_RAW;
    case LC_ALGO_IM2COL:
    case LC_ALGO_PATCH2VEC: return LC_LAYOUT_GEMM;
    case LC_ALGO_WINOGRAD_F2: return LC_LAYOUT_WINOGRAD_F2;
    case LC_ALGO_WINOGRAD_F4: return LC_LAYOUT_WINOGRAD_F4;
    case LC_ALGO_WINOGRAD_F6: return LC_LAYOUT_WINOGRAD_F6;
    case LC_ALGO_DIRECT_LANES: return LC_LAYOUT_DIRECT_LANES;
    case LC_ALGO_WINOGRAD_F2_LEAN:
    case LC_ALGO_WINOGRAD_F4_LEAN: return LC_LAYOUT_WINOGRAD_LEAN;
    default: return -1;
    }
}

int64_t lc_conv_packed_floats(const lc_conv_desc *d) {
    int ok = 1;
    int64_t r;
    switch (d->algorithm) {
    case LC_ALGO_IM2COL:
    case LC_ALGO_PATCH2VEC: r = lc_gemm_packed_floats(d, &ok); break;
    case LC_ALGO_WINOGRAD_F2:
    case LC_ALGO_WINOGRAD_F4:
    case LC_ALGO_WINOGRAD_F6:
    case LC_ALGO_WINOGRAD_F2_LEAN:
    case LC_ALGO_WINOGRAD_F4_LEAN: r = lc_winograd_packed_floats(d, &ok); break;
    case LC_ALGO_DIRECT_LANES: r = lc_direct_lanes_packed_floats(d, &ok); break;
    default: /* direct and depthwise read the weights as they are */
        r = lc_mul(lc_mul(lc_mul(d->M, d->C / d->groups, &ok), d->kH, &ok), d->kW, &ok);
    }
    return ok ? r : -1;
}

void lc_conv_pack_weights(const lc_conv_desc *d, const float *w, float *packed) {
    switch (d->algorithm) {
    case LC_ALGO_IM2COL:
    case LC_ALGO_PATCH2VEC: lc_gemm_pack_weights(d, w, packed); break;
    case LC_ALGO_WINOGRAD_F2:
    case LC_ALGO_WINOGRAD_F4:
    case LC_ALGO_WINOGRAD_F6:
    case LC_ALGO_WINOGRAD_F2_LEAN:
    case LC_ALGO_WINOGRAD_F4_LEAN: lc_winograd_pack_weights(d, w, packed); break;
    case LC_ALGO_DIRECT_LANES: lc_direct_lanes_pack_weights(d, w, packed); break;
    default:
        memcpy(packed, w, (size_t)lc_conv_packed_floats(d) * sizeof(float));
    }
}

double lc_conv_macs(const lc_conv_desc *d) {
    return (double)d->N * (double)d->M * (double)d->OH * (double)d->OW *
           (double)(d->groups > 0 ? d->C / d->groups : d->C) * (double)d->kH * (double)d->kW;
}

/* One input channel per group (depthwise, whichever algorithm runs it):
 * weighted as a depthwise multiply-add (internal.h). */
double lc_conv_work(const lc_conv_desc *d) {
    const int depthwise = d->groups > 1 && d->groups == d->C;
    return lc_conv_macs(d) * (depthwise ? LC_WORK_PER_DEPTHWISE_MAC : 1.0);
}

/* The descriptor as it runs (internal.h). */
lc_conv_desc lc_conv_as_run(const lc_conv_desc *dp) {
    lc_conv_desc d = *dp;
    d.nthreads = lc_threads_for_work(d.nthreads, lc_conv_work(&d));
    return d;
}

int64_t lc_conv_workspace_bytes(const lc_conv_desc *dp) {
    int ok = 1;
    int64_t r;
    const lc_conv_desc dd = lc_conv_as_run(dp);
    const lc_conv_desc *d = &dd;
    switch (d->algorithm) {
    case LC_ALGO_IM2COL: r = lc_im2col_workspace(d, &ok); break;
    case LC_ALGO_PATCH2VEC: r = lc_patch2vec_workspace(d, &ok); break;
    case LC_ALGO_WINOGRAD_F2:
    case LC_ALGO_WINOGRAD_F4:
    case LC_ALGO_WINOGRAD_F6:
    case LC_ALGO_WINOGRAD_F2_LEAN:
    case LC_ALGO_WINOGRAD_F4_LEAN: r = lc_winograd_workspace(d, &ok); break;
    case LC_ALGO_DIRECT_LANES: r = lc_direct_lanes_workspace(d, &ok); break;
    default: r = 0;
    }
    return ok ? r : -1;
}

/* The tiling's head says which algorithm and thread count it was derived
 * for: a run on any other descriptor is refused, never run on a tiling (and
 * a workspace) sized for another. */
enum { LC_TILING_ALGORITHM, LC_TILING_THREADS };

void lc_conv_tiling(const lc_conv_desc *dp, int64_t *tiling) {
    /* derived from the same as-run descriptor the workspace and the run use */
    const lc_conv_desc dd = lc_conv_as_run(dp);
    const lc_conv_desc *d = &dd;
    int64_t *own = tiling + LC_TILING_HEAD;
    memset(tiling, 0, LC_CONV_TILING_WORDS * sizeof(int64_t));
    tiling[LC_TILING_ALGORITHM] = d->algorithm;
    tiling[LC_TILING_THREADS] = d->nthreads;
    switch (d->algorithm) {
    case LC_ALGO_IM2COL: lc_im2col_tiling(d, own); break;
    case LC_ALGO_PATCH2VEC: lc_patch2vec_tiling(d, own); break;
    case LC_ALGO_WINOGRAD_F2:
    case LC_ALGO_WINOGRAD_F4:
    case LC_ALGO_WINOGRAD_F6:
    case LC_ALGO_WINOGRAD_F2_LEAN:
    case LC_ALGO_WINOGRAD_F4_LEAN: lc_winograd_tiling(d, own); break;
    case LC_ALGO_DIRECT_LANES: lc_direct_lanes_tiling(d, own); break;
    default: break; /* depthwise and direct derive theirs per call */
    }
}

/* The call itself, on a tiling lc_conv_tiling derived for this descriptor
 * and a workspace of at least `need` (lc_conv_workspace_bytes) bytes. */
int lc_conv_run_tiled(const lc_conv_desc *dp, const int64_t *tiling, int64_t need,
                      const float *x, const float *packed, const float *bias, const float *res,
                      float *y, void *workspace, int64_t workspace_bytes) {
    /* the drivers see `clamp` set exactly when the activation is a clamp */
    lc_conv_desc dd = lc_conv_as_run(dp);
    const lc_conv_desc *d = &dd;
    dd.epilogue.clamp = dp->epilogue.act == LC_ACT_CLAMP;
    if (dp->epilogue.act < 0 || dp->epilogue.act >= LC_ACT_COUNT) return LC_ERR_UNSUPPORTED;
    if (need < 0) return LC_ERR_OVERFLOW;
    if (need > workspace_bytes || (need > 0 && !workspace)) return LC_ERR_WORKSPACE;
    if (!lc_conv_supports(d, NULL)) return LC_ERR_UNSUPPORTED;
    if (tiling[LC_TILING_ALGORITHM] != d->algorithm || tiling[LC_TILING_THREADS] != d->nthreads)
        return LC_ERR_UNSUPPORTED;
    char *ws = (char *)workspace;
    const int64_t *own = tiling + LC_TILING_HEAD;
    switch (d->algorithm) {
    case LC_ALGO_IM2COL: return lc_im2col_run(d, own, x, packed, bias, res, y, ws);
    case LC_ALGO_PATCH2VEC: return lc_patch2vec_run(d, own, x, packed, bias, res, y, ws);
    case LC_ALGO_WINOGRAD_F2:
    case LC_ALGO_WINOGRAD_F4:
    case LC_ALGO_WINOGRAD_F6:
    case LC_ALGO_WINOGRAD_F2_LEAN:
    case LC_ALGO_WINOGRAD_F4_LEAN: return lc_winograd_run(d, own, x, packed, bias, res, y, ws);
    case LC_ALGO_DEPTHWISE:
        return d->groups == d->C ? lc_depthwise_run(d, x, packed, bias, res, y)
                                 : lc_grouped_run(d, x, packed, bias, res, y);
    case LC_ALGO_DIRECT_LANES: return lc_direct_lanes_run(d, own, x, packed, bias, res, y, ws);
    default: return lc_direct_run(d, x, packed, bias, res, y);
    }
}

int lc_conv_run(const lc_conv_desc *d, const float *x, const float *packed,
                const float *bias, const float *res, float *y, void *workspace,
                int64_t workspace_bytes) {
    int64_t tiling[LC_CONV_TILING_WORDS];
    const int64_t need = lc_conv_workspace_bytes(d);
    if (need >= 0 && lc_conv_supports(d, NULL)) lc_conv_tiling(d, tiling);
    return lc_conv_run_tiled(d, tiling, need, x, packed, bias, res, y, workspace, workspace_bytes);
}
