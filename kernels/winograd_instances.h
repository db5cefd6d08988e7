/* The three Winograd variants of one ISA (and F2's and F4's weight
 * transforms for the lean algorithms).  The including file defines the
 * vector vocabulary (see winograd_template.h) and LC_ISA_FN(name), which
 * appends the ISA suffix, e.g. name##__avx2. */
#include "winograd_transforms.h"

#define LC_WM 2
#define LC_WALPHA 4
#define LC_WIN_1D LC_WINO_F2_INPUT_1D
#define LC_WOUT_1D LC_WINO_F2_OUTPUT_1D
#define LC_WIN_NAME LC_ISA_FN(lc_f32_wino_f2_input)
#define LC_WOUT_NAME LC_ISA_FN(lc_f32_wino_f2_output)
#define LC_WIN_STRIP_NAME LC_ISA_FN(lc_f32_wino_f2_input_strip)
#define LC_WIN_DIRECT_NAME LC_ISA_FN(lc_f32_wino_f2_input_direct)
#include "winograd_template.h"

#define LC_WWT_CW (LC_WCL_VECS * LC_VLANES)
#define LC_WWT_1D LC_WINO_F2_WEIGHT_1D
#define LC_WWT_ALPHA 4
#define LC_WWT_NAME LC_ISA_FN(lc_f32_wino_f2_weight)
#include "winograd_weight_template.h"

#define LC_WM 4
#define LC_WALPHA 6
#define LC_WIN_1D LC_WINO_F4_INPUT_1D
#define LC_WOUT_1D LC_WINO_F4_OUTPUT_1D
#define LC_WIN_NAME LC_ISA_FN(lc_f32_wino_f4_input)
#define LC_WOUT_NAME LC_ISA_FN(lc_f32_wino_f4_output)
#define LC_WIN_STRIP_NAME LC_ISA_FN(lc_f32_wino_f4_input_strip)
#define LC_WIN_DIRECT_NAME LC_ISA_FN(lc_f32_wino_f4_input_direct)
#include "winograd_template.h"

#define LC_WWT_1D LC_WINO_F4_WEIGHT_1D
#define LC_WWT_ALPHA 6
#define LC_WWT_NAME LC_ISA_FN(lc_f32_wino_f4_weight)
#include "winograd_weight_template.h"
#undef LC_WWT_CW

#define LC_WM 6
#define LC_WALPHA 8
#define LC_WIN_1D LC_WINO_F6_INPUT_1D
#define LC_WOUT_1D LC_WINO_F6_OUTPUT_1D
#define LC_WIN_NAME LC_ISA_FN(lc_f32_wino_f6_input)
#define LC_WOUT_NAME LC_ISA_FN(lc_f32_wino_f6_output)
#define LC_WIN_STRIP_NAME LC_ISA_FN(lc_f32_wino_f6_input_strip)
#define LC_WIN_DIRECT_NAME LC_ISA_FN(lc_f32_wino_f6_input_direct)
#include "winograd_template.h"

/* The channel-lanes GEMM: LC_WCL_ROWS tiles x LC_WCL_VECS vectors, set by
 * the including file; the rows divide LC_NR, and LC_VLANES divides them or
 * they divide LC_VLANES, so a subpanel never straddles a transform vector. */
#define LC_WCL_R LC_WCL_ROWS
#define LC_WCL_NV LC_WCL_VECS
#define LC_WCL_NAME LC_ISA_FN(lc_f32_wino_cl_gemm)
#include "winograd_cl_template.h"

/* Fills the table entries of this ISA's Winograd transforms. */
void LC_ISA_FN(lc_wino_fill)(lc_isa_config *cfg) {
    cfg->wino_input[0] = LC_ISA_FN(lc_f32_wino_f2_input);
    cfg->wino_input[1] = LC_ISA_FN(lc_f32_wino_f4_input);
    cfg->wino_input[2] = LC_ISA_FN(lc_f32_wino_f6_input);
    cfg->wino_output[0] = LC_ISA_FN(lc_f32_wino_f2_output);
    cfg->wino_output[1] = LC_ISA_FN(lc_f32_wino_f4_output);
    cfg->wino_output[2] = LC_ISA_FN(lc_f32_wino_f6_output);
    cfg->wino_cl_gemm = LC_ISA_FN(lc_f32_wino_cl_gemm);
    cfg->wino_cl_rows = LC_WCL_ROWS;
    cfg->wino_cl_cols = LC_WCL_VECS * LC_VLANES;
    cfg->wino_weight[0] = LC_ISA_FN(lc_f32_wino_f2_weight);
    cfg->wino_weight[1] = LC_ISA_FN(lc_f32_wino_f4_weight);
#ifdef LC_WDIRECT_PREP_T
    cfg->wino_input_direct[0] = LC_ISA_FN(lc_f32_wino_f2_input_direct);
    cfg->wino_input_direct[1] = LC_ISA_FN(lc_f32_wino_f4_input_direct);
    cfg->wino_input_direct[2] = LC_ISA_FN(lc_f32_wino_f6_input_direct);
    cfg->wino_direct_lanes = LC_VLANES;
#endif
    if (LC_WINO_HAVE_STRIP) { /* only with a real vector gather (see the template) */
        cfg->wino_input_strip[0] = LC_ISA_FN(lc_f32_wino_f2_input_strip);
        cfg->wino_input_strip[1] = LC_ISA_FN(lc_f32_wino_f4_input_strip);
        cfg->wino_input_strip[2] = LC_ISA_FN(lc_f32_wino_f6_input_strip);
    }
}
