// The data pattern every kernel agrees on, and that src/driver/kernels.rs mirrors on the host.
// The buffer is a sequence of 16-byte vectors; vector j holds four 32-bit little-endian words
//   word(4j + q) = cml_vec(j, seed) ^ CML_LANE[q]
// where cml_vec is a bijection of j (for a fixed seed): a store to the wrong vector, or a word
// swapped inside one, is caught, and a stale buffer from an earlier seed is caught. One hash per
// 16 bytes keeps the fill kernel memory-bound (a hash per word cost it about 5% on an H200).
#ifndef CUMEMLAB_PATTERN_CUH
#define CUMEMLAB_PATTERN_CUH
#include <stdint.h>

#define CML_LANE0 0x00000000u
#define CML_LANE1 0x68E31DA4u
#define CML_LANE2 0xB5297A4Du
#define CML_LANE3 0x1B56C4E9u

__device__ __forceinline__ uint32_t cml_vec(uint64_t j, uint32_t seed) {
    uint32_t x = (uint32_t)j ^ ((uint32_t)(j >> 32) * 0x85EBCA6Bu) ^ seed;
    x *= 0x9E3779B1u;
    return x ^ (x >> 15);
}

__device__ __forceinline__ uint32_t cml_lane(uint32_t q) {
    return q == 0 ? CML_LANE0 : q == 1 ? CML_LANE1 : q == 2 ? CML_LANE2 : CML_LANE3;
}

__device__ __forceinline__ uint4 cml_pattern_vec(uint64_t j, uint32_t seed) {
    const uint32_t h = cml_vec(j, seed);
    return make_uint4(h ^ CML_LANE0, h ^ CML_LANE1, h ^ CML_LANE2, h ^ CML_LANE3);
}

// Word i of the pattern.
__device__ __forceinline__ uint32_t cml_pattern(uint64_t i, uint32_t seed) {
    return cml_vec(i >> 2, seed) ^ cml_lane((uint32_t)(i & 3));
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
