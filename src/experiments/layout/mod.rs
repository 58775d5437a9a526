//! `cumemlab layout`: allocate a model's worth of named tensors with one strategy and see what
//! the set really costs. It exists because a sweep measures one buffer at a time, while a model
//! is hundreds of tensors of very different sizes: per-allocation rounding, driver bookkeeping and
//! the holes left when some of them are freed only show up on a whole set.
//!
//! Plan -> run -> rows, as every experiment: the tensors come from a preset (`13b-sim`), from the
//! planner's model table or a `config.json` (one tensor per layer component per layer, see
//! [`preset`]), or from a spec file ([`spec`]); all of it is checked before the GPU is touched,
//! and a layout whose total exceeds the safety ceiling is refused before anything is allocated
//! (unless `--force`). Then, in order:
//!
//! 1. **alloc**: every tensor, in layout order, each checked against the safety ceiling (re-read
//!    before each) and timed on the host clock around the call and a synchronize; the bytes
//!    requested and the bytes mapped (`vmm` rounds up to the granularity). `--touch` runs the
//!    GPU touch kernel over each (needed for `managed` to take real memory).
//! 2. **totals**: requested against the drop in `cuMemGetInfo` free and in MemAvailable; the
//!    overhead is the drop in free minus the request (rounding, driver bookkeeping).
//! 3. **fragmentation**: free a pattern (`every-other`, `largest`, `random:SEED`), then find the
//!    largest single allocation that still succeeds by bisection between 0 and the free memory
//!    (capped by the safety ceiling) at `--resolution`, and set it beside the free total.
//! 4. **cleanup**: everything left is freed (timed), on every path: errors and Ctrl-C included
//!    (allocations are RAII values; a free that fails in `Drop` is recorded and reported).
//!
//! Rows ([`LayoutRow`]) stream into a [`ResultSink`]; the totals and the fragmentation result are
//! rows too, read back by [`summarize`]. [`run`] and [`measure`] are the library entry points
//! (for `lab`); [`main`] is the command.

pub mod preset;
mod render;
pub mod spec;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

pub use preset::{KvCache, Layout, PRESETS, TensorSpec, from_architecture, preset};
pub use render::{findings, render, render_layout};
pub use spec::{SpecFormat, parse_spec, read_spec};

use super::env::Environment;
use super::sweep::Snapshot;
use super::{Gpu, check_interrupt, interrupted, require_driver};
use crate::error::{Error, Result};
use crate::host::MemInfo;
use crate::memory::safety::{Budget, DEFAULT_HEADROOM, Forced};
use crate::memory::{AllocOptions, Allocation, Backing, Strategy, allocate, prefetch_to_device};
use crate::plan::{BATCH_SEARCH_CAP, CONTEXT_SEARCH_CAP, Precision};
use crate::report::{
    Document, Progress, ResultSink,
    sink::{to_csv, to_json},
};
use crate::units::{GB, MIB, fmt_bytes, parse_size};

/// Row phases, in the order they are written. The names are the `phase` values of the rows.
pub mod phase {
    /// Memory accounting at one moment (`name` says which: see [`super::moment`]).
    pub const SNAPSHOT: &str = "snapshot";
    /// One tensor allocated.
    pub const ALLOC: &str = "alloc";
    /// The sums over the allocated set.
    pub const TOTAL: &str = "total";
    /// One tensor freed by the fragmentation pattern.
    pub const FREE: &str = "free";
    /// One attempt of the largest-allocation search.
    pub const PROBE: &str = "probe";
    /// The fragmentation result.
    pub const FRAGMENTATION: &str = "fragmentation";
    /// One tensor freed at the end.
    pub const CLEANUP: &str = "cleanup";
}

/// The moments of the snapshot rows.
pub mod moment {
    pub const BASELINE: &str = "baseline";
    pub const AFTER_ALLOC: &str = "after_alloc";
    pub const AFTER_PATTERN_FREE: &str = "after_pattern_free";
    pub const AFTER_CLEANUP: &str = "after_cleanup";
}

/// cuMemAlloc's usual granularity for large allocations; the totals say what rounding every
/// tensor up to it would add, beside the overhead measured.
pub const ROUNDING_2MIB: u64 = 2 * MIB;

