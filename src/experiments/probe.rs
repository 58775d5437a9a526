//! `cumemlab probe`: how much can really be allocated, per strategy. Two figures each: the largest
//! single allocation (a bisection between a size verified to work and the limit, to a resolution)
//! and the cumulative maximum (chunks held at once until the first failure or the limit). Each is
//! reported beside the accounting taken just before it (`cuMemGetInfo` free/total, MemFree,
//! MemAvailable, Cached, SwapFree) and says why it stopped: at a failure
//! (`CUDA_ERROR_OUT_OF_MEMORY` is a result, any other error is an error naming its call), at the
//! safety ceiling, or at the `--max` cap.
//!
//! Safety (DESIGN.md): every attempt is checked against the ceiling re-read just before it
//! ([`Budget`]: on unified memory MemAvailable minus the headroom, which falls as memory is taken;
//! on discrete cards the card's free memory for device-backed and managed strategies, the host's
//! MemAvailable minus the headroom for host-backed ones). The search approaches the limit from
//! below: its first guess is one resolution step under the ceiling. `--force` lifts the ceiling
//! (with a printed warning) except for managed memory on a discrete card, which never goes past
//! `cuMemGetInfo` free (more can hang the GPU). Everything is freed on every path: attempts free
//! what they took before returning, held chunks are owned by a vector whose drop frees them, and
//! Ctrl-C ends the search at the next attempt with the figure found so far (exit 130).
//!
//! The search itself ([`bisect`], [`accumulate`]) is pure over two callbacks (the limit now, one
//! attempt), so it is tested without a GPU against simulated allocators.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::env::Environment;
use super::{DeviceSel, Gpu, check_interrupt, interrupted, require_driver};
use crate::error::{Error, Result};
use crate::host::MemInfo;
use crate::memory::safety::{Budget, DEFAULT_HEADROOM};
use crate::memory::{AllocOptions, Allocation, Backing, Strategy, allocate, trim_default_pool};
use crate::report::{Progress, ResultSink, new_table, sink::to_csv, sink::to_json};
use crate::units::{GIB, MIB, fmt_bytes, fmt_gib, parse_size};

/// Every size tried is a multiple of this (the usual VMM granularity, a multiple of every page).
pub const ALIGN_BYTES: u64 = 2 * MIB;

/// The default `--max` for host-backed strategies on discrete GPUs: pinning costs about 0.3 s per
/// GB, so a bisection up to a 128 GiB host's ceiling would take many minutes.
pub const DEFAULT_HOST_CAP_BYTES: u64 = 32 * GIB;

/// The strategies probed by default (the variants of `managed` allocate the same way).
pub const DEFAULT_STRATEGIES: &[Strategy] = &[
    Strategy::Device,
    Strategy::Managed,
    Strategy::Pinned,
    Strategy::Registered,
    Strategy::Pageable,
    Strategy::Pool,
    Strategy::Vmm,
];

/// The two figures of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// The largest single allocation.
    Single,
    /// The most held at once in chunks.
    Cumulative,
}

impl ProbeKind {
    pub fn key(self) -> &'static str {
        match self {
            ProbeKind::Single => "single",
            ProbeKind::Cumulative => "cumulative",
        }
    }
}

/// What bounds a search when no allocation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The safety ceiling of [`Budget`].
    SafetyCeiling,
    /// `--max` (or its default for host-backed strategies on discrete GPUs).
    MaxCap,
    /// `--force`: the card's total memory or MemTotal.
    Physical,
}

/// The most the next request may take, and what sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub bound: Bound,
}

/// Why a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An allocation failed with out-of-memory: the figure is what the system really gives.
    Failure,
    /// Everything tried fit; the next step would pass the safety ceiling.
    SafetyCeiling,
    /// Everything tried fit; the next step would pass `--max`.
    MaxCap,
    /// Everything tried fit up to the physical bound (`--force`).
    Physical,
    /// Ctrl-C: the figure is a lower bound.
    Interrupted,
    /// The ceiling leaves less than one aligned step: nothing was tried.
    NothingAllowed,
}

impl StopReason {
    fn from_bound(b: Bound) -> StopReason {
        match b {
            Bound::SafetyCeiling => StopReason::SafetyCeiling,
            Bound::MaxCap => StopReason::MaxCap,
            Bound::Physical => StopReason::Physical,
        }
    }

    /// A short phrase for tables.
    pub fn phrase(self) -> &'static str {
        match self {
            StopReason::Failure => "failure (out of memory)",
            StopReason::SafetyCeiling => "safety ceiling, not a failure",
            StopReason::MaxCap => "--max cap, not a failure",
            StopReason::Physical => "physical size (--force), not a failure",
            StopReason::Interrupted => "interrupted (lower bound)",
            StopReason::NothingAllowed => "nothing allowed by the ceiling",
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Fit,
    /// `CUDA_ERROR_OUT_OF_MEMORY` (or `ENOMEM` from `mmap`), with the failed call's message.
    OutOfMemory(String),
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub max_bytes: u64,
    pub attempts: u32,
    pub failures: u32,
    pub stop: StopReason,
    /// The limit in force when the search ended.
    pub limit: Limit,
    /// Single: the smallest size that failed; cumulative: the total that the failing chunk would
    /// have made.
    pub first_failure_bytes: Option<u64>,
    pub failure: Option<String>,
    /// Every size tried with its outcome, in order.
    pub tried: Vec<(u64, bool)>,
}

impl Search {
    fn new(limit: Limit) -> Search {
        Search {
            max_bytes: 0,
            attempts: 0,
            failures: 0,
            stop: StopReason::NothingAllowed,
            limit,
            first_failure_bytes: None,
            failure: None,
            tried: Vec::new(),
        }
    }

    fn record(&mut self, bytes: u64, outcome: &Attempt) {
        self.attempts += 1;
        self.tried.push((bytes, *outcome == Attempt::Fit));
        if let Attempt::OutOfMemory(msg) = outcome {
            self.failures += 1;
            if self.first_failure_bytes.is_none_or(|f| bytes < f) {
                self.first_failure_bytes = Some(bytes);
                self.failure = Some(msg.clone());
            }
        }
    }

