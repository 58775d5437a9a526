//! The sweep section of the lab report: allocation time against size, first against second
//! touch, bandwidth per strategy, with the spread over fresh allocations, and the findings.

use super::findings::Findings;
use crate::error::Result;
use crate::experiments::lab::LabResults;
use crate::experiments::sweep::{SweepRow, bandwidth_cell, phase, spread_ms};
use crate::report::markdown::Page;
use crate::report::plots::{
    BarChart, BarSeries, BarSpread, LineChart, LineSpread, RefLine, Scale, Series,
    bar_chart_spread, line_chart_spread,
};
use crate::stats::{Order, order};
use crate::units::{GIB, fmt_bytes};

fn find<'a>(
    rows: &'a [SweepRow],
    dev: i32,
    st: &str,
    bytes: u64,
    ph: &str,
) -> Option<&'a SweepRow> {
    rows.iter()
        .find(|r| r.device == dev && r.strategy == st && r.bytes == bytes && r.phase == ph)
}

/// The sizes with an `alloc` row on `dev`, ascending.
pub fn sweep_sizes(rows: &[SweepRow], dev: i32) -> Vec<u64> {
    let mut v: Vec<u64> = rows
        .iter()
        .filter(|r| r.device == dev && r.phase == phase::ALLOC)
        .map(|r| r.bytes)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The strategies with an `alloc` row on `dev`, in the order they ran.
pub fn sweep_strategies(rows: &[SweepRow], dev: i32) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.device == dev && r.phase == phase::ALLOC)
    {
        if !v.contains(&r.strategy.to_string()) {
            v.push(r.strategy.to_string());
        }
    }
    v
}

/// Which sweep finding belongs to which figure (sweep::findings writes them; the lab adds the
/// figure): population and CPU-first touch to the touch figure, bandwidth and the fill-against-
/// memset check to the bandwidth figure.
fn sweep_finding_figure<'a>(f: &str, touch: &'a str, bw: &'a str, alloc: &'a str) -> &'a str {
    let l = f.to_ascii_lowercase();
    if l.contains("fill kernel reaches")
        || l.starts_with("bandwidth")
        || l.contains("allocations differ by")
    {
        bw
    } else if l.contains("populate") || l.contains("touch") {
        touch
    } else {
        alloc
    }
}

/// The section (nothing without sweep results).
pub fn section(r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
    let Some(s) = &r.sweep else { return Ok(()) };
    let rows = &s.rows;
    let mut devices: Vec<i32> = rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    if devices.is_empty() && s.skipped.is_empty() {
        return Ok(());
    }
    p.h2("Sweep: allocation, first touch, bandwidth");
    p.para("Each strategy and size through the measurement protocol: allocation (host clock, with a synchronize), GPU first and second touch (one write per page), the CPU-first variant for host-accessible strategies, fill and read bandwidth (median of the timed runs), verification, free.");
    for dev in devices {
        let name = r.device_name(dev);
        p.h3(format!("Device {dev}: {name}"));
        findings.group = format!("Sweep, device {dev} ({name})");
        let sizes = sweep_sizes(rows, dev);
        let strategies = sweep_strategies(rows, dev);
        let Some(&big) = sizes.last() else { continue };
        let d = Dev {
            r,
            rows,
            dev,
            sizes,
            strategies,
            big,
            tag: format!("device {dev} ({name})"),
        };
        let fig_alloc = alloc_figure(&d, p)?;
        let fig_touch = touch_figure(&d, p)?;
        let fig_bw = bandwidth_figure(&d, p)?;
        tables(&d, p);
        device_findings(&d, findings, [&fig_alloc, &fig_touch, &fig_bw]);
    }
    if !s.skipped.is_empty() {
        p.para("Not run in the sweep:");
        p.bullets(s.skipped.clone());
    }
    Ok(())
}

/// One device's sweep, as its figures, tables and findings read it.
struct Dev<'a> {
    r: &'a LabResults,
    rows: &'a [SweepRow],
    dev: i32,
    sizes: Vec<u64>,
    /// In the order they ran.
    strategies: Vec<String>,
    /// The largest size.
    big: u64,
    /// "device N (name)".
    tag: String,
}

