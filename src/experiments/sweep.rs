//! `cumemlab sweep`: every (strategy, size) through the measurement protocol of DESIGN.md, each
//! phase timed on its own: alloc (with accounting deltas), prefetch (`managed+prefetch`), GPU
//! first touch, GPU second touch, fill and read bandwidth (median of runs after a discarded
//! warm-up), verification, free; then the CPU-first variant for host-accessible strategies (a
//! fresh allocation touched by the CPU, then by the GPU). Baselines on `device` memory in the same
//! run: `cuMemsetD32` and a device-to-device `cuMemcpy`.
//!
//! Every allocation is checked against the safety ceiling first; a refused or failed combination
//! is reported as skipped with its reason and the sweep goes on. Rows stream to `--out`.

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
    AllocOptions, Step, Strategy, allocate, prefetch_to_device, trim_default_pool,
};
use crate::report::{Progress, ResultSink, new_table, sink::to_csv, sink::to_json};
use crate::stats::Summary;
use crate::units::{GIB, MIB, fmt_bytes, gbps, parse_size};

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
}

impl SweepRow {
    fn new(device: i32, strategy: Strategy, bytes: u64, phase: &str) -> SweepRow {
        SweepRow {
            device,
            strategy: strategy.key().into(),
            bytes,
            phase: phase.into(),
            ..Default::default()
        }
    }

    fn times(mut self, ms: &[f64]) -> SweepRow {
        if let Some(s) = Summary::of(ms) {
            self.runs = s.runs;
            self.ms_median = s.median;
            self.ms_min = s.min;
            self.ms_max = s.max;
            self.ms_cv = s.cv;
        }
        self
    }

    fn pages(mut self, pages: u64) -> SweepRow {
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
}

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
}