/// One measurement. The same struct is the JSON row, the CSV row and the source of the tables;
/// which fields are set depends on `phase` (each field says where it is used).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LayoutRow {
    pub device: i32,
    pub strategy: String,
    /// A phase of [`phase`].
    pub phase: String,
    /// alloc, free, cleanup: the tensor's position in the layout (0-based).
    pub index: Option<u64>,
    /// alloc, free, cleanup: the tensor; snapshot: the moment ([`moment`]); fragmentation: the
    /// pattern.
    pub name: Option<String>,
    /// alloc: the tensor's component (its name without the layer prefix).
    pub component: Option<String>,
    pub dtype: Option<String>,
    pub elements: Option<u64>,
    /// alloc, free, cleanup: bytes requested; probe: bytes attempted; total: the sum requested;
    /// fragmentation: the largest single allocation that succeeded.
    pub bytes: u64,
    /// alloc: bytes actually mapped (`vmm` rounds up); total: their sum.
    pub mapped_bytes: Option<u64>,
    /// alloc, probe: host clock around the allocation and a synchronize, ms.
    pub alloc_ms: Option<f64>,
    /// `managed+prefetch`: cuMemPrefetchAsync to the device, GPU ms.
    pub prefetch_ms: Option<f64>,
    /// `--touch`: the touch kernel over the tensor, GPU ms.
    pub touch_ms: Option<f64>,
    /// free, cleanup: host clock around the free and a synchronize, ms.
    pub free_ms: Option<f64>,
    /// probe: whether the allocation succeeded.
    pub ok: Option<bool>,
    /// total: tensors allocated; fragmentation: tensors freed by the pattern.
    pub tensors: Option<u64>,
    /// snapshot: `cuMemGetInfo` free; fragmentation: the same, when the search started.
    pub device_free_bytes: Option<u64>,
    /// snapshot: MemAvailable and MemFree.
    pub mem_available_bytes: Option<u64>,
    pub mem_free_bytes: Option<u64>,
    /// total: how far `cuMemGetInfo` free fell from the baseline to after the allocations
    /// (positive = memory taken).
    pub device_free_drop_bytes: Option<i64>,
    /// total: how far MemAvailable fell over the same span.
    pub mem_available_drop_bytes: Option<i64>,
    /// total: `device_free_drop_bytes` minus the bytes requested, and as % of the request.
    pub overhead_bytes: Option<i64>,
    pub overhead_pct: Option<f64>,
    /// total: what rounding every tensor up to 2 MiB would add to the request.
    pub rounding_2mib_bytes: Option<u64>,
    /// fragmentation: bytes the pattern freed, and the largest tensor among them.
    pub freed_bytes: Option<u64>,
    pub largest_freed_bytes: Option<u64>,
    /// fragmentation: the free total the result is set beside, and what it is (`cuMemGetInfo
    /// free` for device and managed memory, `MemAvailable` for host memory).
    pub free_total_bytes: Option<u64>,
    pub free_total_of: Option<String>,
    /// fragmentation: the search's upper bound (the free total, within the safety ceiling).
    pub bound_bytes: Option<u64>,
    pub resolution_bytes: Option<u64>,
    pub attempts: Option<u32>,
    /// fragmentation: the bound itself succeeded (the true largest may be larger).
    pub reached_bound: Option<bool>,
    pub note: Option<String>,
}

impl LayoutRow {
    fn new(device: i32, strategy: Strategy, phase: &str) -> LayoutRow {
        LayoutRow {
            device,
            strategy: strategy.key().into(),
            phase: phase.into(),
            ..Default::default()
        }
    }

    fn snapshot(device: i32, strategy: Strategy, name: &str, s: &Snapshot) -> LayoutRow {
        LayoutRow {
            name: Some(name.into()),
            device_free_bytes: Some(s.device_free),
            mem_available_bytes: Some(s.mem_available),
            mem_free_bytes: Some(s.mem_free),
            ..LayoutRow::new(device, strategy, phase::SNAPSHOT)
        }
    }
}

/// Which tensors the fragmentation test frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreePattern {
    /// The tensors at odd positions (1, 3, 5, ...).
    EveryOther,
    /// The largest tensor (the first of equals).
    Largest,
    /// A random half (at least one), reproducible from the seed with this build.
    Random(u64),
    /// No fragmentation test.
    None,
}

impl FreePattern {
    /// Reads `every-other`, `largest`, `random:SEED` or `none`.
    pub fn parse(s: &str) -> std::result::Result<FreePattern, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "every-other" | "every_other" | "odd" => Ok(FreePattern::EveryOther),
            "largest" => Ok(FreePattern::Largest),
            "none" => Ok(FreePattern::None),
            "random" => Err(format!(
                "free pattern `{s}` needs a seed: write random:SEED, for example random:42"
            )),
            _ => match t.strip_prefix("random:") {
                Some(seed) => seed.trim().parse::<u64>().map(FreePattern::Random).map_err(|_| {
                    format!(
                        "free pattern `{s}`: the seed must be a whole number from 0 to {}, for example random:42",
                        u64::MAX
                    )
                }),
                None => Err(format!(
                    "unknown free pattern `{s}`: use every-other, largest, random:SEED or none"
                )),
            },
        }
    }

    /// The name as given on the command line.
    pub fn name(self) -> String {
        match self {
            FreePattern::EveryOther => "every-other".into(),
            FreePattern::Largest => "largest".into(),
            FreePattern::Random(s) => format!("random:{s}"),
            FreePattern::None => "none".into(),
        }
    }

    /// The positions (ascending) of the tensors to free, given the allocated sizes in order.
    pub fn select(self, sizes: &[u64]) -> Vec<usize> {
        let n = sizes.len();
        match self {
            FreePattern::EveryOther => (1..n).step_by(2).collect(),
            FreePattern::Largest => {
                let mut best: Option<usize> = None;
                for (i, &b) in sizes.iter().enumerate() {
                    if best.is_none_or(|j| b > sizes[j]) {
                        best = Some(i);
                    }
                }
                best.into_iter().collect()
            }
            FreePattern::Random(seed) => {
                if n == 0 {
                    return Vec::new();
                }
                let mut idx: Vec<usize> = (0..n).collect();
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                idx.shuffle(&mut rng);
                idx.truncate((n / 2).max(1));
                idx.sort_unstable();
                idx
            }
            FreePattern::None => Vec::new(),
        }
    }
}

/// Typed options of a layout run.
#[derive(Debug, Clone)]
pub struct LayoutOptions {
    pub layout: Layout,
    pub strategy: Strategy,
    pub free_pattern: FreePattern,
    /// Resolution of the largest-allocation search, bytes.
    pub resolution: u64,
    /// Run the touch kernel over each tensor (and each search attempt) after allocating it.
    pub touch: bool,
    pub headroom: u64,
    pub force: bool,
    pub alloc: AllocOptions,
    pub quiet: bool,
}

