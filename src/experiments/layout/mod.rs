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
//! Rows ([`LayoutRow`], typed by phase in [`row`]) stream into a `ResultSink`; the totals and the
//! fragmentation result are rows too, read back by [`summarize`] ([`summary`]). [`run`] and
//! [`measure`] ([`run`](mod@run)) are the library entry points (for `lab`); [`main`] ([`cli`]) is
//! the command; [`render`](mod@render) writes the tables. This file keeps the options, the free
//! patterns and the largest-allocation search, which the others import.

mod cli;
pub mod preset;
mod render;
mod row;
mod run;
pub mod spec;
mod summary;

use rand::SeedableRng;
use rand::seq::SliceRandom;

pub use cli::{LayoutArgs, layout_from_args, main};
pub use preset::{KvCache, Layout, PRESETS, TensorSpec, from_architecture, preset};
pub use render::{findings, render, render_layout};
pub use row::{
    AllocRow, FlatRow, FreedRow, LayoutRow, Moment, Phase, ProbeRow, RowData, SnapshotRow,
};
pub use run::{measure, preflight, run};
pub use spec::{SpecFormat, parse_spec, read_spec};
pub use summary::{Fragmentation, LayoutReport, LayoutSummary, ROUNDING_2MIB, Totals, summarize};

use super::env::Environment;
use crate::error::Result;
use crate::memory::safety::DEFAULT_HEADROOM;
use crate::memory::{AllocOptions, Strategy};
use crate::report::Document;
use crate::units::MIB;

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

/// The result document of `layout`.
pub type LayoutDoc = Document<LayoutRow, Environment>;

#[cfg(test)]
mod tests;
