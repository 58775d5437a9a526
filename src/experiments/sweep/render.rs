//! The sweep's text output: one table per phase (a line per strategy, a column per size), the
//! accounting and baseline tables, the findings; and the cell formatters the lab's report and the
//! headline reuse. Pure: imports the row types, `report` (tables), `stats` and `units`.

use super::{Phase, SweepDoc, SweepRow, findings};
use crate::memory::Strategy;
use crate::report::new_table;
use crate::stats::{Summary, fmt_spread};
use crate::units::{GB, GIB, fmt_bytes};

/// The row of `dev`, `st`, `bytes` and `phase`. The strategy and the phase may be given as
/// their types or as the strings rows hold (`"device"`, [`super::phase::FILL`]).
pub fn find<S, P>(rows: &[SweepRow], dev: i32, st: S, bytes: u64, phase: P) -> Option<&SweepRow>
where
    Strategy: PartialEq<S>,
    Phase: PartialEq<P>,
{
    rows.iter()
        .find(|r| r.device == dev && r.strategy == st && r.bytes == bytes && r.phase == phase)
}

/// The sizes with an allocation row on `dev`, ascending.
pub fn sizes_of(rows: &[SweepRow], dev: i32) -> Vec<u64> {
    let mut sizes: Vec<u64> = rows
        .iter()
        .filter(|r| r.device == dev && r.phase == Phase::Alloc)
        .map(|r| r.bytes)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// The strategies with an allocation row on `dev`, in the order they were measured.
pub fn strategies_of(rows: &[SweepRow], dev: i32) -> Vec<Strategy> {
    let mut strategies: Vec<Strategy> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.device == dev && r.phase == Phase::Alloc)
    {
        if !strategies.contains(&r.strategy) {
            strategies.push(r.strategy);
        }
    }
    strategies
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
        out.push_str(&phase_tables(rows, dev));
        out.push_str(&accounting_table(rows, dev));
        out.push_str(&baselines_table(rows, dev));
        out.push_str("What this shows:\n");
        for f in findings(rows, dev) {
            out.push_str(&format!("- {f}\n"));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::bullet_section("Skipped", &doc.skipped));
    out
}

/// One table per phase: a line per strategy, a column per size.
fn phase_tables(rows: &[SweepRow], dev: i32) -> String {
    let sizes = sizes_of(rows, dev);
    let strategies = strategies_of(rows, dev);
    let mut out = String::new();
    let tables: [(Phase, &str, CellFn); 10] = [
        (
            Phase::Alloc,
            "allocation time, ms (host clock, incl. synchronize), median [min-max] over fresh allocations",
            |r| Some(spread_ms(r, 3)),
        ),
        (
            Phase::Alloc,
            "allocation time per GB (1e9 bytes), ms, median [min-max]",
            |r| (r.bytes >= GB).then(|| fmt_spread(&r.ms_per_gb(), 3)),
        ),
        (
            Phase::Prefetch,
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
            Phase::GpuFirstTouch,
            "GPU first touch, ms [min-max] (us per page at the median)",
            touch_cell,
        ),
        (
            Phase::GpuSecondTouch,
            "GPU second touch, ms [min-max] (us per page)",
            touch_cell,
        ),
        (
            Phase::CpuFirstTouch,
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
            Phase::GpuTouchAfterCpu,
            "GPU touch after the CPU touched first, ms [min-max] (us per page)",
            touch_cell,
        ),
        (
            Phase::Fill,
            "fill bandwidth, GB/s written: median [min-max] (CV between allocations / within one, %)",
            bandwidth_cell,
        ),
        (
            Phase::Read,
            "read bandwidth, GB/s read: median [min-max] (CV between allocations / within one, %)",
            bandwidth_cell,
        ),
        (Phase::Free, "free time, ms [min-max]", |r| {
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
        for &st in &strategies {
            if !rows
                .iter()
                .any(|r| r.device == dev && r.strategy == st && r.phase == ph)
            {
                continue;
            }
            let mut line = vec![st.to_string()];
            line.extend(sizes.iter().map(|b| {
                find(rows, dev, st, *b, &ph)
                    .and_then(cell)
                    .unwrap_or_else(|| "-".into())
            }));
            t.add_row(line);
        }
        out.push_str(&format!("{title}\n{t}\n\n"));
    }
    out
}

/// Accounting: what the allocation and the first touch moved.
fn accounting_table(rows: &[SweepRow], dev: i32) -> String {
    let mut t = new_table(&[
        "strategy",
        "size",
        "cuMemGetInfo free after alloc, GiB",
        "after first GPU touch, GiB",
        "MemAvailable after alloc, GiB",
        "RSS after alloc, GiB",
    ]);
    for st in strategies_of(rows, dev) {
        for b in sizes_of(rows, dev) {
            let (Some(al), Some(ft)) = (
                find(rows, dev, st, b, Phase::Alloc),
                find(rows, dev, st, b, Phase::GpuFirstTouch),
            ) else {
                continue;
            };
            let g = |v: Option<i64>| format!("{:+.2}", v.unwrap_or(0) as f64 / GIB as f64);
            t.add_row(vec![
                st.to_string(),
                fmt_bytes(b),
                g(al.delta_device_free_bytes),
                g(ft.delta_device_free_bytes),
                g(al.delta_mem_available_bytes),
                g(al.delta_rss_bytes),
            ]);
        }
    }
    format!("memory accounting, change since before the allocation\n{t}\n\n")
}

/// The `cuMemsetD32` and device-to-device copy baselines.
fn baselines_table(rows: &[SweepRow], dev: i32) -> String {
    let mut t = new_table(&[
        "baseline on device memory",
        "size",
        "GB/s: median [min-max] (CV between allocations / within one, %)",
        "read+write traffic GB/s",
    ]);
    for r in rows.iter().filter(|r| r.device == dev) {
        let Some(call) = r.phase.baseline_call() else {
            continue;
        };
        t.add_row(vec![
            call.to_string(),
            fmt_bytes(r.bytes),
            bandwidth_cell(r).unwrap_or_else(|| "-".into()),
            r.gbps_traffic.map_or("-".into(), |v| format!("{v:.1}")),
        ]);
    }
    format!("{t}\n\n")
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
