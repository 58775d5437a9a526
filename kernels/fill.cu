// fill: writes the pattern over `bytes` bytes with 16-byte stores (grid-stride, four independent
// stores in flight per thread), then the tail (bytes % 16) one byte at a time. `base` must be
// 16-byte aligned (the host checks).
#include "pattern.cuh"

extern "C" __global__ void cml_fill(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    const uint64_t stride = cml_nthreads();
    uint64_t j = cml_tid();
    for (; j + 3 * stride < nvec; j += 4 * stride) {
        const uint4 a = cml_pattern_vec(j, seed);
        const uint4 b = cml_pattern_vec(j + stride, seed);
        const uint4 c = cml_pattern_vec(j + 2 * stride, seed);
        const uint4 d = cml_pattern_vec(j + 3 * stride, seed);
        v[j] = a;
        v[j + stride] = b;
        v[j + 2 * stride] = c;
        v[j + 3 * stride] = d;
    }
    for (; j < nvec; j += stride) v[j] = cml_pattern_vec(j, seed);
    const uint64_t tail = bytes - (nvec << 4);
    const uint64_t t = cml_tid();
    if (t < tail) {
        const uint64_t k = (nvec << 4) + t;
        base[k] = cml_pattern_byte(k, seed);
    }
}
