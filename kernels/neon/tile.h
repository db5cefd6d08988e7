/* The NEON GEMM tile, stated once: config.c's table (lc_isa_config mr,
 * nr, kc: what the drivers and the cost model read), the micro-kernel it
 * names (12 x 8) and the Winograd transforms (NR tiles a call) build on it. */
#ifndef LC_NEON_TILE_H
#define LC_NEON_TILE_H
#define LC_TILE_MR 12
#define LC_TILE_NR 8
#define LC_TILE_KC 256
#endif