impl LayoutOptions {
    /// The defaults of the command: `device`, `every-other`, 64 MiB, no touch, 8 GiB headroom.
    pub fn new(layout: Layout) -> LayoutOptions {
        LayoutOptions {
            layout,
            strategy: Strategy::Device,
            free_pattern: FreePattern::EveryOther,
            resolution: 64 * MIB,
            touch: false,
            headroom: DEFAULT_HEADROOM,
            force: false,
            alloc: AllocOptions::default(),
            quiet: true,
        }
    }
}

/// What the largest-allocation search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search {
    /// The largest multiple of the resolution that succeeded (0 when none did).
    pub largest_bytes: u64,
    pub attempts: u32,
    /// The bound itself succeeded.
    pub reached_bound: bool,
}

/// Finds the largest multiple of `resolution` up to `bound` for which `attempt` succeeds,
/// assuming that success is monotonic (if n bytes fit, fewer do): the bound first (often it
/// fits), then bisection. `attempt` returns Ok(false) for out of memory; an error ends the search.
pub fn largest_fitting(
    bound: u64,
    resolution: u64,
    mut attempt: impl FnMut(u64) -> Result<bool>,
) -> Result<Search> {
    let res = resolution.max(1);
    let top = bound / res;
    let mut s = Search {
        largest_bytes: 0,
        attempts: 0,
        reached_bound: false,
    };
    if top == 0 {
        return Ok(s);
    }
    s.attempts += 1;
    if attempt(top * res)? {
        s.largest_bytes = top * res;
        s.reached_bound = true;
        return Ok(s);
    }
    // Invariant: lo units fit (0 trivially), hi units do not.
    let (mut lo, mut hi) = (0u64, top);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        s.attempts += 1;
        if attempt(mid * res)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    s.largest_bytes = lo * res;
    Ok(s)
}

/// The totals over an allocated set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub tensors: u64,
    pub requested_bytes: u64,
    pub mapped_bytes: u64,
    /// Baseline `cuMemGetInfo` free minus free after the allocations.
    pub device_free_drop_bytes: i64,
    /// Baseline MemAvailable minus MemAvailable after the allocations.
    pub mem_available_drop_bytes: i64,
    /// `device_free_drop_bytes - requested_bytes`.
    pub overhead_bytes: i64,
    /// The overhead as % of the request.
    pub overhead_pct: f64,
    /// What rounding every tensor up to 2 MiB would add.
    pub rounding_2mib_bytes: u64,
}

impl Totals {
    /// From the sizes requested and mapped and the accounting before and after.
    pub fn compute(
        requested: &[u64],
        mapped: &[u64],
        before: &Snapshot,
        after: &Snapshot,
    ) -> Totals {
        let req: u64 = requested.iter().sum();
        let drop = before.device_free as i64 - after.device_free as i64;
        let overhead = drop - req as i64;
        Totals {
            tensors: requested.len() as u64,
            requested_bytes: req,
            mapped_bytes: mapped.iter().sum(),
            device_free_drop_bytes: drop,
            mem_available_drop_bytes: before.mem_available as i64 - after.mem_available as i64,
            overhead_bytes: overhead,
            overhead_pct: if req > 0 {
                100.0 * overhead as f64 / req as f64
            } else {
                0.0
            },
            rounding_2mib_bytes: requested
                .iter()
                .map(|b| b.div_ceil(ROUNDING_2MIB) * ROUNDING_2MIB - b)
                .sum(),
        }
    }

    fn row(&self, device: i32, strategy: Strategy) -> LayoutRow {
        LayoutRow {
            tensors: Some(self.tensors),
            bytes: self.requested_bytes,
            mapped_bytes: Some(self.mapped_bytes),
            device_free_drop_bytes: Some(self.device_free_drop_bytes),
            mem_available_drop_bytes: Some(self.mem_available_drop_bytes),
            overhead_bytes: Some(self.overhead_bytes),
            overhead_pct: Some(self.overhead_pct),
            rounding_2mib_bytes: Some(self.rounding_2mib_bytes),
            ..LayoutRow::new(device, strategy, phase::TOTAL)
        }
    }

    fn from_row(r: &LayoutRow) -> Totals {
        Totals {
            tensors: r.tensors.unwrap_or(0),
            requested_bytes: r.bytes,
            mapped_bytes: r.mapped_bytes.unwrap_or(r.bytes),
            device_free_drop_bytes: r.device_free_drop_bytes.unwrap_or(0),
            mem_available_drop_bytes: r.mem_available_drop_bytes.unwrap_or(0),
            overhead_bytes: r.overhead_bytes.unwrap_or(0),
            overhead_pct: r.overhead_pct.unwrap_or(0.0),
            rounding_2mib_bytes: r.rounding_2mib_bytes.unwrap_or(0),
        }
    }
}

/// The fragmentation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fragmentation {
    pub pattern: String,
    pub freed_tensors: u64,
    pub freed_bytes: u64,
    pub largest_freed_bytes: u64,
    /// `cuMemGetInfo` free and MemAvailable when the search started.
    pub device_free_bytes: u64,
    #[serde(default)]
    pub mem_available_bytes: u64,
    /// The free total: `cuMemGetInfo` free for device and managed memory, MemAvailable for
    /// host memory (`free_total_of` names it).
    #[serde(default)]
    pub free_total_bytes: u64,
    #[serde(default)]
    pub free_total_of: String,
    /// The search's upper bound: the free total within the safety ceiling.
    pub bound_bytes: u64,
    pub resolution_bytes: u64,
    /// The largest single allocation that succeeded.
    pub largest_bytes: u64,
    pub attempts: u32,
    pub reached_bound: bool,
}

