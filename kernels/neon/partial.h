/* Partial-vector loads and stores for NEON, which has no masked memory
 * operations.  Used only on edge tiles (fewer than 4 floats left); the full
 * tiles use plain vld1q/vst1q.  Each helper touches exactly the floats it is
 * asked for, so a buffer that ends right before an unreadable page is safe.
 * Include after ../isa_build.h, inside #ifdef LC_BUILD_NEON. */
#ifndef LEANCONV_NEON_PARTIAL_H
#define LEANCONV_NEON_PARTIAL_H
#include <arm_neon.h>
#include <stddef.h>

/* p[0 .. cnt) into lanes [0, cnt), other lanes 0; cnt >= 4 is a full load. */
static inline float32x4_t lc_neon_load_part(const float *p, size_t cnt) {
    const float32x2_t z = vdup_n_f32(0.0f);
    switch (cnt) {
    case 0: return vdupq_n_f32(0.0f);
    case 1: return vcombine_f32(vld1_lane_f32(p, z, 0), z);
    case 2: return vcombine_f32(vld1_f32(p), z);
    case 3: return vcombine_f32(vld1_f32(p), vld1_lane_f32(p + 2, z, 0));
    default: return vld1q_f32(p);
    }
}

/* Lanes [0, cnt) of v to p[0 .. cnt); cnt >= 4 is a full store. */
static inline void lc_neon_store_part(float *p, float32x4_t v, size_t cnt) {
    switch (cnt) {
    case 0: break;
    case 1: vst1q_lane_f32(p, v, 0); break;
    case 2: vst1_f32(p, vget_low_f32(v)); break;
    case 3:
        vst1_f32(p, vget_low_f32(v));
        vst1q_lane_f32(p + 2, v, 2);
        break;
    default: vst1q_f32(p, v); break;
    }
}

/* p[0], p[2], .. p[2cnt-2] into lanes [0, cnt), other lanes 0: reads
 * p[0 .. 2cnt-1) only, so never the float after the last tap. */
static inline float32x4_t lc_neon_load_s2_part(const float *p, size_t cnt) {
    float32x4_t v = vdupq_n_f32(0.0f);
    switch (cnt) {
    default: v = vld1q_lane_f32(p + 6, v, 3); /* fall through */
    case 3: v = vld1q_lane_f32(p + 4, v, 2); /* fall through */
    case 2: v = vld1q_lane_f32(p + 2, v, 1); /* fall through */
    case 1: v = vld1q_lane_f32(p, v, 0); /* fall through */
    case 0: break;
    }
    return v;
}

#endif
