// The fill kernels' body: the buffer is cut into tiles of K * blockDim 16-byte vectors; block b
// writes tiles b, b + gridDim, ...; inside a tile thread t writes vectors t, t + blockDim, ... (each
// warp store covers 512 contiguous bytes). Launched with one block per tile (the host's rule in
// src/driver/kernels.rs), the resident blocks cover one compact window of memory that advances in
// launch order, which the H200 wrote at 101-103% of cuMemsetD32 where a persistent grid-stride
// loop reached 95% (docs/results/h200-2026-11-30-fill/). Any grid is correct: the tile loop
// covers what one tile per block does not. Then the tail (bytes % 16) one byte at a time.
// CONST = true stores the constant vector (seed x4) instead of the pattern and leaves the tail:
// a twin for scripts/fill-bench.cu, to see whether the pattern arithmetic costs anything.
#ifndef CUMEMLAB_FILL_TILES_CUH
#define CUMEMLAB_FILL_TILES_CUH
#include "pattern.cuh"

template <int K, bool CONST = false>
__device__ __forceinline__ void cml_fill_tiles(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    const uint64_t tile = (uint64_t)K * blockDim.x;
    const uint64_t ntiles = (nvec + tile - 1) / tile;
    for (uint64_t b = blockIdx.x; b < ntiles; b += gridDim.x) {
        const uint64_t j0 = b * tile + threadIdx.x;
        if (j0 + (uint64_t)(K - 1) * blockDim.x < nvec) {
#pragma unroll
            for (int k = 0; k < K; ++k) {
                const uint64_t j = j0 + (uint64_t)k * blockDim.x;
                v[j] = CONST ? make_uint4(seed, seed, seed, seed) : cml_pattern_vec(j, seed);
            }
        } else {
            for (int k = 0; k < K; ++k) {
                const uint64_t j = j0 + (uint64_t)k * blockDim.x;
                if (j < nvec) v[j] = CONST ? make_uint4(seed, seed, seed, seed) : cml_pattern_vec(j, seed);
            }
        }
    }
    const uint64_t tail = bytes - (nvec << 4);
    const uint64_t t = cml_tid();
    if (!CONST && t < tail) {
        const uint64_t k = (nvec << 4) + t;
        base[k] = cml_pattern_byte(k, seed);
    }
}
#endif