impl Fragmentation {
    fn row(&self, device: i32, strategy: Strategy) -> LayoutRow {
        LayoutRow {
            name: Some(self.pattern.clone()),
            tensors: Some(self.freed_tensors),
            freed_bytes: Some(self.freed_bytes),
            largest_freed_bytes: Some(self.largest_freed_bytes),
            device_free_bytes: Some(self.device_free_bytes),
            mem_available_bytes: Some(self.mem_available_bytes),
            free_total_bytes: Some(self.free_total_bytes),
            free_total_of: Some(self.free_total_of.clone()),
            bound_bytes: Some(self.bound_bytes),
            resolution_bytes: Some(self.resolution_bytes),
            bytes: self.largest_bytes,
            attempts: Some(self.attempts),
            reached_bound: Some(self.reached_bound),
            ..LayoutRow::new(device, strategy, phase::FRAGMENTATION)
        }
    }

    fn from_row(r: &LayoutRow) -> Fragmentation {
        Fragmentation {
            pattern: r.name.clone().unwrap_or_default(),
            freed_tensors: r.tensors.unwrap_or(0),
            freed_bytes: r.freed_bytes.unwrap_or(0),
            largest_freed_bytes: r.largest_freed_bytes.unwrap_or(0),
            device_free_bytes: r.device_free_bytes.unwrap_or(0),
            mem_available_bytes: r.mem_available_bytes.unwrap_or(0),
            free_total_bytes: r.free_total_bytes.unwrap_or(0),
            free_total_of: r.free_total_of.clone().unwrap_or_default(),
            bound_bytes: r.bound_bytes.unwrap_or(0),
            resolution_bytes: r.resolution_bytes.unwrap_or(0),
            largest_bytes: r.bytes,
            attempts: r.attempts.unwrap_or(0),
            reached_bound: r.reached_bound.unwrap_or(false),
        }
    }

    /// The largest allocation as % of the free total.
    pub fn largest_pct_of_free(&self) -> f64 {
        // Documents written before `free_total_bytes` existed measured device memory only.
        let total = if self.free_total_bytes > 0 {
            self.free_total_bytes
        } else {
            self.device_free_bytes
        };
        if total == 0 {
            0.0
        } else {
            100.0 * self.largest_bytes as f64 / total as f64
        }
    }
}

/// What the rows of one run say, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LayoutSummary {
    /// Tensors allocated (alloc rows).
    pub allocated: u64,
    /// Tensors freed at the end (cleanup rows) plus those the pattern freed.
    pub freed: u64,
    pub totals: Option<Totals>,
    pub fragmentation: Option<Fragmentation>,
    /// `cuMemGetInfo` free at the baseline and after cleanup.
    pub baseline_device_free_bytes: Option<u64>,
    pub after_cleanup_device_free_bytes: Option<u64>,
    /// Baseline free minus free after cleanup: what the run left behind (noise aside).
    pub residual_bytes: Option<i64>,
}

/// Reads the typed summary back from the rows (of a run, or of a result file).
pub fn summarize(rows: &[LayoutRow]) -> LayoutSummary {
    let count = |ph: &str| rows.iter().filter(|r| r.phase == ph).count() as u64;
    let snap = |m: &str| {
        rows.iter()
            .find(|r| r.phase == phase::SNAPSHOT && r.name.as_deref() == Some(m))
            .and_then(|r| r.device_free_bytes)
    };
    let base = snap(moment::BASELINE);
    let end = snap(moment::AFTER_CLEANUP);
    LayoutSummary {
        allocated: count(phase::ALLOC),
        freed: count(phase::FREE) + count(phase::CLEANUP),
        totals: rows
            .iter()
            .find(|r| r.phase == phase::TOTAL)
            .map(Totals::from_row),
        fragmentation: rows
            .iter()
            .find(|r| r.phase == phase::FRAGMENTATION)
            .map(Fragmentation::from_row),
        baseline_device_free_bytes: base,
        after_cleanup_device_free_bytes: end,
        residual_bytes: match (base, end) {
            (Some(b), Some(e)) => Some(b as i64 - e as i64),
            _ => None,
        },
    }
}

/// A finished run, for callers that want it in memory (`lab`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutReport {
    pub rows: Vec<LayoutRow>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
    pub summary: LayoutSummary,
    /// Ctrl-C or SIGTERM arrived: everything was freed and the rows so far are here.
    pub interrupted: bool,
}

/// The result document of `layout`.
pub type LayoutDoc = Document<LayoutRow, Environment>;

/// One live tensor.
struct Held {
    index: usize,
    alloc: Box<dyn Allocation>,
}

fn budget(gpu: &Gpu, headroom: u64) -> Result<Budget> {
    let m = MemInfo::read().map_err(Error::Failed)?;
    Ok(Budget {
        unified: gpu.arch.is_unified(),
        device_free: gpu.free_bytes()?,
        mem_available: m.mem_available,
        headroom,
    })
}

/// The bytes the layout will take with `strategy`: `vmm` rounds each tensor up to the
/// granularity, the others are counted as requested.
fn footprint(gpu: &Gpu, opts: &LayoutOptions) -> Result<u64> {
    let g = if opts.strategy == Strategy::Vmm {
        crate::memory::vmm::granularity(&gpu.ctx)?
    } else {
        1
    };
    Ok(opts
        .layout
        .tensors
        .iter()
        .fold(0u64, |a, t| a.saturating_add(t.bytes.div_ceil(g) * g)))
}

