//! `cache effect`, the experiment: the same measurements (accounting, timed `device`
//! allocations, a file read by the GPU through `registered` and `pageable` mappings, the `device`
//! probe) before a fill, with the file cached and after its eviction. Rows are [`EffectRow`];
//! the tables and findings are in `effect_render`. Imports `probe` for the largest allocation.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::driver::host_pattern_sum;
use crate::error::{Error, Result};
use crate::experiments::env::Environment;
use crate::experiments::probe::{self, ProbeKind, ProbeOptions, StopReason};
use crate::experiments::{Gpu, check_interrupt, interrupted};
use crate::host::cache::{self as hc, FillFile};
use crate::host::{Accounting, MemInfo};
use crate::memory::filemap::{FileMap, resident_bytes};
use crate::memory::safety::{Budget, DEFAULT_HEADROOM};
use crate::memory::{AllocOptions, Strategy, allocate};
use crate::report::{Progress, ResultSink};
use crate::stats::Summary;
use crate::units::{GIB, MIB, fmt_bytes, gbps};

/// The states `cache effect` measures, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectState {
    /// Before the file exists.
    BeforeFill,
    /// The file written and read back: its pages are in the cache (file warm).
    CacheFilled,
    /// The file's pages dropped with `posix_fadvise(DONTNEED)` (file cold).
    AfterEvict,
}

impl EffectState {
    pub fn label(self) -> &'static str {
        match self {
            EffectState::BeforeFill => "before fill",
            EffectState::CacheFilled => "cache filled (file warm)",
            EffectState::AfterEvict => "after evict (file cold)",
        }
    }
}

/// One state of `cache effect`. The same struct is the JSON row, the CSV row and the table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EffectRow {
    pub device: i32,
    pub state: EffectState,
    pub fill_bytes: u64,
    /// Bytes of the fill file in the page cache when the state was measured (mincore).
    pub file_resident_bytes: Option<u64>,
    pub device_free_bytes: u64,
    pub device_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_free_bytes: u64,
    /// `device` allocations of `alloc_bytes`: the first one on its own, then the median, min and
    /// max of the following runs (host clock around cuMemAlloc and a synchronize).
    pub alloc_bytes: u64,
    pub alloc_first_ms: Option<f64>,
    pub alloc_ms_median: Option<f64>,
    pub alloc_ms_min: Option<f64>,
    pub alloc_ms_max: Option<f64>,
    /// The file mapped read-only and registered (`cuMemHostRegister`, which pins every page and so
    /// reads a cold file from disk), then read once by the GPU (`read` kernel, sum verified).
    pub registered_mmap_ms: Option<f64>,
    pub registered_register_ms: Option<f64>,
    pub registered_read_ms: Option<f64>,
    pub registered_read_gbps: Option<f64>,
    /// How the file was registered: `read-only` (the page cache's pages) or `private-copy`
    /// (read-only registration unsupported: the pinned pages are copies).
    #[serde(default)]
    pub registered_mode: Option<String>,
    /// The file mapped read-only and read once by the GPU through its pageable address
    /// (PAGEABLE_MEMORY_ACCESS only; a cold file faults in from disk during the read).
    pub pageable_read_ms: Option<f64>,
    pub pageable_read_gbps: Option<f64>,
    /// `probe` of the largest single `device` allocation in this state.
    pub probe_device_max_bytes: Option<u64>,
    pub probe_stop_reason: Option<StopReason>,
    pub probe_ms: Option<f64>,
    /// The file's resident bytes after the probe (the probe's allocations may reclaim the cache).
    pub file_resident_after_probe_bytes: Option<u64>,
    /// One more `device` allocation of `alloc_bytes` right after the probe (not in the table):
    /// the first allocation after a probe's large free can wait for the driver to release it, and
    /// taking that wait here keeps it out of the next state's first allocation.
    pub alloc_after_probe_ms: Option<f64>,
}

/// Options of `cache effect` (typed: parsed before anything runs).
#[derive(Debug, Clone)]
pub struct EffectOptions {
    /// `None`: [`default_effect_fill`].
    pub fill_bytes: Option<u64>,
    /// The size of the timed `device` allocation.
    pub alloc_bytes: u64,
    /// Timed allocations after the first.
    pub runs: u32,
    pub dir: PathBuf,
    pub headroom: u64,
    /// Resolution of the `device` probe; `None` skips the probe.
    pub probe_resolution_bytes: Option<u64>,
    pub quiet: bool,
}