    /// `256 MiB ok, 79.75 GiB oom, ...`.
    pub fn tried_text(&self) -> String {
        self.tried
            .iter()
            .map(|(b, ok)| format!("{} {}", fmt_bytes(*b), if *ok { "ok" } else { "oom" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn align_down(bytes: u64) -> u64 {
    bytes / ALIGN_BYTES * ALIGN_BYTES
}

/// The largest single allocation: verifies a floor (the resolution, or the limit when smaller),
/// tries one resolution step under the limit (the limit itself when it is a `--max` cap), then
/// bisects between the largest size that fit and the smallest that failed (or the limit) until
/// they are at most `resolution` apart. `limit` is called before every attempt; a limit that
/// falls below the upper end replaces it, and no attempt ever exceeds the limit of that moment.
pub fn bisect(
    resolution: u64,
    mut limit: impl FnMut() -> Result<Limit>,
    mut attempt: impl FnMut(u64) -> Result<Attempt>,
) -> Result<Search> {
    let resolution = resolution.max(ALIGN_BYTES);
    let first = limit()?;
    let mut s = Search::new(first);
    let floor = align_down(resolution.min(first.bytes));
    if floor == 0 {
        return Ok(s);
    }
    if interrupted() {
        s.stop = StopReason::Interrupted;
        return Ok(s);
    }
    let out = attempt(floor)?;
    s.record(floor, &out);
    if out != Attempt::Fit {
        s.stop = StopReason::Failure;
        return Ok(s);
    }
    let mut lo = floor;
    let mut hi = align_down(first.bytes);
    let mut hi_fails = false;
    let guess = match first.bound {
        Bound::MaxCap => hi,
        _ => align_down(first.bytes.saturating_sub(resolution)),
    };
    let mut next = (guess > lo).then_some(guess);
    loop {
        let size = match next.take() {
            Some(g) => g,
            None => {
                if hi <= lo.saturating_add(resolution) {
                    break;
                }
                let mid = align_down(lo + (hi - lo) / 2);
                if mid <= lo {
                    break;
                }
                mid
            }
        };
        if interrupted() {
            s.max_bytes = lo;
            s.stop = StopReason::Interrupted;
            return Ok(s);
        }
        let now = limit()?;
        let now_bytes = align_down(now.bytes);
        if now_bytes < hi {
            hi = now_bytes;
            hi_fails = false;
            s.limit = now;
        }
        if size > now_bytes {
            continue;
        }
        let out = attempt(size)?;
        s.record(size, &out);
        if out == Attempt::Fit {
            lo = size;
        } else {
            hi = size;
            hi_fails = true;
        }
    }
    s.max_bytes = lo;
    s.stop = if hi_fails {
        StopReason::Failure
    } else {
        StopReason::from_bound(s.limit.bound)
    };
    Ok(s)
}

/// The cumulative maximum: adds chunks of `chunk` bytes while `limit(held)` (the most the next
/// chunk may take, given what is held) allows a whole chunk, until one fails. The caller owns
/// the chunks `add` made and frees them afterwards. The limit reported is a total (what was held
/// plus what the next chunk could take).
pub fn accumulate(
    chunk: u64,
    mut limit: impl FnMut(u64) -> Result<Limit>,
    mut add: impl FnMut(u64) -> Result<Attempt>,
) -> Result<Search> {
    let first = limit(0)?;
    let mut s = Search::new(first);
    let mut held = 0u64;
    loop {
        if interrupted() {
            s.stop = StopReason::Interrupted;
            break;
        }
        let lim = if held == 0 { first } else { limit(held)? };
        // Reported as a total: what is held plus what the next chunk could have taken.
        s.limit = Limit {
            bytes: held.saturating_add(lim.bytes),
            bound: lim.bound,
        };
        if chunk == 0 || chunk > lim.bytes {
            s.stop = if held == 0 {
                StopReason::NothingAllowed
            } else {
                StopReason::from_bound(lim.bound)
            };
            break;
        }
        let out = add(chunk)?;
        s.attempts += 1;
        s.tried.push((held + chunk, out == Attempt::Fit));
        match out {
            Attempt::Fit => held += chunk,
            Attempt::OutOfMemory(msg) => {
                s.failures += 1;
                s.first_failure_bytes = Some(held + chunk);
                s.failure = Some(msg);
                s.stop = StopReason::Failure;
                break;
            }
        }
    }
    s.max_bytes = held;
    Ok(s)
}

/// What bounds a search under `--force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysicalBounds {
    /// `cuMemGetInfo` total.
    pub device_total: u64,
    /// MemTotal.
    pub mem_total: u64,
}

/// The bound of one request of `st` (no `--max`): the safety ceiling of `budget`, or with `force`
/// the physical size, except managed memory on a discrete card, which stays within the card's
/// free memory even then. Aligned down to [`ALIGN_BYTES`].
pub fn ceiling_limit(budget: &Budget, st: Strategy, force: Option<PhysicalBounds>) -> Limit {
    let backing = st.info().backing;
    let (bytes, bound) = match force {
        None => (budget.ceiling(st), Bound::SafetyCeiling),
        Some(_) if !budget.unified && backing == Backing::Managed => {
            (budget.device_free, Bound::SafetyCeiling)
        }
        Some(p) if budget.unified => (p.mem_total, Bound::Physical),
        Some(p) => match backing {
            Backing::Device => (p.device_total, Bound::Physical),
            _ => (p.mem_total, Bound::Physical),
        },
    };
    Limit {
        bytes: align_down(bytes),
        bound,
    }
}

/// `limit` lowered to `cap` when the cap is smaller.
pub fn with_cap(limit: Limit, cap: Option<u64>) -> Limit {
    match cap {
        Some(c) if align_down(c) < limit.bytes => Limit {
            bytes: align_down(c),
            bound: Bound::MaxCap,
        },
        _ => limit,
    }
}

/// The most the next chunk may take with `held` bytes held: the ceiling now, the ceiling at the
/// start less what is held (memory that is held but not yet populated, such as untouched managed
/// memory, does not show in the accounting), and the cap less what is held.
pub fn chunk_limit(now: Limit, start: Limit, cap: Option<u64>, held: u64) -> Limit {
    let from_start = Limit {
        bytes: start.bytes.saturating_sub(held),
        bound: start.bound,
    };
    let lim = if from_start.bytes < now.bytes {
        from_start
    } else {
        now
    };
    with_cap(lim, cap.map(|c| c.saturating_sub(held)))
}

/// `--max`: `auto`, `none` or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxSel {
    /// No cap, except [`DEFAULT_HOST_CAP_BYTES`] for host-backed strategies on discrete GPUs.
    Auto,
    None,
    Bytes(u64),
}

impl MaxSel {
    pub fn parse(s: &str) -> std::result::Result<MaxSel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(MaxSel::Auto),
            "none" => Ok(MaxSel::None),
            _ => parse_size(s)
                .map(MaxSel::Bytes)
                .map_err(|e| format!("{e} (or `auto`, `none`)")),
        }
    }

    /// The cap for `st` on a device that is (not) unified.
    pub fn cap_for(self, st: Strategy, unified: bool) -> Option<u64> {
        self.cap_with(st, unified, DEFAULT_HOST_CAP_BYTES)
    }

    /// As [`MaxSel::cap_for`], with `host_cap` as the `auto` cap of host-backed strategies.
    pub fn cap_with(self, st: Strategy, unified: bool, host_cap: u64) -> Option<u64> {
        match self {
            MaxSel::None => None,
            MaxSel::Bytes(b) => Some(b),
            MaxSel::Auto if !unified && st.info().backing == Backing::Host => Some(host_cap),
            MaxSel::Auto => None,
        }
    }
}

/// One sentence on what the safety ceiling of `st` is made of.
pub fn ceiling_reason(budget: &Budget, st: Strategy) -> String {
    let allowance = format!(
        "MemAvailable {} minus headroom {}",
        gib2(budget.mem_available),
        gib2(budget.headroom)
    );
    if budget.unified {
        return format!("unified memory: {allowance}");
    }
    match st.info().backing {
        Backing::Device => format!("cuMemGetInfo free {}", gib2(budget.device_free)),
        Backing::Managed => format!(
            "managed memory stays within the card's free memory ({}) and the host's {allowance}",
            gib2(budget.device_free)
        ),
        Backing::Host => format!("host memory: {allowance}"),
    }
}

// ---------------------------------------------------------------- rows

/// One probe result. The same struct is the JSON row, the CSV row and the source of the table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeRow {
    pub device: i32,
    pub strategy: String,
    pub kind: ProbeKind,
    /// The largest single allocation, or the most held at once.
    pub max_bytes: u64,
    pub stop_reason: StopReason,
    /// The sentence saying why the search stopped.
    pub stop_detail: String,
    pub attempts: u32,
    /// Attempts that failed with out-of-memory.
    pub failures: u32,
    /// Whether every allocation was touched by the GPU (one write per page) before counting.
    pub touched: bool,
    /// Single: the resolution; cumulative: the chunk.
    pub step_bytes: u64,
    /// The safety ceiling at the start (before anything was taken).
    pub ceiling_bytes: u64,
    /// The bound the search ran under at its end (ceiling, cap or physical size).
    pub limit_bytes: u64,
    pub cap_bytes: Option<u64>,
    /// Single: the smallest size that failed; cumulative: the total the failing chunk would make.
    pub first_failure_bytes: Option<u64>,
    /// The failed call and the driver's message, for the first failure.
    pub failure: Option<String>,
    /// Accounting taken just before the probe.
    pub device_free_bytes: u64,
    pub device_total_bytes: u64,
    pub mem_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_free_bytes: u64,
    /// PSI full avg10 (percent), bytes in free 2 MiB blocks and cgroup memory.current, just
    /// before the probe.
    #[serde(default)]
    pub psi_full_avg10: Option<f64>,
    #[serde(default)]
    pub free_2m_bytes: Option<u64>,
    #[serde(default)]
    pub cgroup_current_bytes: Option<u64>,
    pub elapsed_ms: f64,
    /// Every size tried with its outcome.
    pub tried: String,
}

/// The whole-probe document type.
pub type ProbeDoc = crate::report::Document<ProbeRow, Environment>;

/// Options of a probe (typed: parsed before anything runs).
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub strategies: Vec<Strategy>,
    pub kinds: Vec<ProbeKind>,
    pub resolution_bytes: u64,
    pub chunk_bytes: u64,
    pub max: MaxSel,
    /// `None`: touch the lazily populated strategies (managed, pageable) only.
    pub touch: Option<bool>,
    pub page_stride: u64,
    pub headroom: u64,
    pub force: bool,
    pub alloc: AllocOptions,
    pub quiet: bool,
    /// The `auto` cap of host-backed strategies on discrete GPUs (the lab lowers it to its
    /// budget: pinning costs about 0.5 s per GiB).
    pub host_cap_bytes: u64,
    /// Whether the cumulative search runs for lazily populated strategies (managed, pageable),
    /// which touches everything it holds; the lab leaves it out under a short budget.
    pub cumulative_lazy: bool,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            strategies: DEFAULT_STRATEGIES.to_vec(),
            kinds: vec![ProbeKind::Single, ProbeKind::Cumulative],
            resolution_bytes: 256 * MIB,
            chunk_bytes: GIB,
            max: MaxSel::Auto,
            touch: None,
            page_stride: crate::host::facts::page_size(),
            headroom: DEFAULT_HEADROOM,
            force: false,
            alloc: AllocOptions::default(),
            quiet: false,
            host_cap_bytes: DEFAULT_HOST_CAP_BYTES,
            cumulative_lazy: true,
        }
    }
}