/// Figure: allocation time against size; returns its label.
fn alloc_figure(d: &Dev, p: &mut Page) -> Result<String> {
    let (rows, dev, sizes, strategies, tag) = (d.rows, d.dev, &d.sizes, &d.strategies, &d.tag);
    // Figure: allocation time against size.
    let series = strategies
        .iter()
        .map(|st| Series {
            name: st.clone(),
            points: sizes
                .iter()
                .filter_map(|b| {
                    find(rows, dev, st, *b, phase::ALLOC)
                        .map(|r| (*b as f64 / GIB as f64, r.ms_median))
                })
                .collect(),
        })
        .collect();
    let spread: Vec<LineSpread> = strategies
        .iter()
        .map(|st| {
            sizes
                .iter()
                .filter_map(|b| {
                    find(rows, dev, st, *b, phase::ALLOC)
                        .filter(|r| r.runs > 1)
                        .map(|r| (*b as f64 / GIB as f64, r.ms_min, r.ms_max))
                })
                .collect()
        })
        .collect();
    let svg = line_chart_spread(
        &LineChart {
            title: format!("Allocation time against size, {tag}"),
            x_label: "size (GiB, log scale)".into(),
            y_label: "allocation time (ms, log scale)".into(),
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            series,
        },
        &spread,
    )?;
    let fig_alloc = p.figure(
        &format!("alloc-time-dev{dev}"),
        format!("Allocation time against size per strategy, {tag}"),
        "Host clock around the allocation call(s) and a synchronize: the median over fresh allocations per point, with a bar from the fastest to the slowest (the `alloc` rows of the sweep; n in the table). Both axes logarithmic.",
        svg,
    );
    Ok(fig_alloc)
}

/// Figure: first against second touch at the largest size; returns its label.
fn touch_figure(d: &Dev, p: &mut Page) -> Result<String> {
    let (rows, dev, big, strategies, tag) = (d.rows, d.dev, d.big, &d.strategies, &d.tag);
    // Figure: first against second touch at the largest size.
    let touch_phases = [
        (phase::GPU_FIRST_TOUCH, "GPU first touch"),
        (phase::GPU_SECOND_TOUCH, "GPU second touch"),
        (phase::CPU_FIRST_TOUCH, "CPU first touch (fresh allocation)"),
        (phase::GPU_TOUCH_AFTER_CPU, "GPU touch after the CPU's"),
    ];
    let with_touch: Vec<String> = strategies
        .iter()
        .filter(|st| find(rows, dev, st, big, phase::GPU_FIRST_TOUCH).is_some())
        .cloned()
        .collect();
    let shown: Vec<&(&str, &str)> = touch_phases
        .iter()
        .filter(|(ph, _)| {
            with_touch
                .iter()
                .any(|st| find(rows, dev, st, big, ph).is_some())
        })
        .collect();
    let series = shown
        .iter()
        .map(|(ph, label)| BarSeries {
            name: label.to_string(),
            values: with_touch
                .iter()
                .map(|st| find(rows, dev, st, big, ph).map(|r| r.ms_median))
                .collect(),
        })
        .collect();
    let spread: Vec<BarSpread> = shown
        .iter()
        .map(|(ph, _)| {
            with_touch
                .iter()
                .map(|st| {
                    find(rows, dev, st, big, ph)
                        .filter(|r| r.runs > 1)
                        .map(|r| (r.ms_min, r.ms_max))
                })
                .collect()
        })
        .collect();
    let svg = bar_chart_spread(
        &BarChart {
            title: format!("First against second touch at {}, {tag}", fmt_bytes(big)),
            value_label: "time to touch every page (ms, log scale)".into(),
            categories: with_touch.clone(),
            series,
            scale: Scale::Log10,
            reference_lines: Vec::new(),
            annotate: true,
        },
        &spread,
    )?;
    let fig_touch = p.figure(
        &format!("touch-dev{dev}"),
        format!("First against second touch per strategy at {}, {tag}", fmt_bytes(big)),
        "The touch kernel writes one word per page; the first touch pays for population or migration, the second is warm. The CPU-first pair is a fresh allocation touched by the CPU (one write per page), then by the GPU. Bars are medians over fresh allocations; the black whiskers run from the fastest to the slowest.",
        svg,
    );
    Ok(fig_touch)
}

