// load_copy: a device-side copy for `cumemlab load`'s mapped paths: the GPU itself reads the
// source (registered host memory over the bus, or a pageable mapping where the device can read
// one) and writes device memory, grid-stride. 16-byte vectors when both addresses allow, else
// 8-byte words, else bytes; the branch is the same for every thread.
#include "pattern.cuh"

extern "C" __global__ void cml_copy(uint8_t* __restrict__ dst, const uint8_t* __restrict__ src,
                                    uint64_t bytes) {
    const uint64_t stride = cml_nthreads();
    const uint64_t align = ((uint64_t)dst | (uint64_t)src);
    uint64_t done = 0;
    if ((align & 15) == 0) {
        const uint64_t n = bytes >> 4;
        uint4* d = reinterpret_cast<uint4*>(dst);
        const uint4* s = reinterpret_cast<const uint4*>(src);
        for (uint64_t j = cml_tid(); j < n; j += stride) d[j] = s[j];
        done = n << 4;
    } else if ((align & 7) == 0) {
        const uint64_t n = bytes >> 3;
        uint64_t* d = reinterpret_cast<uint64_t*>(dst);
        const uint64_t* s = reinterpret_cast<const uint64_t*>(src);
        for (uint64_t j = cml_tid(); j < n; j += stride) d[j] = s[j];
        done = n << 3;
    }
    for (uint64_t k = done + cml_tid(); k < bytes; k += stride) dst[k] = src[k];
}
