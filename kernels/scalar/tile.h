/* The portable C GEMM tile, stated once: config.c's table (lc_isa_config mr,
 * nr, kc: what the drivers and the cost model read), the micro-kernel it
 * names (4 x 16) and the Winograd transforms (NR tiles a call) build on it. */
#ifndef LC_SCALAR_TILE_H
#define LC_SCALAR_TILE_H
#define LC_TILE_MR 4
#define LC_TILE_NR 16
#define LC_TILE_KC 256
#endif