impl Default for EffectOptions {
    fn default() -> EffectOptions {
        EffectOptions {
            fill_bytes: None,
            alloc_bytes: GIB,
            runs: 5,
            dir: hc::default_fill_dir(),
            headroom: DEFAULT_HEADROOM,
            probe_resolution_bytes: Some(256 * MIB),
            quiet: false,
        }
    }
}

/// The default fill of `cache effect`: 4 GiB, or less where half of MemAvailable minus the
/// headroom, or the free disk less its margin, is smaller; a multiple of 256 MiB.
pub fn default_effect_fill(mem_available: u64, headroom: u64, disk_free: u64) -> u64 {
    let host = mem_available.saturating_sub(headroom) / 2;
    let disk = disk_free.saturating_sub(hc::DISK_MARGIN_BYTES);
    (4 * GIB).min(host).min(disk) / (256 * MIB) * (256 * MIB)
}

/// The whole-experiment document type.
pub type EffectDoc = crate::report::Document<EffectRow, Environment>;

/// Runs `cache effect` on an open device, streaming one row per state into `sink`. The fill file
/// is removed on every path.
pub fn run_effect(
    gpu: &Gpu,
    opts: &EffectOptions,
    sink: &mut ResultSink<EffectRow, Environment>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let m = MemInfo::read().map_err(Error::Failed)?;
    let disk = hc::free_disk_bytes(&opts.dir).unwrap_or(0);
    let fill_bytes = match opts.fill_bytes {
        Some(b) => b,
        None => {
            let b = default_effect_fill(m.mem_available, opts.headroom, disk);
            if b == 0 {
                return Err(Error::usage(format!(
                    "no room for a fill: MemAvailable {} minus headroom {} and {} of free disk in {} leave less than 256 MiB; free memory or disk, or give --fill and --dir",
                    fmt_bytes(m.mem_available),
                    fmt_bytes(opts.headroom),
                    fmt_bytes(disk),
                    opts.dir.display()
                )));
            }
            b
        }
    };
    hc::check_fill(&opts.dir, fill_bytes, m.mem_available)?;
    // The registered read pins the whole file, and the timed allocation takes device memory.
    let budget = Budget {
        unified: gpu.arch.is_unified(),
        device_free: gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom: opts.headroom,
    };
    budget
        .check(Strategy::Registered, fill_bytes)
        .map_err(|why| Error::usage(format!("--fill: {why}; give a smaller --fill")))?;
    budget
        .check(Strategy::Device, opts.alloc_bytes)
        .map_err(|why| Error::usage(format!("--size: {why}; give a smaller --size")))?;
    // On unified memory, the pressure guard before anything is allocated (exit 1: the host's
    // state, not the request, stops it).
    if budget.unified {
        crate::memory::safety::pressure_check_now(fill_bytes.max(opts.alloc_bytes))
            .map_err(|why| Error::Failed(format!("cache effect: {why}")))?;
    }

    let probe_opts = opts.probe_resolution_bytes.map(|res| ProbeOptions {
        strategies: vec![Strategy::Device],
        kinds: vec![ProbeKind::Single],
        resolution_bytes: res,
        headroom: opts.headroom,
        quiet: true,
        ..ProbeOptions::default()
    });
    if let Some(p) = &probe_opts {
        p.validate()?;
    }
    let progress = Progress::new(3, opts.quiet);
    let ctx = EffectCtx {
        gpu,
        opts,
        probe: probe_opts,
        progress: &progress,
        fill_bytes,
    };

    progress.message(format!("device {dev}: before fill"));
    let row = ctx.measure(EffectState::BeforeFill, None, sink)?;
    sink.push(row)?;
    progress.inc();
    check_interrupt()?;

    progress.message(format!("device {dev}: writing {}", fmt_bytes(fill_bytes)));
    let seed: u32 = rand::random();
    let fill = FillFile::create(&opts.dir, fill_bytes, seed, |_| {}, interrupted)?;
    let expected = host_pattern_sum(fill_bytes, seed);
    let file = FileUnderTest {
        fill: &fill,
        expected_sum: expected,
    };
    for state in [EffectState::CacheFilled, EffectState::AfterEvict] {
        check_interrupt()?;
        progress.message(format!("device {dev}: {}", state.label()));
        let row = ctx.measure(state, Some(&file), sink)?;
        sink.push(row)?;
        progress.inc();
    }
    progress.finish();
    fill.remove()?;
    Ok(())
}