impl ProbeOptions {
    /// Whether `st` is touched after allocation.
    pub fn touches(&self, st: Strategy) -> bool {
        self.touch.unwrap_or(st.info().lazily_populated)
    }

    /// Refuses sizes the search cannot use, with one sentence each.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("--resolution", self.resolution_bytes),
            ("--chunk", self.chunk_bytes),
        ] {
            if v == 0 || !v.is_multiple_of(ALIGN_BYTES) {
                return Err(Error::usage(format!(
                    "{name} {} is not a multiple of 2 MiB (the allocation granularity): give for example 256MiB or 1GiB",
                    fmt_bytes(v)
                )));
            }
        }
        if let MaxSel::Bytes(b) = self.max
            && b < ALIGN_BYTES
        {
            return Err(Error::usage(format!(
                "--max {} is below 2 MiB: give a larger size, `auto` or `none`",
                fmt_bytes(b)
            )));
        }
        if self.page_stride == 0 || !self.page_stride.is_multiple_of(4) {
            return Err(Error::usage(format!(
                "page stride {}B must be a positive multiple of 4 bytes",
                self.page_stride
            )));
        }
        Ok(())
    }
}

/// The accounting the rows carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounting {
    pub device_free: u64,
    pub device_total: u64,
    pub meminfo: MemInfo,
    pub pressure: crate::host::HostPressure,
}

impl Accounting {
    pub fn take(gpu: &Gpu) -> Result<Accounting> {
        let (device_free, device_total) = gpu.ctx.mem_info()?;
        Ok(Accounting {
            device_free,
            device_total,
            meminfo: MemInfo::read().map_err(Error::Failed)?,
            pressure: crate::host::HostPressure::read(),
        })
    }

    pub fn budget(&self, unified: bool, headroom: u64) -> Budget {
        Budget {
            unified,
            device_free: self.device_free,
            mem_available: self.meminfo.mem_available,
            headroom,
        }
    }
}

/// Runs the probe on each device in `ordinals`, streaming into `sink`.
pub fn run(
    ordinals: &[i32],
    opts: &ProbeOptions,
    sink: &mut ResultSink<ProbeRow, Environment>,
) -> Result<()> {
    opts.validate()?;
    let drv = require_driver()?;
    for &o in ordinals {
        let gpu = Gpu::open(&drv, o)?;
        run_gpu(&gpu, opts, sink)?;
    }
    Ok(())
}

