//! `cumemlab cache`: the Linux page cache, seen from the GPU's side. On GB10 `cuMemGetInfo`
//! reports the kernel's MemFree, so a large page cache looks like memory in use although the
//! kernel gives it back on demand; on discrete cards the cache does not touch the card's memory
//! but competes with pinned, registered and managed host memory.
//!
//! - `cache`: Buffers, Cached, SReclaimable, Shmem, Dirty, MemFree, MemAvailable and
//!   `cuMemGetInfo` free side by side, with the difference explained.
//! - `cache --drop` (root): `sync`, then `drop_caches=3`; reports what it freed.
//! - `cache --fill SIZE`: real page-cache pressure (a temporary file written and read back), held
//!   until Ctrl-C (`--hold` for a set time) and then removed; `--keep` leaves the file instead.
//! - `cache --evict PATH`: one file's pages dropped with `posix_fadvise(DONTNEED)`, no root.
//! - `cache effect`: the experiment: with the cache filled and after eviction, `cuMemGetInfo`
//!   free, MemAvailable, the largest `device` allocation, the time of one `device` allocation, and
//!   a file mapping read by the GPU cold and warm (`registered`; `pageable` where supported).
//!
//! Every fill file is owned by a guard that removes it on every path (success, error, Ctrl-C).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::env::Environment;
use super::probe::{self, ProbeKind, ProbeOptions, StopReason};
use super::watch::{DeviceView, parse_duration, sleep_unless_interrupted};
use super::{Gpu, check_interrupt, interrupted, require_driver};
use crate::driver::host_pattern_sum;
use crate::error::{Error, Result};
use crate::host::MemInfo;
use crate::host::cache::{self as hc, FillFile};
use crate::memory::arch::MemoryArchitecture;
use crate::memory::filemap::{FileMap, resident_bytes};
use crate::memory::safety::{Budget, DEFAULT_HEADROOM};
use crate::memory::{AllocOptions, Strategy, allocate};
use crate::report::{
    Progress, ResultSink, new_table,
    sink::{to_csv, to_json},
};
use crate::stats::Summary;
use crate::units::{GIB, MIB, fmt_bytes, fmt_gib, gbps, parse_size};

// ---------------------------------------------------------------- status rows

/// The memory state at one moment of a `cache` command, with the file it acted on. The same
/// struct is the JSON row and the source of the tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CacheRow {
    /// `now`, `before fill`, `after fill`, `after removal`, `before evict`, `after evict`,
    /// `before drop`, `after drop`.
    pub label: String,
    pub mem_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub buffers_bytes: u64,
    pub cached_bytes: u64,
    pub s_reclaimable_bytes: u64,
    pub shmem_bytes: u64,
    pub dirty_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    /// Page cache the kernel can drop: Cached - Shmem + Buffers.
    pub reclaimable_cache_bytes: u64,
    pub device: Option<i32>,
    pub device_free_bytes: Option<u64>,
    pub device_total_bytes: Option<u64>,
    /// The device shares the host's memory (GB10): there `cuMemGetInfo` free is MemFree.
    pub unified_memory: Option<bool>,
    /// The file acted on (fill, evict), its size and how much of it is in the page cache.
    pub file: Option<String>,
    pub file_bytes: Option<u64>,
    pub file_resident_bytes: Option<u64>,
    /// Host clock of the action that led to this state (fill, evict, drop), ms.
    pub action_ms: Option<f64>,
}

impl CacheRow {
    /// A row from meminfo and, when given, `cuMemGetInfo` (free, total) of `device`.
    pub fn new(label: &str, m: &MemInfo, device: Option<(i32, u64, u64, bool)>) -> CacheRow {
        CacheRow {
            label: label.into(),
            mem_total_bytes: m.mem_total,
            mem_free_bytes: m.mem_free,
            mem_available_bytes: m.mem_available,
            buffers_bytes: m.buffers,
            cached_bytes: m.cached,
            s_reclaimable_bytes: m.s_reclaimable,
            shmem_bytes: m.shmem,
            dirty_bytes: m.dirty,
            swap_total_bytes: m.swap_total,
            swap_free_bytes: m.swap_free,
            reclaimable_cache_bytes: m.reclaimable_cache(),
            device: device.map(|d| d.0),
            device_free_bytes: device.map(|d| d.1),
            device_total_bytes: device.map(|d| d.2),
            unified_memory: device.map(|d| d.3),
            ..Default::default()
        }
    }

    /// Reads the host and, when there is one, the device.
    pub fn take(label: &str, dev: Option<&DeviceView>) -> Result<CacheRow> {
        let m = MemInfo::read().map_err(Error::Failed)?;
        let d = match dev {
            Some(v) => {
                let (free, total) = v.mem_info()?;
                Some((v.ordinal, free, total, v.arch.is_unified()))
            }
            None => None,
        };
        Ok(CacheRow::new(label, &m, d))
    }

    /// Adds the file and its residency now.
    pub fn with_file(mut self, path: &Path) -> CacheRow {
        self.file = Some(path.display().to_string());
        if let Ok((resident, len)) = resident_bytes(path) {
            self.file_bytes = Some(len);
            self.file_resident_bytes = Some(resident);
        }
        self
    }
}

