/* The AVX-512 GEMM tile, stated once: config.c's table (lc_isa_config mr,
 * nr, kc: what the drivers and the cost model read), the micro-kernel it
 * names (8 x 32) and the Winograd transforms (NR tiles a call) build on it. */
#ifndef LC_AVX512_TILE_H
#define LC_AVX512_TILE_H
#define LC_TILE_MR 8
#define LC_TILE_NR 32
#define LC_TILE_KC 256
#endif