/// Checks the whole layout against the safety ceiling before anything is allocated: Err(Usage)
/// with one sentence when it does not fit, Ok(Some(warning)) when `--force` overrides.
pub fn preflight(gpu: &Gpu, opts: &LayoutOptions) -> Result<Option<String>> {
    let total = footprint(gpu, opts)?;
    let b = budget(gpu, opts.headroom)?;
    match b.check_forced(opts.strategy, total, opts.force) {
        Ok(Forced::Allowed) => Ok(None),
        Ok(Forced::Warn(why)) => Ok(Some(format!(
            "WARNING: --force: {} ({} tensors): {why}; allocating anyway",
            opts.layout.source,
            opts.layout.tensors.len()
        ))),
        Err(why) => Err(Error::usage(format!(
            "{} ({} tensors, {:.2} GB): {why}; nothing was allocated: choose a smaller layout or precision, or pass --force",
            opts.layout.source,
            opts.layout.tensors.len(),
            total as f64 / GB as f64
        ))),
    }
}

/// Runs the layout on `gpu`, streaming rows into `sink`. Whatever happens (an error, Ctrl-C),
/// every tensor is freed before it returns; on Ctrl-C it returns `Err(Interrupted)` after
/// writing the rows so far. An unsupported strategy is recorded as skipped.
pub fn run<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let st = opts.strategy;
    if let Err(reason) = st.supported(&gpu.attrs) {
        return sink.skip(format!(
            "device {dev} {st}: {}: not supported: {reason}",
            opts.layout.source
        ));
    }
    if let Some(w) = preflight(gpu, opts)? {
        crate::report::diag::warn(&w);
        sink.doc.notes.push(w);
    }
    let mut held: Vec<Held> = Vec::new();
    let r = phases(gpu, opts, sink, &mut held);
    let c = cleanup(gpu, opts, sink, &mut held);
    let _ = crate::memory::trim_default_pool(&gpu.ctx);
    let s = Snapshot::take(gpu)
        .and_then(|s| sink.push(LayoutRow::snapshot(dev, st, moment::AFTER_CLEANUP, &s)));
    r.and(c).and(s)
}

/// Runs the layout and returns the rows in memory. Ctrl-C is not an error here: the report
/// comes back with `interrupted` set (everything freed).
pub fn measure(gpu: &Gpu, opts: &LayoutOptions) -> Result<LayoutReport> {
    let mut sink: ResultSink<LayoutRow, ()> = ResultSink::new("layout", (), None)?;
    sink.doc.notes.extend(opts.layout.notes.iter().cloned());
    let r = run(gpu, opts, &mut sink);
    let was_interrupted = matches!(r, Err(Error::Interrupted));
    if !was_interrupted {
        r?;
    }
    let summary = summarize(&sink.doc.rows);
    let mut notes = sink.doc.notes;
    notes.extend(findings(&sink.doc.rows));
    Ok(LayoutReport {
        summary,
        rows: sink.doc.rows,
        skipped: sink.doc.skipped,
        notes,
        interrupted: was_interrupted,
    })
}

/// Populates one allocation the way the options ask: prefetch (`managed+prefetch`), touch.
fn populate(
    gpu: &Gpu,
    opts: &LayoutOptions,
    a: &dyn Allocation,
) -> Result<(Option<f64>, Option<f64>)> {
    let prefetch = if opts.strategy == Strategy::ManagedPrefetch {
        Some(prefetch_to_device(&gpu.stream, a.device_ptr(), a.bytes())?)
    } else {
        None
    };
    let touch = if opts.touch && a.writable() {
        let stride = crate::host::facts::page_size();
        Some(
            gpu.kernels
                .touch(&gpu.stream, a.device_ptr(), a.bytes(), stride, 0x5a5a_5a5a)?,
        )
    } else {
        None
    };
    Ok((prefetch, touch))
}