/// Runs the probe on one open device, streaming into `sink`; unsupported strategies are recorded
/// as skipped with their reason. Returns `Err(Interrupted)` after writing the interrupted row.
pub fn run_gpu(
    gpu: &Gpu,
    opts: &ProbeOptions,
    sink: &mut ResultSink<ProbeRow, Environment>,
) -> Result<()> {
    opts.validate()?;
    let dev = gpu.device.ordinal();
    let progress = Progress::new(
        (opts.strategies.len() * opts.kinds.len()) as u64,
        opts.quiet,
    );
    if opts.force {
        progress.warn(format!(
            "WARNING: --force: device {dev}: probing past the safety ceiling up to the physical size{}; managed memory on a discrete card still stops at cuMemGetInfo free",
            if gpu.arch.is_unified() {
                " (on unified memory this can wedge the whole host)"
            } else {
                ""
            }
        ));
    }
    for &st in &opts.strategies {
        if let Err(reason) = st.supported(&gpu.attrs) {
            sink.skip(format!("device {dev} {st}: not supported: {reason}"))?;
            for _ in &opts.kinds {
                progress.inc();
            }
            continue;
        }
        for &kind in &opts.kinds {
            check_interrupt()?;
            if kind == ProbeKind::Cumulative && !opts.cumulative_lazy && opts.touches(st) {
                sink.skip(format!(
                    "device {dev} {st} cumulative: left out to fit the lab's budget (it touches all it holds: about {:.0} s per 100 GiB of migration); a larger --budget includes it",
                    100.0 / crate::experiments::lab::cost::MIGRATE_GIB_PER_S
                ))?;
                progress.inc();
                continue;
            }
            let row = probe_one(gpu, st, kind, opts, &progress)?;
            let stopped = row.stop_reason == StopReason::Interrupted;
            progress.println(format!(
                "device {dev} {st} {}: {} ({})",
                kind.key(),
                fmt_bytes(row.max_bytes),
                row.stop_detail
            ));
            sink.push(row)?;
            progress.inc();
            if stopped {
                progress.finish();
                return Err(Error::Interrupted);
            }
        }
    }
    progress.finish();
    Ok(())
}

/// Probes one strategy on one device. Interruption ends the search with the figure found so far
/// (stop reason `interrupted`); every allocation made is freed before this returns.
pub fn probe_one(
    gpu: &Gpu,
    st: Strategy,
    kind: ProbeKind,
    opts: &ProbeOptions,
    progress: &Progress,
) -> Result<ProbeRow> {
    let dev = gpu.device.ordinal();
    let unified = gpu.arch.is_unified();
    let touch = opts.touches(st);
    let cap = opts.max.cap_with(st, unified, opts.host_cap_bytes);
    let before = Accounting::take(gpu)?;
    let start_budget = before.budget(unified, opts.headroom);
    let force = opts.force.then_some(PhysicalBounds {
        device_total: before.device_total,
        mem_total: before.meminfo.mem_total,
    });
    let start_limit = ceiling_limit(&start_budget, st, force);
    let current_limit = || -> Result<Limit> {
        let a = Accounting::take(gpu)?;
        Ok(ceiling_limit(&a.budget(unified, opts.headroom), st, force))
    };
    let label = format!("device {dev}: {st} {}", kind.key());
    let t = Instant::now();
    let (search, step) = match kind {
        ProbeKind::Single => {
            let s = bisect(
                opts.resolution_bytes,
                || Ok(with_cap(current_limit()?, cap)),
                |bytes| {
                    progress.message(format!("{label}: trying {}", fmt_bytes(bytes)));
                    pressure_guard(unified, &label, bytes)?;
                    try_once(gpu, st, bytes, touch, opts)
                },
            )?;
            (s, opts.resolution_bytes)
        }
        ProbeKind::Cumulative => {
            let mut held: Vec<Box<dyn Allocation>> = Vec::new();
            let s = accumulate(
                opts.chunk_bytes,
                |h| Ok(chunk_limit(current_limit()?, start_limit, cap, h)),
                |bytes| {
                    progress.message(format!(
                        "{label}: holding {}, adding {}",
                        fmt_bytes(bytes * held.len() as u64),
                        fmt_bytes(bytes)
                    ));
                    pressure_guard(unified, &label, bytes)?;
                    add_chunk(gpu, st, bytes, touch, opts, &mut held)
                },
            )?;
            progress.message(format!("{label}: freeing {} chunks", held.len()));
            // Free in reverse order; a failed free is an error, and what is left is freed by drop.
            while let Some(a) = held.pop() {
                a.free()?;
            }
            if st == Strategy::Pool {
                trim_default_pool(&gpu.ctx)?;
            }
            (s, opts.chunk_bytes)
        }
    };
    let elapsed_ms = t.elapsed().as_secs_f64() * 1e3;
    let stop_detail = stop_detail(&search, &start_budget, st, kind, step, force.is_some());
    let m = &before.meminfo;
    Ok(ProbeRow {
        device: dev,
        strategy: st.key().into(),
        kind,
        max_bytes: search.max_bytes,
        stop_reason: search.stop,
        stop_detail,
        attempts: search.attempts,
        failures: search.failures,
        touched: touch,
        step_bytes: step,
        ceiling_bytes: start_budget.ceiling(st),
        limit_bytes: search.limit.bytes,
        cap_bytes: cap,
        first_failure_bytes: search.first_failure_bytes,
        failure: search.failure.clone(),
        device_free_bytes: before.device_free,
        device_total_bytes: before.device_total,
        mem_free_bytes: m.mem_free,
        mem_available_bytes: m.mem_available,
        cached_bytes: m.cached,
        swap_free_bytes: m.swap_free,
        psi_full_avg10: before.pressure.psi_full_avg10(),
        free_2m_bytes: before.pressure.free_2m_bytes(),
        cgroup_current_bytes: before.pressure.cgroup_current(),
        elapsed_ms,
        tried: search.tried_text(),
    })
}

/// On unified memory, the pressure guard before each allocation (see
/// `memory::safety::PressureLimits`): a host near a wedge stops the probe, exit 1, with the figure.
fn pressure_guard(unified: bool, label: &str, bytes: u64) -> Result<()> {
    if !unified {
        return Ok(());
    }
    crate::memory::safety::pressure_check_now(bytes).map_err(|why| {
        Error::Failed(format!(
            "{label}: stopped before allocating {}: {why}",
            fmt_bytes(bytes)
        ))
    })
}

