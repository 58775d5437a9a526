//! The answer first: one "what memory costs on this machine" table, per device, computed from a
//! lab's results (sweep rows, probe rows, selftest, `info`'s strategy support) or from a sweep
//! alone. It opens `report.md`/`report.html`, ends the terminal output of `lab` and `sweep`, and
//! is the first table of `compare` (one column per machine, with ratios).
//!
//! One row per strategy the sweep measured on the device; strategies the device does not support
//! are listed under the table, one line each with the reason. Columns, all per GiB (GiB = 2^30
//! bytes, GB/s = 1e9 bytes per second) so that machines and sizes compare:
//!
//! - **allocation**: an ordinary least-squares fit of the `alloc` time (median, ms) against the
//!   size (GiB) over every size the strategy ran: the slope is the cost per GiB (± its standard
//!   error when there are at least 3 sizes), the intercept the fixed part (ms). With one size only
//!   the cost per GiB is that size's time over its size and there is no fixed part.
//! - **GPU first touch**, at the largest size the strategy ran: the first touch minus the warm
//!   (second) touch, per GiB. "Populated at allocation" when the first touch is not clearly slower
//!   than the second (the extra is at most half of the first touch, or at most 1 ms: the rule of
//!   the sweep's findings); "populated by prefetch" with the prefetch's ms/GiB when the strategy
//!   prefetches (`managed+prefetch`).
//! - **CPU first touch**, at the largest size with a CPU-first figure (the lab caps that variant
//!   below the largest size): the touch time per GiB ("not host-accessible" for strategies the
//!   CPU cannot reach, "not measured" for host-accessible ones without a figure). A negative
//!   allocation intercept is printed as it came out, labelled a fit artefact.
//! - **fill** and **read**: median GB/s at the same size and their percentage of the in-run device
//!   ceiling: `cuMemsetD32` on `device` memory at that size in the sweep, else the selftest's
//!   `cuMemsetD32`, else the `device` fill at that size (the caption says which).
//! - **largest single allocation**: the probe's `single` figure, GiB and % of the `cuMemGetInfo`
//!   free taken before it; `>=` when the search stopped at a ceiling or cap rather than an
//!   out-of-memory failure (a lower bound).
//!
//! Spreads: min–max of the row's samples (`ms_min`/`ms_max`), with n = `runs`: one-shot phases
//! have one sample per fresh allocation (`sweep --repeat`), fill and read every run on every
//! allocation; the fill/read range is the GB/s at the slowest and fastest run.
//!
//! The sentence column is part of [`Headline::table`]; the report, the terminal and `compare`
//! print it as one line per strategy under the table (nine columns do not fit a page).
//!
//! **"Use it when"** is derived from the numbers of the device's rows, clause by clause (every
//! clause carries the number it rests on; a different measurement gives a different sentence):
//! 1. the lowest allocation cost per GiB of all rows (a negative slope counts as zero; only a fit
//!    of 3 sizes or more, which has a standard error): "allocations must be cheapest", naming the
//!    rows whose slope ± SE overlaps it as indistinguishable; otherwise, at 100 ms/GiB or more:
//!    "it is allocated once and reused".
//! 2. first GPU touch: populated by prefetch: "you prefetch before the GPU uses it"; populated on
//!    touch: "you can pay X ms/GiB at the first GPU touch"; populated at allocation: "the GPU
//!    needs it ready at its first touch".
//! 3. reachable by the CPU: "the CPU reads or writes it too" with its first-touch cost, and
//!    "the fastest here" when it is the lowest of the rows (with n, and the rows whose min–max
//!    overlaps it).
//! 4. fill or read at or above 90% of the ceiling: "the GPU needs full bandwidth"; both below:
//!    "GPU traffic to it is light"; both percentages are printed.
//! 5. the largest single allocation of the probed rows: "one allocation must be as large as
//!    possible", naming the rows within one probe step of it, and saying when the figure is a
//!    lower bound (the probe stopped at a ceiling, not at a failure).
//!
//! Percentages compared with a threshold are printed by [`crate::units::pct_vs`] with as many digits as it
//! takes for the printed number to sit on the same side of the threshold as the unrounded one, so
//! a sentence can never read "95.0%, below 95%".
//!
//! The least-squares fit is a few lines written here: a statistics crate for one slope, one
//! intercept and one standard error would be a dependency for less code than its import.
//!
//! It sits with the experiments (not in `report`) because it reads their rows: `report` stays
//! below the experiments. The tables and sentences are in `render`. May import: the experiments
//! whose rows it reads (sweep, probe, selftest, info, lab's results), `report`, `memory`, `units`.