/// Sentences explaining one state: what each figure counts, and how `cuMemGetInfo` free relates
/// to MemAvailable on this device (`arch` `None`: no GPU).
pub fn explain(
    r: &CacheRow,
    arch: Option<MemoryArchitecture>,
    no_gpu_reason: Option<&str>,
) -> Vec<String> {
    let g = |b: u64| fmt_bytes(b);
    let mut out = vec![format!(
        "MemFree ({}) is memory nobody uses; MemAvailable ({}) adds what the kernel can reclaim on demand, mostly the page cache: {} of Cached + Buffers - Shmem is droppable, plus reclaimable slab (SReclaimable {}).",
        g(r.mem_free_bytes),
        g(r.mem_available_bytes),
        g(r.reclaimable_cache_bytes),
        g(r.s_reclaimable_bytes)
    )];
    if r.shmem_bytes > GIB {
        out.push(format!(
            "Shmem ({}) is counted in Cached but is tmpfs or shared memory: dropping the cache does not free it.",
            g(r.shmem_bytes)
        ));
    }
    if r.dirty_bytes > 256 * MIB {
        out.push(format!(
            "Dirty ({}) must be written back before it can be dropped (`sync`).",
            g(r.dirty_bytes)
        ));
    }
    match (arch, r.device_free_bytes, r.device_total_bytes) {
        (Some(a), Some(free), Some(_)) if a.is_unified() => {
            let hidden = r.mem_available_bytes as i64 - free as i64;
            out.push(format!(
                "On this unified-memory device cuMemGetInfo free ({}) is the kernel's MemFree ({}): it counts the page cache as used, so it understates what can be allocated by MemAvailable - cuMemGetInfo free = {}{}; allocations make the kernel reclaim the cache, and dropping it (`sudo cumemlab cache --drop`) or evicting files (`cumemlab cache --evict PATH`) makes cuMemGetInfo agree.",
                g(free),
                g(r.mem_free_bytes),
                signed(hidden),
                if r.swap_free_bytes > 0 {
                    format!(" (and SwapFree {} adds to what can be held)", g(r.swap_free_bytes))
                } else {
                    String::new()
                }
            ));
        }
        (Some(_), Some(free), Some(total)) => out.push(format!(
            "On this discrete card cuMemGetInfo free ({} of {}) is the card's own memory: the page cache does not change it, but pinned, registered and managed host memory come out of MemAvailable ({}), which the cache shrinks only until the kernel reclaims it.",
            g(free),
            g(total),
            g(r.mem_available_bytes)
        )),
        _ => out.push(format!(
            "No GPU part ({}): cuMemGetInfo is absent (on GB10 it would equal MemFree).",
            no_gpu_reason.unwrap_or("no device opened")
        )),
    }
    out
}

fn signed(v: i64) -> String {
    if v < 0 {
        format!("-{}", fmt_bytes(v.unsigned_abs()))
    } else {
        format!("+{}", fmt_bytes(v as u64))
    }
}

fn signed_gib(v: i64) -> String {
    format!("{:+.2}", v as f64 / GIB as f64)
}

/// The states of a `cache` command side by side (fields down, states across), with the change
/// from the first to the last when there are several.
pub fn render_states(rows: &[CacheRow]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let last = rows.last().unwrap_or(first);
    let several = rows.len() > 1;
    let mut header = vec!["GiB (2^30 bytes)".to_string()];
    header.extend(rows.iter().map(|r| r.label.clone()));
    if several {
        header.push("change".into());
    }
    header.push("what it is".into());
    let mut t = new_table(&header);
    type Field = (&'static str, fn(&CacheRow) -> Option<i64>, &'static str);
    let fields: [Field; 12] = [
        (
            "MemFree",
            |r| Some(r.mem_free_bytes as i64),
            "unused memory",
        ),
        (
            "MemAvailable",
            |r| Some(r.mem_available_bytes as i64),
            "what new allocations can count on (free + reclaimable)",
        ),
        (
            "Buffers",
            |r| Some(r.buffers_bytes as i64),
            "block-device cache",
        ),
        (
            "Cached",
            |r| Some(r.cached_bytes as i64),
            "page cache (file pages, incl. Shmem)",
        ),
        (
            "SReclaimable",
            |r| Some(r.s_reclaimable_bytes as i64),
            "reclaimable kernel slab (dentries, inodes)",
        ),
        (
            "Shmem",
            |r| Some(r.shmem_bytes as i64),
            "tmpfs / shared memory: in Cached, not droppable",
        ),
        (
            "Dirty",
            |r| Some(r.dirty_bytes as i64),
            "written, not yet on disk: `sync` first",
        ),
        (
            "reclaimable cache",
            |r| Some(r.reclaimable_cache_bytes as i64),
            "Cached - Shmem + Buffers",
        ),
        ("SwapFree", |r| Some(r.swap_free_bytes as i64), "free swap"),
        (
            "cuMemGetInfo free",
            |r| r.device_free_bytes.map(|v| v as i64),
            "the driver's free figure (GB10: = MemFree)",
        ),
        (
            "MemAvailable - cuMemGetInfo free",
            |r| {
                r.device_free_bytes
                    .map(|f| r.mem_available_bytes as i64 - f as i64)
            },
            "what the page cache hides from cuMemGetInfo",
        ),
        (
            "file in page cache",
            |r| r.file_resident_bytes.map(|v| v as i64),
            "resident pages of the file acted on (mincore)",
        ),
    ];
    for (name, get, what) in fields {
        if rows.iter().all(|r| get(r).is_none()) {
            continue;
        }
        // The difference means something only where cuMemGetInfo free is MemFree.
        if name.starts_with("MemAvailable -")
            && !rows.iter().any(|r| r.unified_memory == Some(true))
        {
            continue;
        }
        let mut line = vec![name.to_string()];
        line.extend(
            rows.iter()
                .map(|r| get(r).map_or("-".into(), |v| format!("{:.2}", v as f64 / GIB as f64))),
        );
        if several {
            line.push(match (get(first), get(last)) {
                (Some(a), Some(b)) => signed_gib(b - a),
                _ => "-".into(),
            });
        }
        line.push(what.to_string());
        t.add_row(line);
    }
    format!("{t}\n")
}