/// The sentence saying why a search stopped.
fn stop_detail(
    s: &Search,
    budget: &Budget,
    st: Strategy,
    kind: ProbeKind,
    step: u64,
    forced: bool,
) -> String {
    let near = match kind {
        ProbeKind::Single => format!("within {} of", fmt_bytes(step)),
        ProbeKind::Cumulative => format!("one more {} chunk would pass", fmt_bytes(step)),
    };
    match s.stop {
        StopReason::Failure => format!(
            "stopped at a failure: {} did not fit ({})",
            fmt_bytes(s.first_failure_bytes.unwrap_or(0)),
            s.failure.as_deref().unwrap_or("out of memory")
        ),
        StopReason::SafetyCeiling => {
            let mut t = format!(
                "stopped at the safety ceiling, not at a failure: {near} the {} allowed ({})",
                gib2(s.limit.bytes),
                ceiling_reason(budget, st)
            );
            if forced {
                t.push_str(
                    "; --force does not lift this one: more managed memory than the card has free can hang the GPU",
                );
            }
            t
        }
        StopReason::MaxCap => format!(
            "stopped at the --max cap of {}, not at a failure{}",
            gib2(s.limit.bytes),
            if st.info().backing == Backing::Host && !budget.unified {
                if s.limit.bytes == DEFAULT_HOST_CAP_BYTES {
                    " (host memory strategies on a discrete GPU are capped at 32 GiB by default: pinning costs about 0.3 to 0.5 s per GB; `--max none` lifts it)"
                } else {
                    " (host memory strategies on a discrete GPU are capped to keep pinning, about 0.3 to 0.5 s per GB, within the time budget; `--max none` lifts it)"
                }
            } else {
                ""
            }
        ),
        StopReason::Physical => format!(
            "stopped at the physical size {} (--force), not at a failure",
            gib2(s.limit.bytes)
        ),
        StopReason::Interrupted => {
            "interrupted before the search ended: the figure is a lower bound".to_string()
        }
        StopReason::NothingAllowed => format!(
            "nothing tried: the limit {} is below one step ({})",
            gib2(s.limit.bytes),
            ceiling_reason(budget, st)
        ),
    }
}

/// GiB with two decimals (the sentences compare figures a few hundred MiB apart).
fn gib2(bytes: u64) -> String {
    format!("{} GiB", crate::units::fmt_gib_dp(bytes, 2))
}

/// Out-of-memory from the memory layer or a kernel is a result; anything else is an error.
fn classify<T>(r: crate::driver::Result<T>) -> Result<std::result::Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) if e.is_out_of_memory() => Ok(Err(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Allocates `bytes`, touches it when asked, frees it.
fn try_once(
    gpu: &Gpu,
    st: Strategy,
    bytes: u64,
    touch: bool,
    opts: &ProbeOptions,
) -> Result<Attempt> {
    let a = match classify(allocate(&gpu.ctx, &gpu.stream, st, bytes, &opts.alloc))? {
        Ok(a) => a,
        Err(msg) => return Ok(Attempt::OutOfMemory(msg)),
    };
    let out = if touch {
        match classify(gpu.kernels.touch(
            &gpu.stream,
            a.device_ptr(),
            bytes,
            opts.page_stride,
            0x5052_4f42,
        ))? {
            Ok(_) => Attempt::Fit,
            Err(msg) => Attempt::OutOfMemory(msg),
        }
    } else {
        Attempt::Fit
    };
    a.free()?;
    if st == Strategy::Pool {
        trim_default_pool(&gpu.ctx)?;
    }
    Ok(out)
}

/// Allocates one chunk (touched when asked) and keeps it in `held`.
fn add_chunk(
    gpu: &Gpu,
    st: Strategy,
    bytes: u64,
    touch: bool,
    opts: &ProbeOptions,
    held: &mut Vec<Box<dyn Allocation>>,
) -> Result<Attempt> {
    let a = match classify(allocate(&gpu.ctx, &gpu.stream, st, bytes, &opts.alloc))? {
        Ok(a) => a,
        Err(msg) => return Ok(Attempt::OutOfMemory(msg)),
    };
    if touch
        && let Err(msg) = classify(gpu.kernels.touch(
            &gpu.stream,
            a.device_ptr(),
            bytes,
            opts.page_stride,
            0x5052_4f42,
        ))?
    {
        a.free()?;
        return Ok(Attempt::OutOfMemory(msg));
    }
    held.push(a);
    Ok(Attempt::Fit)
}

// ---------------------------------------------------------------- output

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * part as f64 / whole as f64)
    }
}

/// The table and one line per probe.
pub fn render(doc: &ProbeDoc) -> String {
    let rows = &doc.rows;
    let mut out = String::new();
    let mut devices: Vec<i32> = rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        let d = doc.environment.devices.iter().find(|d| d.ordinal == dev);
        out.push_str(&format!(
            "device {dev}: {} ({})\n\n",
            d.map_or("?", |d| d.name.as_str()),
            d.map_or("?", |d| d.architecture.label())
        ));
        let mut t = new_table(&[
            "strategy",
            "kind",
            "max, GiB",
            "% of cuMemGetInfo free",
            "stopped at",
            "attempts (OOM)",
            "touched",
            "limit, GiB",
            "cuMemGetInfo free / total, GiB",
            "MemFree, GiB",
            "MemAvailable, GiB",
            "Cached, GiB",
            "SwapFree, GiB",
            "time, s",
        ]);
        for r in rows.iter().filter(|r| r.device == dev) {
            t.add_row(vec![
                r.strategy.clone(),
                r.kind.key().to_string(),
                fmt_gib(r.max_bytes as f64),
                pct(r.max_bytes, r.device_free_bytes),
                r.stop_reason.phrase().to_string(),
                format!("{} ({})", r.attempts, r.failures),
                if r.touched { "yes" } else { "no" }.to_string(),
                fmt_gib(r.limit_bytes as f64),
                format!(
                    "{} / {}",
                    fmt_gib(r.device_free_bytes as f64),
                    fmt_gib(r.device_total_bytes as f64)
                ),
                fmt_gib(r.mem_free_bytes as f64),
                fmt_gib(r.mem_available_bytes as f64),
                fmt_gib(r.cached_bytes as f64),
                fmt_gib(r.swap_free_bytes as f64),
                format!("{:.1}", r.elapsed_ms / 1e3),
            ]);
        }
        out.push_str(&format!(
            "largest allocation per strategy (GiB = 2^30 bytes; accounting taken just before each probe)\n{t}\n\n"
        ));
        for r in rows.iter().filter(|r| r.device == dev) {
            out.push_str(&format!(
                "- {} {}: {} — {}\n",
                r.strategy,
                r.kind.key(),
                fmt_bytes(r.max_bytes),
                r.stop_detail
            ));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    for n in &doc.notes {
        out.push_str(&format!("{n}\n"));
    }
    out
}

// ---------------------------------------------------------------- command line

/// `--kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindSel {
    Single,
    Cumulative,
    Both,
}

