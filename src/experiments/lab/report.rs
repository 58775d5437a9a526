//! The lab report, built from a [`LabResults`] alone (so every number in it comes from
//! `results.json`, and `lab --from DIR` can rebuild it): numbered figures and tables per
//! experiment and per device, and the findings, each naming the figure or table it comes from.
//!
//! Figures: allocation time against size per strategy (log-log), first against second touch per
//! strategy at the largest size, bandwidth per strategy against `device` fill and `cuMemsetD32`,
//! the memory accounting view (`cuMemGetInfo` free against MemAvailable, MemFree and Cached), and
//! the probe limits per strategy against `cuMemGetInfo` free. Sweep figures and tables show the
//! spread over fresh allocations (median [min-max], whiskers), and comparisons follow the overlap
//! rule of [`crate::stats::order`].

use super::{LabResults, StepStatus};
use crate::error::Result;
use crate::experiments::headline;
use crate::experiments::sweep::{SweepRow, bandwidth_cell, phase, spread_ms};
use crate::report::markdown::Page;
use crate::report::plots::{
    BarChart, BarSeries, BarSpread, LineChart, LineSpread, RefLine, Scale, Series, bar_chart,
    bar_chart_spread, line_chart_spread,
};
use crate::stats::{Order, order};
use crate::units::{GIB, fmt_bytes};

/// A built report: the page and its findings (also on the page).
pub struct LabPage {
    pub page: Page,
    pub findings: Vec<String>,
}

/// Findings in groups (one per experiment, and per device where there are several), each
/// sentence naming the figure or table it comes from.
#[derive(Debug, Default)]
pub struct Findings {
    /// The group the next sentences belong to.
    pub group: String,
    pub items: Vec<(String, String)>,
}

impl Findings {
    pub fn push(&mut self, sentence: String) {
        self.items.push((self.group.clone(), sentence));
    }

    /// The groups in order of first appearance, with their sentences.
    pub fn grouped(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (g, f) in &self.items {
            match out.iter_mut().find(|(x, _)| x == g) {
                Some((_, v)) => v.push(f.clone()),
                None => out.push((g.clone(), vec![f.clone()])),
            }
        }
        out
    }
}

/// GiB with two decimals (tables of memory).
pub fn gib(b: u64) -> String {
    crate::units::fmt_gib_dp(b, 2)
}

/// Signed GiB with two decimals.
pub fn gib_signed(b: i64) -> String {
    format!("{:+.2}", b as f64 / GIB as f64)
}

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

/// The title of the page: host and devices.
fn title(r: &LabResults) -> String {
    let mut names: Vec<String> = r
        .environment
        .devices
        .iter()
        .map(|d| format!("{} (device {})", d.name, d.ordinal))
        .collect();
    if names.is_empty() {
        names.push("no GPU".into());
    }
    format!(
        "cumemlab lab: {}, {}",
        r.environment.host.hostname,
        names.join(", ")
    )
}

/// Builds the report page.
pub fn build(r: &LabResults) -> Result<LabPage> {
    let mut p = Page::new(title(r));
    let mut body = Page::new("");
    let mut findings = Findings::default();

    intro(r, &mut p);
    // Figures and tables are numbered in page order, and the findings come first on the page:
    // build the body first, then put the findings above it with the numbers the body gave.
    // The headline table is the body's first (Table 1) and is lifted above the findings.
    let heads = headline::from_lab(r);
    if !heads.is_empty() {
        body.h2("What memory costs on this machine");
        for h in &heads {
            h.add_to(&mut body);
        }
    }
    let head_blocks = body.blocks.len();
    steps_and_machine(r, &mut body);
    selftest(r, &mut body, &mut findings);
    sweep(r, &mut body, &mut findings)?;
    accounting(r, &mut body, &mut findings)?;
    probe(r, &mut body, &mut findings)?;
    cache(r, &mut body, &mut findings);
    layout(r, &mut body, &mut findings);
    plan(r, &mut body, &mut findings);
    files(r, &mut body);

    headline::lift(&mut p, &mut body, head_blocks);
    p.h2("Findings");
    let groups = findings.grouped();
    if groups.is_empty() {
        p.para("No findings: no experiment produced numbers to compare (see the steps below).");
    }
    findings_by_strategy(&heads, groups, &mut p);
    p.blocks.extend(body.blocks);
    Ok(LabPage {
        page: p,
        findings: findings.items.into_iter().map(|(_, f)| f).collect(),
    })
}