fn phases<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    held: &mut Vec<Held>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let st = opts.strategy;
    let tensors = &opts.layout.tensors;
    let n = tensors.len();
    let baseline = Snapshot::take(gpu)?;
    sink.push(LayoutRow::snapshot(dev, st, moment::BASELINE, &baseline))?;

    // 1. alloc, in layout order.
    let progress = Progress::new(n as u64, opts.quiet);
    for (i, t) in tensors.iter().enumerate() {
        check_interrupt()?;
        progress.message(format!("{st}: {} ({})", t.name, fmt_bytes(t.bytes)));
        let rest = n - i - 1;
        let unallocated = if rest > 0 {
            format!("it and the {rest} after it were not allocated")
        } else {
            "it was not allocated".to_string()
        };
        match budget(gpu, opts.headroom)?.check_forced(st, t.bytes, opts.force) {
            Ok(Forced::Allowed) => {}
            Ok(Forced::Warn(why)) => {
                progress.warn(format!(
                    "WARNING: --force: tensor {i} `{}`: {why}; allocating anyway",
                    t.name
                ));
            }
            Err(why) => {
                sink.skip(format!(
                    "tensor {i} `{}` ({}): refused: {why}; {unallocated}{}",
                    t.name,
                    fmt_bytes(t.bytes),
                    if opts.force {
                        ""
                    } else {
                        " (use --force to override)"
                    }
                ))?;
                break;
            }
        }
        let clock = Instant::now();
        let a = match allocate(&gpu.ctx, &gpu.stream, st, t.bytes, &opts.alloc) {
            Ok(a) => a,
            Err(e) if e.is_out_of_memory() => {
                sink.skip(format!(
                    "tensor {i} `{}` ({}): out of memory after {} tensors: {e}; {unallocated}",
                    t.name,
                    fmt_bytes(t.bytes),
                    held.len()
                ))?;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let alloc_ms = clock.elapsed().as_secs_f64() * 1e3;
        let steps = a.alloc_steps().to_vec();
        let mapped = a.mapped_bytes();
        held.push(Held { index: i, alloc: a });
        let (prefetch_ms, touch_ms) = match held.last() {
            Some(h) => populate(gpu, opts, h.alloc.as_ref())?,
            None => (None, None),
        };
        let note = (steps.len() > 1).then(|| {
            steps
                .iter()
                .map(|s| format!("{} {:.3} ms", s.name, s.ms))
                .collect::<Vec<_>>()
                .join("; ")
        });
        sink.push(LayoutRow {
            index: Some(i as u64),
            name: Some(t.name.clone()),
            component: Some(t.component.clone()),
            dtype: t.dtype.map(|d| d.name().to_string()),
            elements: t.elements,
            bytes: t.bytes,
            mapped_bytes: Some(mapped),
            alloc_ms: Some(alloc_ms),
            prefetch_ms,
            touch_ms,
            note,
            ..LayoutRow::new(dev, st, phase::ALLOC)
        })?;
        progress.inc();
    }
    progress.finish();

    // 2. totals.
    let after = Snapshot::take(gpu)?;
    sink.push(LayoutRow::snapshot(dev, st, moment::AFTER_ALLOC, &after))?;
    let requested: Vec<u64> = held.iter().map(|h| h.alloc.bytes()).collect();
    let mapped: Vec<u64> = held.iter().map(|h| h.alloc.mapped_bytes()).collect();
    sink.push(Totals::compute(&requested, &mapped, &baseline, &after).row(dev, st))?;

    // 3. fragmentation: free the pattern, then the largest single allocation that succeeds.
    if opts.free_pattern == FreePattern::None || held.is_empty() {
        return Ok(());
    }
    check_interrupt()?;
    let pick = opts.free_pattern.select(&requested);
    let mut kept = Vec::with_capacity(held.len());
    let mut freeing = Vec::with_capacity(pick.len());
    for (k, h) in held.drain(..).enumerate() {
        if pick.binary_search(&k).is_ok() {
            freeing.push(h);
        } else {
            kept.push(h);
        }
    }
    *held = kept;
    let (mut freed_bytes, mut largest_freed, freed_tensors) = (0u64, 0u64, freeing.len() as u64);
    // Free in layout order. On an early return, what is left of `freeing` is dropped, which
    // frees it (RAII), and `held` goes to the cleanup.
    for h in freeing {
        let t = &tensors[h.index];
        let bytes = h.alloc.bytes();
        let clock = Instant::now();
        h.alloc.free()?;
        let free_ms = clock.elapsed().as_secs_f64() * 1e3;
        freed_bytes += bytes;
        largest_freed = largest_freed.max(bytes);
        sink.push(LayoutRow {
            index: Some(h.index as u64),
            name: Some(t.name.clone()),
            component: Some(t.component.clone()),
            bytes,
            free_ms: Some(free_ms),
            ..LayoutRow::new(dev, st, phase::FREE)
        })?;
    }
    let mid = Snapshot::take(gpu)?;
    sink.push(LayoutRow::snapshot(
        dev,
        st,
        moment::AFTER_PATTERN_FREE,
        &mid,
    ))?;
    check_interrupt()?;
    // Host memory is bounded by MemAvailable (less the headroom), everything else by the free
    // memory the driver reports (less, on unified memory, what the headroom leaves).
    let ceiling = budget(gpu, opts.headroom)?.ceiling(st);
    let host = st.info().backing == Backing::Host;
    let (free_total, free_total_of) = if host {
        (mid.mem_available, "MemAvailable")
    } else {
        (mid.device_free, "cuMemGetInfo free")
    };
    let bound = free_total.min(ceiling);
    if !opts.quiet {
        eprintln!(
            "searching for the largest single {st} allocation up to {} (resolution {})",
            fmt_bytes(bound),
            fmt_bytes(opts.resolution)
        );
    }
    let search = largest_fitting(bound, opts.resolution, |bytes| {
        probe(gpu, opts, sink, bytes)
    })?;
    sink.push(
        Fragmentation {
            pattern: opts.free_pattern.name(),
            freed_tensors,
            freed_bytes,
            largest_freed_bytes: largest_freed,
            device_free_bytes: mid.device_free,
            mem_available_bytes: mid.mem_available,
            free_total_bytes: free_total,
            free_total_of: free_total_of.to_string(),
            bound_bytes: bound,
            resolution_bytes: opts.resolution,
            largest_bytes: search.largest_bytes,
            attempts: search.attempts,
            reached_bound: search.reached_bound,
        }
        .row(dev, st),
    )?;
    Ok(())
}

/// One attempt of the search: allocate `bytes` (and populate it as the options ask), free it.
fn probe<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    bytes: u64,
) -> Result<bool> {
    check_interrupt()?;
    let dev = gpu.device.ordinal();
    let clock = Instant::now();
    let mut row = LayoutRow {
        bytes,
        ..LayoutRow::new(dev, opts.strategy, phase::PROBE)
    };
    let ok = match allocate(&gpu.ctx, &gpu.stream, opts.strategy, bytes, &opts.alloc) {
        Ok(a) => {
            row.alloc_ms = Some(clock.elapsed().as_secs_f64() * 1e3);
            match populate(gpu, opts, a.as_ref()) {
                Ok((p, t)) => {
                    row.prefetch_ms = p;
                    row.touch_ms = t;
                }
                Err(Error::Driver(e)) if e.is_out_of_memory() => {
                    row.note = Some(format!("allocated, but populating it failed: {e}"));
                    row.ok = Some(false);
                }
                Err(e) => return Err(e),
            }
            a.free()?;
            row.ok.is_none()
        }
        Err(e) if e.is_out_of_memory() => {
            row.note = Some(e.to_string());
            false
        }
        Err(e) => return Err(e.into()),
    };
    row.ok = Some(ok);
    sink.push(row)?;
    Ok(ok)
}

