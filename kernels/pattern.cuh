// The data pattern every kernel agrees on, and that src/kernels.rs mirrors on the host.
// Word i (32 bits, little-endian at byte offset 4*i) of a buffer filled with `seed` holds
// pattern(i, seed). A bijection of i for a fixed seed, so a misplaced store is caught, and
// different for every seed, so a stale buffer from an earlier run is caught.
#ifndef CUMEMLAB_PATTERN_CUH
#define CUMEMLAB_PATTERN_CUH
#include <stdint.h>

__device__ __forceinline__ uint32_t cml_pattern(uint64_t i, uint32_t seed) {
    uint32_t x = (uint32_t)i ^ ((uint32_t)(i >> 32) * 0x85EBCA6Bu) ^ seed;
    x *= 0x9E3779B1u;
    return x ^ (x >> 15);
}

// Byte k of the pattern (for tails that are not a multiple of 16 or 4 bytes).
__device__ __forceinline__ uint8_t cml_pattern_byte(uint64_t k, uint32_t seed) {
    return (uint8_t)(cml_pattern(k >> 2, seed) >> (8 * (k & 3)));
}

__device__ __forceinline__ uint64_t cml_tid() {
    return (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ uint64_t cml_nthreads() {
    return (uint64_t)gridDim.x * blockDim.x;
}

// Sum over the warp, then one atomic per warp.
__device__ __forceinline__ void cml_warp_add(unsigned long long* out, unsigned long long v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0 && v != 0) atomicAdd(out, v);
}
#endif