impl KindSel {
    pub fn kinds(self) -> Vec<ProbeKind> {
        match self {
            KindSel::Single => vec![ProbeKind::Single],
            KindSel::Cumulative => vec![ProbeKind::Cumulative],
            KindSel::Both => vec![ProbeKind::Single, ProbeKind::Cumulative],
        }
    }
}

/// `cumemlab probe` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each figure says why the search stopped: at a failure (out of memory: what the system really gives), at the safety ceiling (MemAvailable minus --headroom on unified memory; the card's free memory on discrete cards), or at the --max cap.\n\nExamples:\n  cumemlab probe\n  cumemlab probe --strategies device,managed,pinned,pool,vmm --out probe.json\n  cumemlab probe --strategies device --kind single --resolution 64MiB\n  cumemlab probe --strategies pinned --max none --chunk 4GiB\n  cumemlab probe --strategies managed --no-touch --json"
)]
pub struct ProbeArgs {
    /// Strategies to probe (comma-separated keys, or `all`). Default: device, managed, pinned, registered, pageable, pool, vmm (those the device supports).
    #[arg(long, allow_hyphen_values = true, value_parser = crate::cli::strategy_list)]
    pub strategies: Option<crate::cli::List<Strategy>>,
    /// Which figure: the largest single allocation, the cumulative maximum, or both.
    #[arg(long, value_enum, default_value = "both")]
    pub kind: KindSel,
    /// Bisection resolution of the single-allocation search (a multiple of 2 MiB).
    #[arg(long, default_value = "256MiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub resolution: u64,
    /// Chunk size of the cumulative search (a multiple of 2 MiB).
    #[arg(long, default_value = "1GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub chunk: u64,
    /// Stop searching at this size: a size, `none`, or `auto` (no cap, except 32 GiB for the host-memory strategies pinned, registered and pageable on discrete GPUs, where pinning costs about 0.3 to 0.5 s per GB).
    #[arg(long, default_value = "auto", allow_hyphen_values = true, value_parser = MaxSel::parse)]
    pub max: MaxSel,
    /// Touch every allocation from the GPU (one write per page) before counting it. Default: on for managed and pageable, which are populated lazily.
    #[arg(long, conflicts_with = "no_touch")]
    pub touch: bool,
    /// Never touch (count what the allocator promises, not what it holds).
    #[arg(long)]
    pub no_touch: bool,
    /// Device ordinal, or `all`.
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = DeviceSel::parse)]
    pub device: DeviceSel,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    #[arg(long, default_value = "8GiB", allow_hyphen_values = true, value_parser = parse_size)]
    pub headroom: u64,
    /// Probe past the safety ceiling up to the physical size (prints a warning; can wedge a unified-memory host). Managed memory on a discrete card still stops at cuMemGetInfo free.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `probe` from the command line.