use serde::Serialize;

use crate::experiments::info::StrategySupport;
use crate::experiments::probe::{ProbeKind, ProbeRow, StopReason};
use crate::experiments::selftest::SelftestReport;
use crate::experiments::sweep::{SweepRow, find, phase};
use crate::memory::Strategy;
use crate::report::markdown::{Block, Page};
use crate::units::fmt_bytes;
pub use crate::units::{pct_vs, sig};

mod render;
use render::use_when;
pub use render::{cells, compare_table, header, lift, render_all};

/// Bandwidth at or above this share of the ceiling counts as full device bandwidth (rule 4).
pub const FULL_BANDWIDTH_PCT: f64 = 90.0;
/// Allocation at or above this cost counts as "allocate once" (rule 1).
pub const SLOW_ALLOC_MS_PER_GIB: f64 = 100.0;

/// A measured value with its spread: min–max of `n` runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measure {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: u32,
}

/// Allocation cost: least-squares slope and intercept of alloc ms against GiB.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AllocFit {
    pub ms_per_gib: f64,
    /// Standard error of the slope (3 sizes or more).
    pub ms_per_gib_se: Option<f64>,
    /// The intercept (2 sizes or more).
    pub fixed_ms: Option<f64>,
    pub sizes: usize,
}

/// What the first GPU touch costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum GpuTouch {
    /// First touch no slower than the second (within the rule of the module doc).
    AtAllocation,
    /// `cuMemPrefetchAsync` populated it before the first touch: its ms/GiB.
    ByPrefetch(Measure),
    /// Population or migration on first touch: (first - second) ms/GiB.
    OnTouch(Measure),
}

/// The probe's largest single allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Largest {
    Probed {
        bytes: u64,
        free_bytes: u64,
        /// The probe's resolution.
        step_bytes: u64,
        /// Stopped at a ceiling or cap, not at an out-of-memory failure.
        lower_bound: bool,
        stop: String,
    },
    /// Why there is no figure.
    NotProbed(String),
}

/// The reference for bandwidth percentages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ceiling {
    pub gbps: f64,
    /// "cuMemsetD32 at 34.8 GiB", "cuMemsetD32 at 4 GiB (selftest)" or "device fill at 34.8 GiB".
    pub what: String,
}

/// One strategy's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub strategy: String,
    /// The size of the per-size figures (the largest the strategy ran).
    pub bytes: u64,
    pub alloc: Option<AllocFit>,
    pub gpu_touch: Option<GpuTouch>,
    /// ms/GiB, at `cpu_bytes`: the largest size with a CPU-first figure (the lab caps the
    /// CPU-first variant below the largest size).
    pub cpu_touch: Option<Measure>,
    pub cpu_bytes: u64,
    /// Whether the CPU can reach the strategy's memory (no CPU figure then means "not measured",
    /// not "not host-accessible").
    pub host_accessible: bool,
    /// GB/s.
    pub fill: Option<Measure>,
    pub read: Option<Measure>,
    pub largest: Largest,
    pub use_when: String,
}

/// The table of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    pub device: i32,
    pub device_name: String,
    pub ceiling: Option<Ceiling>,
    pub rows: Vec<Row>,
    /// "strategy: reason", one per strategy not measured.
    pub skipped: Vec<String>,
}

/// What a headline is computed from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub rows: &'a [SweepRow],
    /// `None`: the probe did not run (a sweep alone).
    pub probe: Option<&'a [ProbeRow]>,
    pub selftest: &'a [SelftestReport],
    pub support: &'a [StrategySupport],
    /// The sweep's `skipped` lines (`device D strategy@size: reason`).
    pub skipped: &'a [String],
}

/// The headline of every device of a sweep document (no probe: the column says so).
pub fn from_sweep(doc: &crate::experiments::sweep::SweepDoc) -> Vec<Headline> {
    let inp = Inputs {
        rows: &doc.rows,
        skipped: &doc.skipped,
        ..Default::default()
    };
    let mut devs: Vec<i32> = doc.rows.iter().map(|r| r.device).collect();
    devs.sort_unstable();
    devs.dedup();
    devs.into_iter()
        .map(|d| {
            let name = doc
                .environment
                .devices
                .iter()
                .find(|x| x.ordinal == d)
                .map_or("?".to_string(), |x| x.name.clone());
            build(&inp, d, &name)
        })
        .collect()
}

