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
//! Percentages compared with a threshold are printed by [`pct_vs`] with as many digits as it
//! takes for the printed number to sit on the same side of the threshold as the unrounded one, so
//! a sentence can never read "95.0%, below 95%".
//!
//! The least-squares fit is a few lines written here: a statistics crate for one slope, one
//! intercept and one standard error would be a dependency for less code than its import.

use serde::Serialize;

use crate::experiments::info::StrategySupport;
use crate::experiments::probe::{ProbeKind, ProbeRow, StopReason};
use crate::experiments::selftest::SelftestReport;
use crate::experiments::sweep::{SweepRow, find, phase};
use crate::memory::Strategy;
use crate::report::markdown::{Block, Page};
use crate::units::{GIB, fmt_bytes};

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

/// The headline of every device of a lab with sweep rows.
pub fn from_lab(r: &crate::experiments::lab::LabResults) -> Vec<Headline> {
    let Some(s) = &r.sweep else {
        return Vec::new();
    };
    let inp = Inputs {
        rows: &s.rows,
        probe: r.probe.as_ref().map(|p| p.rows.as_slice()),
        selftest: r.selftest.as_deref().unwrap_or(&[]),
        support: r.info.as_ref().map_or(&[], |i| i.strategies.as_slice()),
        skipped: &s.skipped,
    };
    r.devices()
        .into_iter()
        .filter(|d| s.rows.iter().any(|x| x.device == *d))
        .map(|d| build(&inp, d, &r.device_name(d)))
        .collect()
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

fn gib_of(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

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

/// `value`% printed with as many decimals (1 at least) as it takes for the printed number to be
/// on the same side of `threshold` as `value` itself.
pub fn pct_vs(value: f64, threshold: f64) -> String {
    let above = value >= threshold;
    for d in 1..=12 {
        let s = format!("{value:.d$}");
        if s.parse::<f64>().is_ok_and(|p| (p >= threshold) == above) {
            return s;
        }
    }
    format!("{value:e}")
}

/// A number with 3 significant digits (at most 4 decimals, none at 1000 and above).
pub fn sig(v: f64) -> String {
    let a = v.abs();
    let d = if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.1 {
        3
    } else {
        4
    };
    format!("{v:.d$}")
}

fn spread(m: &Measure) -> String {
    if m.n > 1 && m.hi > m.lo {
        format!(" ({}–{}, n={})", sig(m.lo), sig(m.hi), m.n)
    } else {
        format!(" (n={})", m.n)
    }
}

fn gib2(b: u64) -> String {
    format!("{:.2}", gib_of(b))
}

/// The others of `all` whose value is indistinguishable from `x`'s: their ranges overlap.
fn ties<'a>(x: &Row, all: &'a [Row], range: impl Fn(&Row) -> Option<(f64, f64)>) -> Vec<&'a str> {
    let Some((lo, hi)) = range(x) else {
        return Vec::new();
    };
    all.iter()
        .filter(|o| o.strategy != x.strategy)
        .filter(|o| range(o).is_some_and(|(l, h)| l <= hi && h >= lo))
        .map(|o| o.strategy.as_str())
        .collect()
}

/// ", indistinguishable from a, b" or "".
fn tied(v: &[&str]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!(", indistinguishable from {}", v.join(", "))
    }
}

