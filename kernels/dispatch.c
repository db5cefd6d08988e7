/* The dispatch table: one lc_isa_config per ISA, filled once.
 * Each table starts as the scalar one and the ISA's filler overrides what it
 * implements, so a new ISA can land one micro-kernel at a time. */
#include "leanconv/ukernels.h"
#include "leanconv/cpu.h"
#include "isa_build.h"

static lc_isa_config lc_tables[LC_ISA_COUNT];
static int lc_table_ready[LC_ISA_COUNT];
static const char *const lc_names[LC_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};

const char *lc_isa_name(int isa) {
    return (isa >= 0 && isa < LC_ISA_COUNT) ? lc_names[isa] : "unknown";
}

int lc_isa_compiled(int isa) {
    switch (isa) {
    case LC_ISA_SCALAR: return 1;
#ifdef LC_BUILD_AVX2
    case LC_ISA_AVX2: return 1;
#endif
#ifdef LC_BUILD_AVX512
    case LC_ISA_AVX512: return 1;
#endif
#ifdef LC_BUILD_NEON
    case LC_ISA_NEON: return 1;
#endif
    default: return 0;
    }
}

static int lc_isa_runs_here(int isa) {
    const lc_cpu_features *f = lc_cpu();
    switch (isa) {
    case LC_ISA_SCALAR: return 1;
    case LC_ISA_AVX2: return f->avx2 && f->fma;
    case LC_ISA_AVX512: /* the kernels are compiled for F, BW, VL and DQ */
        return f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx2 && f->fma;
    case LC_ISA_NEON: return f->neon;
    default: return 0;
    }
}

const lc_isa_config *lc_isa_get(int isa) {
    if (!lc_isa_compiled(isa) || !lc_isa_runs_here(isa)) return 0;
    if (!lc_table_ready[isa]) {
        /* First use happens at import, under the GIL. */
        lc_isa_config *cfg = &lc_tables[isa];
        lc_config_scalar(cfg);
        switch (isa) {
#ifdef LC_BUILD_AVX2
        case LC_ISA_AVX2: lc_config_avx2(cfg); break;
#endif
#ifdef LC_BUILD_AVX512
        case LC_ISA_AVX512: lc_config_avx512(cfg); break;
#endif
#ifdef LC_BUILD_NEON
        case LC_ISA_NEON: lc_config_neon(cfg); break;
#endif
        default: break;
        }
        if (!cfg->pw_rows) cfg->pw_rows = cfg->dl_rows;
        cfg->name = lc_names[isa];
        lc_table_ready[isa] = 1;
    }
    return &lc_tables[isa];
}