// ---------------------------------------------------------------- the cache command

/// What a `cache` command does.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheAction {
    Status,
    Drop,
    Fill {
        bytes: u64,
        dir: PathBuf,
        /// `Keep`: leave the file; `Hold(None)`: until Ctrl-C; `Hold(Some(d))`: for `d`.
        end: FillEnd,
    },
    Evict {
        path: PathBuf,
        remove: bool,
    },
}

/// How a `--fill` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillEnd {
    Keep,
    Hold(Option<Duration>),
}

/// The whole-command document type.
pub type CacheDoc = crate::report::Document<CacheRow, Environment>;

/// Checks an action's input before anything is read or changed (one sentence per refusal).
pub fn validate(action: &CacheAction, is_root: bool) -> Result<()> {
    match action {
        CacheAction::Drop if !is_root => {
            // The same refusal `drop_caches` gives, before any GPU is opened.
            hc::open_drop_switch(&hc::drop_caches_path(), false).map(|_| ())
        }
        CacheAction::Evict { path, remove } => {
            if !path.exists() {
                return Err(Error::usage(format!(
                    "--evict {}: no such file; give the path of a file whose pages to drop",
                    path.display()
                )));
            }
            if !path.is_file() {
                return Err(Error::usage(format!(
                    "--evict {} is not a regular file; give a file (to drop everything, use --drop as root)",
                    path.display()
                )));
            }
            if *remove && !hc::is_fill_file(path) {
                return Err(Error::usage(format!(
                    "--remove deletes only files made by `cache --fill --keep` (named {}*), and {} is not one: remove it yourself if you mean to",
                    hc::FILL_PREFIX,
                    path.display()
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs one `cache` action, streaming its states into `sink`. `dev` is the device whose
/// `cuMemGetInfo` is shown (none without a GPU). Returns the sentences to print after the table.
pub fn run_action(
    action: &CacheAction,
    dev: Option<&DeviceView>,
    sink: &mut ResultSink<CacheRow, Environment>,
    quiet: bool,
) -> Result<Vec<String>> {
    let mut said = Vec::new();
    match action {
        CacheAction::Status => sink.push(CacheRow::take("now", dev)?)?,
        CacheAction::Drop => {
            let path = hc::drop_caches_path();
            // Refusals come before anything is measured.
            let switch = hc::open_drop_switch(&path, nix::unistd::geteuid().is_root())?;
            let before = CacheRow::take("before drop", dev)?;
            sink.push(before.clone())?;
            let t = Instant::now();
            switch.drop_caches()?;
            let mut after = CacheRow::take("after drop", dev)?;
            after.action_ms = Some(t.elapsed().as_secs_f64() * 1e3);
            said.push(format!(
                "sync; echo 3 > {} took {:.0} ms and freed {} of page cache (Cached {} -> {}); MemFree rose by {}{}.",
                path.display(),
                after.action_ms.unwrap_or(0.0),
                fmt_bytes(before.cached_bytes.saturating_sub(after.cached_bytes)),
                fmt_bytes(before.cached_bytes),
                fmt_bytes(after.cached_bytes),
                signed(after.mem_free_bytes as i64 - before.mem_free_bytes as i64),
                match (before.device_free_bytes, after.device_free_bytes) {
                    (Some(a), Some(b)) => format!(
                        " and cuMemGetInfo free by {}",
                        signed(b as i64 - a as i64)
                    ),
                    _ => String::new(),
                }
            ));
            sink.push(after)?;
        }
        CacheAction::Fill { bytes, dir, end } => {
            let m = MemInfo::read().map_err(Error::Failed)?;
            hc::check_fill(dir, *bytes, m.mem_available)?;
            let before = CacheRow::take("before fill", dev)?;
            sink.push(before.clone())?;
            let fill = fill_with_progress(dir, *bytes, rand::random(), quiet)?;
            let (_, read_ms) = hc::read_through(fill.path())?;
            let mut after = CacheRow::take("after fill", dev)?.with_file(fill.path());
            after.action_ms = Some(fill.write_ms + read_ms);
            said.push(format!(
                "Wrote {} to {} in {:.1} s (with fdatasync) and read it back in {:.2} s ({:.1} GB/s from the cache); Cached rose by {}, MemAvailable moved by {}{}.",
                fmt_bytes(*bytes),
                fill.path().display(),
                fill.write_ms / 1e3,
                read_ms / 1e3,
                gbps(*bytes, read_ms),
                signed(after.cached_bytes as i64 - before.cached_bytes as i64),
                signed(after.mem_available_bytes as i64 - before.mem_available_bytes as i64),
                match (before.device_free_bytes, after.device_free_bytes) {
                    (Some(a), Some(b)) => format!(
                        ", cuMemGetInfo free by {}",
                        signed(b as i64 - a as i64)
                    ),
                    _ => String::new(),
                }
            ));
            sink.push(after)?;
            match end {
                FillEnd::Keep => {
                    let path = fill.keep()?;
                    said.push(format!(
                        "The file stays, and its pages stay cached until the kernel needs them: drop them with `cumemlab cache --evict {0}`, or drop them and delete the file with `cumemlab cache --evict {0} --remove`.",
                        path.display()
                    ));
                }
                FillEnd::Hold(d) => {
                    eprintln!(
                        "cumemlab: holding {} of page cache in {} {}; `cumemlab cache --evict {}` from another shell drops its pages meanwhile",
                        fmt_bytes(*bytes),
                        fill.path().display(),
                        match d {
                            Some(d) => format!("for {}", humantime::format_duration(*d)),
                            None => "until Ctrl-C".to_string(),
                        },
                        fill.path().display()
                    );
                    let path = fill.path().to_path_buf();
                    let done = sleep_unless_interrupted(d.unwrap_or(Duration::MAX));
                    fill.remove()?;
                    let gone = CacheRow::take("after removal", dev)?;
                    said.push(format!(
                        "Held the fill {}, then removed {} (its pages went with it: Cached {} since the fill).",
                        if done { "for the time asked" } else { "until Ctrl-C" },
                        path.display(),
                        signed(gone.cached_bytes as i64 - before.cached_bytes as i64)
                    ));
                    sink.push(gone)?;
                }
            }
        }
        CacheAction::Evict { path, remove } => {
            let before = CacheRow::take("before evict", dev)?.with_file(path);
            sink.push(before.clone())?;
            let t = Instant::now();
            hc::evict(path)?;
            let mut after = CacheRow::take("after evict", dev)?.with_file(path);
            after.action_ms = Some(t.elapsed().as_secs_f64() * 1e3);
            let left = after.file_resident_bytes.unwrap_or(0);
            said.push(format!(
                "fdatasync + posix_fadvise(DONTNEED) on {} took {:.1} ms: the file's pages in the cache went {} -> {}{}; Cached moved by {}.",
                path.display(),
                after.action_ms.unwrap_or(0.0),
                fmt_bytes(before.file_resident_bytes.unwrap_or(0)),
                fmt_bytes(left),
                if left > 0 {
                    " (pages another process maps or locks stay)"
                } else {
                    ""
                },
                signed(after.cached_bytes as i64 - before.cached_bytes as i64)
            ));
            sink.push(after)?;
            if *remove {
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                said.push(format!("Removed {}.", path.display()));
            }
        }
    }
    Ok(said)
}

/// Writes a fill with a progress bar over its blocks; Ctrl-C aborts it (the file is removed).
fn fill_with_progress(dir: &Path, bytes: u64, seed: u32, quiet: bool) -> Result<FillFile> {
    let step = 64 * MIB;
    let progress = Progress::new(bytes.div_ceil(step), quiet);
    progress.message(format!(
        "writing {} into {}",
        fmt_bytes(bytes),
        dir.display()
    ));
    let mut shown = 0u64;
    let r = FillFile::create(
        dir,
        bytes,
        seed,
        |done| {
            while shown + step <= done {
                shown += step;
                progress.inc();
            }
        },
        interrupted,
    );
    progress.finish();
    r
}

// ---------------------------------------------------------------- cache effect

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
        let acc = probe::Accounting::take(gpu)?;
        let m = &acc.meminfo;
        let mut row = EffectRow {
            device: dev,
            state,
            fill_bytes: self.fill_bytes,
            file_resident_bytes: file.and_then(|f| f.resident()),
            device_free_bytes: acc.device_free,
            device_total_bytes: acc.device_total,
            mem_free_bytes: m.mem_free,
            mem_available_bytes: m.mem_available,
            cached_bytes: m.cached,
            swap_free_bytes: m.swap_free,
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
            .read(&gpu.stream, a.span().prefix(self.fill_bytes)?)?;
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
        let (ms, sum) = gpu.kernels.read(&gpu.stream, map.span())?;
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

fn opt_gib(v: Option<u64>) -> String {
    v.map_or("-".into(), |b| fmt_gib(b as f64))
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// The table of states and the sentences written from it.
pub fn render_effect(doc: &EffectDoc) -> String {
    let mut out = String::new();
    let rows = &doc.rows;
    let mut devices: Vec<i32> = rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        let d = doc.environment.devices.iter().find(|d| d.ordinal == dev);
        let arch = d.map(|d| d.architecture);
        let rs: Vec<&EffectRow> = rows.iter().filter(|r| r.device == dev).collect();
        let Some(r0) = rs.first() else { continue };
        out.push_str(&format!(
            "device {dev}: {} ({}); fill {}, timed allocation {}\n\n",
            d.map_or("?", |d| d.name.as_str()),
            arch.map_or("?", |a| a.label()),
            fmt_bytes(r0.fill_bytes),
            fmt_bytes(r0.alloc_bytes)
        ));
        let mut t = new_table(&[
            "state",
            "file in cache, GiB",
            "cuMemGetInfo free, GiB",
            "MemFree, GiB",
            "MemAvailable, GiB",
            "Cached, GiB",
            "device alloc first / median, ms",
            "registered file (mode): register ms / GPU read GB/s",
            "pageable file: GPU read GB/s",
            "probe device max, GiB (stop)",
        ]);
        for r in &rs {
            t.add_row(vec![
                r.state.label().to_string(),
                opt_gib(r.file_resident_bytes),
                fmt_gib(r.device_free_bytes as f64),
                fmt_gib(r.mem_free_bytes as f64),
                fmt_gib(r.mem_available_bytes as f64),
                fmt_gib(r.cached_bytes as f64),
                format!(
                    "{} / {}",
                    opt_ms(r.alloc_first_ms),
                    opt_ms(r.alloc_ms_median)
                ),
                match (r.registered_register_ms, r.registered_read_gbps) {
                    (Some(ms), Some(g)) => format!(
                        "({}) {ms:.1} / {g:.1}",
                        r.registered_mode.as_deref().unwrap_or("?")
                    ),
                    _ => "-".into(),
                },
                r.pageable_read_gbps
                    .map_or("-".into(), |g| format!("{g:.1}")),
                match (r.probe_device_max_bytes, r.probe_stop_reason) {
                    (Some(b), Some(s)) => format!("{} ({})", fmt_gib(b as f64), s.phrase()),
                    _ => "-".into(),
                },
            ]);
        }
        out.push_str(&format!(
            "what the page cache costs, and what dropping it buys (GiB = 2^30 bytes, GB/s = 1e9 bytes/s)\n{t}\n\n"
        ));
        out.push_str("What this shows:\n");
        for f in effect_findings(rows, dev, arch.is_some_and(|a| a.is_unified())) {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    for n in &doc.notes {
        out.push_str(&format!("{n}\n"));
    }
    out
}

/// Sentences written from the measured states of one device.
pub fn effect_findings(rows: &[EffectRow], dev: i32, unified: bool) -> Vec<String> {
    let find = |s: EffectState| rows.iter().find(|r| r.device == dev && r.state == s);
    let mut out = Vec::new();
    let (Some(filled), Some(evicted)) = (
        find(EffectState::CacheFilled),
        find(EffectState::AfterEvict),
    ) else {
        return out;
    };
    let d = |a: u64, b: u64| signed(b as i64 - a as i64);
    let base = find(EffectState::BeforeFill);
    if let Some(b) = base {
        out.push(format!(
            "Filling the cache with {} moved Cached by {}, MemAvailable by {} and cuMemGetInfo free by {}{}.",
            fmt_bytes(filled.fill_bytes),
            d(b.cached_bytes, filled.cached_bytes),
            d(b.mem_available_bytes, filled.mem_available_bytes),
            d(b.device_free_bytes, filled.device_free_bytes),
            if unified {
                ": on unified memory cuMemGetInfo free is MemFree, so the cache looks like memory in use"
            } else {
                ": on a discrete card the page cache does not touch the card's memory"
            }
        ));
    }
    out.push(format!(
        "Evicting the file moved Cached by {}, MemFree by {} and cuMemGetInfo free by {}; MemAvailable moved by {} (the kernel already counted the cache as reclaimable).",
        d(filled.cached_bytes, evicted.cached_bytes),
        d(filled.mem_free_bytes, evicted.mem_free_bytes),
        d(filled.device_free_bytes, evicted.device_free_bytes),
        d(filled.mem_available_bytes, evicted.mem_available_bytes)
    ));
    if let (Some(a), Some(b)) = (
        filled.probe_device_max_bytes,
        evicted.probe_device_max_bytes,
    ) {
        out.push(format!(
            "The largest device allocation was {} with the cache filled and {} after evicting ({}).",
            fmt_bytes(a),
            fmt_bytes(b),
            if unified {
                "the kernel reclaims the cache for GPU allocations, so the cache costs capacity only when it cannot be reclaimed"
            } else {
                "the cache does not limit device memory on a discrete card"
            }
        ));
        if let (Some(r0), Some(r1)) = (
            filled.file_resident_bytes,
            filled.file_resident_after_probe_bytes,
        ) && r1 + 256 * MIB < r0
        {
            out.push(format!(
                "The probe's allocations made the kernel drop {} of the filled file's cache.",
                fmt_bytes(r0 - r1)
            ));
        }
    }
    if let (Some(a), Some(b)) = (filled.alloc_first_ms, evicted.alloc_first_ms) {
        out.push(format!(
            "The first {} device allocation took {:.2} ms with the cache filled and {:.2} ms after evicting (median of the following runs: {} and {} ms).",
            fmt_bytes(filled.alloc_bytes),
            a,
            b,
            opt_ms(filled.alloc_ms_median),
            opt_ms(evicted.alloc_ms_median)
        ));
    }
    if let (Some(w), Some(c)) = (
        filled.registered_register_ms,
        evicted.registered_register_ms,
    ) {
        out.push(format!(
            "Registering the {} file mapping took {:.1} ms warm and {:.1} ms cold (cuMemHostRegister pins every page, so a cold file is read from disk first); the GPU then read it at {} GB/s warm and {} GB/s cold (pinned pages either way).",
            fmt_bytes(filled.fill_bytes),
            w,
            c,
            filled
                .registered_read_gbps
                .map_or("-".into(), |g| format!("{g:.1}")),
            evicted
                .registered_read_gbps
                .map_or("-".into(), |g| format!("{g:.1}"))
        ));
    }
    if let (Some(w), Some(c)) = (filled.pageable_read_gbps, evicted.pageable_read_gbps) {
        out.push(format!(
            "Read through its pageable mapping, the GPU took the file at {w:.1} GB/s warm and {c:.1} GB/s cold (a cold read faults every page in from disk)."
        ));
    }
    out
}

// ---------------------------------------------------------------- command line

/// `cumemlab cache` options.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Without an option: the status. --drop needs root; --evict does not.\n\
--fill writes SIZE into a temporary file named cumemlab-fill-* (in --dir, default the temporary folder, or the current folder when that is a tmpfs), reads it back so it is cached, and holds it until Ctrl-C (or for --hold), then removes it: Ctrl-C is the normal end of a hold (exit 0; during the writing it is an interruption, exit 130). With --keep the file stays (and stays cached until the kernel needs the memory): `cache --evict PATH --remove` drops its pages and deletes it. A second Ctrl-C exits at once and can leave the file behind.\n\n\
Examples:\n  cumemlab cache\n  sudo cumemlab cache --drop\n  cumemlab cache --fill 8GiB                  # hold 8 GiB of cache until Ctrl-C\n  cumemlab cache --fill 4GiB --hold 60s --dir /data\n  cumemlab cache --fill 1GiB --keep --json\n  cumemlab cache --evict /data/model.safetensors\n  cumemlab cache --evict /tmp/cumemlab-fill-AbC123.bin --remove\n  cumemlab cache effect --fill 8GiB --out cache-effect.json"
)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: Option<CacheCommand>,
    /// Drop the whole page cache (root): `sync`, then 3 into /proc/sys/vm/drop_caches; reports what it freed.
    #[arg(long, conflicts_with_all = ["fill", "evict"])]
    pub drop: bool,
    /// Fill the page cache with a temporary file of this size (real pressure: written, then read back).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size, conflicts_with = "evict")]
    pub fill: Option<u64>,
    /// Folder of the --fill file (a disk filesystem, not tmpfs).
    #[arg(long, requires = "fill")]
    pub dir: Option<PathBuf>,
    /// Leave the --fill file in place and exit, printing how to evict and remove it.
    #[arg(long, requires = "fill", conflicts_with = "hold")]
    pub keep: bool,
    /// Hold the --fill this long, then remove it (1s, 10m...; default: until Ctrl-C).
    #[arg(long, requires = "fill", allow_hyphen_values = true, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// Drop this file's pages from the page cache (posix_fadvise DONTNEED; no root needed).
    #[arg(long)]
    pub evict: Option<PathBuf>,
    /// With --evict: also delete the file (only files made by `--fill --keep`).
    #[arg(long, requires = "evict")]
    pub remove: bool,
    /// Device whose cuMemGetInfo is shown beside the host's figures.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Do not open a GPU (host figures only).
    #[arg(long)]
    pub host_only: bool,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// The experiment: with the cache filled and after eviction, cuMemGetInfo free, MemAvailable, the largest device allocation, one allocation's time, and a file read by the GPU cold and warm.
    Effect(EffectArgs),
}

/// `cumemlab cache effect` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "States, in order: before fill; cache filled (the file written and read back: warm); after evict (posix_fadvise DONTNEED: cold). In each: accounting, the timed device allocations, the registered file mapping read by the GPU (and the pageable mapping where the GPU can read pageable memory), then the device probe. The file is removed on every path.\n\n\
Examples:\n  cumemlab cache effect\n  cumemlab cache effect --fill 16GiB --size 4GiB --out docs/results/cache-effect.json\n  cumemlab cache effect --fill 2GiB --no-probe --dir /data --json"
)]
pub struct EffectArgs {
    /// Size of the cache fill (default: 4 GiB, less if half of MemAvailable minus --headroom or the free disk is smaller).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_size)]
    pub fill: Option<u64>,
    /// Size of the timed device allocation.
    #[arg(long, default_value = "1GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub size: u64,
    /// Timed allocations after the first (which is reported on its own).
    #[arg(long, default_value_t = 5, allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Folder of the fill file (a disk filesystem, not tmpfs). Default: the temporary folder, or the current folder when that is a tmpfs.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Resolution of the device probe in each state (a multiple of 2 MiB).
    #[arg(long, default_value = "256MiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub resolution: u64,
    /// Skip the device probe.
    #[arg(long)]
    pub no_probe: bool,
    /// Device ordinal.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    #[arg(long, default_value = "8GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub headroom: u64,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `cache` (or `cache effect`) from the command line.
pub fn main(args: CacheArgs) -> Result<()> {
    if let Some(CacheCommand::Effect(e)) = args.command {
        return main_effect(e);
    }
    let action = if args.drop {
        CacheAction::Drop
    } else if let Some(bytes) = args.fill {
        CacheAction::Fill {
            bytes,
            dir: args.dir.unwrap_or_else(hc::default_fill_dir),
            end: if args.keep {
                FillEnd::Keep
            } else {
                FillEnd::Hold(args.hold)
            },
        }
    } else if let Some(path) = args.evict {
        CacheAction::Evict {
            path,
            remove: args.remove,
        }
    } else {
        CacheAction::Status
    };
    validate(&action, nix::unistd::geteuid().is_root())?;
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    if let CacheAction::Fill { bytes, dir, .. } = &action {
        let m = MemInfo::read().map_err(Error::Failed)?;
        hc::check_fill(dir, *bytes, m.mem_available)?;
    }
    let (view, absent, env) = super::watch::open_view(args.host_only, args.device)?;
    let mut sink: ResultSink<CacheRow, Environment> =
        ResultSink::new("cache", env, args.output.out.as_deref())?;
    let result = run_action(&action, view.as_ref(), &mut sink, args.quiet);
    let was_interrupted = matches!(result, Err(Error::Interrupted));
    let said = match &result {
        Ok(s) => s.clone(),
        Err(_) => Vec::new(),
    };
    let arch = view.as_ref().map(|v| v.arch);
    if let Some(last) = sink.doc.rows.last().cloned() {
        let mut notes = said.clone();
        notes.extend(explain(&last, arch, absent.as_deref()));
        sink.doc.notes.extend(notes);
    }
    sink.finish_run(&result, was_interrupted)?;
    if result.is_err() && !was_interrupted {
        // The error says what went wrong; what was measured is in --out.
        return result.map(|_| ());
    }
    if args.output.json {
        crate::report::sink::print_stdout(to_json(&sink.doc)?)?;
    } else if args.output.csv {
        crate::report::sink::print_stdout(to_csv(&sink.doc.rows)?)?;
    } else if !sink.doc.rows.is_empty() {
        let mut text = format!("{}\n", render_states(&sink.doc.rows));
        for n in &sink.doc.notes {
            text.push_str(&format!("- {n}\n"));
        }
        crate::report::sink::print_stdout(text)?;
    }
    result.map(|_| ())
}

fn main_effect(args: EffectArgs) -> Result<()> {
    let opts = EffectOptions {
        fill_bytes: args.fill,
        alloc_bytes: args.size,
        runs: args.runs,
        dir: args.dir.unwrap_or_else(hc::default_fill_dir),
        headroom: args.headroom,
        probe_resolution_bytes: (!args.no_probe).then_some(args.resolution),
        quiet: args.quiet,
    };
    if let Some(b) = opts.fill_bytes {
        let m = MemInfo::read().map_err(Error::Failed)?;
        hc::check_fill(&opts.dir, b, m.mem_available)?;
    } else if !opts.dir.is_dir() {
        return Err(Error::usage(format!(
            "--dir {}: no such folder; give an existing folder on a disk filesystem",
            opts.dir.display()
        )));
    }
    if let Some(res) = opts.probe_resolution_bytes
        && (res == 0 || !res.is_multiple_of(probe::ALIGN_BYTES))
    {
        return Err(Error::usage(format!(
            "--resolution {} is not a multiple of 2 MiB: give for example 256MiB",
            fmt_bytes(res)
        )));
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let gpu = Gpu::open(&drv, args.device)?;
    let env = Environment::collect(Some(&[args.device]));
    gpu.ctx.bind()?;
    let mut sink = ResultSink::new("cache-effect", env, args.output.out.as_deref())?;
    let t = Instant::now();
    let result = run_effect(&gpu, &opts, &mut sink);
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    let unified = gpu.arch.is_unified();
    let f = effect_findings(&sink.doc.rows, args.device, unified);
    sink.doc.notes.extend(f);
    sink.doc.notes.push(format!(
        "cache effect took {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    sink.finish_run(&result, was_interrupted)?;
    if args.output.json {
        crate::report::sink::print_stdout(to_json(&sink.doc)?)?;
    } else if args.output.csv {
        crate::report::sink::print_stdout(to_csv(&sink.doc.rows)?)?;
    } else {
        let mut doc = sink.doc.clone();
        // The findings are printed under the table already.
        doc.notes.retain(|n| n.starts_with("cache effect took"));
        crate::report::sink::print_stdout(render_effect(&doc))?;
    }
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb10() -> MemInfo {
        crate::test_support::meminfo("gb10-cache-heavy.txt")
    }

    #[test]
    fn meminfo_arithmetic_on_a_unified_host() {
        let m = gb10();
        // cuMemGetInfo free is MemFree on GB10.
        let r = CacheRow::new("now", &m, Some((0, m.mem_free, m.mem_total, true)));
        assert_eq!(
            r.reclaimable_cache_bytes,
            m.cached - m.shmem + m.buffers,
            "reclaimable = Cached - Shmem + Buffers"
        );
        let hidden = m.mem_available - m.mem_free;
        // 98_566_144 - 24_117_248 KiB = 71 GiB: what cuMemGetInfo hides there.
        assert_eq!(hidden, (98_566_144 - 24_117_248) * 1024);
        let text = explain(&r, Some(MemoryArchitecture::IntegratedUnified), None).join("\n");
        assert!(
            text.contains(&format!("= +{}", fmt_bytes(hidden))),
            "{text}"
        );
        assert!(
            text.contains("is the kernel's MemFree") && text.contains("--evict"),
            "{text}"
        );
        assert!(text.contains("SwapFree"), "{text}");
        let table = render_states(std::slice::from_ref(&r));
        assert!(
            table.contains("MemAvailable - cuMemGetInfo free"),
            "{table}"
        );
        // 71.00 GiB in the table.
        assert!(table.contains("71.00"), "{table}");
    }

    #[test]
    fn explanation_on_a_discrete_card_and_without_gpu() {
        let m = crate::test_support::meminfo("h100-host.txt");
        let r = CacheRow::new("now", &m, Some((0, 79 * GIB, 80 * GIB, false)));
        let t = explain(&r, Some(MemoryArchitecture::Discrete), None).join("\n");
        let table = render_states(std::slice::from_ref(&r));
        assert!(table.contains("| cuMemGetInfo free"), "{table}");
        assert!(
            !table.contains("MemAvailable - cuMemGetInfo free"),
            "meaningless on a discrete card: {table}"
        );
        assert!(
            t.contains("discrete card") && t.contains("79 GiB of 80 GiB"),
            "{t}"
        );
        let host = CacheRow::new("now", &m, None);
        let t = explain(&host, None, Some("--host-only")).join("\n");
        assert!(t.contains("No GPU part (--host-only)"), "{t}");
        let table = render_states(std::slice::from_ref(&host));
        assert!(!table.contains("cuMemGetInfo free |"), "{table}");
    }

    #[test]
    fn side_by_side_with_the_change() {
        let m = gb10();
        let before = CacheRow::new("before fill", &m, None);
        let mut m2 = m.clone();
        m2.cached += GIB;
        m2.mem_free -= GIB;
        let after = CacheRow::new("after fill", &m2, None);
        let t = render_states(&[before, after]);
        let cached_line = t.lines().find(|l| l.starts_with("| Cached")).unwrap();
        assert!(cached_line.contains("+1.00"), "{cached_line}");
        let free_line = t.lines().find(|l| l.starts_with("| MemFree")).unwrap();
        assert!(free_line.contains("-1.00"), "{free_line}");
    }

    #[test]
    fn default_fill_fits_memory_and_disk() {
        assert_eq!(default_effect_fill(100 * GIB, 8 * GIB, 500 * GIB), 4 * GIB);
        // A small host: half of (MemAvailable - headroom), in 256 MiB steps.
        assert_eq!(
            default_effect_fill(13 * GIB, 8 * GIB, 500 * GIB),
            2 * GIB + 512 * MIB
        );
        // A nearly full disk.
        assert_eq!(
            default_effect_fill(100 * GIB, 8 * GIB, 2 * GIB + 100 * MIB),
            GIB
        );
        assert_eq!(default_effect_fill(8 * GIB, 8 * GIB, 500 * GIB), 0);
    }

    #[test]
    fn evict_input_is_checked_first() {
        let dir = tempfile::tempdir().unwrap();
        let e = validate(
            &CacheAction::Evict {
                path: dir.path().join("none"),
                remove: false,
            },
            false,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("no such file"));
        let e = validate(
            &CacheAction::Evict {
                path: dir.path().to_path_buf(),
                remove: false,
            },
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a regular file"));
        let user = dir.path().join("model.bin");
        std::fs::write(&user, b"weights").unwrap();
        let e = validate(
            &CacheAction::Evict {
                path: user.clone(),
                remove: true,
            },
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("--remove deletes only files made by")
        );
        assert!(user.exists());
        let e = validate(&CacheAction::Drop, false).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(validate(&CacheAction::Drop, true).is_ok());
    }

    fn row(state: EffectState, free: u64, cached: u64, avail: u64) -> EffectRow {
        EffectRow {
            device: 0,
            state,
            fill_bytes: 4 * GIB,
            file_resident_bytes: None,
            device_free_bytes: free,
            device_total_bytes: 128 * GIB,
            mem_free_bytes: free,
            mem_available_bytes: avail,
            cached_bytes: cached,
            swap_free_bytes: 0,
            alloc_bytes: GIB,
            alloc_first_ms: Some(5.0),
            alloc_ms_median: Some(1.0),
            alloc_ms_min: Some(1.0),
            alloc_ms_max: Some(1.0),
            registered_mmap_ms: Some(0.1),
            registered_register_ms: Some(400.0),
            registered_read_ms: Some(100.0),
            registered_read_gbps: Some(40.0),
            registered_mode: Some("read-only".into()),
            pageable_read_ms: None,
            pageable_read_gbps: None,
            probe_device_max_bytes: Some(100 * GIB),
            probe_stop_reason: Some(StopReason::SafetyCeiling),
            probe_ms: Some(1000.0),
            file_resident_after_probe_bytes: None,
            alloc_after_probe_ms: None,
        }
    }

    #[test]
    fn effect_findings_from_numbers() {
        let b = row(EffectState::BeforeFill, 50 * GIB, 2 * GIB, 110 * GIB);
        let f = row(EffectState::CacheFilled, 46 * GIB, 6 * GIB, 110 * GIB);
        let mut e = row(EffectState::AfterEvict, 50 * GIB, 2 * GIB, 110 * GIB);
        e.registered_register_ms = Some(2000.0);
        let t = effect_findings(&[b, f, e], 0, true).join("\n");
        assert!(
            t.contains("moved Cached by +4 GiB") && t.contains("cuMemGetInfo free by -4 GiB"),
            "{t}"
        );
        assert!(t.contains("cache looks like memory in use"), "{t}");
        assert!(
            t.contains("Evicting the file moved Cached by -4 GiB"),
            "{t}"
        );
        assert!(t.contains("400.0 ms warm and 2000.0 ms cold"), "{t}");
        let csv = String::from_utf8(
            crate::report::sink::to_csv(&[row(EffectState::AfterEvict, 1, 2, 3)]).unwrap(),
        )
        .unwrap();
        assert!(csv.starts_with("device,state,fill_bytes,"), "{csv}");
        assert!(
            csv.lines().nth(1).unwrap().starts_with("0,after_evict,"),
            "{csv}"
        );
    }
}