/// The sentence of rules 1 to 5 of the module doc for row `r` among `all`.
fn use_when(r: &Row, all: &[Row], ceil: Option<&Ceiling>) -> String {
    let mut c: Vec<String> = Vec::new();
    if let Some(a) = r.alloc {
        let alloc_range = |x: &Row| {
            x.alloc.map(|a| {
                let se = a.ms_per_gib_se.unwrap_or(0.0);
                ((a.ms_per_gib - se).max(0.0), (a.ms_per_gib + se).max(0.0))
            })
        };
        // A negative slope (noise over a size-independent cost) ranks as zero.
        let min = all
            .iter()
            .filter_map(|x| x.alloc.map(|a| a.ms_per_gib.max(0.0)))
            .fold(f64::INFINITY, f64::min);
        // "Cheapest" needs a standard error (3 sizes or more) to say what is indistinguishable.
        if all.len() > 1 && a.ms_per_gib_se.is_some() && a.ms_per_gib.max(0.0) <= min {
            c.push(format!(
                "allocations must be cheapest ({} ms/GiB, the lowest here{})",
                sig(a.ms_per_gib),
                tied(&ties(r, all, alloc_range))
            ));
        } else if a.ms_per_gib >= SLOW_ALLOC_MS_PER_GIB {
            c.push(format!(
                "it is allocated once and reused ({} ms/GiB to allocate)",
                sig(a.ms_per_gib)
            ));
        }
    }
    match r.gpu_touch {
        Some(GpuTouch::ByPrefetch(m)) => c.push(format!(
            "you prefetch before the GPU uses it ({} ms/GiB to prefetch)",
            sig(m.value)
        )),
        Some(GpuTouch::OnTouch(m)) => c.push(format!(
            "you can pay {} ms/GiB at the first GPU touch",
            sig(m.value)
        )),
        Some(GpuTouch::AtAllocation) => c.push("the GPU needs it ready at its first touch".into()),
        None => {}
    }
    if let Some(m) = r.cpu_touch {
        let min = all
            .iter()
            .filter_map(|x| x.cpu_touch.map(|m| m.value))
            .fold(f64::INFINITY, f64::min);
        let fastest = all.iter().filter(|x| x.cpu_touch.is_some()).count() > 1 && m.value <= min;
        c.push(format!(
            "the CPU reads or writes it too (CPU first touch {} ms/GiB{})",
            sig(m.value),
            if fastest {
                format!(
                    ", the fastest here at n={}{}",
                    m.n,
                    tied(&ties(r, all, |x| x.cpu_touch.map(|m| (m.lo, m.hi))))
                )
            } else {
                String::new()
            }
        ));
    }
    if let Some(ce) = ceil.filter(|c| c.gbps > 0.0) {
        let pct = |m: Option<Measure>| m.map(|m| 100.0 * m.value / ce.gbps);
        let parts: Vec<String> = [("fill", pct(r.fill)), ("read", pct(r.read))]
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} {}%", pct_vs(v, FULL_BANDWIDTH_PCT))))
            .collect();
        let best = pct(r.fill)
            .into_iter()
            .chain(pct(r.read))
            .fold(f64::NAN, f64::max);
        if !parts.is_empty() {
            c.push(if best >= FULL_BANDWIDTH_PCT {
                format!(
                    "the GPU needs full bandwidth ({} of {}; {FULL_BANDWIDTH_PCT:.0}% or more counts as full)",
                    parts.join(", "),
                    ce.what
                )
            } else {
                format!(
                    "GPU traffic to it is light ({} of {}, both below {FULL_BANDWIDTH_PCT:.0}%)",
                    parts.join(", "),
                    ce.what
                )
            });
        }
    }
    if let Largest::Probed {
        bytes, lower_bound, ..
    } = &r.largest
    {
        let probed = |x: &Row| match &x.largest {
            Largest::Probed {
                bytes, step_bytes, ..
            } => Some((*bytes, *step_bytes)),
            Largest::NotProbed(_) => None,
        };
        let max = all
            .iter()
            .filter_map(|x| probed(x).map(|p| p.0))
            .max()
            .unwrap_or(0);
        if *bytes >= max && all.iter().filter(|x| probed(x).is_some()).count() > 1 {
            // Within one probe step of each other: not told apart.
            let near: Vec<&str> = all
                .iter()
                .filter(|o| o.strategy != r.strategy)
                .filter(|o| probed(o).is_some_and(|(b, step)| b + step.max(1) > *bytes))
                .map(|o| o.strategy.as_str())
                .collect();
            c.push(format!(
                "one allocation must be as large as possible ({}{} GiB, the largest here{}{})",
                if *lower_bound { ">= " } else { "" },
                gib2(*bytes),
                if near.is_empty() {
                    String::new()
                } else {
                    format!(", with {} within one probe step", near.join(", "))
                },
                if *lower_bound {
                    "; the probe stopped before a failure"
                } else {
                    ""
                }
            ));
        }
    }
    if c.is_empty() {
        return "no measured advantage on this device".into();
    }
    c.join("; ") + "."
}