struct EffectCtx<'a> {
    gpu: &'a Gpu,
    opts: &'a EffectOptions,
    probe: Option<ProbeOptions>,
    progress: &'a Progress,
    fill_bytes: u64,
}

struct FileUnderTest<'a> {
    fill: &'a FillFile,
    expected_sum: u64,
}

impl FileUnderTest<'_> {
    /// Puts the file in the state's cache condition.
    fn establish(&self, state: EffectState) -> Result<()> {
        match state {
            EffectState::CacheFilled => {
                self.fill.warm()?;
            }
            EffectState::AfterEvict => self.fill.evict()?,
            EffectState::BeforeFill => {}
        }
        Ok(())
    }

    fn resident(&self) -> Option<u64> {
        resident_bytes(self.fill.path()).ok().map(|r| r.0)
    }
}

impl EffectCtx<'_> {
    fn measure(
        &self,
        state: EffectState,
        file: Option<&FileUnderTest>,
        sink: &mut ResultSink<EffectRow, Environment>,
    ) -> Result<EffectRow> {
        let gpu = self.gpu;
        let dev = gpu.device.ordinal();
        if let Some(f) = file {
            f.establish(state)?;
        }
        let (device_free, device_total) = gpu.ctx.mem_info()?;
        let acc = Accounting::host()
            .map_err(Error::Failed)?
            .with_device(device_free, Some(device_total));
        let mut row = EffectRow {
            device: dev,
            state,
            fill_bytes: self.fill_bytes,
            file_resident_bytes: file.and_then(|f| f.resident()),
            device_free_bytes: device_free,
            device_total_bytes: device_total,
            mem_free_bytes: acc.mem_free,
            mem_available_bytes: acc.mem_available,
            cached_bytes: acc.cached,
            swap_free_bytes: acc.swap_free,
            alloc_bytes: self.opts.alloc_bytes,
            alloc_first_ms: None,
            alloc_ms_median: None,
            alloc_ms_min: None,
            alloc_ms_max: None,
            registered_mmap_ms: None,
            registered_register_ms: None,
            registered_read_ms: None,
            registered_read_gbps: None,
            registered_mode: None,
            pageable_read_ms: None,
            pageable_read_gbps: None,
            probe_device_max_bytes: None,
            probe_stop_reason: None,
            probe_ms: None,
            file_resident_after_probe_bytes: None,
            alloc_after_probe_ms: None,
        };

        // The timed allocations first: they take little and leave the cache as it is on a
        // discrete card (on GB10 the first may make the kernel reclaim).
        let (first, rest) = self.time_allocs()?;
        row.alloc_first_ms = Some(first);
        if let Some(s) = Summary::of(&rest) {
            row.alloc_ms_median = Some(s.median);
            row.alloc_ms_min = Some(s.min);
            row.alloc_ms_max = Some(s.max);
        }
        check_interrupt()?;

        if let Some(f) = file {
            self.read_registered(state, f, &mut row, sink)?;
            check_interrupt()?;
            self.read_pageable(state, f, &mut row, sink)?;
            check_interrupt()?;
        }

        // The probe last: near the ceiling on unified memory it makes the kernel reclaim the cache.
        if let Some(p) = &self.probe {
            if let Some(f) = file {
                f.establish(state)?;
            }
            let r = probe::probe_one(gpu, Strategy::Device, ProbeKind::Single, p, self.progress)?;
            row.probe_device_max_bytes = Some(r.max_bytes);
            row.probe_stop_reason = Some(r.stop_reason);
            row.probe_ms = Some(r.elapsed_ms);
            row.file_resident_after_probe_bytes = file.and_then(|f| f.resident());
            if r.stop_reason == StopReason::Interrupted {
                return Err(Error::Interrupted);
            }
            row.alloc_after_probe_ms = Some(self.alloc_once()?);
        }
        Ok(row)
    }

    /// One `device` allocation of `alloc_bytes`, freed; the allocation's ms (host clock around
    /// cuMemAlloc and a synchronize).
    fn alloc_once(&self) -> Result<f64> {
        let gpu = self.gpu;
        let t = Instant::now();
        let a = allocate(
            &gpu.ctx,
            &gpu.stream,
            Strategy::Device,
            self.opts.alloc_bytes,
            &AllocOptions::default(),
        )?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        a.free()?;
        Ok(ms)
    }

    /// One `device` allocation of `alloc_bytes` timed on its own, then `runs` more.
    fn time_allocs(&self) -> Result<(f64, Vec<f64>)> {
        let first = self.alloc_once()?;
        let mut rest = Vec::with_capacity(self.opts.runs as usize);
        for _ in 0..self.opts.runs {
            rest.push(self.alloc_once()?);
        }
        Ok((first, rest))
    }

    /// Registers the file mapping and reads it once from the GPU; an unsupported or refused
    /// registration is recorded as skipped and the experiment goes on.
    fn read_registered(
        &self,
        state: EffectState,
        f: &FileUnderTest,
        row: &mut EffectRow,
        sink: &mut ResultSink<EffectRow, Environment>,
    ) -> Result<()> {
        let gpu = self.gpu;
        let dev = gpu.device.ordinal();
        if let Err(reason) = Strategy::Registered.supported(&gpu.attrs) {
            if state == EffectState::CacheFilled {
                sink.skip(format!(
                    "device {dev} registered file read: not supported: {reason}"
                ))?;
            }
            return Ok(());
        }
        f.establish(state)?;
        let opts = AllocOptions {
            file: Some(f.fill.path().to_path_buf()),
            ..AllocOptions::default()
        };
        let a = match allocate(
            &gpu.ctx,
            &gpu.stream,
            Strategy::Registered,
            self.fill_bytes,
            &opts,
        ) {
            Ok(a) => a,
            Err(e) if e.driver_error().is_some() || e.is_out_of_memory() => {
                sink.skip(format!(
                    "device {dev} registered file read ({}): {e}",
                    state.label()
                ))?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        row.registered_mode = a.registration_mode().map(str::to_string);
        for s in a.alloc_steps() {
            match s.name {
                "mmap" => row.registered_mmap_ms = Some(s.ms),
                "cuMemHostRegister" => row.registered_register_ms = Some(s.ms),
                _ => {}
            }
        }
        let (ms, sum) = gpu
            .kernels
            .read(&gpu.stream, a.device_ptr(), self.fill_bytes)?;
        a.free()?;
        verify_sum("registered", sum, f.expected_sum)?;
        row.registered_read_ms = Some(ms);
        row.registered_read_gbps = Some(gbps(self.fill_bytes, ms));
        Ok(())
    }

    /// Maps the file and reads it once from the GPU through the pageable address, where the device
    /// can (PAGEABLE_MEMORY_ACCESS).
    fn read_pageable(
        &self,
        state: EffectState,
        f: &FileUnderTest,
        row: &mut EffectRow,
        sink: &mut ResultSink<EffectRow, Environment>,
    ) -> Result<()> {
        let gpu = self.gpu;
        let dev = gpu.device.ordinal();
        if let Err(reason) = Strategy::Pageable.supported(&gpu.attrs) {
            if state == EffectState::CacheFilled {
                sink.skip(format!(
                    "device {dev} pageable file read: not supported: {reason}"
                ))?;
            }
            return Ok(());
        }
        f.establish(state)?;
        let map = FileMap::open(f.fill.path(), self.fill_bytes)
            .map_err(|e| Error::io(f.fill.path(), e))?;
        let (ms, sum) = gpu
            .kernels
            .read(&gpu.stream, map.device_ptr(), map.bytes())?;
        drop(map);
        verify_sum("pageable", sum, f.expected_sum)?;
        row.pageable_read_ms = Some(ms);
        row.pageable_read_gbps = Some(gbps(self.fill_bytes, ms));
        Ok(())
    }
}

fn verify_sum(what: &str, got: u64, want: u64) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "the GPU read of the {what} file mapping summed to {got:#x}, not the {want:#x} written: the data read is wrong"
        )))
    }
}