/// The strategy a finding is about: the one its sentence starts with (after the "Figure N: "
/// label), as in "managed: the CPU's first touch ...".
fn finding_strategy<'a>(f: &str, strategies: &'a [String]) -> Option<&'a String> {
    let rest = f.split_once(": ").map_or(f, |(_, r)| r);
    strategies
        .iter()
        .find(|st| rest.starts_with(&format!("{st}: ")))
}

/// The findings as the detail under the headline table: those about one strategy under that
/// row's name (per device), then the rest by experiment.
fn findings_by_strategy(
    heads: &[headline::Headline],
    groups: Vec<(String, Vec<String>)>,
    p: &mut Page,
) {
    let mut rest: Vec<(String, Vec<String>)> = Vec::new();
    let mut by_row: Vec<(String, Vec<String>)> = Vec::new();
    for (g, items) in groups {
        let h = heads
            .iter()
            .find(|h| g.contains(&format!("device {} ", h.device)));
        let strategies: Vec<String> = h.map_or(Vec::new(), |h| {
            h.rows.iter().map(|r| r.strategy.clone()).collect()
        });
        let mut other = Vec::new();
        for f in items {
            match (h, finding_strategy(&f, &strategies)) {
                (Some(h), Some(st)) => {
                    let key = if heads.len() > 1 {
                        format!("{st}, device {}", h.device)
                    } else {
                        st.clone()
                    };
                    match by_row.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(f),
                        None => by_row.push((key, vec![f])),
                    }
                }
                _ => other.push(f),
            }
        }
        if !other.is_empty() {
            rest.push((g, other));
        }
    }
    if !by_row.is_empty() {
        p.para("By strategy (the rows of the table above):");
        for (k, items) in by_row {
            p.para(format!("**{k}**"));
            p.bullets(items);
        }
        p.para("Across strategies, by experiment:");
    }
    for (g, items) in rest {
        p.para(format!("**{g}**"));
        p.bullets(items);
    }
}

