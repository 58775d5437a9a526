// fill-bench: a standalone benchmark for issue 10, built with nvcc on the GPU host:
//   nvcc -O3 -std=c++17 -arch=sm_90 -o fill-bench scripts/fill-bench.cu -lcuda
//   ./fill-bench sweep [GiB ...]   fill variants x launch shapes x sizes against cuMemsetD32
//   ./fill-bench confirm           the best shapes again, interleaved with cuMemsetD32
//   ./fill-bench ncu               one launch of memset and of each chosen fill (for ncu)
//   ./fill-bench gap               34.8 GiB by cuMemAlloc, pool, VMM and managed, in several orders
// Every fill variant writes the pattern of kernels/pattern.cuh and is verified by the project's
// own check kernel (kernels/check.cu) over a poisoned buffer before it is timed. Times are CUDA
// event times; GB/s = 1e9 bytes per second, counting bytes written.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../kernels/check.cu"
#include "../kernels/fill.cu"
#include "../kernels/fill_variants.cu"
#include "../kernels/pattern.cuh"

#define CK(x)                                                                                  \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s failed: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)
#define CU(x)                                                                         \
    do {                                                                              \
        CUresult r_ = (x);                                                            \
        if (r_ != CUDA_SUCCESS) {                                                     \
            const char* s_ = nullptr;                                                 \
            cuGetErrorString(r_, &s_);                                                \
            fprintf(stderr, "%s failed: %s (line %d)\n", #x, s_ ? s_ : "?", __LINE__); \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static const uint64_t GiB = 1ull << 30;

// ---------------------------------------------------------------------------------------------
// Candidate kernels (the production cml_fill and kernels/fill_variants.cu are included above).

// The tile kernels of kernels/fill_tiles.cuh with other depths K, and their constant-data twins.
template <int K, bool CONST>
__global__ void fill_tiles(uint8_t* __restrict__ base, uint64_t bytes, uint32_t seed) {
    cml_fill_tiles<K, CONST>(base, bytes, seed);
}

typedef void (*FillFn)(uint8_t*, uint64_t, uint32_t);

struct Variant {
    const char* name;
    FillFn fn;
    bool checkable;  // writes the pattern (the const variants do not)
    bool tiles;      // grid may be "full" (one tile per block); K is the tile depth
    int k;
};

static std::vector<Variant> variants() {
    return {
        {"gridstride4", cml_fillv_gridstride, true, false, 4},
        {"cml_fill", cml_fill, true, true, 2},  // the production kernel (tiles of 2)
        {"simple", cml_fillv_simple, true, false, 1},
        {"blocked", cml_fillv_blocked, true, false, 1},
        {"tiles1", fill_tiles<1, false>, true, true, 1},
        {"tiles2", fill_tiles<2, false>, true, true, 2},
        {"tiles4", fill_tiles<4, false>, true, true, 4},
        {"tiles8", fill_tiles<8, false>, true, true, 8},
        {"tiles16", fill_tiles<16, false>, true, true, 16},
        {"tiles4const", fill_tiles<4, true>, false, true, 4},
        {"tiles8const", fill_tiles<8, true>, false, true, 8},
    };
}

static const Variant* find_variant(const std::string& n) {
    static std::vector<Variant> vs = variants();
    for (auto& v : vs)
        if (n == v.name) return &v;
    return nullptr;
}

struct Dev {
    int sms = 0, maxthr = 0, l2 = 0, maxthr_sm = 0;
    char name[256] = {0};
};

static Dev query() {
    Dev d;
    CK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, 0));
    CK(cudaDeviceGetAttribute(&d.maxthr, cudaDevAttrMaxThreadsPerBlock, 0));
    CK(cudaDeviceGetAttribute(&d.maxthr_sm, cudaDevAttrMaxThreadsPerMultiProcessor, 0));
    CK(cudaDeviceGetAttribute(&d.l2, cudaDevAttrL2CacheSize, 0));
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    strncpy(d.name, p.name, 255);
    return d;
}

static cudaEvent_t ev0, ev1;

static float elapsed() {
    CK(cudaEventSynchronize(ev1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, ev0, ev1));
    return ms;
}

static float time_memset(CUdeviceptr p, uint64_t bytes) {
    CK(cudaEventRecord(ev0));
    CU(cuMemsetD32(p, 0x5A5A5A5Au, bytes / 4));
    CK(cudaEventRecord(ev1));
    return elapsed();
}

// grid <= 0 means "full": one block per tile.
static uint64_t grid_of(const Variant& v, int block, long grid, uint64_t bytes) {
    if (grid > 0) return grid;
    uint64_t nvec = bytes >> 4, tile = (uint64_t)v.k * block;
    return (nvec + tile - 1) / tile;
}

static float time_fill(const Variant& v, int block, long grid, uint8_t* p, uint64_t bytes, uint32_t seed) {
    uint64_t g = grid_of(v, block, grid, bytes);
    CK(cudaEventRecord(ev0));
    v.fn<<<(unsigned)g, block>>>(p, bytes, seed);
    CK(cudaGetLastError());
    CK(cudaEventRecord(ev1));
    return elapsed();
}

static unsigned long long* scratch;

static unsigned long long check(uint8_t* p, uint64_t bytes, uint32_t seed, int sms) {
    unsigned long long init[2] = {0, ~0ull};
    CK(cudaMemcpy(scratch, init, 16, cudaMemcpyHostToDevice));
    cml_check<<<sms * 8, 256>>>(p, bytes, seed, scratch, scratch + 1);
    CK(cudaGetLastError());
    CK(cudaMemcpy(init, scratch, 16, cudaMemcpyDeviceToHost));
    return init[0];
}

// A launch spec NAME:BLOCK:GRID, GRID = blocks per SM or "full" (one block per tile).
struct Spec {
    const Variant* v = nullptr;
    int block = 0;
    long grid = 0;  // <= 0: full
};

static bool parse_spec(const std::string& spec, int sms, Spec* out) {
    char nm[64], gs[32];
    if (sscanf(spec.c_str(), "%63[^:]:%d:%31s", nm, &out->block, gs) != 3 || !(out->v = find_variant(nm))) {
        fprintf(stderr, "bad spec %s (NAME:BLOCK:GRID_PER_SM|full)\n", spec.c_str());
        return false;
    }
    out->grid = strcmp(gs, "full") == 0 ? 0 : (long)(atof(gs) * sms);
    return true;
}

static double median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double gbps(uint64_t bytes, double ms) { return bytes / (ms * 1e6); }

struct Shape {
    int block;
    long grid;  // <= 0: full
};

// Runs one variant+shape: poison, one launch, check, then `runs` timed launches.
// Returns median ms or -1 on wrong data.
static double measure(const Variant& v, Shape s, uint8_t* p, uint64_t bytes, int runs, int sms,
                      unsigned long long* bad_out) {
    uint32_t seed = (uint32_t)rand() * 2654435761u + 12345u;
    CU(cuMemsetD8((CUdeviceptr)p, 0xA5, bytes));
    time_fill(v, s.block, s.grid, p, bytes, seed);
    unsigned long long bad = v.checkable ? check(p, bytes, seed, sms) : 0;
    *bad_out = bad;
    time_fill(v, s.block, s.grid, p, bytes, seed);  // warm-up
    std::vector<float> t;
    for (int i = 0; i < runs; ++i) t.push_back(time_fill(v, s.block, s.grid, p, bytes, seed));
    if (v.checkable && check(p, bytes, seed, sms) != 0) *bad_out += 1;
    return median(t);
}

static double memset_median(CUdeviceptr p, uint64_t bytes, int runs) {
    time_memset(p, bytes);
    std::vector<float> t;
    for (int i = 0; i < runs; ++i) t.push_back(time_memset(p, bytes));
    return median(t);
}

static std::vector<Shape> shapes_for(const Variant& v, const Dev& d) {
    std::vector<Shape> out;
    for (int b : {128, 256, 512, 1024}) {
        if (b > d.maxthr) continue;
        int per_sm = d.maxthr_sm / b;  // resident blocks per SM at full occupancy
        for (int f : {1, 2, 4, 8, 16, 32, 64}) out.push_back({b, (long)d.sms * per_sm * f});
        if (v.tiles) out.push_back({b, 0});
    }
    return out;
}

static int cmd_sweep(const Dev& d, std::vector<double> sizes_gib) {
    uint64_t maxb = (uint64_t)(*std::max_element(sizes_gib.begin(), sizes_gib.end()) * GiB);
    uint8_t* p;
    CK(cudaMalloc(&p, maxb));
    printf("csv,size_gib,spec,variant,block,grid,grid_per_sm,ms_median,gbps,pct_memset,memset_gbps,bad\n");
    for (double sg : sizes_gib) {
        uint64_t bytes = (uint64_t)(sg * GiB);
        int runs = 10;
        double ms0 = memset_median((CUdeviceptr)p, bytes, runs);
        for (auto& v : variants()) {
            for (Shape s : shapes_for(v, d)) {
                unsigned long long bad = 0;
                double ms = measure(v, s, p, bytes, runs, d.sms, &bad);
                uint64_t g = grid_of(v, s.block, s.grid, bytes);
                char spec[96];
                if (s.grid > 0)
                    snprintf(spec, sizeof spec, "%s:%d:%ld", v.name, s.block, s.grid / d.sms);
                else
                    snprintf(spec, sizeof spec, "%s:%d:full", v.name, s.block);
                printf("csv,%g,%s,%s,%d,%llu,%.2f,%.5f,%.1f,%.2f,%.1f,%llu\n", sg, spec, v.name, s.block,
                       (unsigned long long)g, (double)g / d.sms, ms, gbps(bytes, ms), 100.0 * ms0 / ms,
                       gbps(bytes, ms0), bad);
                if (bad) fprintf(stderr, "WRONG DATA: %s %d %ld\n", v.name, s.block, s.grid);
            }
        }
        double ms1 = memset_median((CUdeviceptr)p, bytes, runs);
        printf("memset,%g GiB: %.1f GB/s before, %.1f GB/s after the variants\n", sg, gbps(bytes, ms0),
               gbps(bytes, ms1));
        fflush(stdout);
    }
    CK(cudaFree(p));
    return 0;
}

// confirm NAME:BLOCK:GRID_PER_SM_OR_full ...: `pairs` alternating (memset, fill) pairs at each size.
static int cmd_confirm(const Dev& d, std::vector<double> sizes, std::vector<std::string> specs, int pairs) {
    uint64_t maxb = (uint64_t)(*std::max_element(sizes.begin(), sizes.end()) * GiB);
    uint8_t* p;
    CK(cudaMalloc(&p, maxb));
    printf("confirm,size_gib,spec,n,memset_gbps,fill_gbps,pct_of_memset_median_of_pairs,pct_min,pct_max,bad\n");
    for (double sg : sizes) {
        uint64_t bytes = (uint64_t)(sg * GiB);
        for (auto& spec : specs) {
            Spec sp;
            if (!parse_spec(spec, d.sms, &sp)) return 2;
            const Variant* v = sp.v;
            const int block = sp.block;
            const long grid = sp.grid;
            unsigned long long bad = 0;
            measure(*v, {block, grid}, p, bytes, 2, d.sms, &bad);
            uint32_t seed = 777;
            std::vector<float> tm, tf, pct;
            for (int i = 0; i < pairs; ++i) {
                float a = time_memset((CUdeviceptr)p, bytes);
                float b = time_fill(*v, block, grid, p, bytes, seed);
                tm.push_back(a);
                tf.push_back(b);
                pct.push_back(100.0f * a / b);
            }
            if (v->checkable && check(p, bytes, seed, d.sms)) bad++;
            std::sort(pct.begin(), pct.end());
            printf("confirm,%g,%s,%d,%.1f,%.1f,%.2f,%.2f,%.2f,%llu\n", sg, spec.c_str(), pairs,
                   gbps(bytes, median(tm)), gbps(bytes, median(tf)), median(pct), pct.front(), pct.back(), bad);
            fflush(stdout);
        }
    }
    CK(cudaFree(p));
    return 0;
}

// ncu: one launch of memset then of each spec at 4 GiB (profiled from outside).
static int cmd_ncu(const Dev& d, std::vector<std::string> specs) {
    uint64_t bytes = 4 * GiB;
    uint8_t* p;
    CK(cudaMalloc(&p, bytes));
    time_memset((CUdeviceptr)p, bytes);
    for (auto& spec : specs) {
        Spec sp;
        if (!parse_spec(spec, d.sms, &sp)) return 2;
        float ms = time_fill(*sp.v, sp.block, sp.grid, p, bytes, 5);
        printf("ncu-run %s %.3f ms\n", spec.c_str(), ms);
    }
    CK(cudaFree(p));
    return 0;
}

// ---------------------------------------------------------------------------------------------
// gap: the 34.8 GiB device/vmm vs pool/managed question.

enum Api { DEVICE, POOL, VMM, MANAGED };
static const char* api_name(Api a) {
    return a == DEVICE ? "device" : a == POOL ? "pool" : a == VMM ? "vmm" : "managed";
}

struct Alloc {
    Api api;
    CUdeviceptr ptr = 0;
    uint64_t bytes = 0;
    CUmemGenericAllocationHandle h = 0;
    uint64_t reserved = 0;
};

static double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

static Alloc do_alloc(Api api, uint64_t bytes) {
    Alloc a;
    a.api = api;
    a.bytes = bytes;
    if (api == DEVICE) {
        CU(cuMemAlloc(&a.ptr, bytes));
    } else if (api == POOL) {
        CU(cuMemAllocAsync(&a.ptr, bytes, 0));
        CK(cudaStreamSynchronize(0));
    } else if (api == MANAGED) {
        CU(cuMemAllocManaged(&a.ptr, bytes, CU_MEM_ATTACH_GLOBAL));
        cudaMemLocation loc;
        loc.type = cudaMemLocationTypeDevice;
        loc.id = 0;
        CK(cudaMemPrefetchAsync((void*)a.ptr, bytes, loc, 0, 0));
        CK(cudaStreamSynchronize(0));
    } else {
        CUmemAllocationProp prop = {};
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = 0;
        size_t g = 0;
        CU(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
        a.reserved = (bytes + g - 1) / g * g;
        CU(cuMemAddressReserve(&a.ptr, a.reserved, 0, 0, 0));
        CU(cuMemCreate(&a.h, a.reserved, &prop, 0));
        CU(cuMemMap(a.ptr, a.reserved, 0, a.h, 0));
        CUmemAccessDesc acc = {};
        acc.location = prop.location;
        acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        CU(cuMemSetAccess(a.ptr, a.reserved, &acc, 1));
    }
    return a;
}

static void do_free(Alloc& a) {
    if (a.api == DEVICE || a.api == MANAGED) {
        CU(cuMemFree(a.ptr));
    } else if (a.api == POOL) {
        CU(cuMemFreeAsync(a.ptr, 0));
        CK(cudaStreamSynchronize(0));
        CUmemoryPool pool;
        CU(cuDeviceGetDefaultMemPool(&pool, 0));
        CU(cuMemPoolTrimTo(pool, 0));
    } else {
        CU(cuMemUnmap(a.ptr, a.reserved));
        CU(cuMemRelease(a.h));
        CU(cuMemAddressFree(a.ptr, a.reserved));
    }
    CK(cudaDeviceSynchronize());
}

// One 34.8 GiB allocation: `rounds` x (production fill, tile fill, memset), each timed alone.
static void gap_one(const char* scenario, int idx, Api api, uint64_t bytes, int rounds, double since_free_ms,
                    const Variant& tilev, int tile_block, int sms) {
    size_t f0, tot;
    CK(cudaMemGetInfo(&f0, &tot));
    double t0 = now_ms();
    Alloc a = do_alloc(api, bytes);
    double alloc_ms = now_ms() - t0;
    uint8_t* p = (uint8_t*)a.ptr;
    const Variant* prod = find_variant("gridstride4");
    long prod_grid = (long)sms * 8 * 16;  // the shipped shape: 16x the occupancy grid of 256 threads
    std::vector<float> tp, tt, tm;
    double tstart = now_ms();
    for (int r = 0; r < rounds; ++r) {
        tp.push_back(time_fill(*prod, 256, prod_grid, p, bytes, 11));
        tt.push_back(time_fill(tilev, tile_block, 0, p, bytes, 11));
        tm.push_back(time_memset(a.ptr, bytes));
    }
    double span = now_ms() - tstart;
    time_fill(tilev, tile_block, 0, p, bytes, 13);  // the last timed op was memset: refill, check
    unsigned long long bad = check(p, bytes, 13, sms);
    printf("gapalloc,%s,%d,%s,ptr=0x%llx,align2M=%d,free_before_gib=%.2f,alloc_ms=%.1f,since_prev_free_ms=%.0f,span_ms=%.0f,bad=%llu\n",
           scenario, idx, api_name(api), (unsigned long long)a.ptr, (int)((a.ptr & ((2 << 20) - 1)) == 0),
           f0 / (double)GiB, alloc_ms, since_free_ms, span, bad);
    auto row = [&](const char* what, std::vector<float>& v) {
        printf("gapseries,%s,%d,%s,%s", scenario, idx, api_name(api), what);
        for (float x : v) printf(",%.0f", gbps(bytes, x));
        std::vector<float> first(v.begin(), v.begin() + 3), last(v.end() - 5, v.end());
        printf(",median=%.0f,first3=%.0f,last5=%.0f,min=%.0f,max=%.0f\n", gbps(bytes, median(v)),
               gbps(bytes, median(first)), gbps(bytes, median(last)), gbps(bytes, *std::max_element(v.begin(), v.end())),
               gbps(bytes, *std::min_element(v.begin(), v.end())));
    };
    row("fill_gridstride_x16", tp);
    row("fill_tiles", tt);
    row("memset", tm);
    fflush(stdout);
    do_free(a);
}

// After freeing a large allocation: memset GB/s of a small resident buffer over time.
static void background_probe(const char* label, uint8_t* small, uint64_t sbytes, double ms_total) {
    double t0 = now_ms();
    std::vector<std::pair<double, double>> pts;
    while (now_ms() - t0 < ms_total) {
        float ms = time_memset((CUdeviceptr)small, sbytes);
        pts.push_back({now_ms() - t0, gbps(sbytes, ms)});
    }
    // 25 ms buckets
    printf("afterfree,%s,bucket_ms=25", label);
    double b = 0;
    size_t i = 0;
    while (i < pts.size()) {
        std::vector<float> v;
        while (i < pts.size() && pts[i].first < b + 25) v.push_back((float)pts[i++].second), (void)0;
        if (!v.empty()) printf(",%.0f", median(v));
        b += 25;
    }
    printf("\n");
    fflush(stdout);
}

static int cmd_gap(const Dev& d, int rounds, const std::string& tile_spec) {
    const uint64_t bytes = 37312528384ull;  // the lab's 34.8 GiB
    Spec sp;
    if (!parse_spec(tile_spec, d.sms, &sp)) return 2;
    const Variant* tv = sp.v;
    const int tb = sp.block;
    size_t fr, tot;
    CK(cudaMemGetInfo(&fr, &tot));
    printf("gap: %.1f GiB free of %.1f GiB; allocation %.2f GiB\n", fr / (double)GiB, tot / (double)GiB,
           bytes / (double)GiB);
    if (fr < bytes + 2 * GiB) {
        fprintf(stderr, "not enough free memory\n");
        return 1;
    }
    // A small resident buffer for the background probe.
    uint8_t* small;
    const uint64_t sbytes = 256ull << 20;
    CK(cudaMalloc(&small, sbytes));
    background_probe("baseline_idle", small, sbytes, 150);

    struct Sc {
        const char* name;
        std::vector<Api> order;
        int pause_ms;
    };
    std::vector<Sc> scs = {
        {"lab_order", {DEVICE, MANAGED, POOL, VMM}, 0},
        {"reversed", {VMM, POOL, MANAGED, DEVICE}, 0},
        {"pause2s", {DEVICE, VMM, POOL, MANAGED}, 2000},
        {"device_x3", {DEVICE, DEVICE, DEVICE}, 0},
        {"pool_x3", {POOL, POOL, POOL}, 0},
        {"vmm_then_device_pause2s", {VMM, DEVICE}, 2000},
    };
    double last_free = -1;
    for (auto& sc : scs) {
        int idx = 0;
        for (Api a : sc.order) {
            if (sc.pause_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sc.pause_ms));
            gap_one(sc.name, idx++, a, bytes, rounds, last_free < 0 ? -1 : now_ms() - last_free, *tv, tb, d.sms);
            last_free = now_ms();
        }
        char lbl[128];
        snprintf(lbl, sizeof lbl, "%s_end", sc.name);
        background_probe(lbl, small, sbytes, 400);
        last_free = -1;  // the probe ran 400 ms after the last free
    }
    CK(cudaFree(small));
    return 0;
}

// scrub: what the GPU does after a large free. A resident 256 MiB buffer is memset back to back
// (events between launches, no host gaps) while, or right after, a big allocation is made or freed;
// the memset rate over time shows background DRAM traffic, and its deficit against the idle rate,
// integrated over time, estimates the bytes that traffic moved.
struct Timeline {
    std::vector<double> t_ms, gbps;
};

static Timeline probe_timeline(CUdeviceptr small, uint64_t sbytes, int n) {
    static std::vector<cudaEvent_t> evs;
    while ((int)evs.size() < n + 1) {
        cudaEvent_t e;
        CK(cudaEventCreate(&e));
        evs.push_back(e);
    }
    CK(cudaEventRecord(evs[0]));
    for (int i = 0; i < n; ++i) {
        CU(cuMemsetD32Async(small, 0x01020304u, sbytes / 4, 0));
        CK(cudaEventRecord(evs[i + 1]));
    }
    CK(cudaEventSynchronize(evs[n]));
    Timeline tl;
    for (int i = 0; i < n; ++i) {
        float a = 0, b = 0;
        CK(cudaEventElapsedTime(&a, evs[0], evs[i]));
        CK(cudaEventElapsedTime(&b, evs[0], evs[i + 1]));
        tl.t_ms.push_back(a);
        tl.gbps.push_back(gbps(sbytes, b - a));
    }
    return tl;
}

// Prints 10 ms buckets, the deficit against `base` GB/s in GB, and when the rate got back to 98%.
static void report_timeline(const char* label, const Timeline& tl, double base, uint64_t sbytes) {
    double deficit_gb = 0, recovered = -1, last_slow = -1;
    printf("timeline,%s,bucket_ms=10", label);
    double b = 0;
    size_t i = 0;
    while (i < tl.t_ms.size()) {
        std::vector<float> v;
        while (i < tl.t_ms.size() && tl.t_ms[i] < b + 10) v.push_back((float)tl.gbps[i++]);
        if (!v.empty()) printf(",%.0f", median(v));
        b += 10;
    }
    for (size_t j = 0; j < tl.t_ms.size(); ++j) {
        double dt_s = (sbytes / (tl.gbps[j] * 1e9));
        if (tl.gbps[j] < base) deficit_gb += (base - tl.gbps[j]) * dt_s;
        if (tl.gbps[j] < 0.98 * base) last_slow = tl.t_ms[j];
    }
    recovered = last_slow < 0 ? 0 : last_slow;
    printf("\nscrubsum,%s,base_gbps=%.0f,deficit_gb=%.1f,slow_until_ms=%.0f,span_ms=%.0f\n", label, base, deficit_gb,
           recovered, tl.t_ms.back());
    fflush(stdout);
}

static int cmd_scrub(const Dev& d) {
    const uint64_t sbytes = 256ull << 20;
    CUdeviceptr small;
    CU(cuMemAlloc(&small, sbytes));
    const int n = 4000;  // about 260 ms of back-to-back memsets
    Timeline idle = probe_timeline(small, sbytes, n);
    std::vector<double> g = idle.gbps;
    std::sort(g.begin(), g.end());
    const double base = g[g.size() / 2];
    report_timeline("idle", idle, base, sbytes);
    const uint64_t unit = 37312528384ull / 8;  // 1/8 of the lab's 34.8 GiB
    struct Case {
        Api api;
        int eighths;
    };
    std::vector<Case> cases = {{DEVICE, 8}, {DEVICE, 2}, {DEVICE, 4}, {DEVICE, 16}, {DEVICE, 1},
                               {VMM, 8},    {POOL, 8},   {MANAGED, 8}, {DEVICE, 8}};
    for (auto c : cases) {
        uint64_t bytes = unit * c.eighths;
        char lbl[96];
        Alloc a = do_alloc(c.api, bytes);
        CU(cuMemsetD32(a.ptr, 7, bytes / 4));  // touch every page
        CK(cudaDeviceSynchronize());
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        snprintf(lbl, sizeof lbl, "held_%s_%.2fGiB", api_name(c.api), bytes / (double)GiB);
        report_timeline(lbl, probe_timeline(small, sbytes, 1500), base, sbytes);
        double t0 = now_ms();
        do_free(a);
        double free_ms = now_ms() - t0;
        snprintf(lbl, sizeof lbl, "afterfree_%s_%.2fGiB_free_call_%.1fms", api_name(c.api), bytes / (double)GiB,
                 free_ms);
        report_timeline(lbl, probe_timeline(small, sbytes, n), base, sbytes);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    // Allocation alone (no free before it): does making a big allocation start background traffic?
    Alloc a = do_alloc(DEVICE, unit * 8);
    report_timeline("right_after_cuMemAlloc_34.75GiB", probe_timeline(small, sbytes, n), base, sbytes);
    do_free(a);
    CU(cuMemFree(small));
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fill-bench sweep|confirm|ncu|gap ...\n");
        return 2;
    }
    CK(cudaSetDevice(0));
    CK(cudaFree(0));
    CU(cuInit(0));
    Dev d = query();
    CK(cudaEventCreate(&ev0));
    CK(cudaEventCreate(&ev1));
    CK(cudaMalloc(&scratch, 16));
    int drv = 0, rt = 0;
    CK(cudaDriverGetVersion(&drv));
    CK(cudaRuntimeGetVersion(&rt));
    printf("device: %s, %d SMs, %d max threads/block, %d threads/SM, L2 %d MiB, driver API %d, runtime %d\n",
           d.name, d.sms, d.maxthr, d.maxthr_sm, d.l2 >> 20, drv, rt);
    std::string cmd = argv[1];
    std::vector<std::string> rest(argv + 2, argv + argc);
    if (cmd == "sweep") {
        std::vector<double> sizes;
        for (auto& s : rest) sizes.push_back(atof(s.c_str()));
        if (sizes.empty()) sizes = {1, 4, 16};
        return cmd_sweep(d, sizes);
    }
    if (cmd == "confirm") {
        // confirm SIZES(comma) PAIRS SPEC...
        if (rest.size() < 3) return 2;
        std::vector<double> sizes;
        char* s = strdup(rest[0].c_str());
        for (char* t = strtok(s, ","); t; t = strtok(nullptr, ",")) sizes.push_back(atof(t));
        free(s);
        return cmd_confirm(d, sizes, std::vector<std::string>(rest.begin() + 2, rest.end()), atoi(rest[1].c_str()));
    }
    if (cmd == "ncu") return cmd_ncu(d, rest);
    if (cmd == "scrub") return cmd_scrub(d);
    if (cmd == "gap") return cmd_gap(d, rest.size() > 0 ? atoi(rest[0].c_str()) : 10,
                                     rest.size() > 1 ? rest[1] : std::string("tiles4:256:full"));
    fprintf(stderr, "unknown command %s\n", cmd.c_str());
    return 2;
}