/// The column headers (the "use it when" column last).
pub fn header(h: &Headline) -> Vec<String> {
    // The short name of the ceiling; the caption gives its size and GB/s.
    let ceil = h.ceiling.as_ref().map_or("no ceiling measured", |c| {
        if c.what.starts_with("cuMemsetD32") {
            "cuMemsetD32"
        } else {
            "device fill"
        }
    });
    vec![
        "strategy".into(),
        "allocation (ms/GiB: slope ± SE)".into(),
        "allocation fixed part (ms)".into(),
        "GPU first touch (ms/GiB over warm)".into(),
        "CPU first touch (ms/GiB)".into(),
        format!("fill (GB/s; % of {ceil})"),
        format!("read (GB/s; % of {ceil})"),
        "largest single allocation (GiB; % of cuMemGetInfo free)".into(),
        "use it when".into(),
    ]
}

/// The cells of one row, in [`header`] order.
pub fn cells(r: &Row, ceil: Option<&Ceiling>, device_big: u64) -> Vec<String> {
    let at = if r.bytes != device_big {
        format!(" at {}", fmt_bytes(r.bytes))
    } else {
        String::new()
    };
    let alloc = r.alloc.map_or("-".into(), |a| {
        let se = a
            .ms_per_gib_se
            .map_or(String::new(), |s| format!(" ± {}", sig(s)));
        let neg = if a.ms_per_gib + a.ms_per_gib_se.unwrap_or(0.0) < 0.0 {
            "; negative: no growth with size measurable"
        } else {
            ""
        };
        format!("{}{se} (n={} sizes{neg})", sig(a.ms_per_gib), a.sizes)
    });
    // A negative intercept is a fit artefact (no allocation takes negative time): labelled so.
    let fixed = r.alloc.and_then(|a| a.fixed_ms).map_or("-".into(), |f| {
        if f < 0.0 {
            format!("{} (below zero: a fit artefact)", sig(f))
        } else {
            sig(f)
        }
    });
    let gpu = match r.gpu_touch {
        None => "-".into(),
        Some(GpuTouch::AtAllocation) => format!("populated at allocation{at}"),
        Some(GpuTouch::ByPrefetch(m)) => format!(
            "populated by prefetch: {} ms/GiB{}{at}",
            sig(m.value),
            spread(&m)
        ),
        Some(GpuTouch::OnTouch(m)) => format!("{}{}{at}", sig(m.value), spread(&m)),
    };
    let cpu_at = if r.cpu_bytes != device_big {
        format!(" at {}", fmt_bytes(r.cpu_bytes))
    } else {
        String::new()
    };
    let cpu = r.cpu_touch.map_or(no_cpu_figure(r).into(), |m| {
        format!("{}{}{cpu_at}", sig(m.value), spread(&m))
    });
    let bw = |m: Option<Measure>| {
        m.map_or("-".into(), |m| {
            let pct = ceil.filter(|c| c.gbps > 0.0).map_or(String::new(), |c| {
                format!(
                    "; {}%",
                    pct_vs(100.0 * m.value / c.gbps, FULL_BANDWIDTH_PCT)
                )
            });
            format!("{:.1}{}{pct}{at}", m.value, spread_gbps(&m))
        })
    };
    let largest = match &r.largest {
        Largest::Probed {
            bytes,
            free_bytes,
            lower_bound,
            stop,
            ..
        } => {
            let pct = if *free_bytes > 0 {
                format!("; {:.1}%", 100.0 * *bytes as f64 / *free_bytes as f64)
            } else {
                String::new()
            };
            // ">=" already says "not a failure": the phrase's first part is enough here.
            format!(
                "{}{}{pct} ({})",
                if *lower_bound { ">= " } else { "" },
                gib2(*bytes),
                stop.split(',').next().unwrap_or(stop)
            )
        }
        Largest::NotProbed(why) => why.clone(),
    };
    vec![
        r.strategy.clone(),
        alloc,
        fixed,
        gpu,
        cpu,
        bw(r.fill),
        bw(r.read),
        largest,
        r.use_when.clone(),
    ]
}

fn spread_gbps(m: &Measure) -> String {
    if m.n > 1 && m.hi > m.lo {
        format!(" ({:.1}–{:.1}, n={})", m.lo, m.hi, m.n)
    } else {
        format!(" (n={})", m.n)
    }
}

impl Headline {
    /// The size of the per-size figures (the largest any strategy ran).
    pub fn size(&self) -> u64 {
        self.rows.iter().map(|r| r.bytes).max().unwrap_or(0)
    }

