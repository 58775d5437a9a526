// Variants of `fill` kept for `tests/gpu_fill_variants.rs`, which times each against
// cuMemsetD32 so that the choice of the production kernel rests on measurements
// (scripts/fill-bench.cu sweeps more shapes; docs/results/h200-2026-11-30-fill/ has the numbers).
#include "../fill_tiles.cuh"

// The production fill until 2026-11-30: grid-stride, four independent stores in flight per
// thread (95% of cuMemsetD32 on an H200 at 16x the occupancy grid); STREAMING uses
// cache-streaming (evict-first) stores.
template <bool STREAMING>
__device__ __forceinline__ void cml_gridstride4(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    const uint64_t stride = cml_nthreads();
    auto put = [&](uint64_t j) {
        if (STREAMING) {
            __stcs(&v[j], cml_pattern_vec(j, seed));
        } else {
            v[j] = cml_pattern_vec(j, seed);
        }
    };
    uint64_t j = cml_tid();
    for (; j + 3 * stride < nvec; j += 4 * stride) {
        put(j);
        put(j + stride);
        put(j + 2 * stride);
        put(j + 3 * stride);
    }
    for (; j < nvec; j += stride) put(j);
}

extern "C" __global__ void cml_fillv_gridstride(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    cml_gridstride4<false>(base, bytes, seed);
}

extern "C" __global__ void cml_fillv_streaming(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    cml_gridstride4<true>(base, bytes, seed);
}

// The production tile body with other tile depths (vectors per thread per tile).
extern "C" __global__ void cml_fillv_tiles1(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    cml_fill_tiles<1>(base, bytes, seed);
}
extern "C" __global__ void cml_fillv_tiles4(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    cml_fill_tiles<4>(base, bytes, seed);
}

// One store per iteration, plain grid-stride (the simplest form).
extern "C" __global__ void cml_fillv_simple(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    for (uint64_t j = cml_tid(); j < nvec; j += cml_nthreads()) v[j] = cml_pattern_vec(j, seed);
}

// Each block owns one contiguous chunk; its threads stride through it.
extern "C" __global__ void cml_fillv_blocked(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    const uint64_t per = (nvec + gridDim.x - 1) / gridDim.x;
    const uint64_t lo = (uint64_t)blockIdx.x * per;
    const uint64_t hi = lo + per < nvec ? lo + per : nvec;
    for (uint64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) v[j] = cml_pattern_vec(j, seed);
}

// No pattern arithmetic at all: a constant vector (the store path alone).
extern "C" __global__ void cml_fillv_const(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    const uint64_t nvec = bytes >> 4;
    uint4* __restrict__ v = reinterpret_cast<uint4*>(base);
    const uint4 x = make_uint4(seed, seed, seed, seed);
    for (uint64_t j = cml_tid(); j < nvec; j += cml_nthreads()) v[j] = x;
}

// Not a fill at all: a fill-shaped name with the wrong parameters, which
// Kernels::time_fill_variant must refuse before launching (tests/gpu_fill_variants.rs).
extern "C" __global__ void cml_fillv_bad_params(uint8_t* base, uint64_t bytes) {
    (void)base;
    (void)bytes;
}
