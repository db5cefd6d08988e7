/* Algorithm choice: what "auto" and "winograd" mean for one call geometry.
 *
 * A cost model in units of one GEMM micro-kernel multiply-add, per group:
 *  - GEMM multiply-adds, the pixel (or tile) count rounded up to whole
 *    NR-wide panels, since a partial panel costs nearly a full one;
 *  - patch unwrapping (Im2Col / Patch2Vec): cost.pack_elem per value;
 *  - Winograd transforms: gather + input transform + output transform +
 *    scatter, cost.wino_elem[m] per transformed value, (Cg + Mg) alpha^2
 *    values per tile;
 *  - weights that do not fit in L2 (the detected size) stream from L3/DRAM
 *    once per pass: cost.dram_byte per byte.  For Winograd the matrix of one
 *    GEMM is one xi's Mg x Cg slice of U.
 * The per-ISA terms live in each ISA's table (kernels/<isa>/config.c). */
#include "internal.h"
#include "leanconv/cpu.h"

/* Largest Im2Col workspace "auto" accepts before it prefers Patch2Vec. */
#define LC_IM2COL_AUTO_BYTES (8 << 20)

static int lc_supports(const lc_conv_desc *d, int algorithm) {
    lc_conv_desc c = *d;
    c.algorithm = algorithm;
    return lc_conv_supports(&c, NULL);
}

/* Lanes the Winograd GEMMs compute for n tiles: the driver passes the real
 * count, so a last panel of at most NR/2 tiles can run the half-width kernel
 * where the ISA has one (elsewhere it costs a full panel, within the model's
 * error). */
static double lc_panel_lanes(int64_t n, int64_t nr) {
    int64_t full = n / nr, rem = n % nr;
    return (double)(full * nr + (rem == 0 ? 0 : rem <= nr / 2 ? nr / 2 : nr));
}

static double lc_l2_bytes(void) { return (double)lc_cpu_caches()->l2; }

static double lc_cost_gemm(const lc_conv_desc *d) {
    const lc_isa_config *isa = d->isa;
    const double Mg = (double)(d->M / d->groups), K = (double)(d->C / d->groups * d->kH * d->kW);
    const double cols = (double)(lc_div_up(d->OH * d->OW, isa->nr) * isa->nr);
    const double a_bytes = Mg * K * 4.0;
    const double pack = lc_gemm_is_pointwise(d) ? 0.0 : K * cols * isa->cost.pack_elem;
    return Mg * K * cols + pack + (a_bytes > lc_l2_bytes() ? a_bytes * isa->cost.dram_byte : 0.0);
}

static double lc_cost_winograd(const lc_conv_desc *d, int algorithm) {
    const lc_isa_config *isa = d->isa;
    const int v = algorithm - LC_ALGO_WINOGRAD_F2;
    const int64_t m = lc_wino_m[v], alpha = m + 2;
    const double Mg = (double)(d->M / d->groups), Cg = (double)(d->C / d->groups);
    const double lanes = lc_panel_lanes(lc_div_up(d->OH, m) * lc_div_up(d->OW, m), isa->nr);
    const double a2 = (double)(alpha * alpha);
    /* one GEMM per xi, each streaming its own Mg x Cg slice of U: what must
     * fit L2 is that slice, not all alpha^2 of them */
    const double xi_bytes = Mg * Cg * 4.0;
    return a2 * Mg * Cg * lanes + (Cg + Mg) * a2 * lanes * isa->cost.wino_elem[v] +
           (xi_bytes > lc_l2_bytes() ? a2 * xi_bytes * isa->cost.dram_byte : 0.0);
}

static int lc_cheapest_winograd(const lc_conv_desc *d, double *cost) {
    int best = LC_ALGO_WINOGRAD_F2;
    double best_cost = lc_cost_winograd(d, best);
    for (int a = LC_ALGO_WINOGRAD_F4; a <= LC_ALGO_WINOGRAD_F6; a++) {
        double c = lc_cost_winograd(d, a);
        if (c < best_cost) {
            best = a;
            best_cost = c;
        }
    }
    if (cost) *cost = best_cost;
    return best;
}

int lc_conv_choose(const lc_conv_desc *d) {
    if (d->algorithm == LC_ALGO_WINOGRAD_ANY) return lc_cheapest_winograd(d, NULL);
    if (d->algorithm != LC_ALGO_AUTO) return d->algorithm;
    if (d->groups == d->C) return LC_ALGO_DEPTHWISE;
    if (lc_gemm_is_pointwise(d)) return LC_ALGO_IM2COL; /* B is the input: no workspace */
    if (lc_supports(d, LC_ALGO_WINOGRAD_F2)) {
        double wino_cost;
        int wino = lc_cheapest_winograd(d, &wino_cost);
        if (wino_cost < lc_cost_gemm(d)) return wino;
    }
    /* Im2Col unwraps whole output rows at a time and its GEMM reuses each A
     * slice across many panels; take it while its K x P matrix stays modest,
     * else Patch2Vec's K x NR panel per thread. */
    const double bytes = (double)(d->C / d->groups * d->kH * d->kW) * (double)(d->OH * d->OW) * 4.0;
    return bytes <= (double)LC_IM2COL_AUTO_BYTES ? LC_ALGO_IM2COL : LC_ALGO_PATCH2VEC;
}
