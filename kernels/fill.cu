// fill: writes the pattern over `bytes` bytes with 16-byte stores (grid-stride), then the tail
// (bytes % 16) one byte at a time. `base` must be 16-byte aligned (the host checks).
#include "pattern.cuh"

extern "C" __global__ void cml_fill(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    const uint64_t stride = cml_nthreads();
#pragma unroll 4
    for (uint64_t j = cml_tid(); j < nvec; j += stride) {
        const uint64_t w = j << 2;
        uint4 x;
        x.x = cml_pattern(w, seed);
        x.y = cml_pattern(w + 1, seed);
        x.z = cml_pattern(w + 2, seed);
        x.w = cml_pattern(w + 3, seed);
        v[j] = x;
    }
    const uint64_t tail = bytes - (nvec << 4);
    const uint64_t t = cml_tid();
    if (t < tail) {
        const uint64_t k = (nvec << 4) + t;
        base[k] = cml_pattern_byte(k, seed);
    }
}