impl Ctx<'_> {
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
    let m = MemInfo::read().map_err(Error::Failed)?;
    let budget = Budget {
        unified: c.gpu.arch.is_unified(),
        device_free: c.gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom: c.opts.headroom,
    };
    match budget.check_forced(st, size, c.opts.force) {
        Ok(Forced::Allowed) => Ok(true),
        Ok(Forced::Warn(why)) => {
            progress.println(format!("WARNING: --force: {why}; allocating anyway"));
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

fn step_rows(dev: i32, st: Strategy, size: u64, prefix: &str, steps: &[Step]) -> Vec<SweepRow> {
    if steps.len() < 2 {
        return Vec::new();
    }
    steps
        .iter()
        .map(|s| SweepRow::new(dev, st, size, &format!("{prefix}:{}", s.name)).times(&[s.ms]))
        .collect()
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

fn combination(
    c: &Ctx,
    st: Strategy,
    size: u64,
    sink: &mut ResultSink<SweepRow, Environment>,
    progress: &Progress,
) -> Result<()> {
    let (gpu, dev) = (c.gpu, c.dev);
    let (k, s) = (&gpu.kernels, &gpu.stream);
    let stride = c.opts.page_stride;
    if !allowed(c, st, size, sink, progress)? {
        return Ok(());
    }
    c.lap("setup and safety checks");

    // 1. alloc, with accounting around it.
    let before = Snapshot::take(gpu)?;
    let t = Instant::now();
    let mut a = allocate(&gpu.ctx, &gpu.stream, st, size, &c.opts.alloc)?;
    let alloc_ms = t.elapsed().as_secs_f64() * 1e3;
    let after_alloc = Snapshot::take(gpu)?;
    let mut row = SweepRow::new(dev, st, size, phase::ALLOC)
        .times(&[alloc_ms])
        .deltas(&before, &after_alloc);
    if a.mapped_bytes() != size {
        row.note = Some(format!(
            "rounded to {} bytes (granularity)",
            a.mapped_bytes()
        ));
    }
    sink.push(row)?;
    for r in step_rows(dev, st, size, "alloc", a.alloc_steps()) {
        sink.push(r)?;
    }
    let ptr: DevicePtr = a.device_ptr();
    let writable = a.writable();
    c.lap(phase::ALLOC);
    check_interrupt()?;

    // 2. prefetch (managed+prefetch).
    if st == Strategy::ManagedPrefetch {
        let ms = prefetch_to_device(s, ptr, size)?;
        let mut r = SweepRow::new(dev, st, size, phase::PREFETCH).times(&[ms]);
        r.gbps = Some(gbps(size, ms));
        sink.push(r)?;
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
    let pages = size.div_ceil(stride);
    let first = touch(0x1111_1111)?;
    let after_touch = Snapshot::take(gpu)?;
    sink.push(
        SweepRow::new(dev, st, size, phase::GPU_FIRST_TOUCH)
            .times(&[first])
            .pages(pages)
            .deltas(&before, &after_touch),
    )?;
    let second = touch(0x2222_2222)?;
    sink.push(
        SweepRow::new(dev, st, size, phase::GPU_SECOND_TOUCH)
            .times(&[second])
            .pages(pages),
    )?;
    c.lap("gpu touches");
    check_interrupt()?;

    // 5-6. bandwidth: fill then read (never read zero-filled data), plus baselines on `device`.
    let seed: u32 = rand::random();
    if writable {
        let fills = repeat(c.opts.runs, || Ok(k.fill(s, ptr, size, seed)?))?;
        let mut r = SweepRow::new(dev, st, size, phase::FILL).times(&fills);
        r.gbps = Some(gbps(size, r.ms_median));
        sink.push(r)?;
        check_interrupt()?;
    }
    let reads = repeat(c.opts.runs, || Ok(k.read(s, ptr, size)?.0))?;
    let mut r = SweepRow::new(dev, st, size, phase::READ).times(&reads);
    r.gbps = Some(gbps(size, r.ms_median));
    sink.push(r)?;
    c.lap("fill and read bandwidth");
    check_interrupt()?;

    // 7. verify: the check kernel over everything, and the CPU on a sample where it can reach.
    if writable {
        let (_, res) = k.check(s, ptr, size, seed)?;
        let mut note = format!("check kernel over all {} bytes", size);
        let mut bad = res.mismatches;
        if let Some(mem) = a.host_slice() {
            let (n, b) = cpu_sample_check(mem, seed, 65_536);
            note.push_str(&format!("; CPU read {n} sampled words"));
            bad += b;
        }
        let mut r = SweepRow::new(dev, st, size, phase::VERIFY);
        r.mismatches = Some(bad);
        r.note = Some(note);
        sink.push(r)?;
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
        baselines(c, ptr, size, sink)?;
        c.lap("baselines");
    }

    // 8. free.
    let t = Instant::now();
    let free_steps = a.free()?;
    let free_ms = t.elapsed().as_secs_f64() * 1e3;
    let after_free = Snapshot::take(gpu)?;
    sink.push(
        SweepRow::new(dev, st, size, phase::FREE)
            .times(&[free_ms])
            .deltas(&before, &after_free),
    )?;
    for r in step_rows(dev, st, size, "free", &free_steps) {
        sink.push(r)?;
    }
    c.lap(phase::FREE);
    check_interrupt()?;

    // 9. CPU-first variant: a fresh allocation touched by the CPU, then by the GPU.
    if st.info().host_accessible
        && writable
        && !interrupted()
        && allowed(c, st, size, sink, progress)?
    {
        let mut b = allocate(&gpu.ctx, &gpu.stream, st, size, &c.opts.alloc)?;
        let bptr = b.device_ptr();
        if let Some(mem) = b.host_slice() {
            let t = cpu_touch(mem, stride, 0x3333_3333, c.opts.cpu_threads);
            let mut r = SweepRow::new(dev, st, size, phase::CPU_FIRST_TOUCH)
                .times(&[t.ms])
                .pages(t.pages);
            r.threads = Some(t.threads as u32);
            r.pages_per_s_per_thread = Some(t.pages_per_s_per_thread());
            sink.push(r)?;
            let g = k.touch(s, bptr, size, stride, 0x4444_4444)?;
            sink.push(
                SweepRow::new(dev, st, size, phase::GPU_TOUCH_AFTER_CPU)
                    .times(&[g])
                    .pages(pages),
            )?;
        }
        b.free()?;
        c.lap("CPU-first variant (alloc, CPU touch, GPU touch, free)");
    }
    Ok(())
}

/// `cuMemsetD32` over the buffer, and a device-to-device copy of its first half onto its second.
fn baselines(
    c: &Ctx,
    ptr: DevicePtr,
    size: u64,
    sink: &mut ResultSink<SweepRow, Environment>,
) -> Result<()> {
    let (k, s, dev) = (&c.gpu.kernels, &c.gpu.stream, c.dev);
    let memsets = repeat(c.opts.runs, || {
        Ok(k.memset_d32(s, ptr, size, 0x5a5a_5a5a)?)
    })?;
    let mut r = SweepRow::new(dev, Strategy::Device, size, phase::MEMSET_BASELINE).times(&memsets);
    r.gbps = Some(gbps(size / 4 * 4, r.ms_median));
    sink.push(r)?;
    let half = size / 2 / 16 * 16;
    if half > 0 {
        let copies = repeat(c.opts.runs, || Ok(k.copy(s, ptr + half, ptr, half)?))?;
        let mut r = SweepRow::new(dev, Strategy::Device, half, phase::COPY_BASELINE).times(&copies);
        r.gbps = Some(gbps(half, r.ms_median));
        r.gbps_traffic = Some(gbps(2 * half, r.ms_median));
        r.note =
            Some("bytes = bytes copied (first half onto second half of the device buffer)".into());
        sink.push(r)?;
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

/// Formats one cell of a phase table.
type CellFn = fn(&SweepRow) -> Option<String>;

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
        let tables: [(&str, &str, CellFn); 9] = [
            (
                phase::ALLOC,
                "allocation time, ms (host clock, incl. synchronize)",
                |r| Some(format!("{:.3}", r.ms_median)),
            ),
            (
                phase::PREFETCH,
                "cuMemPrefetchAsync to the device, ms (GB/s)",
                |r| Some(format!("{:.2} ({:.1})", r.ms_median, r.gbps.unwrap_or(0.0))),
            ),
            (
                phase::GPU_FIRST_TOUCH,
                "GPU first touch, ms (us per page)",
                |r| {
                    Some(format!(
                        "{:.2} ({:.3})",
                        r.ms_median,
                        r.us_per_page.unwrap_or(0.0)
                    ))
                },
            ),
            (
                phase::GPU_SECOND_TOUCH,
                "GPU second touch, ms (us per page)",
                |r| {
                    Some(format!(
                        "{:.2} ({:.3})",
                        r.ms_median,
                        r.us_per_page.unwrap_or(0.0)
                    ))
                },
            ),
            (
                phase::CPU_FIRST_TOUCH,
                "CPU first touch, ms (us per page)",
                |r| {
                    Some(format!(
                        "{:.2} ({:.3})",
                        r.ms_median,
                        r.us_per_page.unwrap_or(0.0)
                    ))
                },
            ),
            (
                phase::GPU_TOUCH_AFTER_CPU,
                "GPU touch after the CPU touched first, ms (us per page)",
                |r| {
                    Some(format!(
                        "{:.2} ({:.3})",
                        r.ms_median,
                        r.us_per_page.unwrap_or(0.0)
                    ))
                },
            ),
            (
                phase::FILL,
                "fill bandwidth, GB/s written (median, CV %)",
                |r| Some(format!("{:.1} ({:.1})", r.gbps?, 100.0 * r.ms_cv)),
            ),
            (
                phase::READ,
                "read bandwidth, GB/s read (median, CV %)",
                |r| Some(format!("{:.1} ({:.1})", r.gbps?, 100.0 * r.ms_cv)),
            ),
            (phase::FREE, "free time, ms", |r| {
                Some(format!("{:.3}", r.ms_median))
            }),
        ];
        for (ph, title, cell) in tables {
            if !rows.iter().any(|r| r.device == dev && r.phase == ph) {
                continue;
            }
            let mut header = vec!["strategy".to_string()];
            header.extend(sizes.iter().map(|s| fmt_bytes(*s)));
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
            "GB/s (median)",
            "read+write traffic GB/s",
        ]);
        for r in rows.iter().filter(|r| {
            r.device == dev
                && (r.phase == phase::MEMSET_BASELINE || r.phase == phase::COPY_BASELINE)
        }) {
            t.add_row(vec![
                r.phase.trim_start_matches("baseline_").to_string(),
                fmt_bytes(r.bytes),
                format!("{:.1}", r.gbps.unwrap_or(0.0)),
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

/// Sentences written from the measured numbers of one device.
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
        .filter(|r| r.device == dev && r.phase == phase::ALLOC && r.bytes == big)
    {
        if !strategies.contains(&r.strategy) {
            strategies.push(r.strategy.clone());
        }
    }
    let gib = big as f64 / GIB as f64;
    // Population: at allocation or at first touch.
    let mut at_alloc = Vec::new();
    let mut at_touch = Vec::new();
    for st in &strategies {
        let (Some(first), Some(second)) = (
            find(rows, dev, st, big, phase::GPU_FIRST_TOUCH),
            find(rows, dev, st, big, phase::GPU_SECOND_TOUCH),
        ) else {
            continue;
        };
        let extra = first.ms_median - second.ms_median;
        if let Some(p) = find(rows, dev, st, big, phase::PREFETCH) {
            at_touch.push(format!(
                "{st} (populated by cuMemPrefetchAsync before the first touch: {:.1} ms, {:.1} GB/s; first GPU touch then {:.1} ms)",
                p.ms_median,
                p.gbps.unwrap_or(0.0),
                first.ms_median
            ));
        } else if extra > 0.5 * first.ms_median && extra > 1.0 {
            at_touch.push(format!(
                "{st} (first GPU touch {:.1} ms vs {:.1} ms warm: {:.1} ms per GiB, about {:.1} GB/s of population or migration)",
                first.ms_median,
                second.ms_median,
                extra / gib,
                big as f64 / 1e9 / (extra / 1e3)
            ));
        } else if let Some(al) = find(rows, dev, st, big, phase::ALLOC) {
            at_alloc.push(format!(
                "{st} ({:.1} ms to allocate {})",
                al.ms_median,
                fmt_bytes(big)
            ));
        }
    }
    if !at_alloc.is_empty() {
        out.push(format!(
            "At {}, these populate at allocation (first GPU touch no slower than the second): {}.",
            fmt_bytes(big),
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
    // CPU-first: the cost of the GPU touching what the CPU touched first.
    for st in &strategies {
        if let (Some(cpu), Some(g)) = (
            find(rows, dev, st, big, phase::CPU_FIRST_TOUCH),
            find(rows, dev, st, big, phase::GPU_TOUCH_AFTER_CPU),
        ) {
            out.push(format!(
                "{st}: the CPU's first touch of {} took {:.1} ms ({:.2} us per page, {} thread(s)); the GPU's touch after it took {:.1} ms.",
                fmt_bytes(big),
                cpu.ms_median,
                cpu.us_per_page.unwrap_or(0.0),
                cpu.threads.unwrap_or(1),
                g.ms_median
            ));
        }
    }
    // Bandwidth against device memory.
    let dev_fill = find(rows, dev, "device", big, phase::FILL).and_then(|r| r.gbps);
    let dev_read = find(rows, dev, "device", big, phase::READ).and_then(|r| r.gbps);
    if let (Some(df), Some(dr)) = (dev_fill, dev_read) {
        let mut parts = Vec::new();
        for st in strategies.iter().filter(|s| *s != "device") {
            let f = find(rows, dev, st, big, phase::FILL).and_then(|r| r.gbps);
            let r = find(rows, dev, st, big, phase::READ).and_then(|r| r.gbps);
            if let (Some(f), Some(r)) = (f, r) {
                parts.push(format!(
                    "{st} fill {:.0}% / read {:.0}%",
                    100.0 * f / df,
                    100.0 * r / dr
                ));
            }
        }
        out.push(format!(
            "Bandwidth at {} against device memory (fill {:.0} GB/s, read {:.0} GB/s): {}.",
            fmt_bytes(big),
            df,
            dr,
            if parts.is_empty() {
                "no other strategy measured".to_string()
            } else {
                parts.join(", ")
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
                "At {} the fill kernel reaches {}% of cuMemsetD32 ({:.0} vs {:.0} GB/s){}.",
                fmt_bytes(*b),
                crate::report::headline::pct_vs(pct, 95.0),
                f,
                m,
                if pct >= 95.0 { "" } else { ": BELOW the 95% the protocol requires, so kernel bandwidth understates this memory" }
            ));
        }
    }
    out
}

// ---------------------------------------------------------------- command line

/// `cumemlab sweep` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab sweep\n  cumemlab sweep --strategies device,managed,pinned --sizes 256MiB,1GiB,4GiB --runs 5\n  cumemlab sweep --device all --out sweep.json\n  cumemlab sweep --strategies registered --file /data/model.bin --sizes 1GiB"
)]
pub struct SweepArgs {
    /// Strategies to compare (comma-separated keys, or `all`). Default: all the device supports.
    #[arg(long, value_parser = crate::cli::strategy_list)]
    pub strategies: Option<crate::cli::List<Strategy>>,
    /// Sizes, with units (512MiB,1GiB,4GB). Default: 256MiB, 1GiB, 4GiB, 16GiB and a quarter of the usable memory, within the safety limits.
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::size_list)]
    pub sizes: Option<crate::cli::List<u64>>,
    /// Timed runs per bandwidth figure (after a discarded warm-up).
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
        sizes: args.sizes.map(|l| l.0),
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
            crate::report::headline::render_all(&crate::report::headline::from_sweep(&sink.doc)),
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
    use crate::units::GB;

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
