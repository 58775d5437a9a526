//! `cumemlab sweep`: every (strategy, size) through the measurement protocol of DESIGN.md, each
//! phase timed on its own: alloc (with accounting deltas), prefetch (`managed+prefetch`), GPU
//! first touch, GPU second touch, fill and read bandwidth (median of runs after a discarded
//! warm-up), verification, free; then the CPU-first variant for host-accessible strategies (a
//! fresh allocation touched by the CPU, then by the GPU). Baselines on `device` memory in the same
//! run: `cuMemsetD32` and a device-to-device `cuMemcpy`.
//!
//! Each (strategy, size) is measured on `--repeat` fresh allocations (default 3): the one-shot
//! phases get one sample per allocation, the bandwidth phases `--runs` runs on each, and every row
//! carries n, median, min, max, CV and its samples; bandwidth rows also split their spread into
//! the part between allocations (where the memory landed) and between runs on one allocation.
//! Findings compare by the rule of [`crate::stats::order`] (ranges that do not overlap) and flag
//! phases whose CV passes [`crate::stats::UNSTABLE_CV`].
//!
//! Every allocation is checked against the safety ceiling first; a refused or failed combination
//! is reported as skipped with its reason and the sweep goes on. Rows stream to `--out` when a
//! combination's allocations are done.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::env::Environment;
use super::{DeviceSel, Gpu, check_interrupt, interrupted, require_driver};
use crate::driver::DevicePtr;
use crate::error::{Error, Result};
use crate::host::{MemInfo, rss_bytes};
use crate::memory::cpu::{cpu_sample_check, cpu_touch};
use crate::memory::safety::{Budget, Forced};
use crate::memory::{
    AllocOptions, Backing, Step, Strategy, allocate, prefetch_to_device, trim_default_pool,
};
use crate::report::{Progress, ResultSink, new_table, sink::to_csv, sink::to_json};
use crate::stats::{Order, Summary, UNSTABLE_CV, fmt_spread, order, placement_split};
use crate::units::{GB, GIB, MIB, fmt_bytes, gbps, parse_size};

/// Phases, in protocol order. The names are the `phase` values of the rows.
pub mod phase {
    pub const ALLOC: &str = "alloc";
    pub const PREFETCH: &str = "prefetch";
    pub const GPU_FIRST_TOUCH: &str = "gpu_first_touch";
    pub const GPU_SECOND_TOUCH: &str = "gpu_second_touch";
    pub const FILL: &str = "fill";
    pub const READ: &str = "read";
    pub const VERIFY: &str = "verify";
    pub const FREE: &str = "free";
    pub const CPU_FIRST_TOUCH: &str = "cpu_first_touch";
    pub const GPU_TOUCH_AFTER_CPU: &str = "gpu_touch_after_cpu";
    pub const MEMSET_BASELINE: &str = "baseline_cuMemsetD32";
    pub const COPY_BASELINE: &str = "baseline_cuMemcpyDtoD";
}

/// One measurement. The same struct is the JSON row, the CSV row and the source of the tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SweepRow {
    pub device: i32,
    pub strategy: String,
    pub bytes: u64,
    /// A phase of [`phase`], or `alloc:<call>` / `free:<call>` for the steps of one.
    pub phase: String,
    pub runs: u32,
    pub ms_median: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    /// Coefficient of variation of the times (0 for single-run phases).
    pub ms_cv: f64,
    /// GB/s (1e9 bytes per second) at the median time: bytes written (fill, memset), read (read),
    /// copied (copy).
    pub gbps: Option<f64>,
    /// Copy only: read plus write traffic, GB/s.
    pub gbps_traffic: Option<f64>,
    /// Touch phases: pages touched, microseconds per page and pages per second.
    pub pages: Option<u64>,
    pub us_per_page: Option<f64>,
    pub pages_per_s: Option<f64>,
    /// CPU touches: threads, and the mean rate of one thread.
    pub threads: Option<u32>,
    pub pages_per_s_per_thread: Option<f64>,
    /// Accounting changes (after minus before), bytes. `alloc`: across the allocation;
    /// `gpu_first_touch`: since before the allocation; `free`: since before the allocation.
    pub delta_device_free_bytes: Option<i64>,
    pub delta_mem_free_bytes: Option<i64>,
    pub delta_mem_available_bytes: Option<i64>,
    pub delta_cached_bytes: Option<i64>,
    pub delta_rss_bytes: Option<i64>,
    /// Change of the free 2 MiB-block supply and of the cgroup's memory.current (same spans),
    /// and PSI full avg10 (percent) at the end of the span.
    #[serde(default)]
    pub delta_free_2m_bytes: Option<i64>,
    #[serde(default)]
    pub delta_cgroup_current_bytes: Option<i64>,
    #[serde(default)]
    pub psi_full_avg10: Option<f64>,
    /// Verify: elements that differed (must be 0), and how they were checked.
    pub mismatches: Option<u64>,
    pub note: Option<String>,
    /// Fresh allocations the samples come from (absent in files written before `--repeat`).
    #[serde(default)]
    pub allocations: Option<u32>,
    /// Every sample, ms: one per fresh allocation for one-shot phases; for bandwidth phases
    /// every timed run, `runs / allocations` per allocation in allocation order. JSON only (CSV
    /// keeps median, min, max, CV and n); absent in older files.
    #[serde(default, skip_serializing_if = "crate::report::sink::in_csv")]
    pub samples_ms: Vec<f64>,
    /// Bandwidth phases: GB/s at each allocation's median time, in allocation order (JSON only).
    #[serde(default, skip_serializing_if = "crate::report::sink::in_csv")]
    pub alloc_gbps: Vec<f64>,
    /// Bandwidth phases: CV of the per-allocation medians (where the memory landed).
    #[serde(default)]
    pub between_alloc_cv: Option<f64>,
    /// Bandwidth phases: mean CV of the runs on one allocation (timing noise).
    #[serde(default)]
    pub within_alloc_cv: Option<f64>,
}

impl SweepRow {
    pub fn new(device: i32, strategy: Strategy, bytes: u64, phase: &str) -> SweepRow {
        SweepRow {
            device,
            strategy: strategy.key().into(),
            bytes,
            phase: phase.into(),
            ..Default::default()
        }
    }

    /// Median, spread and samples of `ms`.
    pub fn times(mut self, ms: &[f64]) -> SweepRow {
        if let Some(s) = Summary::of(ms) {
            self.runs = s.runs;
            self.ms_median = s.median;
            self.ms_min = s.min;
            self.ms_max = s.max;
            self.ms_cv = s.cv;
            self.samples_ms = ms.to_vec();
        }
        self
    }

    /// The times as a [`Summary`] (from the stored fields, so older files work too).
    pub fn summary(&self) -> Summary {
        Summary {
            median: self.ms_median,
            min: self.ms_min,
            max: self.ms_max,
            cv: self.ms_cv,
            runs: self.runs,
        }
    }

    /// Milliseconds per GB (1e9 bytes): median, min and max.
    pub fn ms_per_gb(&self) -> Summary {
        let gb = self.bytes as f64 / 1e9;
        let s = self.summary();
        Summary {
            median: s.median / gb,
            min: s.min / gb,
            max: s.max / gb,
            ..s
        }
    }

    pub fn pages(mut self, pages: u64) -> SweepRow {
        self.pages = Some(pages);
        if self.ms_median > 0.0 && pages > 0 {
            self.us_per_page = Some(self.ms_median * 1e3 / pages as f64);
            self.pages_per_s = Some(pages as f64 / (self.ms_median / 1e3));
        }
        self
    }

    fn deltas(mut self, before: &Snapshot, after: &Snapshot) -> SweepRow {
        let d = |a: u64, b: u64| a as i64 - b as i64;
        self.delta_device_free_bytes = Some(d(after.device_free, before.device_free));
        self.delta_mem_free_bytes = Some(d(after.mem_free, before.mem_free));
        self.delta_mem_available_bytes = Some(d(after.mem_available, before.mem_available));
        self.delta_cached_bytes = Some(d(after.cached, before.cached));
        self.delta_rss_bytes = Some(d(after.rss, before.rss));
        let od = |a: Option<u64>, b: Option<u64>| Some(d(a?, b?));
        self.delta_free_2m_bytes = od(after.free_2m_bytes, before.free_2m_bytes);
        self.delta_cgroup_current_bytes =
            od(after.cgroup_current_bytes, before.cgroup_current_bytes);
        self.psi_full_avg10 = after.psi_full_avg10;
        self
    }
}