fn intro(r: &LabResults, p: &mut Page) {
    let h = &r.environment.host;
    let dur = match (&r.finished_at, humantime::parse_rfc3339(&r.started_at)) {
        (Some(f), Ok(s)) => humantime::parse_rfc3339(f)
            .ok()
            .and_then(|f| f.duration_since(s).ok())
            .map(|d| format!(", {:.1} minutes", d.as_secs_f64() / 60.0))
            .unwrap_or_default(),
        _ => String::new(),
    };
    p.para(format!(
        "Measured by cumemlab {} on `{}` ({}, Linux {}), started {}{dur}. Budget {:.0} minutes (planned about {:.1}). GB = 1e9 bytes, GiB = 2^30 bytes, GB/s = 1e9 bytes per second; every number below is in `results.json` beside this report.",
        r.tool_version,
        h.hostname,
        h.arch,
        h.kernel_release,
        r.started_at,
        r.settings.budget_minutes,
        r.settings.plan.estimated_s / 60.0
    ));
    if r.interrupted {
        p.para("**Interrupted** (Ctrl-C or SIGTERM): the steps after the interruption did not run; what ran is reported.");
    }
    if let Some(why) = &r.settings.no_gpu_reason {
        let needs: Vec<String> = r
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::NeedsGpu)
            .map(|s| s.name.clone())
            .collect();
        p.para(format!(
            "**No GPU here** ({why}): the host-side parts ran (host memory, page cache, `plan` for {}); {} need a GPU. Run `cumemlab lab` on the GPU host for the rest.",
            r.plan
                .as_ref()
                .map(|v| {
                    v.iter()
                        .map(|m| format!("`{}`", m.target.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| "the target".into()),
            if needs.is_empty() {
                "no step".to_string()
            } else {
                needs.join(", ")
            }
        ));
    }
    if !r.settings.plan.scaled.is_empty() {
        let plan = &r.settings.plan;
        let took: f64 = r.steps.iter().map(|s| s.seconds).sum();
        p.para(if plan.budget_s > 0.0 {
            format!(
                "Scaled to the budget of {:.1} minutes (planned {:.0} s from the H200 planning figures in `lab::cost`; the steps took {:.0} s):",
                plan.budget_s / 60.0,
                plan.estimated_s,
                took
            )
        } else {
            "Scaled to the budget:".to_string()
        });
        p.bullets(plan.scaled.clone());
    }
}

fn steps_and_machine(r: &LabResults, p: &mut Page) {
    p.h2("Steps");
    let rows = r
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.device.map_or("-".into(), |d| d.to_string()),
                s.status.label().to_string(),
                format!("{:.1}", s.seconds),
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    p.table(
        "What ran, in order",
        &["step", "device", "status", "time (s)", "reason"],
        rows,
    );

    p.h2("Machine");
    let e = &r.environment;
    let h = &e.host;
    let m = e.meminfo.clone().unwrap_or_default();
    p.table(
        "The host",
        &[
            "host",
            "kernel",
            "arch",
            "CPUs",
            "page size",
            "THP",
            "cgroup limit",
            "MemTotal (GiB)",
            "CUDA driver",
        ],
        vec![vec![
            h.hostname.clone(),
            h.kernel_release.clone(),
            h.arch.clone(),
            h.cpus.to_string(),
            fmt_bytes(h.page_size),
            h.thp_enabled.clone(),
            h.cgroup_memory_limit.map_or("none".into(), fmt_bytes),
            gib(m.mem_total),
            e.driver_version.clone().unwrap_or_else(|| "none".into()),
        ]],
    );
    if !e.devices.is_empty() {
        let rows = e
            .devices
            .iter()
            .map(|d| {
                vec![
                    d.ordinal.to_string(),
                    d.name.clone(),
                    d.compute_capability.clone(),
                    d.architecture.label().to_string(),
                    gib(d.total_bytes),
                    gib(d.cumemgetinfo_free_bytes),
                    gib(d.usable.estimate_bytes),
                    d.usable.basis.clone(),
                ]
            })
            .collect();
        p.table(
            "The devices at the start",
            &[
                "device",
                "name",
                "compute capability",
                "memory architecture",
                "total (GiB)",
                "cuMemGetInfo free (GiB)",
                "usable estimate (GiB)",
                "estimate from",
            ],
            rows,
        );
        for d in &e.devices {
            if let Some(w) = &d.usable.warning {
                p.para(format!("Device {}: {w}", d.ordinal));
            }
            // The bandwidth line prefers this lab's selftest over a figure derived from attributes.
            let measured = r.selftest.iter().flatten().find(|s| s.device == d.ordinal);
            let measured =
                measured.and_then(crate::experiments::info::MeasuredBandwidth::from_selftest);
            p.para(format!(
                "Device {}: {}.",
                d.ordinal,
                crate::experiments::info::bandwidth_line(
                    &d.name,
                    d.architecture,
                    &d.attributes,
                    measured
                )
            ));
        }
    }
}

fn selftest(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(v) = &r.selftest else { return };
    if v.is_empty() {
        return;
    }
    p.h2("Selftest");
    findings.group = "Selftest".into();
    p.para("Every kernel verified on fresh random data (at the bandwidth size and at an odd size), then `fill`, `read` and a device-to-device copy against `cuMemsetD32` on device memory.");
    let mut checks = Vec::new();
    for s in v {
        let passed = s.checks.iter().filter(|c| c.passed).count();
        let failed: Vec<String> = s
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} at {}: {}", c.kernel, fmt_bytes(c.bytes), c.detail))
            .collect();
        checks.push(vec![
            s.device.to_string(),
            s.device_name.clone(),
            format!("{passed} of {}", s.checks.len()),
            if failed.is_empty() {
                "none".into()
            } else {
                failed.join("; ")
            },
        ]);
    }
    let t1 = p.table(
        "Kernel checks",
        &["device", "name", "passed", "failures"],
        checks,
    );
    let mut bw = Vec::new();
    for s in v {
        for b in &s.bandwidth {
            bw.push(vec![
                s.device.to_string(),
                b.op.to_string(),
                fmt_bytes(b.bytes),
                format!("{:.1}", b.gbps.median),
                format!("{:.1}", b.gbps.min),
                format!("{:.1}", b.gbps.max),
                format!("{:.2}", 100.0 * b.gbps.cv),
                headline::pct_vs(b.percent_of_memset, 95.0),
            ]);
        }
    }
    let t2 = p.table(
        "Bandwidth on device memory (GB/s = 1e9 bytes/s; median of the timed runs after a warm-up)",
        &[
            "device",
            "operation",
            "size",
            "median (GB/s)",
            "min (GB/s)",
            "max (GB/s)",
            "CV (%)",
            "% of cuMemsetD32",
        ],
        bw,
    );
    for s in v {
        let passed = s.checks.iter().filter(|c| c.passed).count();
        let fill = s.bandwidth.iter().find(|b| b.op == "fill kernel");
        findings.push(format!(
            "{t1}: on device {} ({}) {} of {} kernel checks passed{}.",
            s.device,
            s.device_name,
            passed,
            s.checks.len(),
            if s.all_passed {
                String::new()
            } else {
                ": results from a failing kernel are suspect until the failure is understood".into()
            }
        ));
        if let Some(f) = fill {
            findings.push(format!(
                "{t2}: on device {} the fill kernel reaches {}% of cuMemsetD32 ({:.0} GB/s){}.",
                s.device,
                headline::pct_vs(f.percent_of_memset, 95.0),
                f.gbps.median,
                if s.fill_reaches_95_percent_of_memset {
                    ": kernel bandwidth figures can be trusted"
                } else {
                    ", below the 95% the protocol requires: kernel bandwidth figures understate this memory"
                }
            ));
        }
    }
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

fn sweep(r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
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
        let tag = format!("device {dev} ({name})");

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
        for st in &strategies {
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
            let fig = sweep_finding_figure(&f, &fig_touch, &fig_bw, &fig_alloc);
            findings.push(format!("{fig}: {f}"));
        }
    }
    if !s.skipped.is_empty() {
        p.para("Not run in the sweep:");
        p.bullets(s.skipped.clone());
    }
    Ok(())
}

fn accounting(r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
    let snaps = &r.accounting;
    if snaps.is_empty() {
        return Ok(());
    }
    p.h2("Memory accounting");
    findings.group = "Memory accounting".into();
    p.para("What the driver and the kernel say is free, at the start and at the end of the lab: `cuMemGetInfo` free per device against /proc/meminfo's MemAvailable (what the kernel can give, page cache included), MemFree (unused) and Cached (the page cache).");
    let mut cats: Vec<String> = Vec::new();
    let mut devs: Vec<(i32, String)> = Vec::new();
    for s in snaps {
        for d in &s.devices {
            if !devs.iter().any(|x| x.0 == d.device) {
                devs.push((d.device, d.name.clone()));
            }
        }
    }
    for (d, _) in &devs {
        cats.push(format!("cuMemGetInfo free, device {d}"));
    }
    cats.extend(["MemTotal", "MemAvailable", "MemFree", "Cached"].map(String::from));
    let values = |s: &super::AccountingSnapshot| -> Vec<Option<f64>> {
        let g = |b: u64| Some(b as f64 / GIB as f64);
        let mut v: Vec<Option<f64>> = devs
            .iter()
            .map(|(d, _)| {
                s.devices
                    .iter()
                    .find(|x| x.device == *d)
                    .and_then(|x| g(x.cumemgetinfo_free_bytes))
            })
            .collect();
        v.extend([
            g(s.mem_total_bytes),
            g(s.mem_available_bytes),
            g(s.mem_free_bytes),
            g(s.cached_bytes),
        ]);
        v
    };
    let series = snaps
        .iter()
        .map(|s| BarSeries {
            name: format!("at the {}", s.when),
            values: values(s),
        })
        .collect();
    // Without a GPU there is no cuMemGetInfo series: the titles say what is plotted.
    let (title, caption) = if devs.is_empty() {
        (
            "Host memory: MemAvailable, MemFree and the page cache (no GPU here)",
            "Memory accounting: MemTotal, MemAvailable, MemFree and Cached (no GPU, so no cuMemGetInfo)",
        )
    } else {
        (
            "cuMemGetInfo against MemAvailable and the page cache",
            "Memory accounting: cuMemGetInfo free against MemAvailable, MemFree and Cached",
        )
    };
    let svg = bar_chart(&BarChart {
        title: title.into(),
        value_label: "memory (GiB = 2^30 bytes)".into(),
        categories: cats.clone(),
        series,
        scale: Scale::Linear,
        reference_lines: Vec::new(),
        annotate: true,
    })?;
    let fig = p.figure(
        "accounting",
        caption,
        "From the environment recorded at the start of the lab and again at its end (`accounting` in results.json).",
        svg,
    );
    let mut header = vec!["GiB".to_string()];
    header.extend(snaps.iter().map(|s| format!("at the {}", s.when)));
    let table_rows: Vec<Vec<String>> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut line = vec![c.clone()];
            line.extend(
                snaps
                    .iter()
                    .map(|s| values(s)[i].map_or("-".into(), |v| format!("{v:.2}"))),
            );
            line
        })
        .collect();
    p.table("Memory accounting (GiB = 2^30 bytes)", &header, table_rows);

    let s0 = &snaps[0];
    for d in &s0.devices {
        let unified = r
            .environment
            .devices
            .iter()
            .find(|x| x.ordinal == d.device)
            .is_some_and(|x| x.architecture.is_unified());
        if unified {
            let hidden = s0.mem_available_bytes as i64 - d.cumemgetinfo_free_bytes as i64;
            findings.push(format!(
                "{fig}: on device {} (unified memory) cuMemGetInfo reports {} GiB free while MemAvailable is {} GiB: it understates what can be allocated by {} GiB, with {} GiB of page cache (Cached) that the kernel reclaims on demand.",
                d.device,
                gib(d.cumemgetinfo_free_bytes),
                gib(s0.mem_available_bytes),
                gib_signed(hidden),
                gib(s0.cached_bytes)
            ));
        } else {
            findings.push(format!(
                "{fig}: on device {} (discrete) cuMemGetInfo reports {} GiB free of {} GiB of the card's own memory; the host's MemAvailable ({} GiB, with {} GiB of page cache) bounds pinned, registered and managed host memory instead.",
                d.device,
                gib(d.cumemgetinfo_free_bytes),
                gib(d.cumemgetinfo_total_bytes),
                gib(s0.mem_available_bytes),
                gib(s0.cached_bytes)
            ));
        }
    }
    if s0.devices.is_empty() {
        findings.push(format!(
            "{fig}: this host has {} GiB available (MemAvailable) of {} GiB, {} GiB of it page cache (Cached); on a GB10 cuMemGetInfo would report MemFree ({} GiB), not MemAvailable.",
            gib(s0.mem_available_bytes),
            gib(s0.mem_total_bytes),
            gib(s0.cached_bytes),
            gib(s0.mem_free_bytes)
        ));
    }
    if let (Some(first), Some(last)) = (snaps.first(), snaps.last())
        && snaps.len() > 1
    {
        for d in &first.devices {
            if let Some(e) = last.devices.iter().find(|x| x.device == d.device) {
                let diff = e.cumemgetinfo_free_bytes as i64 - d.cumemgetinfo_free_bytes as i64;
                if diff.unsigned_abs() > 256 * crate::units::MIB {
                    findings.push(format!(
                        "{fig}: cuMemGetInfo free on device {} changed by {} GiB between the start and the end of the lab (memory not returned, or other processes).",
                        d.device,
                        gib_signed(diff)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn probe(r: &LabResults, p: &mut Page, findings: &mut Findings) -> Result<()> {
    let Some(s) = &r.probe else { return Ok(()) };
    if s.rows.is_empty() && s.skipped.is_empty() {
        return Ok(());
    }
    p.h2("Probe: how much can really be allocated");
    p.para("Per strategy, the largest single allocation (bisection up to the safety ceiling) and the most held at once in chunks; each says why it stopped (an out-of-memory failure is the real limit; a ceiling or cap is not).");
    let mut devices: Vec<i32> = s.rows.iter().map(|r| r.device).collect();
    devices.sort_unstable();
    devices.dedup();
    for dev in devices {
        let rows: Vec<_> = s.rows.iter().filter(|r| r.device == dev).collect();
        let name = r.device_name(dev);
        findings.group = format!("Probe, device {dev} ({name})");
        let mut strategies: Vec<String> = Vec::new();
        for x in &rows {
            if !strategies.contains(&x.strategy.to_string()) {
                strategies.push(x.strategy.to_string());
            }
        }
        let mut kinds: Vec<crate::experiments::probe::ProbeKind> = Vec::new();
        for x in &rows {
            if !kinds.contains(&x.kind) {
                kinds.push(x.kind);
            }
        }
        let series = kinds
            .iter()
            .map(|k| BarSeries {
                name: match k.key() {
                    "single" => "largest single allocation".to_string(),
                    _ => "most held at once (chunks)".to_string(),
                },
                values: strategies
                    .iter()
                    .map(|st| {
                        rows.iter()
                            .find(|x| x.strategy == st && x.kind == *k)
                            .map(|x| x.max_bytes as f64 / GIB as f64)
                    })
                    .collect(),
            })
            .collect();
        let free = rows.first().map(|x| x.device_free_bytes).unwrap_or(0);
        let avail = rows.first().map(|x| x.mem_available_bytes).unwrap_or(0);
        let mut refs = vec![RefLine {
            name: format!(
                "cuMemGetInfo free before the first probe ({} GiB)",
                gib(free)
            ),
            value: free as f64 / GIB as f64,
        }];
        if avail > 0 {
            refs.push(RefLine {
                name: format!("MemAvailable ({} GiB)", gib(avail)),
                value: avail as f64 / GIB as f64,
            });
        }
        let svg = bar_chart(&BarChart {
            title: format!("Probe limits per strategy, device {dev} ({name})"),
            value_label: "largest allocation (GiB = 2^30 bytes)".into(),
            categories: strategies.clone(),
            series,
            scale: Scale::Linear,
            reference_lines: refs,
            annotate: true,
        })?;
        let fig = p.figure(
            &format!("probe-dev{dev}"),
            format!("Probe limits per strategy, device {dev} ({name})"),
            "The probe's `max_bytes` per strategy and kind; the dashed lines are `cuMemGetInfo` free and MemAvailable taken just before the first probe. A bar that stops at a ceiling or cap is a lower bound (see the table).",
            svg,
        );
        let body = rows
            .iter()
            .map(|x| {
                vec![
                    x.strategy.to_string(),
                    x.kind.key().to_string(),
                    gib(x.max_bytes),
                    if x.device_free_bytes > 0 {
                        format!(
                            "{:.1}",
                            100.0 * x.max_bytes as f64 / x.device_free_bytes as f64
                        )
                    } else {
                        "-".into()
                    },
                    x.stop_reason.phrase().to_string(),
                    format!("{} ({})", x.attempts, x.failures),
                    gib(x.device_free_bytes),
                    gib(x.mem_available_bytes),
                    format!("{:.1}", x.elapsed_ms / 1e3),
                ]
            })
            .collect();
        p.table(
            format!("Probe limits, device {dev} ({name})"),
            &[
                "strategy",
                "kind",
                "max (GiB)",
                "% of cuMemGetInfo free",
                "stopped at",
                "attempts (out of memory)",
                "cuMemGetInfo free before (GiB)",
                "MemAvailable before (GiB)",
                "time (s)",
            ],
            body,
        );
        let singles: Vec<String> = rows
            .iter()
            .filter(|x| x.kind.key() == "single")
            .map(|x| {
                format!(
                    "{} {} GiB ({})",
                    x.strategy,
                    gib(x.max_bytes),
                    x.stop_reason.phrase()
                )
            })
            .collect();
        if !singles.is_empty() {
            findings.push(format!(
                "{fig}: on device {dev}, with cuMemGetInfo reporting {} GiB free, the largest single allocations were: {}.",
                gib(free),
                singles.join("; ")
            ));
        }
    }
    if !s.skipped.is_empty() {
        p.para("Not probed:");
        p.bullets(s.skipped.clone());
    }
    Ok(())
}

fn cache(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let status = r.cache.as_ref().filter(|c| !c.rows.is_empty());
    let effect = r.cache_effect.as_ref().filter(|c| !c.rows.is_empty());
    if status.is_none() && effect.is_none() {
        return;
    }
    p.h2("Page cache");
    findings.group = "Page cache".into();
    if let Some(c) = status {
        let body = c
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.label.label().to_string(),
                    gib(x.mem_free_bytes),
                    gib(x.mem_available_bytes),
                    gib(x.cached_bytes),
                    gib(x.reclaimable_cache_bytes),
                    gib(x.dirty_bytes),
                    x.device_free_bytes.map_or("-".into(), gib),
                ]
            })
            .collect();
        let t = p.table(
            "The page cache against GPU memory (GiB = 2^30 bytes)",
            &[
                "state",
                "MemFree",
                "MemAvailable",
                "Cached",
                "reclaimable cache",
                "Dirty",
                "cuMemGetInfo free",
            ],
            body,
        );
        p.bullets(c.notes.clone());
        if let Some(x) = c.rows.first() {
            findings.push(format!(
                "{t}: the page cache holds {} GiB, {} GiB of it reclaimable; MemAvailable is {} GiB against MemFree {} GiB.",
                gib(x.cached_bytes),
                gib(x.reclaimable_cache_bytes),
                gib(x.mem_available_bytes),
                gib(x.mem_free_bytes)
            ));
        }
    }
    if let Some(c) = effect {
        p.h3("Cache effect");
        let body = c
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.device.to_string(),
                    x.state.label().to_string(),
                    gib(x.fill_bytes),
                    x.file_resident_bytes.map_or("-".into(), gib),
                    gib(x.device_free_bytes),
                    gib(x.mem_available_bytes),
                    gib(x.cached_bytes),
                    x.alloc_first_ms.map_or("-".into(), |v| format!("{v:.2}")),
                    x.probe_device_max_bytes.map_or("-".into(), gib),
                ]
            })
            .collect();
        let t = p.table(
            "What the page cache costs (GiB = 2^30 bytes)",
            &[
                "device",
                "state",
                "fill (GiB)",
                "file in cache (GiB)",
                "cuMemGetInfo free",
                "MemAvailable",
                "Cached",
                "first device alloc (ms)",
                "largest device alloc (GiB)",
            ],
            body,
        );
        for n in &c.notes {
            findings.push(format!("{t}: {n}"));
        }
    }
}

