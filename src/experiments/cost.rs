//! The lab's planning figures (seconds and rates), below the lab and the experiments that read
//! them (sweep and probe pace their progress with two of them), so none imports the lab for them.
//!
//! Planning figures, seconds, from the default lab on the H200 of tests/fixtures/results/h200-2026-11-26-lab-old-build
//! (`steps.csv`: sweep 234 s, probe 71 s, everything else 1.2 s; the sweep's rows and its
//! "wall time by phase" note). Where the 234 s of sweep went (five sizes summing to 56 GiB, one
//! allocation each, 5 bandwidth runs): the CPU-first variant 127 s (managed CPU first touch with
//! one thread 0.30 s per GiB for each of three managed strategies, the GPU touch after it 0.15 s
//! per GiB, pinned and registered allocated a second time), allocation 38 s (cuMemHostAlloc 0.36
//! s per GiB, cuMemHostRegister 0.30 s per GiB; device memory about 1 ms at any size), fill and
//! read 30 s (pinned and registered over PCIe, 0.022 s per GiB per pass), verify 23 s, free 11 s.
//! The probe's 71 s: pinned and registered pinned 32 GiB twice each (single and cumulative, 50
//! s), managed touched 117 GiB twice (18 s); device, pool and vmm 2 s together.
//!
//! So the default (2-minute) plan measures the linear costs at sizes that show their rate and no
//! larger: host-backed strategies up to 1 GiB, the CPU-first variant up to 1 GiB (one thread at
//! 256 MiB for the single-thread rate, several at 1 GiB), managed migration up to 16 GiB; device,
//! pool and vmm at every size (they cost milliseconds); three fresh allocations each; the probe
//! with host strategies capped at 4 GiB and no cumulative search of managed memory. The model
//! gives about 75 s for this on the H200 (139 GiB usable; sizes 0.25, 1, 4, 16 and 34.8 GiB):
//! sweep 3 allocations x 11.5 s + 4 s (per allocation round: device, pool and vmm 2.4 s; managed
//! up to 16 GiB 0.6 + 21.25 GiB x 0.2 = 4.9 s; pinned and registered up to 1 GiB 1.9 s; the
//! CPU-first variant up to 1 GiB 2.5 s), probe 26 s (pinned and registered 2 x 8.25 GiB x 0.5 s,
//! managed single 139 GiB / 10 GiB/s, 6 s fixed), the other steps 9 s. `--budget 5` buys the
//! next tier (4 GiB caps, managed at every size, the whole probe: about 160 s), `--budget 10`
//! 5 fresh allocations and 16 GiB caps (about 560 s), `--budget 20` no caps (about 1170 s).

/// `info`, `cache` status and `plan` together (0.4 s measured).
pub const HOST_STEPS_S: f64 = 2.0;
/// Opening a device for a step (context, module load).
pub const CONTEXT_S: f64 = 1.0;
/// `selftest` on one device with 10 bandwidth runs (0.4 s measured).
pub const SELFTEST_S: f64 = 2.0;
/// `sweep`: per device, whatever the sizes.
pub const SWEEP_FIXED_S: f64 = 3.0;
/// `sweep`: per fresh allocation (accounting snapshots, synchronisations, launches).
pub const PER_ALLOCATION_S: f64 = 0.05;
/// `sweep`: device, pool or vmm memory, per GiB per allocation (touches, fill, read, check).
pub const DEVICE_S_PER_GIB: f64 = 0.01;
/// Pinning or registering host memory and freeing it, per GiB (0.36 + 0.09 s measured on
/// the H200 host; DESIGN.md: about 0.3 s per GB on H100).
pub const PIN_S_PER_GIB: f64 = 0.5;
/// One pass of a kernel over host memory through PCIe, per GiB.
pub const HOST_PASS_S_PER_GIB: f64 = 0.022;
/// Migrating managed memory on first GPU touch, GiB per second (13.9 GB/s measured).
pub const MIGRATE_GIB_PER_S: f64 = 10.0;
/// The three managed strategies together, per GiB per allocation: first touches (0.093 +
/// 0.023 + 0.005 s measured at 16 GiB), frees (3 x 0.015 s) and the CPU sample check.
pub const MANAGED_S_PER_GIB: f64 = 0.2;
/// One CPU thread faulting in managed memory, per GiB (0.30 s measured).
pub const CPU_FAULT_S_PER_GIB: f64 = 0.30;
/// Planned speed-up of the CPU touch with several threads (faulting does not scale far).
pub const CPU_THREAD_SPEEDUP: f64 = 2.0;
/// Managed memory migrating back to the GPU after the CPU touched it, per GiB (0.15 s).
pub const MIGRATE_BACK_S_PER_GIB: f64 = 0.15;
/// `probe`: per device, besides pinning and migration.
pub const PROBE_FIXED_S: f64 = 5.0;
/// `layout --preset 13b-sim` on one device (0.4 s measured).
pub const LAYOUT_S: f64 = 2.0;
/// `cache effect` (a 4 GiB file written, read, evicted; three probes of `device`).
pub const CACHE_EFFECT_S: f64 = 30.0;
/// `load` (a 1 GiB file by seven paths, cold and warm, three times, and the copy matrix up
/// to 64 MiB). Measured on the H200 (first `load` run, 2026-11-30): writing the file and the
/// 42 loads of 1 GiB took 28 s, the whole copy matrix up to 1 GiB 15 s (so about 3 s up to
/// 64 MiB); 35 s planned. The lab runs it with `--budget 2` (the default) or more.
pub const LOAD_S: f64 = 35.0;
