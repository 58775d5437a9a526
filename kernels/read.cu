// read: sums every 32-bit word (16-byte loads, grid-stride) plus each tail byte into *out. The sum
// is compared with the host's expectation, so the loads cannot be dropped and wrong data shows.
#include "pattern.cuh"

extern "C" __global__ void cml_read(const uint8_t* __restrict__ base, uint64_t bytes,
                                    unsigned long long* out) {
    const uint64_t nvec = bytes >> 4;
    const uint4* __restrict__ v = reinterpret_cast<const uint4*>(base);
    const uint64_t stride = cml_nthreads();
    unsigned long long acc = 0;
#pragma unroll 4
    for (uint64_t j = cml_tid(); j < nvec; j += stride) {
        const uint4 x = v[j];
        acc += (unsigned long long)x.x + x.y + (unsigned long long)x.z + x.w;
    }
    const uint64_t tail = bytes - (nvec << 4);
    const uint64_t t = cml_tid();
    if (t < tail) acc += base[(nvec << 4) + t];
    cml_warp_add(out, acc);
}