fn layout(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(v) = &r.layout else { return };
    if v.is_empty() {
        return;
    }
    p.h2(format!(
        "Layout: a model's tensors ({})",
        super::LAYOUT_PRESET
    ));
    p.para("A simulated 13B model's named tensors allocated one by one with `device`, then every other tensor freed and the largest single allocation searched: what a whole set costs beyond its bytes, and how fragmented free memory becomes.");
    for rep in v {
        let Some(dev) = rep.rows.first().map(|x| x.device) else {
            continue;
        };
        findings.group = format!("Layout, device {dev} ({})", r.device_name(dev));
        let mut body = Vec::new();
        if let Some(t) = &rep.summary.totals {
            body.push(vec!["tensors allocated".into(), t.tensors.to_string()]);
            body.push(vec!["bytes requested (GiB)".into(), gib(t.requested_bytes)]);
            body.push(vec![
                "cuMemGetInfo free fell by (GiB)".into(),
                gib_signed(t.device_free_drop_bytes),
            ]);
            body.push(vec![
                "overhead beyond the request (GiB)".into(),
                gib_signed(t.overhead_bytes),
            ]);
            body.push(vec![
                "overhead (% of the request)".into(),
                format!("{:.2}", t.overhead_pct),
            ]);
        }
        if let Some(f) = &rep.summary.fragmentation {
            body.push(vec![
                format!("freed by `{}` (GiB)", f.pattern),
                gib(f.freed_bytes),
            ]);
            body.push(vec![
                "largest single allocation after that (GiB)".into(),
                gib(f.largest_bytes),
            ]);
            body.push(vec![
                "as % of cuMemGetInfo free".into(),
                format!("{:.1}", f.largest_pct_of_free()),
            ]);
        }
        if body.is_empty() {
            continue;
        }
        let t = p.table(
            format!(
                "Layout {} on device {dev} ({})",
                super::LAYOUT_PRESET,
                r.device_name(dev)
            ),
            &["measure", "value"],
            body,
        );
        for n in &rep.notes {
            findings.push(format!("{t}: {n}"));
        }
        if !rep.skipped.is_empty() {
            p.bullets(rep.skipped.clone());
        }
    }
}

