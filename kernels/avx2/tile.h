/* The AVX2+FMA GEMM tile, stated once: config.c's table (lc_isa_config mr,
 * nr, kc: what the drivers and the cost model read), the micro-kernel it
 * names (6 x 16) and the Winograd transforms (NR tiles a call) build on it. */
#ifndef LC_AVX2_TILE_H
#define LC_AVX2_TILE_H
#define LC_TILE_MR 6
#define LC_TILE_NR 16
#define LC_TILE_KC 256
#endif