/// Figure: bandwidth against device fill and `cuMemsetD32`; returns its label.
fn bandwidth_figure(d: &Dev, p: &mut Page) -> Result<String> {
    let (rows, dev, big, strategies, tag) = (d.rows, d.dev, d.big, &d.strategies, &d.tag);
    let r = d.r;
    // Figure: bandwidth against device fill and cuMemsetD32.
    let with_bw: Vec<String> = strategies
        .iter()
        .filter(|st| {
            find(rows, dev, st, big, phase::FILL).is_some()
                || find(rows, dev, st, big, phase::READ).is_some()
        })
        .cloned()
        .collect();
    let bw = |ph: &str| -> Vec<Option<f64>> {
        with_bw
            .iter()
            .map(|st| find(rows, dev, st, big, ph).and_then(|r| r.gbps))
            .collect()
    };
    let mut refs = Vec::new();
    let dev_fill = find(rows, dev, "device", big, phase::FILL).and_then(|r| r.gbps);
    if let Some(v) = dev_fill {
        refs.push(RefLine {
            name: format!("device fill ({v:.0} GB/s)"),
            value: v,
        });
    }
    let memset = find(rows, dev, "device", big, phase::MEMSET_BASELINE)
        .and_then(|r| r.gbps)
        .map(|v| (v, fmt_bytes(big)))
        .or_else(|| {
            r.selftest.as_ref().and_then(|v| {
                v.iter()
                    .filter(|s| s.device == dev)
                    .flat_map(|s| s.bandwidth.iter())
                    .find(|b| b.op == "cuMemsetD32")
                    .map(|b| (b.gbps.median, format!("{} (selftest)", fmt_bytes(b.bytes))))
            })
        });
    if let Some((v, at)) = &memset {
        refs.push(RefLine {
            name: format!("cuMemsetD32 at {at} ({v:.0} GB/s)"),
            value: *v,
        });
    }
    let bw_spread = |ph: &str| -> BarSpread {
        with_bw
            .iter()
            .map(|st| {
                find(rows, dev, st, big, ph)
                    .filter(|r| r.alloc_gbps.len() > 1)
                    .map(|r| {
                        r.alloc_gbps
                            .iter()
                            .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
                    })
            })
            .collect()
    };
    let spread = vec![bw_spread(phase::FILL), bw_spread(phase::READ)];
    let svg = bar_chart_spread(
        &BarChart {
            title: format!("Bandwidth per strategy at {}, {tag}", fmt_bytes(big)),
            value_label: "bandwidth (GB/s = 1e9 bytes/s, log scale)".into(),
            categories: with_bw.clone(),
            series: vec![
                BarSeries {
                    name: "fill (bytes written)".into(),
                    values: bw(phase::FILL),
                },
                BarSeries {
                    name: "read (bytes read)".into(),
                    values: bw(phase::READ),
                },
            ],
            scale: Scale::Log10,
            reference_lines: refs,
            annotate: true,
        },
        &spread,
    )?;
    let fig_bw = p.figure(
        &format!("bandwidth-dev{dev}"),
        format!("Bandwidth per strategy at {}, against device fill and cuMemsetD32, {tag}", fmt_bytes(big)),
        "Median GB/s of the `fill` and `read` kernels over the whole buffer once it is populated, over every run on every fresh allocation; the black whiskers run from the slowest to the fastest allocation (each allocation's median), so a wide whisker means placement, not timing noise. The dashed lines are the `device` fill figure and the `cuMemsetD32` ceiling measured in the same run.",
        svg,
    );
    Ok(fig_bw)
}