fn plan(r: &LabResults, p: &mut Page, findings: &mut Findings) {
    let Some(v) = &r.plan else { return };
    if v.is_empty() {
        return;
    }
    p.h2("Plan: the largest model per workload");
    findings.group = "Plan".into();
    p.para("Pure arithmetic (`cumemlab plan --capacity`): the largest dense model, in billions of parameters, whose weights, KV cache, activations and training state fit each target at the stated context and batch.");
    for m in v {
        let body = m
            .rows
            .iter()
            .map(|c| {
                vec![
                    c.label.clone(),
                    format!("{:.2}", c.max_params_billions),
                    format!("{:.2}", c.total_bytes as f64 / 1e9),
                    c.layers.to_string(),
                ]
            })
            .collect();
        let t = p.table(
            format!(
                "Capacity of {} ({:.1} GB budget, context {}, batch {})",
                m.target.name, m.budget_gb, m.context, m.batch
            ),
            &[
                "workload",
                "largest model (billion parameters)",
                "its total (GB)",
                "layers",
            ],
            body,
        );
        let best: Vec<String> = m
            .rows
            .iter()
            .map(|c| format!("{:.1}B for {}", c.max_params_billions, c.label))
            .collect();
        findings.push(format!(
            "{t}: on {} ({:.1} GB to plan with) the largest dense models are {}.",
            m.target.name,
            m.budget_gb,
            best.join("; ")
        ));
    }
}

