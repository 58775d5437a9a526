// check: counts the 32-bit words (and tail bytes) that differ from the pattern of `seed`, and
// records the lowest differing byte offset in *first (initialised to UINT64_MAX by the host).
#include "pattern.cuh"

extern "C" __global__ void cml_check(const uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed,
                                     unsigned long long* bad, unsigned long long* first) {
    const uint64_t nvec = bytes >> 4;
    const uint4* __restrict__ v = reinterpret_cast<const uint4*>(base);
    const uint64_t stride = cml_nthreads();
    unsigned long long n = 0;
    unsigned long long lo = ~0ull;
    for (uint64_t j = cml_tid(); j < nvec; j += stride) {
        const uint4 x = v[j];
        const uint4 e = cml_pattern_vec(j, seed);
        const uint64_t w = j << 2;
        const uint32_t got[4] = {x.x, x.y, x.z, x.w};
        const uint32_t want[4] = {e.x, e.y, e.z, e.w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            if (got[q] != want[q]) {
                ++n;
                const unsigned long long off = (w + q) * 4;
                lo = off < lo ? off : lo;
            }
        }
    }
    const uint64_t tail = bytes - (nvec << 4);
    const uint64_t t = cml_tid();
    if (t < tail) {
        const uint64_t k = (nvec << 4) + t;
        if (base[k] != cml_pattern_byte(k, seed)) {
            ++n;
            lo = k < lo ? k : lo;
        }
    }
    cml_warp_add(bad, n);
    if (lo != ~0ull) atomicMin(first, lo);
}