    /// Header and body.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let big = self.size();
        (
            header(self),
            self.rows
                .iter()
                .map(|r| cells(r, self.ceiling.as_ref(), big))
                .collect(),
        )
    }

    /// The title of the table.
    pub fn title(&self) -> String {
        format!(
            "What memory costs on device {} ({}): per GiB, at {} unless a cell says otherwise",
            self.device,
            self.device_name,
            fmt_bytes(self.size())
        )
    }

    /// One paragraph: how the numbers were made.
    pub fn caption(&self) -> String {
        format!(
            "Allocation: least-squares fit of the alloc time against the size over every size the strategy ran (slope ± its standard error; the intercept is the fixed part). First touches: per GiB at the largest size that has them (a cell says when that is smaller); GPU first touch is the first minus the warm second touch. Spreads: min–max of n samples (one-shot phases: one per fresh allocation; bandwidth: every run on every allocation). Bandwidth percentages are of {}. GiB = 2^30 bytes, GB/s = 1e9 bytes per second.",
            self.ceiling
                .as_ref()
                .map_or("nothing (no ceiling measured)".to_string(), |c| format!(
                    "{} ({:.1} GB/s) in the same run",
                    c.what, c.gbps
                ))
        )
    }

    /// The lines under the table: one per strategy not measured.
    pub fn skipped_line(&self) -> Option<String> {
        (!self.skipped.is_empty()).then(|| format!("Not measured: {}.", self.skipped.join("; ")))
    }

    /// The numbers without the sentence column, then one "use it when" line per strategy (as in
    /// the terminal: nine columns do not fit a page, and a sentence reads better as a line).
    fn split(&self) -> (Vec<String>, Vec<Vec<String>>, Vec<String>) {
        let (mut h, mut b) = self.table();
        h.pop();
        let uses = b
            .iter_mut()
            .filter_map(|l| {
                let u = l.pop()?;
                Some(format!("{}: use it when {u}", l[0]))
            })
            .collect();
        (h, b, uses)
    }

    /// Adds the table, the "use it when" lines, the caption and the skipped line to `p`; returns
    /// the table's label.
    pub fn add_to(&self, p: &mut Page) -> String {
        let (h, b, uses) = self.split();
        let label = p.table(self.title(), &h, b);
        p.bullets(uses);
        p.para(self.caption());
        if let Some(s) = self.skipped_line() {
            p.para(s);
        }
        label
    }

    /// The terminal form: the table without the sentence column, then one "use it when" line
    /// per strategy and the skipped line.
    pub fn render_text(&self) -> String {
        let (h, b, uses) = self.split();
        let mut t = super::new_table(&h);
        for line in b {
            t.add_row(line);
        }
        let mut out = format!("{}\n{t}\n{}\n", self.title(), self.caption());
        for u in uses {
            out.push_str(&format!("- {u}\n"));
        }
        if let Some(s) = self.skipped_line() {
            out.push_str(&format!("{s}\n"));
        }
        out
    }
}