/// The tables of every phase, median [min-max] per strategy and size.
fn tables(d: &Dev, p: &mut Page) {
    let (rows, dev, sizes, strategies, tag) = (d.rows, d.dev, &d.sizes, &d.strategies, &d.tag);
    // Tables.
    let table =
        |p: &mut Page, title: &str, ph: &str, cell: &dyn Fn(&SweepRow) -> Option<String>| {
            let mut header = vec!["strategy".to_string()];
            header.extend(sizes.iter().map(|b| fmt_bytes(*b)));
            let body: Vec<Vec<String>> = strategies
                .iter()
                .filter(|st| {
                    rows.iter()
                        .any(|r| r.device == dev && r.strategy == *st && r.phase == ph)
                })
                .map(|st| {
                    let mut line = vec![st.clone()];
                    line.extend(sizes.iter().map(|b| {
                        find(rows, dev, st, *b, ph)
                            .and_then(cell)
                            .unwrap_or_else(|| "-".into())
                    }));
                    line
                })
                .collect();
            if !body.is_empty() {
                p.table(format!("{title}, {tag}"), &header, body);
            }
        };
    table(
        p,
        "Allocation time, ms: median [min-max]",
        phase::ALLOC,
        &|r| Some(spread_ms(r, 3)),
    );
    table(
        p,
        "GPU first touch, ms: median [min-max]",
        phase::GPU_FIRST_TOUCH,
        &|r| Some(spread_ms(r, 2)),
    );
    table(
        p,
        "GPU second touch, ms: median [min-max]",
        phase::GPU_SECOND_TOUCH,
        &|r| Some(spread_ms(r, 2)),
    );
    table(
        p,
        "CPU first touch, ms: median [min-max] (threads)",
        phase::CPU_FIRST_TOUCH,
        &|r| Some(format!("{} ({})", spread_ms(r, 2), r.threads.unwrap_or(1))),
    );
    table(
        p,
        "GPU touch after the CPU's, ms: median [min-max]",
        phase::GPU_TOUCH_AFTER_CPU,
        &|r| Some(spread_ms(r, 2)),
    );
    table(
        p,
        "Fill bandwidth, GB/s: median [min-max] (CV between allocations / within one, %)",
        phase::FILL,
        &bandwidth_cell,
    );
    table(
        p,
        "Read bandwidth, GB/s: median [min-max] (CV between allocations / within one, %)",
        phase::READ,
        &bandwidth_cell,
    );
    table(p, "Free time, ms: median [min-max]", phase::FREE, &|r| {
        Some(spread_ms(r, 3))
    });
    if rows.iter().any(|r| r.device == dev && r.runs > 1) {
        p.para("n (fresh allocations per one-shot figure, runs per bandwidth figure) and every sample are in results.json (`runs`, `samples_ms`); sweep.csv keeps median, min, max, CV and n.");
    }
}

/// Findings: allocation cost (from the figure), then the sweep's own, each naming its figure.
fn device_findings(d: &Dev, findings: &mut Findings, figs: [&str; 3]) {
    let (rows, dev, big, strategies) = (d.rows, d.dev, d.big, &d.strategies);
    let [fig_alloc, fig_touch, fig_bw] = figs;
    // Findings: allocation cost (from the figure), then the sweep's own.
    let allocs: Vec<&SweepRow> = strategies
        .iter()
        .filter_map(|st| find(rows, dev, st, big, phase::ALLOC))
        .collect();
    let fastest = allocs
        .iter()
        .min_by(|a, b| a.ms_median.total_cmp(&b.ms_median));
    let slowest = allocs
        .iter()
        .max_by(|a, b| a.ms_median.total_cmp(&b.ms_median));
    if let (Some(f), Some(s)) = (fastest, slowest)
        && f.strategy != s.strategy
    {
        let per_gib = s.ms_median / 1e3 / (big as f64 / GIB as f64);
        let verdict = match order(&s.summary(), &f.summary()) {
            Order::Above => format!(
                "{:.0}x longer, {:.2} s per GiB; the samples do not overlap",
                if f.ms_median > 0.0 {
                    s.ms_median / f.ms_median
                } else {
                    0.0
                },
                per_gib
            ),
            _ => format!(
                "indistinguishable at n = {}: the samples overlap",
                s.runs.min(f.runs)
            ),
        };
        findings.push(format!(
            "{fig_alloc}: on device {dev} allocating {} takes {} ms with {} and {} ms with {} ({verdict}).",
            fmt_bytes(big),
            spread_ms(f, 3),
            f.strategy,
            spread_ms(s, 1),
            s.strategy,
        ));
    }
    // Linear costs capped at smaller sizes: their per-GiB rate where they were measured.
    for st in strategies {
        let Some(r) = rows
            .iter()
            .filter(|r| r.device == dev && r.strategy == st && r.phase == phase::ALLOC)
            .max_by_key(|r| r.bytes)
        else {
            continue;
        };
        if r.bytes < big && r.bytes >= 256 * 1024 * 1024 {
            let gib_r = r.bytes as f64 / GIB as f64;
            findings.push(format!(
                "{fig_alloc}: {st} was measured up to {} (the lab caps costs linear in size): allocation {} ms there, {:.0} ms per GiB [{:.0}-{:.0}], so about {:.1} s at {}.",
                fmt_bytes(r.bytes),
                spread_ms(r, 1),
                r.ms_median / gib_r,
                r.ms_min / gib_r,
                r.ms_max / gib_r,
                r.ms_median / gib_r * (big as f64 / GIB as f64) / 1e3,
                fmt_bytes(big)
            ));
        }
    }
    for f in crate::experiments::sweep::findings(rows, dev) {
        let fig = sweep_finding_figure(&f, fig_touch, fig_bw, fig_alloc);
        findings.push(format!("{fig}: {f}"));
    }
}
