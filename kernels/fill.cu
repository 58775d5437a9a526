// fill: writes the pattern over `bytes` bytes with 16-byte stores, two per thread per tile, one
// tile per block (kernels/fill_tiles.cuh; the host sizes the grid), then the tail (bytes % 16).
// `base` must be 16-byte aligned (the host checks). CML_FILL_VECTORS_PER_THREAD is mirrored by
// FILL_VECTORS_PER_THREAD in src/driver/kernels.rs.
#include "fill_tiles.cuh"

#define CML_FILL_VECTORS_PER_THREAD 2

extern "C" __global__ void cml_fill(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    cml_fill_tiles<CML_FILL_VECTORS_PER_THREAD>(base, bytes, seed);
}