/// The terminal form of every device's headline ("" when there is none).
pub fn render_all(hs: &[Headline]) -> String {
    hs.iter()
        .map(|h| h.render_text())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Moves the first `n` blocks of `from` to the end of `to` (a table built in the body, so that
/// it gets the body's first number, shown above the findings).
pub fn lift(to: &mut Page, from: &mut Page, n: usize) {
    let n = n.min(from.blocks.len());
    let moved: Vec<Block> = from.blocks.drain(..n).collect();
    to.blocks.extend(moved);
}

// ---------------------------------------------------------------- compare

/// One metric of a row across machines: (label, lower is better, the value of a row).
type Metric = (&'static str, bool, fn(&Row) -> Option<f64>);

const METRICS: [Metric; 7] = [
    ("allocation (ms/GiB)", true, |r| {
        r.alloc.map(|a| a.ms_per_gib)
    }),
    ("allocation fixed part (ms)", true, |r| {
        r.alloc.and_then(|a| a.fixed_ms)
    }),
    ("GPU first touch (ms/GiB over warm)", true, |r| {
        match r.gpu_touch {
            Some(GpuTouch::OnTouch(m)) => Some(m.value),
            _ => None,
        }
    }),
    ("CPU first touch (ms/GiB)", true, |r| {
        r.cpu_touch.map(|m| m.value)
    }),
    ("fill (GB/s)", false, |r| r.fill.map(|m| m.value)),
    ("read (GB/s)", false, |r| r.read.map(|m| m.value)),
    ("largest single allocation (GiB)", false, |r| {
        match &r.largest {
            Largest::Probed { bytes, .. } => Some(gib_of(*bytes)),
            Largest::NotProbed(_) => None,
        }
    }),
];

/// What the CPU first-touch cell says without a figure.
fn no_cpu_figure(r: &Row) -> &'static str {
    if r.host_accessible {
        "not measured"
    } else {
        "not host-accessible"
    }
}

/// The text of a metric's cell for a row (numbers, or what the headline says instead).
fn metric_text(i: usize, r: &Row) -> String {
    match (i, METRICS[i].2(r)) {
        (6, Some(v)) => format!("{v:.2}"),
        (_, Some(v)) => sig(v),
        (2, None) => match r.gpu_touch {
            Some(GpuTouch::AtAllocation) => "at allocation".into(),
            Some(GpuTouch::ByPrefetch(m)) => format!("prefetch {}", sig(m.value)),
            _ => "-".into(),
        },
        (3, None) => no_cpu_figure(r).into(),
        (6, None) => "not probed".into(),
        _ => "-".into(),
    }
}

/// The headline of several machines as one table: a row per (strategy, metric), one column per
/// machine (`ids[i]`), and after every machine but the first its ratio to the first; then each
/// machine's "use it when" line per strategy.
pub fn compare_table(
    ids: &[String],
    hs: &[Option<&Headline>],
) -> (Vec<String>, Vec<Vec<String>>, Vec<String>) {
    let mut uses = Vec::new();
    let mut header = vec!["strategy".to_string(), "measure".to_string()];
    for (i, id) in ids.iter().enumerate() {
        header.push(id.clone());
        if i > 0 {
            header.push(format!("{id}/{}", ids[0]));
        }
    }
    let mut strategies: Vec<String> = Vec::new();
    for h in hs.iter().flatten() {
        for r in &h.rows {
            if !strategies.contains(&r.strategy) {
                strategies.push(r.strategy.clone());
            }
        }
    }
    // The size of each machine's per-size figures, first: per-GiB figures at different sizes.
    let mut body = vec![{
        let mut l = vec![
            "all".to_string(),
            "touches and bandwidth measured at".to_string(),
        ];
        for (i, h) in hs.iter().enumerate() {
            l.push(h.map_or("-".into(), |h| fmt_bytes(h.size())));
            if i > 0 {
                l.push(String::new());
            }
        }
        l
    }];
    for st in &strategies {
        let rows: Vec<Option<&Row>> = hs
            .iter()
            .map(|h| h.and_then(|h| h.rows.iter().find(|r| &r.strategy == st)))
            .collect();
        for (m, (label, lower, get)) in METRICS.iter().enumerate() {
            let mut line = vec![
                st.clone(),
                format!(
                    "{label}, {} is better",
                    if *lower { "lower" } else { "higher" }
                ),
            ];
            let first = rows[0].and_then(get);
            for (i, r) in rows.iter().enumerate() {
                line.push(r.map_or("not measured".into(), |r| metric_text(m, r)));
                if i > 0 {
                    line.push(match (r.and_then(get), first) {
                        // A ratio of a negative fit (no size dependence) means nothing.
                        (Some(v), Some(f)) if f > 0.0 && v > 0.0 => format!("{:.2}x", v / f),
                        _ => "-".into(),
                    });
                }
            }
            body.push(line);
        }
        for (id, r) in ids.iter().zip(&rows) {
            if let Some(r) = r {
                uses.push(format!("{id}, {st}: use it when {}", r.use_when));
            }
        }
    }
    (header, body, uses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_contradict_their_threshold() {
        assert_eq!(pct_vs(94.96, 95.0), "94.96");
        assert_eq!(pct_vs(94.999, 95.0), "94.999");
        assert_eq!(pct_vs(95.0, 95.0), "95.0");
        assert_eq!(pct_vs(95.04, 95.0), "95.0");
        assert_eq!(pct_vs(85.7, 95.0), "85.7");
        for v in [94.95, 94.949_999, 94.950_001, 89.96, 90.0] {
            let s = pct_vs(v, 95.0);
            assert_eq!(s.parse::<f64>().unwrap() >= 95.0, v >= 95.0, "{v} -> {s}");
        }
    }

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
