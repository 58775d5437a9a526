//! `sweep` as a lab step on each device: every strategy at the budget's sizes, caps and
//! repetitions; its CSV, its report section, and its tables and figures for `compare`
//! (per strategy and size: allocation, first and second touches, fill and read bandwidth, free).

use crate::error::Result;
use crate::experiments::lab::comparable::{
    Column, CompareCtx, CompareOut, CompareRow, Input, PageCtx, push_table, row,
};
use crate::experiments::lab::registry::{About, Experiment, Ran, Scope, StepContext};
use crate::experiments::lab::report::{self, Findings};
use crate::experiments::lab::{LabResults, Section};
use crate::experiments::sweep::{self, SweepOptions, SweepRow, phase};
use crate::memory::AllocOptions;
use crate::report::ResultSink;
use crate::report::markdown::Page;
use crate::report::plots::{LineChart, Scale, Series, line_chart};
use crate::units::{GIB, fmt_bytes};

/// `sweep`.
pub struct Sweep;

impl Experiment for Sweep {
    fn about(&self) -> About {
        About {
            name: "sweep",
            key: "sweep",
            needs_gpu: true,
            scope: Scope::PerDevice,
        }
    }
    fn run(&self, ctx: &StepContext, device: Option<i32>, res: &mut LabResults) -> Result<Ran> {
        let plan = ctx.plan;
        let sizes = plan
            .sweep_sizes
            .iter()
            .find(|(o, _)| Some(*o) == device)
            .map(|(_, s)| s.clone());
        let o = device.unwrap_or(0);
        let sopts = SweepOptions {
            strategies: None,
            sizes,
            runs: plan.sweep_runs,
            page_stride: crate::host::facts::page_size(),
            cpu_threads: plan.cpu_threads.max(1) as usize,
            headroom: ctx.opts.headroom,
            force: false,
            alloc: AllocOptions::default(),
            quiet: ctx.opts.quiet,
            repeat: plan.sweep_repeat.max(3),
            cpu_single_max: plan.cpu_single_max_bytes,
            caps: plan.sweep_caps,
        };
        let mut sink = ResultSink::new("sweep", ctx.env.clone(), None)?;
        let r = sweep::run(&[o], &sopts, &mut sink);
        let section = res.sweep.get_or_insert_with(Section::default);
        section.absorb(&sink.doc);
        section.notes.extend(sweep::findings(&sink.doc.rows, o));
        r.map(|()| Ran::Ok)
    }
    fn csv(&self, r: &LabResults) -> Result<Option<(&'static str, Vec<u8>)>> {
        super::rows_csv("sweep.csv", r.sweep.as_ref())
    }
    fn report(&self, r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
        report::sweep::section(r, p, findings)
    }
    fn compare(&self, ctx: &CompareCtx, out: &mut CompareOut) {
        compare_tables(ctx.inputs, ctx.cols, out);
    }
    fn compare_page(
        &self,
        ctx: &PageCtx,
        body: &mut Page,
        findings: &mut Vec<String>,
    ) -> Result<()> {
        if !ctx.rep.tables.iter().any(|t| t.id.starts_with("sweep.")) {
            return Ok(());
        }
        body.h2("Sweep");
        alloc_figures(ctx, body)?;
        common_size_figures(ctx, body, findings)?;
        for id in [
            "sweep.alloc_ms",
            "sweep.gpu_first_touch_ms",
            "sweep.gpu_second_touch_ms",
            "sweep.cpu_first_touch_ms",
            "sweep.fill_gbps",
            "sweep.read_gbps",
            "sweep.free_ms",
        ] {
            ctx.table(body, id);
        }
        Ok(())
    }
}

/// Allocation time against size: one figure per strategy, one series per machine.
fn alloc_figures(ctx: &PageCtx, body: &mut Page) -> Result<()> {
    let (inputs, cols) = (ctx.inputs, ctx.cols);
    // Allocation time against size: one figure per strategy, one series per machine.
    let mut strategies: Vec<String> = Vec::new();
    for c in cols {
        for r in sweep_rows(inputs, c) {
            if r.phase == phase::ALLOC && !strategies.contains(&r.strategy.to_string()) {
                strategies.push(r.strategy.to_string());
            }
        }
    }
    for st in &strategies {
        let series: Vec<Series> = cols
            .iter()
            .map(|c| Series {
                name: format!("{}: {}", c.1.id, c.1.label),
                points: sweep_rows(inputs, c)
                    .into_iter()
                    .filter(|r| r.strategy == st && r.phase == phase::ALLOC)
                    .map(|r| (r.bytes as f64 / GIB as f64, r.ms_median))
                    .collect(),
            })
            .collect();
        let svg = line_chart(&LineChart {
            title: format!("Allocation time against size: {st}"),
            x_label: "size (GiB, log scale)".into(),
            y_label: "allocation time (ms, log scale)".into(),
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            series,
        })?;
        body.figure(
            &format!("alloc-{st}"),
            format!("Allocation time against size, {st}, one line per machine"),
            "Host clock around the allocation and a synchronize (the sweep's `alloc` rows).",
            svg,
        );
    }
    Ok(())
}