use crate::units::gib_of;

/// A row's time per GiB, with its spread.
fn ms_per_gib(r: &SweepRow) -> Measure {
    let g = gib_of(r.bytes);
    Measure {
        value: r.ms_median / g,
        lo: r.ms_min / g,
        hi: r.ms_max / g,
        n: r.runs,
    }
}

/// A row's GB/s, with the GB/s of its slowest and fastest run.
fn gbps_of(r: &SweepRow) -> Option<Measure> {
    crate::experiments::sweep::gbps_spread(r).map(|s| Measure {
        value: s.median,
        lo: s.min,
        hi: s.max,
        n: s.runs,
    })
}

/// Ordinary least squares of y against x: (slope, intercept, standard error of the slope).
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64, Option<f64>)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let se = (points.len() >= 3).then(|| {
        let ssr: f64 = points
            .iter()
            .map(|p| (p.1 - intercept - slope * p.0).powi(2))
            .sum();
        (ssr / (n - 2.0) / sxx).sqrt()
    });
    Some((slope, intercept, se))
}

fn alloc_fit(rows: &[SweepRow], dev: i32, st: &str) -> Option<AllocFit> {
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.device == dev && r.strategy == st && r.phase == phase::ALLOC)
        .map(|r| (gib_of(r.bytes), r.ms_median))
        .collect();
    match least_squares(&pts) {
        Some((slope, fixed, se)) => Some(AllocFit {
            ms_per_gib: slope,
            ms_per_gib_se: se,
            fixed_ms: Some(fixed),
            sizes: pts.len(),
        }),
        None => pts.first().map(|p| AllocFit {
            ms_per_gib: p.1 / p.0,
            ms_per_gib_se: None,
            fixed_ms: None,
            sizes: pts.len(),
        }),
    }
}

fn gpu_touch(rows: &[SweepRow], dev: i32, st: &str, big: u64) -> Option<GpuTouch> {
    if let Some(p) = find(rows, dev, st, big, phase::PREFETCH) {
        return Some(GpuTouch::ByPrefetch(ms_per_gib(p)));
    }
    let first = find(rows, dev, st, big, phase::GPU_FIRST_TOUCH)?;
    let second = find(rows, dev, st, big, phase::GPU_SECOND_TOUCH)?;
    let extra = first.ms_median - second.ms_median;
    if extra > 0.5 * first.ms_median && extra > 1.0 {
        let g = gib_of(big);
        Some(GpuTouch::OnTouch(Measure {
            value: extra / g,
            lo: (first.ms_min - second.ms_max) / g,
            hi: (first.ms_max - second.ms_min) / g,
            n: first.runs.min(second.runs),
        }))
    } else {
        Some(GpuTouch::AtAllocation)
    }
}

/// The ceiling at `big`: sweep memset there, else the selftest's memset, else device fill there.
fn ceiling(inp: &Inputs, dev: i32, big: u64) -> Option<Ceiling> {
    if let Some(v) = find(inp.rows, dev, "device", big, phase::MEMSET_BASELINE).and_then(|r| r.gbps)
    {
        return Some(Ceiling {
            gbps: v,
            what: format!("cuMemsetD32 at {}", fmt_bytes(big)),
        });
    }
    if let Some(b) = inp
        .selftest
        .iter()
        .filter(|s| s.device == dev)
        .flat_map(|s| s.bandwidth.iter())
        .find(|b| b.op == "cuMemsetD32")
    {
        return Some(Ceiling {
            gbps: b.gbps.median,
            what: format!("cuMemsetD32 at {} (selftest)", fmt_bytes(b.bytes)),
        });
    }
    find(inp.rows, dev, "device", big, phase::FILL)
        .and_then(|r| r.gbps)
        .map(|v| Ceiling {
            gbps: v,
            what: format!("device fill at {}", fmt_bytes(big)),
        })
}

fn largest(inp: &Inputs, dev: i32, st: &str) -> Largest {
    let Some(probe) = inp.probe else {
        return Largest::NotProbed("no probe in these results (a sweep alone)".into());
    };
    match probe
        .iter()
        .find(|p| p.device == dev && p.strategy == st && p.kind == ProbeKind::Single)
    {
        Some(p) => Largest::Probed {
            bytes: p.max_bytes,
            free_bytes: p.device_free_bytes,
            step_bytes: p.step_bytes,
            lower_bound: p.stop_reason != StopReason::Failure,
            stop: p.stop_reason.phrase().to_string(),
        },
        None => Largest::NotProbed("not probed".into()),
    }
}