/// Frees everything still held, in layout order, timing each; keeps going past a failure and
/// returns the first.
fn cleanup<E: Serialize + Clone>(
    gpu: &Gpu,
    opts: &LayoutOptions,
    sink: &mut ResultSink<LayoutRow, E>,
    held: &mut Vec<Held>,
) -> Result<()> {
    let dev = gpu.device.ordinal();
    let mut first: Option<Error> = None;
    for h in held.drain(..) {
        let bytes = h.alloc.bytes();
        let clock = Instant::now();
        match h.alloc.free() {
            Ok(_) => {
                let row = LayoutRow {
                    index: Some(h.index as u64),
                    name: opts.layout.tensors.get(h.index).map(|t| t.name.clone()),
                    bytes,
                    free_ms: Some(clock.elapsed().as_secs_f64() * 1e3),
                    ..LayoutRow::new(dev, opts.strategy, phase::CLEANUP)
                };
                if let Err(e) = sink.push(row) {
                    first.get_or_insert(e);
                }
            }
            Err(e) => {
                first.get_or_insert(e.into());
            }
        }
    }
    first.map_or(Ok(()), Err)
}

// ---------------------------------------------------------------- command line

/// `cumemlab layout` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  cumemlab layout --preset 13b-sim\n  cumemlab layout --model llama-3.1-8b --precision bf16 --context 8192 --out layout.json\n  cumemlab layout --spec tensors.toml --strategy vmm --free random:42\n  cumemlab layout --model qwen2.5-7b --precision fp8 --strategy managed --touch --free largest\n  cumemlab layout --model llama-3.1-70b --precision nvfp4 --dry-run\n\nSpec files (.toml or .json): TOML lists [[tensor]] tables; JSON is {\"tensors\": [...]}\nor a bare array. Each tensor has a name, a size (a string with a unit: \"512MiB\", \"2GB\"),\nan optional count (copies named NAME.0, NAME.1, ...) and an optional dtype (fp32, tf32,\nfp16, bf16, fp8, fp8-e5m2, int8, int4, nvfp4, mxfp4, nf4). GB = 1e9 bytes, GiB = 2^30 bytes."
)]
pub struct LayoutArgs {
    /// A built-in layout: 13b-sim (embeddings 2 GB, attention 8 GB, feedforward 10 GB, layer norms 0.5 GB, output head 1 GB, activations 4 GB; GB = 1e9 bytes).
    #[arg(long, conflicts_with_all = ["model", "config", "spec"])]
    pub preset: Option<String>,
    /// A model from the planner's table (as `plan --model`): one tensor per layer component per layer (attn.qkv, attn.o, mlp.gate_up, mlp.down, norms), embeddings, lm head, and a KV cache per layer.
    #[arg(long, conflicts_with_all = ["config", "spec"])]
    pub model: Option<String>,
    /// A Hugging Face config.json (as `plan --config`), laid out like --model.
    #[arg(long, conflicts_with = "spec")]
    pub config: Option<PathBuf>,
    /// A spec file (.toml or .json) listing the tensors (see below).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// --model/--config: weight precision (fp32, tf32, fp16, bf16, fp8, fp8-e5m2, int8, int4, nvfp4, mxfp4, nf4). Default bf16.
    #[arg(long, value_parser = parse_precision)]
    pub precision: Option<Precision>,
    /// --model/--config: KV cache tokens per sequence. Default 8192.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=CONTEXT_SEARCH_CAP))]
    pub context: Option<u64>,
    /// --model/--config: sequences the KV cache holds. Default 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=BATCH_SEARCH_CAP))]
    pub batch: Option<u64>,
    /// --model/--config: KV cache precision. Default fp16.
    #[arg(long, value_parser = parse_precision)]
    pub kv_dtype: Option<Precision>,
    /// --model/--config: weights only, no KV cache.
    #[arg(long, conflicts_with_all = ["context", "batch", "kv_dtype"])]
    pub no_kv_cache: bool,
    /// The allocation strategy (one key: device, managed, managed+prefetch, managed+advise, pinned, registered, pageable, pool, vmm).
    #[arg(long, default_value = "device", value_parser = Strategy::parse)]
    pub strategy: Strategy,
    /// Which tensors the fragmentation test frees: every-other (odd positions), largest, random:SEED (a seeded random half), or none (no test).
    #[arg(long, default_value = "every-other", value_parser = FreePattern::parse)]
    pub free: FreePattern,
    /// Resolution of the largest-allocation search.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub resolution: u64,
    /// Run the GPU touch kernel over each tensor after allocating it (managed memory takes memory only when touched).
    #[arg(long)]
    pub touch: bool,
    /// Device ordinal.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub device: i32,
    /// Memory that must stay available to the host (MemAvailable minus this is the ceiling).
    #[arg(long, default_value = "8GiB", value_parser = parse_size)]
    pub headroom: u64,
    /// Allocate past the safety ceiling (prints a warning). Can wedge a unified-memory host.
    #[arg(long)]
    pub force: bool,
    /// Print the tensors and their total, then stop (no GPU needed).
    #[arg(long, conflicts_with = "out")]
    pub dry_run: bool,
    /// --json, --csv and --out (with --dry-run, --json and --csv print the tensors).
    #[command(flatten)]
    pub output: crate::cli::OutputArgs,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).map_err(|e| e.to_string())
}