/// GPU first touch, fill and read per strategy at the largest size every machine measured, one
/// bar per machine, with the findings about device fill and managed first touch.
fn common_size_figures(ctx: &PageCtx, body: &mut Page, findings: &mut Vec<String>) -> Result<()> {
    let (rep, inputs, cols) = (ctx.rep, ctx.inputs, ctx.cols);
    // At the largest size every machine measured.
    let common = common_size(inputs, cols);
    for (id, what, unit, scale) in [
        (
            "sweep.gpu_first_touch_ms",
            "GPU first touch",
            "time (ms, log scale)",
            Scale::Log10,
        ),
        (
            "sweep.fill_gbps",
            "Fill bandwidth",
            "bandwidth (GB/s = 1e9 bytes/s, log scale)",
            Scale::Log10,
        ),
        (
            "sweep.read_gbps",
            "Read bandwidth",
            "bandwidth (GB/s = 1e9 bytes/s, log scale)",
            Scale::Log10,
        ),
    ] {
        let (Some(t), Some(size)) = (rep.tables.iter().find(|t| t.id == id), common) else {
            continue;
        };
        let suffix = format!(" @ {}", fmt_bytes(size));
        let rows: Vec<&CompareRow> = t.rows.iter().filter(|r| r.key.ends_with(&suffix)).collect();
        if rows.is_empty() {
            continue;
        }
        let rows_short: Vec<CompareRow> = rows
            .iter()
            .map(|r| CompareRow {
                key: r.key.trim_end_matches(&suffix).to_string(),
                ..(*r).clone()
            })
            .collect();
        let refs: Vec<&CompareRow> = rows_short.iter().collect();
        let fig = body.figure(
            &format!("{}-{}", id.trim_start_matches("sweep."), fmt_bytes(size)),
            format!(
                "{what} per strategy at {}, one bar per machine",
                fmt_bytes(size)
            ),
            format!(
                "The largest size every machine measured; from the sweep's `{}` rows.",
                id.trim_start_matches("sweep.")
                    .trim_end_matches("_ms")
                    .trim_end_matches("_gbps")
            ),
            ctx.bars(&refs, format!("{what} at {}", fmt_bytes(size)), unit, scale)?,
        );
        if id == "sweep.fill_gbps"
            && let Some(r) = rows_short.iter().find(|r| r.key == "device")
        {
            findings.push(format!(
                "{fig}: device memory fill at {}: {}.",
                fmt_bytes(size),
                ctx.per_machine(r, t.reference, 0, "GB/s")
            ));
        }
        if id == "sweep.gpu_first_touch_ms"
            && let Some(r) = rows_short.iter().find(|r| r.key == "managed")
        {
            findings.push(format!(
                "{fig}: managed memory's first GPU touch of {}: {}.",
                fmt_bytes(size),
                ctx.per_machine(r, t.reference, 1, "ms")
            ));
        }
    }
    Ok(())
}

/// A sweep table: id, title, phase, decimals, higher is better, the value of a row.
type SweepMetric = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    bool,
    fn(&SweepRow) -> Option<f64>,
);

/// The sweep's tables in `compare`.
const METRICS: [SweepMetric; 7] = [
    (
        "sweep.alloc_ms",
        "allocation time, ms",
        phase::ALLOC,
        3,
        false,
        |r| Some(r.ms_median),
    ),
    (
        "sweep.gpu_first_touch_ms",
        "GPU first touch, ms",
        phase::GPU_FIRST_TOUCH,
        2,
        false,
        |r| Some(r.ms_median),
    ),
    (
        "sweep.gpu_second_touch_ms",
        "GPU second touch, ms",
        phase::GPU_SECOND_TOUCH,
        2,
        false,
        |r| Some(r.ms_median),
    ),
    (
        "sweep.cpu_first_touch_ms",
        "CPU first touch, ms",
        phase::CPU_FIRST_TOUCH,
        2,
        false,
        |r| Some(r.ms_median),
    ),
    (
        "sweep.fill_gbps",
        "fill bandwidth, GB/s (1e9 bytes/s)",
        phase::FILL,
        1,
        true,
        |r| r.gbps,
    ),
    (
        "sweep.read_gbps",
        "read bandwidth, GB/s (1e9 bytes/s)",
        phase::READ,
        1,
        true,
        |r| r.gbps,
    ),
    (
        "sweep.free_ms",
        "free time, ms",
        phase::FREE,
        3,
        false,
        |r| Some(r.ms_median),
    ),
];