pub fn main(args: ProbeArgs) -> Result<()> {
    let opts = ProbeOptions {
        strategies: args
            .strategies
            .map(|l| l.0)
            .unwrap_or_else(|| DEFAULT_STRATEGIES.to_vec()),
        kinds: args.kind.kinds(),
        resolution_bytes: args.resolution,
        chunk_bytes: args.chunk,
        max: args.max,
        touch: if args.touch {
            Some(true)
        } else if args.no_touch {
            Some(false)
        } else {
            None
        },
        page_stride: crate::host::facts::page_size(),
        headroom: args.headroom,
        force: args.force,
        alloc: AllocOptions::default(),
        quiet: args.quiet,
        ..ProbeOptions::default()
    };
    opts.validate()?;
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let ordinals = args.device.resolve(drv.device_count()?)?;
    let env = Environment::collect(Some(&ordinals));
    let mut sink = ResultSink::new("probe", env, args.output.out.as_deref())?;
    let t = Instant::now();
    let result = run(&ordinals, &opts, &mut sink).and_then(|()| sink.require_rows());
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    sink.doc
        .notes
        .push(format!("probe took {:.1} s", t.elapsed().as_secs_f64()));
    sink.finish_run(&result, was_interrupted)?;
    if args.output.json {
        crate::report::sink::print_stdout(to_json(&sink.doc)?)?;
    } else if args.output.csv {
        crate::report::sink::print_stdout(to_csv(&sink.doc.rows)?)?;
    } else {
        crate::report::sink::print_stdout(render(&sink.doc))?;
    }
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated allocator: a single allocation fits up to `max`, and the ceiling is `ceiling`.
    struct Sim {
        max: u64,
        tried: Vec<u64>,
    }

    fn lim(bytes: u64, bound: Bound) -> Limit {
        Limit { bytes, bound }
    }

    fn sim_bisect(max: u64, ceiling: u64, bound: Bound, res: u64) -> (Search, Vec<u64>) {
        let mut sim = Sim {
            max,
            tried: Vec::new(),
        };
        let s = bisect(
            res,
            || Ok(lim(ceiling, bound)),
            |b| {
                sim.tried.push(b);
                Ok(if b <= sim.max {
                    Attempt::Fit
                } else {
                    Attempt::OutOfMemory("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY".into())
                })
            },
        )
        .unwrap();
        (s, sim.tried)
    }

    #[test]
    fn bisection_finds_a_failure_to_the_resolution_and_never_passes_the_limit() {
        let res = 256 * MIB;
        // An 80 GiB card whose allocator gives 77.3 GiB, probed with --force (physical bound).
        let max = 77 * GIB + 300 * MIB;
        let (s, tried) = sim_bisect(max, 80 * GIB, Bound::Physical, res);
        assert_eq!(s.stop, StopReason::Failure);
        assert!(s.max_bytes <= max && max - s.max_bytes <= res, "{s:?}");
        let fail = s.first_failure_bytes.unwrap();
        assert!(fail > max && fail - s.max_bytes <= res, "{s:?}");
        assert!(tried.iter().all(|b| *b <= 80 * GIB && b % ALIGN_BYTES == 0));
        assert_eq!(tried[0], res, "the floor is verified first");
        assert_eq!(tried[1], 80 * GIB - res, "then one step under the limit");
        // log2(80 GiB / 256 MiB) ~ 8.3: about ten attempts, not hundreds.
        assert!(s.attempts <= 12, "{} attempts: {tried:?}", s.attempts);
        assert_eq!(s.attempts as usize, tried.len());
        assert!(s.failure.as_deref().unwrap().contains("OUT_OF_MEMORY"));
    }

    #[test]
    fn bisection_that_fits_everywhere_stops_at_the_ceiling_in_two_attempts() {
        let (s, tried) = sim_bisect(u64::MAX, 79 * GIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!(s.stop, StopReason::SafetyCeiling);
        assert_eq!(s.max_bytes, 79 * GIB - 256 * MIB);
        assert_eq!(tried, vec![256 * MIB, 79 * GIB - 256 * MIB]);
        assert_eq!(s.failures, 0);
        // Within 2% of the ceiling (what the GPU test asserts of `device` on a discrete card).
        assert!((79 * GIB - s.max_bytes) as f64 / (79 * GIB) as f64 <= 0.02);
        // A --max cap is tried exactly.
        let (s, tried) = sim_bisect(u64::MAX, 32 * GIB, Bound::MaxCap, 256 * MIB);
        assert_eq!((s.stop, s.max_bytes), (StopReason::MaxCap, 32 * GIB));
        assert_eq!(tried, vec![256 * MIB, 32 * GIB]);
    }

    #[test]
    fn bisection_edge_cases() {
        // The floor fails: nothing fits.
        let (s, _) = sim_bisect(100 * MIB, 10 * GIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!(
            (s.stop, s.max_bytes, s.attempts),
            (StopReason::Failure, 0, 1)
        );
        // A ceiling below one alignment step: nothing tried.
        let (s, tried) = sim_bisect(u64::MAX, MIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!((s.stop, s.max_bytes), (StopReason::NothingAllowed, 0));
        assert!(tried.is_empty());
        // A ceiling under the resolution: one attempt at the ceiling.
        let (s, tried) = sim_bisect(u64::MAX, 100 * MIB, Bound::SafetyCeiling, 256 * MIB);
        assert_eq!(tried, vec![100 * MIB]);
        assert_eq!(
            (s.stop, s.max_bytes),
            (StopReason::SafetyCeiling, 100 * MIB)
        );
    }

    #[test]
    fn bisection_follows_a_falling_ceiling() {
        // The ceiling falls by 10 GiB after the first attempts (another process took memory):
        // nothing above the ceiling of the moment is ever tried.
        let mut calls = 0;
        let mut ceilings = Vec::new();
        let mut tried = Vec::new();
        let s = bisect(
            256 * MIB,
            || {
                calls += 1;
                let c = if calls <= 2 { 60 * GIB } else { 50 * GIB };
                ceilings.push(c);
                Ok(lim(c, Bound::SafetyCeiling))
            },
            |b| {
                tried.push(b);
                Ok(if b <= 55 * GIB {
                    Attempt::Fit
                } else {
                    Attempt::OutOfMemory("oom".into())
                })
            },
        )
        .unwrap();
        assert!(tried.iter().skip(2).all(|b| *b <= 50 * GIB), "{tried:?}");
        assert_eq!(s.stop, StopReason::SafetyCeiling);
        assert!(s.max_bytes <= 50 * GIB && 50 * GIB - s.max_bytes <= 256 * MIB);
        assert_eq!(s.limit.bytes, 50 * GIB);
    }

    #[test]
    fn accumulation_stops_at_failure_or_limit() {
        // A card with 10.5 GiB that fails the 11th 1 GiB chunk.
        let mut held = 0u64;
        let s = accumulate(
            GIB,
            |h| {
                Ok(chunk_limit(
                    lim(80 * GIB, Bound::SafetyCeiling),
                    lim(80 * GIB, Bound::SafetyCeiling),
                    None,
                    h,
                ))
            },
            |b| {
                Ok(if held + b <= 10 * GIB + GIB / 2 {
                    held += b;
                    Attempt::Fit
                } else {
                    Attempt::OutOfMemory("oom".into())
                })
            },
        )
        .unwrap();
        assert_eq!((s.stop, s.max_bytes), (StopReason::Failure, 10 * GIB));
        // The limit is a total: what was held plus what the next chunk could take.
        assert_eq!(s.limit.bytes, 80 * GIB);
        assert_eq!(s.first_failure_bytes, Some(11 * GIB));
        assert_eq!((s.attempts, s.failures), (11, 1));
        // A unified host whose ceiling falls as memory is taken (MemAvailable drops by what is
        // held): stops at the ceiling with what fits.
        let start = lim(20 * GIB + 512 * MIB, Bound::SafetyCeiling);
        let s = accumulate(
            GIB,
            |h| {
                let now = lim(20 * GIB + 512 * MIB - h, Bound::SafetyCeiling);
                Ok(chunk_limit(now, start, None, h))
            },
            |_| Ok(Attempt::Fit),
        )
        .unwrap();
        assert_eq!((s.stop, s.max_bytes), (StopReason::SafetyCeiling, 20 * GIB));
        assert_eq!(s.limit.bytes, 20 * GIB + 512 * MIB);
        // A cap.
        let s = accumulate(
            GIB,
            |h| {
                Ok(chunk_limit(
                    lim(100 * GIB, Bound::SafetyCeiling),
                    lim(100 * GIB, Bound::SafetyCeiling),
                    Some(32 * GIB),
                    h,
                ))
            },
            |_| Ok(Attempt::Fit),
        )
        .unwrap();
        assert_eq!(
            (s.stop, s.max_bytes, s.attempts),
            (StopReason::MaxCap, 32 * GIB, 32)
        );
        assert_eq!(s.limit, lim(32 * GIB, Bound::MaxCap));
    }

    #[test]
    fn untouched_managed_chunks_are_bounded_by_the_start() {
        // Device free does not fall for untouched managed memory: the start ceiling less what is
        // held still bounds the total.
        let free = lim(10 * GIB, Bound::SafetyCeiling);
        let l = chunk_limit(free, free, None, 9 * GIB);
        assert_eq!(l.bytes, GIB);
        let l = chunk_limit(free, free, None, 10 * GIB);
        assert_eq!(l.bytes, 0);
        // Whichever is smaller binds, with its reason.
        let l = chunk_limit(free, free, Some(9 * GIB + GIB / 2), 9 * GIB);
        assert_eq!((l.bytes, l.bound), (GIB / 2, Bound::MaxCap));
    }

    fn budget(name: &str, unified: bool, device_free: u64) -> (Budget, MemInfo) {
        let m = crate::test_support::meminfo(name);
        (
            Budget {
                unified,
                device_free,
                mem_available: m.mem_available,
                headroom: DEFAULT_HEADROOM,
            },
            m,
        )
    }

    #[test]
    fn ceilings_on_unified_memory() {
        // GB10: cuMemGetInfo free is MemFree, yet the ceiling is MemAvailable - headroom for
        // every strategy.
        let (b, m) = budget("gb10-cache-heavy.txt", true, 0);
        let b = Budget {
            device_free: m.mem_free,
            ..b
        };
        let want = align_down(m.mem_available - DEFAULT_HEADROOM);
        for st in DEFAULT_STRATEGIES {
            let l = ceiling_limit(&b, *st, None);
            assert_eq!((l.bytes, l.bound), (want, Bound::SafetyCeiling), "{st}");
            assert!(
                l.bytes > m.mem_free,
                "the page cache does not lower the ceiling"
            );
            // No default cap on unified memory: host memory is the GPU's memory there.
            assert_eq!(MaxSel::Auto.cap_for(*st, true), None);
        }
        assert!(ceiling_reason(&b, Strategy::Device).contains("unified memory"));
        // --force: MemTotal.
        let f = PhysicalBounds {
            device_total: m.mem_total,
            mem_total: m.mem_total,
        };
        let l = ceiling_limit(&b, Strategy::Pinned, Some(f));
        assert_eq!(
            (l.bytes, l.bound),
            (align_down(m.mem_total), Bound::Physical)
        );
    }

    #[test]
    fn ceilings_on_a_discrete_card() {
        let free = 79 * GIB + 100 * MIB;
        let (b, m) = budget("h100-host.txt", false, free);
        let dev = ceiling_limit(&b, Strategy::Device, None);
        assert_eq!(dev.bytes, align_down(free));
        for st in [Strategy::Pool, Strategy::Vmm] {
            assert_eq!(ceiling_limit(&b, st, None), dev);
        }
        // managed: the card's free memory, though the host has more.
        assert!(m.mem_available - DEFAULT_HEADROOM > free);
        assert_eq!(
            ceiling_limit(&b, Strategy::Managed, None).bytes,
            align_down(free)
        );
        // host-backed: the host's allowance, capped at 32 GiB by default.
        let pinned = ceiling_limit(&b, Strategy::Pinned, None);
        assert_eq!(pinned.bytes, align_down(m.mem_available - DEFAULT_HEADROOM));
        let cap = MaxSel::Auto.cap_for(Strategy::Pinned, false);
        assert_eq!(cap, Some(32 * GIB));
        assert_eq!(with_cap(pinned, cap).bound, Bound::MaxCap);
        assert_eq!(MaxSel::Auto.cap_for(Strategy::Device, false), None);
        assert_eq!(MaxSel::None.cap_for(Strategy::Pinned, false), None);
        // --force: device-backed up to the card's total, host-backed to MemTotal, and managed
        // still only to the card's free memory (the hard rule).
        let f = PhysicalBounds {
            device_total: 80 * GIB,
            mem_total: m.mem_total,
        };
        assert_eq!(
            ceiling_limit(&b, Strategy::Device, Some(f)),
            lim(80 * GIB, Bound::Physical)
        );
        assert_eq!(
            ceiling_limit(&b, Strategy::Managed, Some(f)),
            lim(align_down(free), Bound::SafetyCeiling)
        );
        assert_eq!(
            ceiling_limit(&b, Strategy::Registered, Some(f)).bound,
            Bound::Physical
        );
        // A small host bounds managed below the card.
        let small = Budget {
            mem_available: 20 * GIB,
            ..b
        };
        assert_eq!(
            ceiling_limit(&small, Strategy::Managed, None).bytes,
            12 * GIB
        );
        let r = ceiling_reason(&small, Strategy::Managed);
        assert!(r.contains("free memory") && r.contains("headroom"), "{r}");
    }

    #[test]
    fn options_and_sentences() {
        assert_eq!(MaxSel::parse("none"), Ok(MaxSel::None));
        assert_eq!(MaxSel::parse("AUTO"), Ok(MaxSel::Auto));
        assert_eq!(MaxSel::parse("16GiB"), Ok(MaxSel::Bytes(16 * GIB)));
        assert!(MaxSel::parse("16G").unwrap_err().contains("ambiguous"));
        let mut o = ProbeOptions::default();
        assert!(o.validate().is_ok());
        assert!(o.touches(Strategy::Managed) && o.touches(Strategy::Pageable));
        assert!(!o.touches(Strategy::Device) && !o.touches(Strategy::Pinned));
        o.touch = Some(false);
        assert!(!o.touches(Strategy::Managed));
        o.chunk_bytes = 1_000_000_000;
        let e = o.validate().unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--chunk") && e.to_string().contains("2 MiB"));
        // The sentences name the reason for stopping.
        let (b, _) = budget("h100-host.txt", false, 79 * GIB);
        let mut s = Search::new(lim(79 * GIB, Bound::SafetyCeiling));
        s.stop = StopReason::SafetyCeiling;
        let t = stop_detail(
            &s,
            &b,
            Strategy::Device,
            ProbeKind::Single,
            256 * MIB,
            false,
        );
        assert!(
            t.starts_with("stopped at the safety ceiling, not at a failure: within 256 MiB of the 79.00 GiB allowed"),
            "{t}"
        );
        assert!(t.contains("cuMemGetInfo free 79.00 GiB"), "{t}");
        let t = stop_detail(&s, &b, Strategy::Device, ProbeKind::Cumulative, GIB, false);
        assert!(
            t.contains("one more 1 GiB chunk would pass the 79.00 GiB allowed"),
            "{t}"
        );
        let t = stop_detail(
            &s,
            &b,
            Strategy::Managed,
            ProbeKind::Single,
            256 * MIB,
            true,
        );
        assert!(t.contains("--force does not lift this one"), "{t}");
        s.stop = StopReason::MaxCap;
        s.limit = lim(32 * GIB, Bound::MaxCap);
        let t = stop_detail(&s, &b, Strategy::Pinned, ProbeKind::Cumulative, GIB, false);
        assert!(
            t.contains("--max cap of 32.00 GiB") && t.contains("--max none"),
            "{t}"
        );
    }

    #[test]
    fn rows_to_json_and_csv() {
        let r = ProbeRow {
            device: 0,
            strategy: "device".into(),
            kind: ProbeKind::Single,
            max_bytes: 78 * GIB,
            stop_reason: StopReason::SafetyCeiling,
            stop_detail: "x".into(),
            attempts: 2,
            failures: 0,
            touched: false,
            step_bytes: 256 * MIB,
            ceiling_bytes: 79 * GIB,
            limit_bytes: 79 * GIB,
            cap_bytes: None,
            first_failure_bytes: None,
            failure: None,
            device_free_bytes: 79 * GIB,
            device_total_bytes: 80 * GIB,
            mem_free_bytes: 1,
            mem_available_bytes: 2,
            cached_bytes: 3,
            swap_free_bytes: 0,
            psi_full_avg10: Some(0.5),
            free_2m_bytes: Some(GIB),
            cgroup_current_bytes: None,
            elapsed_ms: 12.5,
            tried: "256 MiB ok".into(),
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["kind"], "single");
        assert_eq!(j["stop_reason"], "safety_ceiling");
        let csv = String::from_utf8(to_csv(std::slice::from_ref(&r)).unwrap()).unwrap();
        assert!(
            csv.starts_with("device,strategy,kind,max_bytes,stop_reason,"),
            "{csv}"
        );
        assert!(
            csv.contains("0,device,single,83751862272,safety_ceiling,"),
            "{csv}"
        );
        let back: ProbeRow = csv::Reader::from_reader(csv.as_bytes())
            .deserialize()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(back, r);
    }
}