/// The layout the arguments name (pure: no GPU), or one sentence saying what is wrong.
pub fn layout_from_args(args: &LayoutArgs) -> Result<Layout> {
    let model_only: Vec<&str> = [
        args.precision.map(|_| "--precision"),
        args.context.map(|_| "--context"),
        args.batch.map(|_| "--batch"),
        args.kv_dtype.map(|_| "--kv-dtype"),
        args.no_kv_cache.then_some("--no-kv-cache"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let from_model = args.model.is_some() || args.config.is_some();
    if !from_model && !model_only.is_empty() {
        return Err(Error::usage(format!(
            "{} appl{} to --model and --config only: a preset or spec file gives its own sizes",
            model_only.join(" and "),
            if model_only.len() == 1 { "ies" } else { "y" }
        )));
    }
    let kv = (!args.no_kv_cache).then(|| KvCache {
        context: args.context.unwrap_or(crate::plan::DEFAULT_CONTEXT),
        batch: args.batch.unwrap_or(crate::plan::DEFAULT_BATCH),
        dtype: args.kv_dtype.unwrap_or(crate::plan::DEFAULT_KV_DTYPE),
    });
    let precision = args.precision.unwrap_or(Precision::Bf16);
    if let Some(p) = &args.preset {
        return preset(p).map_err(Error::usage);
    }
    if let Some(m) = &args.model {
        let spec = crate::plan::find_model(m).map_err(|e| Error::usage(e.to_string()))?;
        return Ok(from_architecture(&spec.architecture(), precision, kv));
    }
    if let Some(path) = &args.config {
        let loaded = crate::plan::load_config(path).map_err(|e| Error::usage(e.to_string()))?;
        // The same cap as a spec file, checked before any tensor is listed: per layer at most
        // the norms, four or five projections and a KV cache tensor; plus four model-wide.
        let a = &loaded.arch;
        let per_layer = a.norms_per_layer + 6;
        if a.layers.saturating_mul(per_layer).saturating_add(4) > spec::MAX_TENSORS {
            return Err(Error::usage(format!(
                "--config {}: {} layers make up to {} tensors, and a layout holds at most {}: check num_hidden_layers",
                path.display(),
                a.layers,
                a.layers.saturating_mul(per_layer),
                spec::MAX_TENSORS
            )));
        }
        let mut l = from_architecture(&loaded.arch, precision, kv);
        l.source = format!("config {} at {precision}", path.display());
        l.notes.extend(loaded.notes);
        return Ok(l);
    }
    if let Some(path) = &args.spec {
        return read_spec(path).map_err(Error::usage);
    }
    Err(Error::usage(
        "layout needs tensors: give --preset 13b-sim, --model llama-3.1-8b (with --precision), --config config.json or --spec FILE",
    ))
}

/// Runs `layout` from the command line.
pub fn main(args: LayoutArgs) -> Result<()> {
    let layout = layout_from_args(&args)?;
    if args.dry_run {
        if args.output.json {
            crate::report::sink::print_stdout(to_json(&layout)?)?;
        } else if args.output.csv {
            crate::report::sink::print_stdout(to_csv(&layout.tensors)?)?;
        } else {
            crate::report::sink::print_stdout(render_layout(&layout))?;
        }
        return Ok(());
    }
    if let Some(out) = &args.output.out {
        crate::report::sink::check_writable(out)?;
    }
    let drv = require_driver()?;
    let gpu = Gpu::open(&drv, args.device)?;
    let opts = LayoutOptions {
        layout,
        strategy: args.strategy,
        free_pattern: args.free,
        resolution: args.resolution,
        touch: args.touch,
        headroom: args.headroom,
        force: args.force,
        alloc: AllocOptions::default(),
        quiet: args.quiet || args.output.json || args.output.csv,
    };
    // Refuse an oversized layout before any file is written.
    if args.strategy.supported(&gpu.attrs).is_ok() {
        preflight(&gpu, &opts)?;
    }
    let env = Environment::collect(Some(&[args.device]));
    let mut sink = ResultSink::new("layout", env, args.output.out.as_deref())?;
    sink.doc.notes.push(format!(
        "{}: {} tensors, {:.3} GB (1e9), strategy {}, free pattern {}",
        opts.layout.source,
        opts.layout.tensors.len(),
        opts.layout.total_bytes() as f64 / GB as f64,
        opts.strategy,
        opts.free_pattern.name()
    ));
    sink.doc.notes.extend(opts.layout.notes.iter().cloned());
    let t = Instant::now();
    let result = run(&gpu, &opts, &mut sink);
    let was_interrupted = matches!(result, Err(Error::Interrupted)) || interrupted();
    let f = findings(&sink.doc.rows);
    sink.doc.notes.extend(f);
    sink.finish_run(&result, was_interrupted)?;
    if args.output.json {
        crate::report::sink::print_stdout(to_json(&sink.doc)?)?;
    } else if args.output.csv {
        crate::report::sink::print_stdout(to_csv(&sink.doc.rows)?)?;
    } else {
        crate::report::sink::print_stdout(format!(
            "{}layout took {:.1} s\n",
            render(&sink.doc),
            t.elapsed().as_secs_f64()
        ))?;
    }
    if was_interrupted {
        return Err(Error::Interrupted);
    }
    result
}

#[cfg(test)]
mod tests;