/// The strategies not measured on `dev`, with their reasons: `info`'s unsupported ones, then
/// those of the sweep's skipped lines that have no row at all.
fn skipped(inp: &Inputs, dev: i32, measured: &[String]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in inp
        .support
        .iter()
        .filter(|s| s.device == dev && !s.supported)
    {
        if !measured.contains(&s.strategy) {
            out.push((
                s.strategy.clone(),
                s.reason.clone().unwrap_or_else(|| "not supported".into()),
            ));
        }
    }
    let prefix = format!("device {dev} ");
    for line in inp.skipped {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((key, reason)) = rest.split_once(": ") else {
            continue;
        };
        let st = key.split('@').next().unwrap_or(key).to_string();
        if !measured.contains(&st) && !out.iter().any(|(s, _)| *s == st) {
            out.push((st, reason.to_string()));
        }
    }
    out.into_iter().map(|(s, r)| format!("{s}: {r}")).collect()
}

/// The table of device `dev`.
pub fn build(inp: &Inputs, dev: i32, name: &str) -> Headline {
    let mut strategies: Vec<String> = Vec::new();
    for r in inp
        .rows
        .iter()
        .filter(|r| r.device == dev && r.phase == phase::ALLOC)
    {
        if !strategies.contains(&r.strategy.to_string()) {
            strategies.push(r.strategy.to_string());
        }
    }
    let big_of = |st: &str| {
        inp.rows
            .iter()
            .filter(|r| r.device == dev && r.strategy == st && r.phase == phase::ALLOC)
            .map(|r| r.bytes)
            .max()
            .unwrap_or(0)
    };
    let device_big = strategies.iter().map(|s| big_of(s)).max().unwrap_or(0);
    let ceil = ceiling(inp, dev, device_big);
    let mut rows: Vec<Row> = strategies
        .iter()
        .map(|st| {
            let big = big_of(st);
            let cpu = inp
                .rows
                .iter()
                .filter(|r| {
                    r.device == dev && r.strategy == *st && r.phase == phase::CPU_FIRST_TOUCH
                })
                .max_by_key(|r| r.bytes)
                .map(|r| (ms_per_gib(r), r.bytes));
            Row {
                strategy: st.clone(),
                bytes: big,
                alloc: alloc_fit(inp.rows, dev, st),
                gpu_touch: gpu_touch(inp.rows, dev, st, big),
                cpu_touch: cpu.map(|(m, _)| m),
                cpu_bytes: cpu.map_or(0, |(_, b)| b),
                host_accessible: Strategy::parse(st).is_ok_and(|s| s.info().host_accessible),
                fill: find(inp.rows, dev, st, big, phase::FILL).and_then(gbps_of),
                read: find(inp.rows, dev, st, big, phase::READ).and_then(gbps_of),
                largest: largest(inp, dev, st),
                use_when: String::new(),
            }
        })
        .collect();
    let sentences: Vec<String> = rows
        .iter()
        .map(|r| use_when(r, &rows, ceil.as_ref()))
        .collect();
    for (r, s) in rows.iter_mut().zip(sentences) {
        r.use_when = s;
    }
    Headline {
        device: dev,
        device_name: name.to_string(),
        ceiling: ceil,
        skipped: skipped(inp, dev, &strategies),
        rows,
    }
}

fn spread(m: &Measure) -> String {
    if m.n > 1 && m.hi > m.lo {
        format!(" ({}–{}, n={})", sig(m.lo), sig(m.hi), m.n)
    } else {
        format!(" (n={})", m.n)
    }
}

fn gib2(b: u64) -> String {
    crate::units::fmt_gib_dp(b, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_of_a_line_and_of_noise() {
        let (m, b, se) = least_squares(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).unwrap();
        assert!((m - 2.0).abs() < 1e-12 && (b - 1.0).abs() < 1e-12);
        assert!(se.unwrap() < 1e-9);
        let (m, _, se) = least_squares(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)]).unwrap();
        assert!((m - 0.5).abs() < 1e-12);
        // residuals -0.5, 1, -0.5: SSR 1.5, SE = sqrt(1.5 / 1 / 2).
        assert!((se.unwrap() - (0.75f64).sqrt()).abs() < 1e-12);
        assert!(least_squares(&[(1.0, 1.0)]).is_none());
        assert!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }
}
