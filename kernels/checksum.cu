// checksum: a position-dependent sum over a buffer, so that `cumemlab load` can prove every byte of
// a model file reached device memory at the right offset (no path can win by skipping work).
// The buffer is read as little-endian 64-bit words, the last one padded with zero bytes; word i
// contributes cml_mix(w ^ (i * golden)) and the contributions are added modulo 2^64, an order-free
// sum that the host mirrors exactly (src/driver/checksum.rs, host_checksum).
#include "pattern.cuh"

__device__ __forceinline__ uint64_t cml_mix(uint64_t z) {
    // The finaliser of splitmix64 (Steele, Lea, Flood: "Fast splittable pseudorandom number
    // generators", OOPSLA 2014), a bijection of 64-bit words.
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ uint64_t cml_word_sum(uint64_t w, uint64_t i) {
    return cml_mix(w ^ (i * 0x9E3779B97F4A7C15ull));
}

extern "C" __global__ void cml_checksum(const uint8_t* __restrict__ base, uint64_t bytes,
                                        unsigned long long* out) {
    const uint64_t nvec = bytes >> 4;
    const ulonglong2* __restrict__ v = reinterpret_cast<const ulonglong2*>(base);
    const uint64_t stride = cml_nthreads();
    unsigned long long acc = 0;
#pragma unroll 4
    for (uint64_t j = cml_tid(); j < nvec; j += stride) {
        const ulonglong2 x = v[j];
        acc += cml_word_sum(x.x, 2 * j) + cml_word_sum(x.y, 2 * j + 1);
    }
    // The tail (fewer than 16 bytes): up to two words, zero-padded, one thread each.
    const uint64_t tail = bytes - (nvec << 4);
    const uint64_t t = cml_tid();
    if (t < 2 && 8 * t < tail) {
        uint64_t w = 0;
        const uint64_t start = (nvec << 4) + 8 * t;
        for (uint64_t k = 0; k < 8 && start + k < bytes; ++k) w |= (uint64_t)base[start + k] << (8 * k);
        acc += cml_word_sum(w, 2 * nvec + t);
    }
    cml_warp_add(out, acc);
}