/// The sweep's tables: one per metric, a row per (strategy, size) every machine ran.
fn compare_tables(inputs: &[Input], cols: &[(usize, Column)], out: &mut CompareOut) {
    // The sizes every machine with a sweep ran (the others are named once in the notes).
    let (common, partial) = sweep_sizes(inputs, cols);
    let mut keys = sweep_keys(inputs, cols);
    if !common.is_empty() && !partial.is_empty() {
        keys.retain(|k| common.contains(&k.1));
        let ids = |v: &Vec<usize>| {
            v.iter()
                .map(|&i| cols[i].1.id.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.notes.push(format!(
            "sweep sizes not run on every machine are left out of the sweep tables: {}",
            partial
                .iter()
                .map(|(b, have)| format!("{} (only {})", fmt_bytes(*b), ids(have)))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    for (id, title, ph, dec, hib, get) in METRICS {
        let rows: Vec<CompareRow> = keys
            .iter()
            .map(|(st, b)| {
                row(
                    format!("{st} @ {}", fmt_bytes(*b)),
                    cols.iter()
                        .map(|c| {
                            sweep_rows(inputs, c)
                                .into_iter()
                                .find(|r| r.strategy == st && r.bytes == *b && r.phase == ph)
                                .and_then(get)
                        })
                        .collect(),
                )
            })
            .collect();
        push_table(
            &mut out.tables,
            id,
            &format!("sweep: {title}"),
            dec,
            Some(hib),
            rows,
        );
    }
}

/// The sweep rows of column `c`.
fn sweep_rows<'a>(inputs: &'a [Input], c: &(usize, Column)) -> Vec<&'a SweepRow> {
    inputs[c.0]
        .results
        .sweep
        .as_ref()
        .map(|s| {
            s.rows
                .iter()
                .filter(|r| Some(r.device) == c.1.device)
                .collect()
        })
        .unwrap_or_default()
}

/// (strategy, size) pairs with an `alloc` row in any column: by size, then in run order.
fn sweep_keys(inputs: &[Input], cols: &[(usize, Column)]) -> Vec<(String, u64)> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for c in cols {
        for r in sweep_rows(inputs, c) {
            if r.phase == phase::ALLOC && !keys.iter().any(|k| k.0 == r.strategy && k.1 == r.bytes)
            {
                keys.push((r.strategy.to_string(), r.bytes));
            }
        }
    }
    let order: Vec<String> = {
        let mut o: Vec<String> = Vec::new();
        for (s, _) in &keys {
            if !o.contains(s) {
                o.push(s.clone());
            }
        }
        o
    };
    keys.sort_by_key(|(s, b)| (*b, order.iter().position(|x| x == s)));
    keys
}

/// The sweep sizes with an `alloc` row in every column that has a sweep, and the others with
/// the columns (indices into `cols`) that have them.
type SizeSets = (Vec<u64>, Vec<(u64, Vec<usize>)>);

fn sweep_sizes(inputs: &[Input], cols: &[(usize, Column)]) -> SizeSets {
    let sets: Vec<(usize, Vec<u64>)> = cols
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let s = sweep_rows(inputs, c)
                .into_iter()
                .filter(|r| r.phase == phase::ALLOC)
                .map(|r| r.bytes)
                .collect::<Vec<u64>>();
            (k, s)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let mut all: Vec<u64> = sets.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let (mut common, mut partial) = (Vec::new(), Vec::new());
    for b in all {
        let have: Vec<usize> = sets
            .iter()
            .filter(|(_, s)| s.contains(&b))
            .map(|(k, _)| *k)
            .collect();
        if have.len() == sets.len() {
            common.push(b);
        } else {
            partial.push((b, have));
        }
    }
    (common, partial)
}

/// The largest sweep size with an `alloc` row in every column that has a sweep.
fn common_size(inputs: &[Input], cols: &[(usize, Column)]) -> Option<u64> {
    sweep_sizes(inputs, cols).0.into_iter().max()
}