/// Memory accounting at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub device_free: u64,
    pub mem_free: u64,
    pub mem_available: u64,
    pub cached: u64,
    pub rss: u64,
    /// PSI full avg10 (percent), bytes in free 2 MiB blocks, cgroup memory.current.
    pub psi_full_avg10: Option<f64>,
    pub free_2m_bytes: Option<u64>,
    pub cgroup_current_bytes: Option<u64>,
}

impl Snapshot {
    pub fn take(gpu: &Gpu) -> Result<Snapshot> {
        let m = MemInfo::read().map_err(Error::Failed)?;
        let p = crate::host::HostPressure::read();
        Ok(Snapshot {
            device_free: gpu.free_bytes()?,
            mem_free: m.mem_free,
            mem_available: m.mem_available,
            cached: m.cached,
            rss: rss_bytes(),
            psi_full_avg10: p.psi_full_avg10(),
            free_2m_bytes: p.free_2m_bytes(),
            cgroup_current_bytes: p.cgroup_current(),
        })
    }
}

/// Options of a sweep (typed: parsed before anything runs).
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub strategies: Option<Vec<Strategy>>,
    pub sizes: Option<Vec<u64>>,
    pub runs: u32,
    pub page_stride: u64,
    pub cpu_threads: usize,
    pub headroom: u64,
    pub force: bool,
    pub alloc: AllocOptions,
    pub quiet: bool,
    /// Fresh allocations per (strategy, size): every one-shot phase is measured on each.
    pub repeat: u32,
    /// Sizes at or below this use one CPU thread for the CPU-first touch (the single-thread
    /// rate); larger sizes use `cpu_threads`. 0: `cpu_threads` everywhere.
    pub cpu_single_max: u64,
    pub caps: Caps,
}

impl SweepOptions {
    /// Threads for the CPU-first touch of `size`.
    pub fn cpu_threads_for(&self, size: u64) -> usize {
        if size <= self.cpu_single_max {
            1
        } else {
            self.cpu_threads.max(1)
        }
    }
}

/// Size caps for costs that are linear in size (the lab sets them from its budget; `sweep` on
/// its own has none). A capped combination is listed as skipped with the reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Caps {
    /// Host-backed strategies (pinned, registered, pageable): pinning.
    pub host_max: Option<u64>,
    /// Managed strategies: migration on first touch.
    pub managed_max: Option<u64>,
    /// The CPU-first variant (CPU faulting, then migration back to the GPU).
    pub cpu_first_max: Option<u64>,
}

/// `--preset seed`: the sizes of the DGX Spark allocation table, GB (1e9 bytes).
pub const SEED_SIZES_GB: &[u64] = &[1, 2, 4, 8, 10, 20, 30, 40, 50, 60, 70, 80];

/// The default sizes for a device: 256 MiB, 1 GiB, 4 GiB, 16 GiB and a quarter of the usable
/// memory (rounded down to 256 MiB), keeping only sizes up to half of the usable memory.
pub fn default_sizes(usable: u64) -> Vec<u64> {
    let quarter = (usable / 4) / (256 * MIB) * (256 * MIB);
    let mut v: Vec<u64> = [256 * MIB, GIB, 4 * GIB, 16 * GIB, quarter]
        .into_iter()
        .filter(|s| *s > 0 && *s <= usable / 2)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What one device's sweep needs, and the wall time spent per phase.
struct Ctx<'a> {
    gpu: &'a Gpu,
    opts: &'a SweepOptions,
    dev: i32,
    clock: std::cell::RefCell<(Instant, std::collections::BTreeMap<&'static str, f64>)>,
    /// The last free of device-resident memory (when, bytes) and the waits it caused (count, ms).
    last_free: std::cell::Cell<Option<(Instant, u64)>>,
    settled: std::cell::Cell<(u32, f64)>,
}

/// After a large free of device memory the DRAM is busy in the background for a while, and
/// whatever is timed then runs about 8.5% slow: measured on an H200 (driver 580.159.04), about
/// 2.5 ms per GiB freed at any size from 4.3 to 69.5 GiB, after cuMemFree, VMM release and a
/// pool trim alike, never after freeing managed memory (docs/results/h200-2026-11-30-fill). That
/// was the 34.8 GiB device/vmm fill deficit of the earlier labs: the strategy timed right after
/// a free lost, whatever it was. So bandwidth waits out this window: 3 ms per GiB freed, at least
/// 50 ms, counted from the free.
const SETTLE_MS_PER_GIB: f64 = 3.0;
const SETTLE_MIN_MS: f64 = 50.0;

/// How long to wait after freeing `bytes` of device memory before timing bandwidth.
pub fn settle_window_ms(bytes: u64) -> f64 {
    (SETTLE_MS_PER_GIB * bytes as f64 / GIB as f64).max(SETTLE_MIN_MS)
}

impl Ctx<'_> {
    /// Records a free of device-resident memory (`device`, `pool`, `vmm`).
    fn freed(&self, st: Strategy, bytes: u64) {
        if matches!(st, Strategy::Device | Strategy::Pool | Strategy::Vmm) {
            self.last_free.set(Some((Instant::now(), bytes)));
        }
    }

    /// Waits until the background traffic of the last device free is over (see
    /// [`SETTLE_MS_PER_GIB`]).
    fn settle(&self) {
        if let Some((at, bytes)) = self.last_free.get() {
            let left = settle_window_ms(bytes) - at.elapsed().as_secs_f64() * 1e3;
            if left > 0.0 {
                std::thread::sleep(std::time::Duration::from_secs_f64(left / 1e3));
                let (n, ms) = self.settled.get();
                self.settled.set((n + 1, ms + left));
            }
            self.last_free.set(None);
        }
    }

    /// Charges the wall time since the last lap to `phase`.
    fn lap(&self, phase: &'static str) {
        let mut c = self.clock.borrow_mut();
        let dt = c.0.elapsed().as_secs_f64();
        *c.1.entry(phase).or_insert(0.0) += dt;
        c.0 = Instant::now();
    }
}

/// The whole-sweep document type.
pub type SweepDoc = crate::report::Document<SweepRow, Environment>;

/// Runs the sweep on each device in `ordinals`, streaming into `sink`.
pub fn run(
    ordinals: &[i32],
    opts: &SweepOptions,
    sink: &mut ResultSink<SweepRow, Environment>,
) -> Result<()> {
    let drv = require_driver()?;
    for &o in ordinals {
        let gpu = Gpu::open(&drv, o)?;
        let r = run_device(&gpu, opts, sink);
        // Return pooled memory whatever happened.
        let _ = trim_default_pool(&gpu.ctx);
        r?;
    }
    Ok(())
}

fn usable_bytes(gpu: &Gpu) -> Result<u64> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    Ok(crate::memory::arch::UsableEstimate::new(gpu.arch, gpu.free_bytes()?, &m).estimate_bytes)
}