fn files(r: &LabResults, p: &mut Page) {
    p.h2("Files");
    let mut v = vec![
        "`results.json`: everything above, with the environment (read it with `cumemlab compare` or any JSON tool)".to_string(),
        "`steps.csv`, `accounting.csv`".to_string(),
    ];
    let mut csvs = Vec::new();
    if r.info.is_some() {
        csvs.push("`info.csv`");
    }
    if r.selftest.is_some() {
        csvs.push("`selftest.csv`");
    }
    if r.sweep.is_some() {
        csvs.push("`sweep.csv`");
    }
    if r.probe.is_some() {
        csvs.push("`probe.csv`");
    }
    if r.cache.is_some() {
        csvs.push("`cache.csv`");
    }
    if r.cache_effect.is_some() {
        csvs.push("`cache-effect.csv`");
    }
    if r.layout.is_some() {
        csvs.push("`layout.csv`");
    }
    if r.plan.is_some() {
        csvs.push("`plan.csv`");
    }
    if !csvs.is_empty() {
        v.push(format!("one CSV per experiment: {}", csvs.join(", ")));
    }
    v.push("`report.md` (figures under `plots/`) and `report.html` (self-contained)".into());
    p.bullets(v);
    p.para(
        "Compare with another machine: `cumemlab compare THIS_FOLDER OTHER_FOLDER --out compare/`.",
    );
}
