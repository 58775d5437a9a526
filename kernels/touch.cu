// touch: one access per page. Page p starts at byte p*stride; the write variant stores `value` in
// its first 4 bytes (or its first byte when fewer than 4 remain), the read variant adds those bytes
// into *out so that the compiler cannot drop the loads. `stride` is a multiple of 4 (host checks).
#include "pattern.cuh"

extern "C" __global__ void cml_touch(uint8_t* __restrict__ base, uint64_t bytes, uint64_t stride,
                                     uint32_t value) {
    const uint64_t pages = (bytes + stride - 1) / stride;
    for (uint64_t p = cml_tid(); p < pages; p += cml_nthreads()) {
        const uint64_t off = p * stride;
        if (off + 4 <= bytes) {
            *reinterpret_cast<uint32_t*>(base + off) = value;
        } else {
            base[off] = (uint8_t)value;
        }
    }
}

extern "C" __global__ void cml_touch_read(const uint8_t* __restrict__ base, uint64_t bytes,
                                          uint64_t stride, unsigned long long* out) {
    const uint64_t pages = (bytes + stride - 1) / stride;
    unsigned long long acc = 0;
    for (uint64_t p = cml_tid(); p < pages; p += cml_nthreads()) {
        const uint64_t off = p * stride;
        if (off + 4 <= bytes) {
            acc += *reinterpret_cast<const volatile uint32_t*>(base + off);
        } else {
            acc += base[off];
        }
    }
    cml_warp_add(out, acc);
}