fn run_device(
    gpu: &Gpu,
    opts: &SweepOptions,
    sink: &mut ResultSink<SweepRow, Environment>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let strategies = opts.strategies.clone().unwrap_or_else(Strategy::all);
    let sizes = match &opts.sizes {
        Some(s) => s.clone(),
        None => default_sizes(usable_bytes(gpu)?),
    };
    let c = Ctx {
        gpu,
        opts,
        dev,
        clock: std::cell::RefCell::new((Instant::now(), Default::default())),
        last_free: std::cell::Cell::new(None),
        settled: std::cell::Cell::new((0, 0.0)),
    };
    let progress = Progress::new((strategies.len() * sizes.len()) as u64, opts.quiet);
    for &size in &sizes {
        for &st in &strategies {
            check_interrupt()?;
            progress.message(format!("device {dev}: {st} {}", fmt_bytes(size)));
            if let Err(reason) = st.supported(&gpu.attrs) {
                sink.skip(format!(
                    "device {dev} {st}@{}: not supported: {reason}",
                    fmt_bytes(size)
                ))?;
                progress.inc();
                continue;
            }
            match combination(&c, st, size, sink, &progress) {
                Ok(()) => {}
                Err(Error::Driver(e)) if e.is_out_of_memory() => {
                    sink.skip(format!(
                        "device {dev} {st}@{}: out of memory: {e}",
                        fmt_bytes(size)
                    ))?;
                }
                // cuMemHostRegister on GB10 (antirez/ds4 PR #158): skipped with the reason.
                Err(Error::Driver(e)) if e.is_not_supported() => {
                    sink.skip(format!(
                        "device {dev} {st}@{}: not supported by the driver: {e}",
                        fmt_bytes(size)
                    ))?;
                }
                Err(e) => return Err(e),
            }
            progress.inc();
        }
    }
    progress.finish();
    let (waits, waited) = c.settled.get();
    if waits > 0 {
        sink.doc.notes.push(format!(
            "device {dev}: bandwidth was timed after the background DRAM traffic that follows a large device free had passed ({SETTLE_MS_PER_GIB} ms per GiB freed, at least {SETTLE_MIN_MS} ms; measured on an H200: about 8.5% slower runs otherwise): {waits} waits, {:.1} s in all",
            waited / 1e3
        ));
    }
    let clock = c.clock.borrow();
    let total: f64 = clock.1.values().sum();
    let mut parts: Vec<(&&str, &f64)> = clock.1.iter().collect();
    parts.sort_by(|a, b| b.1.total_cmp(a.1));
    sink.doc.notes.push(format!(
        "device {dev}: wall time by phase: {}",
        parts
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s ({:.0}%)", 100.0 * **s / total.max(1e-9)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// Checks the safety ceiling for one allocation; Ok(false) means skipped (recorded).
fn allowed(
    c: &Ctx,
    st: Strategy,
    size: u64,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<bool> {
    match budget_now(c)?.check_forced(st, size, c.opts.force) {
        Ok(Forced::Allowed) => Ok(true),
        Ok(Forced::Warn(why)) => {
            progress.warn(format!("WARNING: --force: {why}; allocating anyway"));
            Ok(true)
        }
        Err(why) => {
            let hint = if c.opts.force {
                ""
            } else {
                " (use --force to override)"
            };
            sink.skip(format!(
                "device {} {st}@{}: refused: {why}{hint}",
                c.dev,
                fmt_bytes(size)
            ))?;
            Ok(false)
        }
    }
}

/// The samples of one (strategy, size) gathered over its fresh allocations, turned into rows at
/// the end (so every row carries all of its samples).
#[derive(Default)]
struct Acc {
    /// One-shot phases (and `alloc:<step>` / `free:<step>`), in first-seen order: one sample per
    /// fresh allocation.
    one_shot: Vec<(String, Vec<f64>)>,
    /// Bandwidth phases: one group of timed runs per allocation.
    bandwidth: Vec<(&'static str, Vec<Vec<f64>>)>,
    /// Accounting around the first allocation: before, after alloc, after first touch, after free.
    before: Option<Snapshot>,
    after_alloc: Option<Snapshot>,
    after_touch: Option<Snapshot>,
    after_free: Option<Snapshot>,
    alloc_note: Option<String>,
    pages: u64,
    /// Pages the CPU touch wrote (its own count).
    cpu_pages: u64,
    cpu_threads: Option<usize>,
    cpu_pages_per_s_per_thread: Vec<f64>,
    mismatches: Option<u64>,
    verify_note: Option<String>,
}

impl Acc {
    fn one(&mut self, phase: &str, ms: f64) {
        match self.one_shot.iter_mut().find(|(p, _)| p == phase) {
            Some((_, v)) => v.push(ms),
            None => self.one_shot.push((phase.to_string(), vec![ms])),
        }
    }

    fn group(&mut self, phase: &'static str, runs: Vec<f64>) {
        match self.bandwidth.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, v)) => v.push(runs),
            None => self.bandwidth.push((phase, vec![runs])),
        }
    }

    /// The rows, in protocol order.
    fn rows(self, dev: i32, st: Strategy, size: u64) -> Vec<SweepRow> {
        let mut out = Vec::new();
        let order = |p: &str| -> usize {
            let base = p.split(':').next().unwrap_or(p);
            [
                phase::ALLOC,
                phase::PREFETCH,
                phase::GPU_FIRST_TOUCH,
                phase::GPU_SECOND_TOUCH,
                phase::FILL,
                phase::READ,
                phase::VERIFY,
                phase::MEMSET_BASELINE,
                phase::COPY_BASELINE,
                phase::FREE,
                phase::CPU_FIRST_TOUCH,
                phase::GPU_TOUCH_AFTER_CPU,
            ]
            .iter()
            .position(|q| *q == base)
            .unwrap_or(usize::MAX)
        };
        let mut one_shot = self.one_shot;
        one_shot.sort_by_key(|(p, _)| order(p));
        for (ph, ms) in one_shot {
            let mut r = SweepRow::new(dev, st, size, &ph).times(&ms);
            r.allocations = Some(ms.len() as u32);
            let between = |a: &Option<Snapshot>, b: &Option<Snapshot>| a.zip(*b);
            match ph.as_str() {
                phase::ALLOC => {
                    if let Some((b, a)) = between(&self.before, &self.after_alloc) {
                        r = r.deltas(&b, &a);
                    }
                    r.note = self.alloc_note.clone();
                }
                phase::GPU_FIRST_TOUCH => {
                    r = r.pages(self.pages);
                    if let Some((b, a)) = between(&self.before, &self.after_touch) {
                        r = r.deltas(&b, &a);
                    }
                }
                phase::GPU_SECOND_TOUCH | phase::GPU_TOUCH_AFTER_CPU => r = r.pages(self.pages),
                phase::CPU_FIRST_TOUCH => {
                    r = r.pages(self.cpu_pages);
                    r.threads = self.cpu_threads.map(|t| t as u32);
                    r.pages_per_s_per_thread =
                        Summary::of(&self.cpu_pages_per_s_per_thread).map(|s| s.median);
                }
                phase::FREE => {
                    if let Some((b, a)) = between(&self.before, &self.after_free) {
                        r = r.deltas(&b, &a);
                    }
                }
                phase::PREFETCH => r.gbps = Some(gbps(size, r.ms_median)),
                _ => {}
            }
            if ph == phase::FREE
                && let Some(bad) = self.mismatches
            {
                let mut v = SweepRow::new(dev, st, size, phase::VERIFY);
                v.mismatches = Some(bad);
                v.note = self.verify_note.clone();
                out.push(v);
            }
            out.push(r);
        }
        for (ph, groups) in self.bandwidth {
            let all: Vec<f64> = groups.iter().flatten().copied().collect();
            let bytes = if ph == phase::COPY_BASELINE {
                size / 2 / 16 * 16
            } else if ph == phase::MEMSET_BASELINE {
                size / 4 * 4
            } else {
                size
            };
            let mut r = SweepRow::new(dev, st, bytes, ph).times(&all);
            r.gbps = Some(gbps(bytes, r.ms_median));
            r.allocations = Some(groups.len() as u32);
            r.alloc_gbps = groups
                .iter()
                .filter_map(|g| Summary::of(g).map(|s| gbps(bytes, s.median)))
                .collect();
            if let Some(split) = placement_split(&groups) {
                r.between_alloc_cv = Some(split.between_cv);
                r.within_alloc_cv = Some(split.within_cv);
            }
            if ph == phase::COPY_BASELINE {
                r.gbps_traffic = Some(gbps(2 * bytes, r.ms_median));
                r.note = Some(
                    "bytes = bytes copied (first half onto second half of the device buffer)"
                        .into(),
                );
            }
            out.push(r);
        }
        out.sort_by_key(|r| order(&r.phase));
        out
    }
}

fn record_steps(acc: &mut Acc, prefix: &str, steps: &[Step]) {
    if steps.len() >= 2 {
        for s in steps {
            acc.one(&format!("{prefix}:{}", s.name), s.ms);
        }
    }
}

/// Repeats `f` `runs` times after one discarded warm-up; returns the times.
fn repeat(runs: u32, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    f()?;
    let mut v = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        v.push(f()?);
    }
    Ok(v)
}

/// Why `st` at `size` is left out by a cap of the options, if it is.
fn capped(opts: &SweepOptions, st: Strategy, size: u64) -> Option<String> {
    let over = |cap: Option<u64>| cap.is_some_and(|c| size > c);
    if st.info().backing == Backing::Host && over(opts.caps.host_max) {
        return Some(format!(
            "capped: pinning or registering host memory costs about {:.2} s per GiB, so it is measured up to {} (its per-GiB rate is in the smaller sizes); a larger --budget lifts the cap",
            crate::experiments::lab::cost::PIN_S_PER_GIB,
            fmt_bytes(opts.caps.host_max.unwrap_or(0))
        ));
    }
    if st.info().backing == Backing::Managed && over(opts.caps.managed_max) {
        return Some(format!(
            "capped: migrating managed memory on first touch is linear in size, so it is measured up to {} (its per-GiB rate is in the smaller sizes); a larger --budget lifts the cap",
            fmt_bytes(opts.caps.managed_max.unwrap_or(0))
        ));
    }
    None
}

fn combination(
    c: &Ctx,
    st: Strategy,
    size: u64,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<()> {
    if let Some(why) = capped(c.opts, st, size) {
        sink.skip(format!("device {} {st}@{}: {why}", c.dev, fmt_bytes(size)))?;
        return Ok(());
    }
    let mut acc = Acc {
        pages: size.div_ceil(c.opts.page_stride),
        ..Default::default()
    };
    let repeats = c.opts.repeat.max(1);
    let mut result = Ok(true);
    for i in 0..repeats {
        result = one_allocation(c, st, size, i, &mut acc, sink, progress);
        if !matches!(result, Ok(true)) {
            break;
        }
    }
    // Whatever finished is written, also when a later allocation failed or was interrupted.
    for r in acc.rows(c.dev, st, size) {
        sink.push(r)?;
    }
    result.map(|_| ())
}

/// One fresh allocation through the protocol; Ok(false) when the safety check refused it.
fn one_allocation(
    c: &Ctx,
    st: Strategy,
    size: u64,
    index: u32,
    acc: &mut Acc,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<bool> {
    let (gpu, dev) = (c.gpu, c.dev);
    let (k, s) = (&gpu.kernels, &gpu.stream);
    let stride = c.opts.page_stride;
    let first = index == 0;
    // Only the first refusal is recorded: later ones would repeat it.
    if !check(c, st, size, first, sink, progress)? {
        return Ok(false);
    }
    c.lap("setup and safety checks");

    // 1. alloc, with accounting around it.
    // Accounting around the first allocation only (the rows carry its deltas).
    if first {
        acc.before = Some(Snapshot::take(gpu)?);
    }
    let t = Instant::now();
    let mut a = allocate(&gpu.ctx, &gpu.stream, st, size, &c.opts.alloc)?;
    acc.one(phase::ALLOC, t.elapsed().as_secs_f64() * 1e3);
    if first {
        acc.after_alloc = Some(Snapshot::take(gpu)?);
        if a.mapped_bytes() != size {
            acc.alloc_note = Some(format!(
                "rounded to {} bytes (granularity)",
                a.mapped_bytes()
            ));
        }
    }
    record_steps(acc, "alloc", a.alloc_steps());
    let ptr: DevicePtr = a.device_ptr();
    let writable = a.writable();
    c.lap(phase::ALLOC);
    check_interrupt()?;

    // 2. prefetch (managed+prefetch).
    if st == Strategy::ManagedPrefetch {
        acc.one(phase::PREFETCH, prefetch_to_device(s, ptr, size)?);
        c.lap(phase::PREFETCH);
    }

    // 3-4. GPU first and second touch (a read-only touch for read-only file mappings).
    let touch = |value: u32| -> Result<f64> {
        if writable {
            Ok(k.touch(s, ptr, size, stride, value)?)
        } else {
            Ok(k.touch_read(s, ptr, size, stride)?.0)
        }
    };
    acc.one(phase::GPU_FIRST_TOUCH, touch(0x1111_1111)?);
    if first {
        acc.after_touch = Some(Snapshot::take(gpu)?);
    }
    acc.one(phase::GPU_SECOND_TOUCH, touch(0x2222_2222)?);
    c.lap("gpu touches");
    check_interrupt()?;

    // 5-6. bandwidth on this allocation: fill then read (never read zero-filled data), once the
    // DRAM traffic after the last device free has passed.
    c.settle();
    let seed: u32 = rand::random();
    if writable {
        acc.group(
            phase::FILL,
            repeat(c.opts.runs, || Ok(k.fill(s, ptr, size, seed)?))?,
        );
        check_interrupt()?;
    }
    acc.group(
        phase::READ,
        repeat(c.opts.runs, || Ok(k.read(s, ptr, size)?.0))?,
    );
    c.lap("fill and read bandwidth");
    check_interrupt()?;

    // 7. verify: the check kernel over everything on every allocation, and the CPU on a sample
    // where it can reach (first allocation only: on managed memory each sampled word migrates).
    if writable {
        let (_, res) = k.check(s, ptr, size, seed)?;
        let mut note = format!("check kernel over all {size} bytes of each allocation");
        let mut bad = res.mismatches;
        if first && let Some(mem) = a.host_slice() {
            let (n, b) = cpu_sample_check(mem, seed, 65_536);
            note.push_str(&format!("; CPU read {n} sampled words of the first"));
            bad += b;
        }
        *acc.mismatches.get_or_insert(0) += bad;
        acc.verify_note = Some(note);
        if bad != 0 {
            return Err(Error::Failed(format!(
                "{st} at {}: {bad} elements did not hold the values written (first bad byte {:?}): the memory or the kernels are wrong",
                fmt_bytes(size),
                res.first_bad_offset
            )));
        }
    }
    c.lap(phase::VERIFY);
    if st == Strategy::Device {
        baselines(c, ptr, size, acc)?;
        c.lap("baselines");
    }

    // 8. free.
    let t = Instant::now();
    let free_steps = a.free()?;
    acc.one(phase::FREE, t.elapsed().as_secs_f64() * 1e3);
    c.freed(st, size);
    if first {
        acc.after_free = Some(Snapshot::take(gpu)?);
    }
    record_steps(acc, "free", &free_steps);
    c.lap(phase::FREE);
    check_interrupt()?;

    // 9. CPU-first variant: a fresh allocation touched by the CPU, then by the GPU.
    let has_cpu_first = st.info().host_accessible && writable;
    let cpu_capped = c.opts.caps.cpu_first_max.is_some_and(|m| size > m);
    if has_cpu_first && cpu_capped && first {
        sink.skip(format!(
            "device {dev} {st}@{}: CPU-first variant capped: CPU faulting and migration back are linear in size, so they are measured up to {} (per-GiB rates in the smaller sizes)",
            fmt_bytes(size),
            fmt_bytes(c.opts.caps.cpu_first_max.unwrap_or(0))
        ))?;
    }
    if has_cpu_first && !cpu_capped && !interrupted() && check(c, st, size, first, sink, progress)?
    {
        let mut b = allocate(&gpu.ctx, &gpu.stream, st, size, &c.opts.alloc)?;
        let bptr = b.device_ptr();
        let threads = c.opts.cpu_threads_for(size);
        if let Some(mem) = b.host_slice() {
            let t = cpu_touch(mem, stride, 0x3333_3333, threads);
            acc.one(phase::CPU_FIRST_TOUCH, t.ms);
            acc.cpu_pages = t.pages;
            acc.cpu_threads = Some(t.threads);
            acc.cpu_pages_per_s_per_thread
                .push(t.pages_per_s_per_thread());
            let g = k.touch(s, bptr, size, stride, 0x4444_4444)?;
            acc.one(phase::GPU_TOUCH_AFTER_CPU, g);
        }
        b.free()?;
        c.lap("CPU-first variant (alloc, CPU touch, GPU touch, free)");
    }
    Ok(true)
}

/// The safety ceiling as it stands now.
fn budget_now(c: &Ctx) -> Result<Budget> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    Ok(Budget {
        unified: c.gpu.arch.is_unified(),
        device_free: c.gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom: c.opts.headroom,
    })
}

/// The safety check without recording a refusal (repeats after the first).
fn fits(c: &Ctx, st: Strategy, size: u64) -> Result<bool> {
    Ok(budget_now(c)?.check_forced(st, size, c.opts.force).is_ok())
}

/// The safety check, recorded as skipped on the first allocation only.
fn check(
    c: &Ctx,
    st: Strategy,
    size: u64,
    first: bool,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<bool> {
    if first {
        allowed(c, st, size, sink, progress)
    } else {
        fits(c, st, size)
    }
}

/// `cuMemsetD32` over the buffer, and a device-to-device copy of its first half onto its second.
fn baselines(c: &Ctx, ptr: DevicePtr, size: u64, acc: &mut Acc) -> Result<()> {
    let (k, s) = (&c.gpu.kernels, &c.gpu.stream);
    acc.group(
        phase::MEMSET_BASELINE,
        repeat(c.opts.runs, || {
            Ok(k.memset_d32(s, ptr, size, 0x5a5a_5a5a)?)
        })?,
    );
    let half = size / 2 / 16 * 16;
    if half > 0 {
        acc.group(
            phase::COPY_BASELINE,
            repeat(c.opts.runs, || Ok(k.copy(s, ptr + half, ptr, half)?))?,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- tables and findings

/// The row of `dev`, `st`, `bytes` and `phase`.
pub fn find<'a>(
    rows: &'a [SweepRow],
    dev: i32,
    st: &str,
    bytes: u64,
    phase: &str,
) -> Option<&'a SweepRow> {
    rows.iter()
        .find(|r| r.device == dev && r.strategy == st && r.bytes == bytes && r.phase == phase)
}

/// A size as the user gave it: whole GB (1e9 bytes, the seed preset's sizes) as "60 GB", other
/// sizes in binary units.
pub fn size_label(bytes: u64) -> String {
    crate::units::size_label(bytes)
}

/// Formats one cell of a phase table.
type CellFn = fn(&SweepRow) -> Option<String>;

/// `median [min-max]` of a row's times.
pub fn spread_ms(r: &SweepRow, decimals: usize) -> String {
    fmt_spread(&r.summary(), decimals)
}

fn touch_cell(r: &SweepRow) -> Option<String> {
    Some(format!(
        "{} ({:.3})",
        spread_ms(r, 2),
        r.us_per_page.unwrap_or(0.0)
    ))
}

/// GB/s of a bandwidth row: at the median, [at the slowest - at the fastest run].
pub fn gbps_spread(r: &SweepRow) -> Option<Summary> {
    let median = r.gbps?;
    let at = |ms: f64| {
        if ms > 0.0 {
            median * r.ms_median / ms
        } else {
            median
        }
    };
    Some(Summary {
        median,
        min: at(r.ms_max),
        max: at(r.ms_min),
        cv: r.ms_cv,
        runs: r.runs,
    })
}

/// A bandwidth table cell: `median [min-max]` GB/s and the CV between allocations / within one.
pub fn bandwidth_cell(r: &SweepRow) -> Option<String> {
    let s = gbps_spread(r)?;
    let split = match (r.between_alloc_cv, r.within_alloc_cv) {
        (Some(b), Some(w)) => format!(" ({:.1} / {:.1})", 100.0 * b, 100.0 * w),
        _ => format!(" (CV {:.1})", 100.0 * r.ms_cv),
    };
    Some(format!("{}{split}", fmt_spread(&s, 1)))
}

/// The tables and the "what this shows" paragraph.
pub fn render(doc: &SweepDoc) -> String {
    let rows = &doc.rows;
    let mut out = String::new();
    let mut devices: Vec<i32> = rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        let name = doc
            .environment
            .devices
            .iter()
            .find(|d| d.ordinal == dev)
            .map_or("?".to_string(), |d| d.name.clone());
        out.push_str(&format!("device {dev}: {name}\n\n"));
        let mut sizes: Vec<u64> = rows
            .iter()
            .filter(|r| r.device == dev && r.phase == phase::ALLOC)
            .map(|r| r.bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let mut strategies: Vec<String> = Vec::new();
        for r in rows
            .iter()
            .filter(|r| r.device == dev && r.phase == phase::ALLOC)
        {
            if !strategies.contains(&r.strategy) {
                strategies.push(r.strategy.clone());
            }
        }
        let tables: [(&str, &str, CellFn); 10] = [
            (
                phase::ALLOC,
                "allocation time, ms (host clock, incl. synchronize), median [min-max] over fresh allocations",
                |r| Some(spread_ms(r, 3)),
            ),
            (
                phase::ALLOC,
                "allocation time per GB (1e9 bytes), ms, median [min-max]",
                |r| (r.bytes >= GB).then(|| fmt_spread(&r.ms_per_gb(), 3)),
            ),
            (
                phase::PREFETCH,
                "cuMemPrefetchAsync to the device, ms [min-max] (GB/s at the median)",
                |r| {
                    Some(format!(
                        "{} ({:.1})",
                        spread_ms(r, 2),
                        r.gbps.unwrap_or(0.0)
                    ))
                },
            ),
            (
                phase::GPU_FIRST_TOUCH,
                "GPU first touch, ms [min-max] (us per page at the median)",
                touch_cell,
            ),
            (
                phase::GPU_SECOND_TOUCH,
                "GPU second touch, ms [min-max] (us per page)",
                touch_cell,
            ),
            (
                phase::CPU_FIRST_TOUCH,
                "CPU first touch, ms [min-max] (us per page, threads)",
                |r| {
                    Some(format!(
                        "{} ({:.3}, {})",
                        spread_ms(r, 2),
                        r.us_per_page.unwrap_or(0.0),
                        r.threads.unwrap_or(1)
                    ))
                },
            ),
            (
                phase::GPU_TOUCH_AFTER_CPU,
                "GPU touch after the CPU touched first, ms [min-max] (us per page)",
                touch_cell,
            ),
            (
                phase::FILL,
                "fill bandwidth, GB/s written: median [min-max] (CV between allocations / within one, %)",
                bandwidth_cell,
            ),
            (
                phase::READ,
                "read bandwidth, GB/s read: median [min-max] (CV between allocations / within one, %)",
                bandwidth_cell,
            ),
            (phase::FREE, "free time, ms [min-max]", |r| {
                Some(spread_ms(r, 3))
            }),
        ];
        for (ph, title, cell) in tables {
            if !rows
                .iter()
                .any(|r| r.device == dev && r.phase == ph && cell(r).is_some())
            {
                continue;
            }
            let mut header = vec!["strategy".to_string()];
            header.extend(sizes.iter().map(|s| size_label(*s)));
            let mut t = new_table(&header);
            for st in &strategies {
                if !rows
                    .iter()
                    .any(|r| r.device == dev && &r.strategy == st && r.phase == ph)
                {
                    continue;
                }
                let mut line = vec![st.clone()];
                line.extend(sizes.iter().map(|b| {
                    find(rows, dev, st, *b, ph)
                        .and_then(cell)
                        .unwrap_or_else(|| "-".into())
                }));
                t.add_row(line);
            }
            out.push_str(&format!("{title}\n{t}\n\n"));
        }
        // Accounting: what the allocation and the first touch moved.
        let mut t = new_table(&[
            "strategy",
            "size",
            "cuMemGetInfo free after alloc, GiB",
            "after first GPU touch, GiB",
            "MemAvailable after alloc, GiB",
            "RSS after alloc, GiB",
        ]);
        for st in &strategies {
            for b in &sizes {
                let (Some(al), Some(ft)) = (
                    find(rows, dev, st, *b, phase::ALLOC),
                    find(rows, dev, st, *b, phase::GPU_FIRST_TOUCH),
                ) else {
                    continue;
                };
                let g = |v: Option<i64>| format!("{:+.2}", v.unwrap_or(0) as f64 / GIB as f64);
                t.add_row(vec![
                    st.clone(),
                    fmt_bytes(*b),
                    g(al.delta_device_free_bytes),
                    g(ft.delta_device_free_bytes),
                    g(al.delta_mem_available_bytes),
                    g(al.delta_rss_bytes),
                ]);
            }
        }
        out.push_str(&format!(
            "memory accounting, change since before the allocation\n{t}\n\n"
        ));
        let mut t = new_table(&[
            "baseline on device memory",
            "size",
            "GB/s: median [min-max] (CV between allocations / within one, %)",
            "read+write traffic GB/s",
        ]);
        for r in rows.iter().filter(|r| {
            r.device == dev
                && (r.phase == phase::MEMSET_BASELINE || r.phase == phase::COPY_BASELINE)
        }) {
            t.add_row(vec![
                r.phase.trim_start_matches("baseline_").to_string(),
                fmt_bytes(r.bytes),
                bandwidth_cell(r).unwrap_or_else(|| "-".into()),
                r.gbps_traffic.map_or("-".into(), |v| format!("{v:.1}")),
            ]);
        }
        out.push_str(&format!("{t}\n\n"));
        out.push_str("What this shows:\n");
        for f in findings(rows, dev) {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    out
}

/// A percentage printed with enough digits that it never reads as the other side of
/// `threshold`, for either reading of "above": [`crate::units::pct_vs`] keeps the
/// `>=` side (94.96% is not printed as 95.0%), and the strict side is kept here too (10.0004% is
/// not printed as 10.0% next to "above 10%").
pub fn pct_near(p: f64, threshold: f64) -> String {
    let s = crate::units::pct_vs(p, threshold);
    if s.parse::<f64>()
        .is_ok_and(|v| (v > threshold) == (p > threshold))
    {
        format!("{s}%")
    } else {
        format!("{p}%")
    }
}

/// "slower" / "faster" / "indistinguishable at n = N" against a reference, by [`order`].
fn compare_words(a: &SweepRow, b: &SweepRow) -> String {
    let n = a.runs.min(b.runs).max(1);
    let single = if n < 2 {
        " (one sample each: the spread is unknown)"
    } else {
        ""
    };
    match order(&a.summary(), &b.summary()) {
        Order::Above => format!("slower{single}"),
        Order::Below => format!("faster{single}"),
        Order::Overlap => format!("indistinguishable at n = {n}"),
    }
}

/// The likely reason a phase of `strategy` varies, where one is known.
fn unstable_reason(strategy: &str, ph: &str) -> &'static str {
    let host_side = matches!(
        strategy,
        "pinned" | "registered" | "pageable" | "managed" | "managed+prefetch" | "managed+advise"
    );
    if strategy == "registered" && ph != phase::FILL && ph != phase::READ {
        "host memory being populated and pinned (by the kernel, or by the hypervisor on a virtual machine), the page cache when --file maps a file, and other processes on the host"
    } else if ph == phase::CPU_FIRST_TOUCH
        || ph == phase::GPU_TOUCH_AFTER_CPU
        || (host_side && ph != phase::FILL && ph != phase::READ)
    {
        "host memory being populated (by the kernel, or by the hypervisor on a virtual machine) and other processes on the host"
    } else if ph == phase::FILL || ph == phase::READ {
        "where each allocation landed (see the split between allocations and runs) or clocks"
    } else {
        "driver work that varies between allocations, or other processes on the GPU"
    }
}

/// Sentences written from the measured numbers of one device. Comparisons follow the rule of
/// [`order`]: one strategy is slower than another only when their samples do not overlap.
pub fn findings(rows: &[SweepRow], dev: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut sizes: Vec<u64> = rows
        .iter()
        .filter(|r| r.device == dev && r.phase == phase::ALLOC)
        .map(|r| r.bytes)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let Some(&big) = sizes.iter().filter(|s| **s >= GIB).max().or(sizes.last()) else {
        return out;
    };
    let mut strategies: Vec<String> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.device == dev && r.phase == phase::ALLOC)
    {
        if !strategies.contains(&r.strategy) {
            strategies.push(r.strategy.clone());
        }
    }
    // Each strategy at its own largest size (caps leave some strategies at smaller sizes).
    let largest = |st: &str| -> u64 {
        rows.iter()
            .filter(|r| r.device == dev && r.strategy == st && r.phase == phase::ALLOC)
            .map(|r| r.bytes)
            .max()
            .unwrap_or(big)
    };
    let n = rows
        .iter()
        .filter(|r| r.device == dev && r.phase == phase::ALLOC)
        .map(|r| r.runs)
        .min()
        .unwrap_or(1);
    out.push(if n >= 2 {
        format!(
            "How to read these: one-shot phases are measured once on each of n = {n} fresh allocations (or more); \"A slower than B\" means every sample of A is above every sample of B, otherwise the two are called indistinguishable at that n; a phase whose CV is above {:.0}% is flagged unstable.",
            100.0 * UNSTABLE_CV
        )
    } else {
        "How to read these: these rows hold one sample per phase (written before --repeat), so no figure has a spread and an order between two of them may be noise.".to_string()
    });
    // Population: at allocation or at first touch.
    let mut at_alloc = Vec::new();
    let mut at_touch = Vec::new();
    for st in &strategies {
        let b = largest(st);
        let gib = b as f64 / GIB as f64;
        let (Some(first), Some(second)) = (
            find(rows, dev, st, b, phase::GPU_FIRST_TOUCH),
            find(rows, dev, st, b, phase::GPU_SECOND_TOUCH),
        ) else {
            continue;
        };
        let extra = first.ms_median - second.ms_median;
        let at = if b == big {
            String::new()
        } else {
            format!(" at {}", fmt_bytes(b))
        };
        if let Some(p) = find(rows, dev, st, b, phase::PREFETCH) {
            at_touch.push(format!(
                "{st}{at} (populated by cuMemPrefetchAsync before the first touch: {} ms, {:.1} GB/s; first GPU touch then {} ms)",
                spread_ms(p, 1),
                p.gbps.unwrap_or(0.0),
                spread_ms(first, 1)
            ));
        } else if order(&first.summary(), &second.summary()) == Order::Above
            && extra > 0.5 * first.ms_median
            && extra > 1.0
        {
            at_touch.push(format!(
                "{st}{at} (first GPU touch {} ms vs {} ms warm: {:.1} ms per GiB, about {:.1} GB/s of population or migration)",
                spread_ms(first, 1),
                spread_ms(second, 1),
                extra / gib,
                b as f64 / 1e9 / (extra / 1e3)
            ));
        } else if let Some(al) = find(rows, dev, st, b, phase::ALLOC) {
            at_alloc.push(format!(
                "{st} ({} ms to allocate {})",
                spread_ms(al, 1),
                fmt_bytes(b)
            ));
        }
    }
    if !at_alloc.is_empty() {
        out.push(format!(
            "These populate at allocation (first GPU touch not above the second): {}.",
            at_alloc.join("; ")
        ));
    }
    if !at_touch.is_empty() {
        out.push(format!(
            "At {}, these populate on first touch: {}.",
            fmt_bytes(big),
            at_touch.join("; ")
        ));
    }
    // Allocation and first touch against device memory, by the overlap rule.
    for (ph, what) in [
        (phase::ALLOC, "allocation"),
        (phase::GPU_FIRST_TOUCH, "first GPU touch"),
    ] {
        let Some(reference) = find(rows, dev, "device", big, ph) else {
            continue;
        };
        let parts: Vec<String> = strategies
            .iter()
            .filter(|s| *s != "device")
            .filter_map(|st| {
                find(rows, dev, st, big, ph).map(|r| {
                    format!(
                        "{st} {} ms, {}",
                        spread_ms(r, 2),
                        compare_words(r, reference)
                    )
                })
            })
            .collect();
        if !parts.is_empty() {
            out.push(format!(
                "{} at {} against device memory ({} ms): {}.",
                capitalise(what),
                fmt_bytes(big),
                spread_ms(reference, 2),
                parts.join("; ")
            ));
        }
    }
    // CPU-first: the cost of the GPU touching what the CPU touched first, as per-GiB rates.
    for st in &strategies {
        let Some(b) = rows
            .iter()
            .filter(|r| r.device == dev && &r.strategy == st && r.phase == phase::CPU_FIRST_TOUCH)
            .map(|r| r.bytes)
            .max()
        else {
            continue;
        };
        if let (Some(cpu), Some(g)) = (
            find(rows, dev, st, b, phase::CPU_FIRST_TOUCH),
            find(rows, dev, st, b, phase::GPU_TOUCH_AFTER_CPU),
        ) {
            let gib = b as f64 / GIB as f64;
            out.push(format!(
                "{st}: the CPU's first touch of {} took {} ms ({:.0} ms per GiB, {:.2} us per page, {} thread(s)); the GPU's touch after it took {} ms ({:.0} ms per GiB).",
                fmt_bytes(b),
                spread_ms(cpu, 1),
                cpu.ms_median / gib,
                cpu.us_per_page.unwrap_or(0.0),
                cpu.threads.unwrap_or(1),
                spread_ms(g, 1),
                g.ms_median / gib
            ));
        }
    }
    // Bandwidth against device memory, by the ranges of the per-allocation medians.
    let dev_fill = find(rows, dev, "device", big, phase::FILL);
    let dev_read = find(rows, dev, "device", big, phase::READ);
    if let (Some(df), Some(dr)) = (dev_fill, dev_read) {
        let mut parts = Vec::new();
        for st in strategies.iter().filter(|s| *s != "device") {
            let f = find(rows, dev, st, big, phase::FILL);
            let r = find(rows, dev, st, big, phase::READ);
            if let (Some(f), Some(r)) = (f, r) {
                let word = |a: &SweepRow, b: &SweepRow| match order(&a.summary(), &b.summary()) {
                    Order::Above => "slower",
                    Order::Below => "faster",
                    Order::Overlap => "indistinguishable",
                };
                parts.push(format!(
                    "{st} fill {:.1}% ({}) / read {:.1}% ({})",
                    100.0 * f.gbps.unwrap_or(0.0) / df.gbps.unwrap_or(1.0),
                    word(f, df),
                    100.0 * r.gbps.unwrap_or(0.0) / dr.gbps.unwrap_or(1.0),
                    word(r, dr)
                ));
            }
        }
        out.push(format!(
            "Bandwidth at {} against device memory (fill {} GB/s, read {} GB/s; slower or faster only where the run times do not overlap): {}.",
            fmt_bytes(big),
            gbps_spread(df).map_or("-".into(), |s| fmt_spread(&s, 0)),
            gbps_spread(dr).map_or("-".into(), |s| fmt_spread(&s, 0)),
            if parts.is_empty() {
                "no other strategy measured".to_string()
            } else {
                parts.join(", ")
            }
        ));
    }
    // Placement: the spread between allocations against the spread between runs on one.
    let split: Vec<String> = strategies
        .iter()
        .flat_map(|st| [phase::FILL, phase::READ].map(|ph| (st, ph)))
        .filter_map(|(st, ph)| {
            let r = find(rows, dev, st, big, ph)?;
            Some(format!(
                "{st} {ph} {:.1}% / {:.1}%",
                100.0 * r.between_alloc_cv?,
                100.0 * r.within_alloc_cv?
            ))
        })
        .collect();
    if !split.is_empty() {
        out.push(format!(
            "Bandwidth spread at {} between fresh allocations (where the memory landed) / between runs on one allocation (timing noise), as CV: {}.",
            fmt_bytes(big),
            split.join(", ")
        ));
    }
    for r in rows.iter().filter(|r| {
        r.device == dev && r.bytes >= GIB && (r.phase == phase::FILL || r.phase == phase::READ)
    }) {
        let (Some(b), Some(w)) = (r.between_alloc_cv, r.within_alloc_cv) else {
            continue;
        };
        if b > 0.02 && b > 2.0 * w {
            let (lo, hi) = r
                .alloc_gbps
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            out.push(format!(
                "{} {} at {}: allocations differ by {:.1}% (CV between allocations; {:.0} to {:.0} GB/s over {}) while runs on one allocation differ by {:.1}%: where the memory landed matters more than timing noise, so one median would hide a gap.",
                r.strategy,
                r.phase,
                fmt_bytes(r.bytes),
                100.0 * b,
                lo,
                hi,
                r.alloc_gbps.len(),
                100.0 * w
            ));
        }
    }
    // Unstable phases.
    let mut unstable: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| {
        r.device == dev && r.runs >= 3 && r.ms_cv > UNSTABLE_CV && !r.phase.contains(':')
    }) {
        unstable.push(format!(
            "{} {} at {} (CV {}, {} ms; likely {})",
            r.strategy,
            r.phase,
            fmt_bytes(r.bytes),
            pct_near(100.0 * r.ms_cv, 100.0 * UNSTABLE_CV),
            spread_ms(r, 2),
            unstable_reason(&r.strategy, &r.phase)
        ));
    }
    if !unstable.is_empty() {
        out.push(format!(
            "Unstable (CV above {:.0}%; read their medians with the range): {}.",
            100.0 * UNSTABLE_CV,
            unstable.join("; ")
        ));
    }
    // Allocation time against size (the seed preset's question): per-GB rates, and any size
    // whose allocation took less time than a smaller one with samples that do not overlap.
    for st in &strategies {
        let allocs: Vec<&SweepRow> = sizes
            .iter()
            .filter(|b| **b >= GB)
            .filter_map(|b| find(rows, dev, st, *b, phase::ALLOC))
            .collect();
        if allocs.len() < 4 {
            continue;
        }
        let dips: Vec<String> = allocs
            .windows(2)
            .filter(|w| order(&w[1].summary(), &w[0].summary()) == Order::Below)
            .map(|w| {
                format!(
                    "{} took {} ms, less than {} at {}",
                    size_label(w[1].bytes),
                    spread_ms(w[1], 1),
                    spread_ms(w[0], 1),
                    size_label(w[0].bytes)
                )
            })
            .collect();
        let rates: Vec<String> = allocs
            .iter()
            .map(|r| format!("{} {}", size_label(r.bytes), fmt_spread(&r.ms_per_gb(), 2)))
            .collect();
        out.push(format!(
            "{st}: allocation time per GB (1e9 bytes), ms: {}; {}.",
            rates.join(", "),
            if dips.is_empty() {
                "no larger size allocated faster than a smaller one with samples that do not overlap".to_string()
            } else {
                format!("not monotonic: {}", dips.join("; "))
            }
        ));
    }
    // The fill kernel against cuMemsetD32 at >= 1 GiB.
    for b in sizes.iter().filter(|b| **b >= GIB) {
        if let (Some(f), Some(m)) = (
            find(rows, dev, "device", *b, phase::FILL).and_then(|r| r.gbps),
            find(rows, dev, "device", *b, phase::MEMSET_BASELINE).and_then(|r| r.gbps),
        ) {
            let pct = 100.0 * f / m;
            out.push(format!(
                "At {} the fill kernel reaches {} of cuMemsetD32 ({:.0} vs {:.0} GB/s){}.",
                fmt_bytes(*b),
                pct_near(pct, FILL_THRESHOLD_PCT),
                f,
                m,
                if pct >= FILL_THRESHOLD_PCT {
                    String::new()
                } else {
                    format!(": BELOW the {FILL_THRESHOLD_PCT:.0}% the protocol requires, so kernel bandwidth understates this memory")
                }
            ));
        }
    }
    out
}

/// The protocol's floor for the fill kernel against `cuMemsetD32`, percent.
pub const FILL_THRESHOLD_PCT: f64 = 95.0;

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- command line

/// `cumemlab sweep` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab sweep\n  cumemlab sweep --repeat 5 --strategies device,managed --sizes 16GiB\n  cumemlab sweep --preset seed --strategies device\n  cumemlab sweep --strategies device,managed,pinned --sizes 256MiB,1GiB,4GiB --runs 5\n  cumemlab sweep --device all --out sweep.json\n  cumemlab sweep --strategies registered --file /data/model.bin --sizes 1GiB"
)]
pub struct SweepArgs {
    /// Strategies to compare (comma-separated keys, or `all`). Default: all the device supports.
    #[arg(long, value_parser = crate::cli::strategy_list)]
    pub strategies: Option<crate::cli::List<Strategy>>,
    /// Sizes, with units (512MiB,1GiB,4GB). Default: 256MiB, 1GiB, 4GiB, 16GiB and a quarter of the usable memory, within the safety limits.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::size_list)]
    pub sizes: Option<crate::cli::List<u64>>,
    /// Sizes of a named set instead of --sizes: `seed` is 1, 2, 4, 8, 10, 20, 30, 40, 50, 60, 70 and 80 GB (1e9 bytes; the sizes of the DGX Spark allocation table), each where it fits the safety ceiling.
    #[arg(long, conflicts_with = "sizes", value_parser = ["seed"])]
    pub preset: Option<String>,
    /// Fresh allocations per strategy and size. Every one-shot phase (allocation and its steps, prefetch, GPU first touch, CPU first touch, GPU touch after the CPU, free) is measured once on each, and bandwidth runs on each, so rows carry n, median, min, max, CV and every sample, and the spread between allocations is told apart from the spread between runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Timed runs per bandwidth figure on each allocation (after a discarded warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Bytes between touches (default: the kernel's page size).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size)]
    pub page_stride: Option<u64>,
    /// CPU threads for the CPU-first touches.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpu_threads: u32,
    /// Device ordinal, or `all`.
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = DeviceSel::parse)]
    pub device: DeviceSel,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    #[arg(long, default_value = "8GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub headroom: u64,
    /// Allocate past the safety ceiling (prints a warning). Can wedge a unified-memory host.
    #[arg(long)]
    pub force: bool,
    /// `registered`: map this file (read-only) instead of anonymous memory.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// `pool`: the default pool's release threshold (0 returns memory at every synchronize).
    #[arg(long, default_value = "0B", value_parser = parse_threshold)]
    pub pool_release_threshold: u64,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `0B` (or `0`) is allowed for the threshold; other sizes need units.
fn parse_threshold(s: &str) -> std::result::Result<u64, String> {
    if matches!(s.trim(), "0" | "0B" | "0b") {
        return Ok(0);
    }
    parse_size(s).map_err(|e| e.0)
}

/// Runs `sweep` from the command line.
pub fn main(args: SweepArgs) -> Result<()> {
    if let Some(f) = &args.file
        && !f.is_file()
    {
        return Err(Error::usage(format!(
            "--file {}: no such file (give an existing file to map)",
            f.display()
        )));
    }
    let page_stride = args
        .page_stride
        .unwrap_or_else(crate::host::facts::page_size);
    if !page_stride.is_multiple_of(4) {
        return Err(Error::usage(format!(
            "--page-stride {page_stride}B must be a multiple of 4 bytes"
        )));
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let ordinals = args.device.resolve(drv.device_count()?)?;
    let opts = SweepOptions {
        strategies: args.strategies.map(|l| l.0),
        sizes: match args.preset.as_deref() {
            Some("seed") => Some(SEED_SIZES_GB.iter().map(|g| g * GB).collect()),
            _ => args.sizes.map(|l| l.0),
        },
        runs: args.runs,
        page_stride,
        cpu_threads: args.cpu_threads as usize,
        headroom: args.headroom,
        force: args.force,
        alloc: AllocOptions {
            file: args.file,
            pool_release_threshold: args.pool_release_threshold,
        },
        quiet: args.quiet,
        repeat: args.repeat,
        cpu_single_max: 0,
        caps: Caps::default(),
    };
    let env = Environment::collect(Some(&ordinals));
    let mut sink = ResultSink::new("sweep", env, args.output.out.as_deref())?;
    let t = Instant::now();
    let result = run(&ordinals, &opts, &mut sink).and_then(|()| sink.require_rows());
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    for dev in &ordinals {
        let f = findings(&sink.doc.rows, *dev);
        sink.doc.notes.extend(f);
    }
    sink.doc
        .notes
        .push(format!("sweep took {:.1} s", t.elapsed().as_secs_f64()));
    sink.finish_run(&result, was_interrupted)?;
    if args.output.json {
        crate::report::sink::print_stdout(to_json(&sink.doc)?)?;
    } else if args.output.csv {
        crate::report::sink::print_stdout(to_csv(&sink.doc.rows)?)?;
    } else {
        crate::report::sink::print_stdout(format!(
            "{}{}sweep took {:.1} s\n",
            render(&sink.doc),
            crate::experiments::headline::render_all(&crate::experiments::headline::from_sweep(
                &sink.doc
            )),
            t.elapsed().as_secs_f64()
        ))?;
    }
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sizes_for_an_80gb_card_and_a_unified_host() {
        // H100: about 79 GiB free.
        let h100 = default_sizes(79 * GIB + 300 * MIB);
        assert_eq!(
            h100,
            vec![256 * MIB, GIB, 4 * GIB, 16 * GIB, 19 * GIB + 768 * MIB]
        );
        // GB10-like: MemAvailable + SwapFree about 110 GiB.
        let gb10 = default_sizes(110 * GIB);
        assert_eq!(
            gb10,
            vec![256 * MIB, GIB, 4 * GIB, 16 * GIB, 27 * GIB + 512 * MIB]
        );
        // A 24 GB card keeps only sizes up to half its memory.
        let small = default_sizes(24 * GB);
        assert_eq!(small, vec![256 * MIB, GIB, 4 * GIB, 5 * GIB + 512 * MIB]);
    }

    #[test]
    fn one_row_type_to_json_and_csv() {
        let r = SweepRow::new(0, Strategy::Managed, GIB, phase::GPU_FIRST_TOUCH)
            .times(&[10.0, 12.0, 11.0])
            .pages(262_144);
        assert_eq!(
            (r.ms_median, r.ms_min, r.ms_max, r.runs),
            (11.0, 10.0, 12.0, 3)
        );
        assert!((r.us_per_page.unwrap() - 11.0 * 1e3 / 262_144.0).abs() < 1e-9);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["strategy"], "managed");
        assert_eq!(j["phase"], "gpu_first_touch");
        let csv = String::from_utf8(to_csv(std::slice::from_ref(&r)).unwrap()).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("device,strategy,bytes,phase,runs,ms_median"));
        let line = lines.next().unwrap();
        assert!(
            line.starts_with("0,managed,1073741824,gpu_first_touch,3,11.0,10.0,12.0,"),
            "{line}"
        );
        let back: SweepRow = csv::Reader::from_reader(csv.as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(back.pages, r.pages);
    }

    #[test]
    fn three_allocations_become_rows_with_their_samples() {
        let snap = |device_free: u64| Snapshot {
            device_free,
            ..Default::default()
        };
        let mut acc = Acc {
            pages: 1024,
            cpu_pages: 1024,
            before: Some(snap(10 * GIB)),
            after_alloc: Some(snap(9 * GIB)),
            after_touch: Some(snap(9 * GIB)),
            after_free: Some(snap(10 * GIB)),
            mismatches: Some(0),
            ..Default::default()
        };
        for (i, ms) in [1.0, 3.0, 2.0].into_iter().enumerate() {
            acc.one(phase::ALLOC, ms);
            acc.one("alloc:cuMemCreate", ms / 2.0);
            acc.one(phase::GPU_FIRST_TOUCH, 10.0 * ms);
            acc.group(phase::FILL, vec![1.0 + i as f64, 1.01 + i as f64]);
            acc.one(phase::FREE, 0.5);
        }
        let rows = acc.rows(0, Strategy::Vmm, GIB);
        let phases: Vec<&str> = rows.iter().map(|r| r.phase.as_str()).collect();
        assert_eq!(
            phases,
            [
                "alloc",
                "alloc:cuMemCreate",
                "gpu_first_touch",
                "fill",
                "verify",
                "free"
            ]
        );
        let alloc = &rows[0];
        assert_eq!(alloc.samples_ms, [1.0, 3.0, 2.0]);
        assert_eq!((alloc.runs, alloc.allocations), (3, Some(3)));
        assert_eq!(
            (alloc.ms_median, alloc.ms_min, alloc.ms_max),
            (2.0, 1.0, 3.0)
        );
        assert_eq!(alloc.delta_device_free_bytes, Some(-(GIB as i64)));
        assert_eq!(rows[2].pages, Some(1024));
        let fill = &rows[3];
        assert_eq!((fill.runs, fill.allocations), (6, Some(3)));
        assert_eq!(fill.alloc_gbps.len(), 3);
        assert!(
            fill.alloc_gbps[0] > fill.alloc_gbps[2],
            "{:?}",
            fill.alloc_gbps
        );
        let (b, w) = (
            fill.between_alloc_cv.unwrap(),
            fill.within_alloc_cv.unwrap(),
        );
        assert!(b > 0.3 && w < 0.01, "between {b}, within {w}");
        assert_eq!(rows[4].mismatches, Some(0));
        assert_eq!(rows[5].delta_device_free_bytes, Some(0));
    }

    #[test]
    fn settle_window_grows_with_the_bytes_freed_above_a_floor() {
        assert_eq!(settle_window_ms(GIB), 50.0);
        assert_eq!(settle_window_ms(0), 50.0);
        assert!((settle_window_ms(34 * GIB + GIB / 2) - 103.5).abs() < 1e-9);
        assert!((settle_window_ms(70 * GIB) - 210.0).abs() < 1e-9);
    }

    #[test]
    fn findings_from_numbers() {
        let mk = |st: Strategy, ph: &str, ms: f64| SweepRow::new(0, st, 4 * GIB, ph).times(&[ms]);
        let mut rows = vec![
            mk(Strategy::Device, phase::ALLOC, 1.0),
            mk(Strategy::Device, phase::GPU_FIRST_TOUCH, 2.0),
            mk(Strategy::Device, phase::GPU_SECOND_TOUCH, 2.0),
            mk(Strategy::Managed, phase::ALLOC, 0.1),
            mk(Strategy::Managed, phase::GPU_FIRST_TOUCH, 400.0),
            mk(Strategy::Managed, phase::GPU_SECOND_TOUCH, 2.0),
        ];
        let mut fill = mk(Strategy::Device, phase::FILL, 2.0);
        fill.gbps = Some(2000.0);
        let mut memset = mk(Strategy::Device, phase::MEMSET_BASELINE, 2.0);
        memset.gbps = Some(2500.0);
        rows.push(fill);
        rows.push(memset);
        let f = findings(&rows, 0).join("\n");
        assert!(
            f.contains("populate at allocation") && f.contains("device (1.0 ms"),
            "{f}"
        );
        assert!(f.contains("populate on first touch: managed (first GPU touch 400.0 ms vs 2.0 ms warm: 99.5 ms per GiB"), "{f}");
        assert!(
            f.contains("80.0% of cuMemsetD32") && f.contains("BELOW"),
            "{f}"
        );
    }
}
